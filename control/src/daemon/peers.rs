//! What the containers did to their ends of the ports' veths, seen from the daemon's netns.
//!
//! A kernel macvlan port follows its container: taken down, it stops receiving (its MAC is unhashed);
//! given a new MAC, frames to the new one reach it. An mvdp port's container end is a veth in a netns
//! the daemon does not live in, so the daemon reads it through the host end:
//! - **state**: a veth has carrier exactly when both of its ends are up, so while the daemon keeps
//!   the host end up, the host end's carrier (IFF_LOWER_UP, in the one link dump a poll makes
//!   anyway) is the container end's admin state;
//! - **MAC**: the host end's IFLA_LINK is the peer's ifindex and IFLA_LINK_NETNSID the peer netns's
//!   id as the daemon's netns knows it, and RTM_GETLINK with IFLA_IF_NETNSID reads the peer in that
//!   netns ([`Netlink::peer_of`]). That is one request per port, so a poll asks a bounded slice of
//!   the ports, in turn ([`MacRota`]): on a dense host a MAC change is seen within a few polls
//!   instead of every poll costing a request per port.
//!
//! No fd of the container's netns is ever held, so a removed container's netns still goes away with
//! its veth.

use std::collections::BTreeMap;

use crate::netlink::{Link, Netlink};
use mvdp_switch::Mac;

/// Ports whose container end's MAC one poll reads at most.
pub const MAC_READS_PER_POLL: usize = 64;

/// Whether the container end of the veth whose host end is `host_end` is up, when the host end
/// can tell: only while the host end itself is up (the daemon takes it down when the parent
/// loses carrier, and then the carrier says nothing about the container).
pub fn peer_up(host_end: &Link) -> Option<bool> {
    host_end.up.then_some(host_end.lower_up)
}

/// Which ports' container-end MACs the next poll reads: a cursor over the ports in id order.
#[derive(Debug, Default)]
pub struct MacRota {
    next: u32,
}

impl MacRota {
    /// The next at most `n` of `ids` (sorted, unique) after the last one read, wrapping around.
    pub fn take(&mut self, ids: &[u32], n: usize) -> Vec<u32> {
        if ids.len() <= n {
            self.next = 0;
            return ids.to_vec();
        }
        let start = ids.partition_point(|&id| id < self.next);
        let picked: Vec<u32> = ids.iter().cycle().skip(start).take(n).copied().collect();
        self.next = picked.last().map_or(0, |&last| last.wrapping_add(1));
        picked
    }
}

/// The MAC of the container end of each of `host_ends` that still has one, asked through `nl`, a
/// connection in the daemon's netns. A peer that vanished between the dump and the request is
/// simply not reported.
pub fn peer_macs(nl: &Netlink, host_ends: &[&Link]) -> BTreeMap<String, Mac> {
    let mut out = BTreeMap::new();
    for host_end in host_ends {
        if let Ok(Some(Link { mac: Some(mac), .. })) = nl.peer_of(host_end) {
            out.insert(host_end.name.clone(), mac);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rota_visits_every_port_in_turn() {
        let ids: Vec<u32> = (0..10).collect();
        let mut r = MacRota::default();
        assert_eq!(r.take(&ids, 4), vec![0, 1, 2, 3]);
        assert_eq!(r.take(&ids, 4), vec![4, 5, 6, 7]);
        assert_eq!(r.take(&ids, 4), vec![8, 9, 0, 1]);
        // A port removed meanwhile is skipped; one added later is reached.
        let ids2 = vec![0, 1, 3, 5, 11];
        assert_eq!(r.take(&ids2, 2), vec![3, 5]);
        assert_eq!(r.take(&ids2, 2), vec![11, 0]);
        // Few ports: all of them every time.
        assert_eq!(r.take(&[7, 8], 4), vec![7, 8]);
        assert_eq!(r.take(&[], 4), Vec::<u32>::new());
    }

    #[test]
    fn carrier_tells_the_peer_state_only_while_our_end_is_up() {
        let mut l = Link {
            up: true,
            lower_up: false,
            ..Link::default()
        };
        assert_eq!(peer_up(&l), Some(false));
        l.lower_up = true;
        assert_eq!(peer_up(&l), Some(true));
        l.up = false;
        assert_eq!(peer_up(&l), None);
    }
}
