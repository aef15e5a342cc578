//! What the containers did to their ends of the ports' veths, seen from the daemon's netns.
//!
//! A kernel macvlan port follows its container: taken down, it stops receiving (its MAC is unhashed);
//! given a new MAC, frames to the new one reach it. An mvdp port's container end is a veth in a netns
//! the daemon does not live in, so the daemon asks the kernel about it through the host end: the host
//! end's IFLA_LINK is the peer's ifindex and IFLA_LINK_NETNSID the peer netns's id as the daemon's
//! netns knows it, and RTM_GETLINK with IFLA_IF_NETNSID reads a link in that netns
//! ([`Netlink::peer_of`]). No fd of the container's netns is ever held, so a removed container's netns
//! still goes away with its veth.

use std::collections::BTreeMap;

use crate::netlink::Netlink;
use mvdp_switch::Mac;

/// A container end as it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mac: Option<Mac>,
}

/// The peers of the veths named in `host_ifnames` (those found; a name missing from the map has no
/// veth peer any more), asked through `nl`, a connection in the daemon's netns.
pub fn peers(nl: &Netlink, host_ifnames: &[&str]) -> crate::Result<BTreeMap<String, Peer>> {
    let mut out = BTreeMap::new();
    for host_end in nl.links()? {
        if !host_ifnames.contains(&host_end.name.as_str()) {
            continue;
        }
        // The peer may vanish between the two requests: then it is simply not reported.
        if let Ok(Some(p)) = nl.peer_of(&host_end) {
            out.insert(
                host_end.name,
                Peer {
                    up: p.up,
                    mac: p.mac,
                },
            );
        }
    }
    Ok(out)
}
