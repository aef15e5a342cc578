//! Ports' multicast filters follow their container ends' groups (see [`crate::mcast`]).
//!
//! A port is read when it is added or re-adopted, when a notification names its container end,
//! and, as a safety net for lost notifications, a few ports per poll in turn. Until its first
//! read, and whenever its groups cannot be read, a port receives every group, as before filters.

use std::collections::{BTreeMap, BTreeSet};

use super::peers::MacRota;
use crate::mcast::{receives_all, GroupReader, MembershipWatch, PeerKey};
use crate::netlink::{Link, Netlink};
use mvdp_switch::{Mac, McFilter};

/// Ports read per poll at most (three netlink requests each); the rest wait for the next. A
/// request that arrives during a poll waits for it, so a thousand ports due at once (a restart,
/// a burst of container starts) are read over a few seconds instead of holding every request
/// behind them; meanwhile those ports receive every group, as before their first read.
pub const READS_PER_POLL: usize = 32;
/// Ports re-read per poll in turn, whatever the notifications said.
pub const ROTA_PER_POLL: usize = 4;

/// What a port receives, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Groups {
    /// Every group: promiscuous or ALLMULTI, or not known.
    All,
    /// These link-layer groups and broadcast.
    Only(Vec<Mac>),
}

impl Groups {
    pub fn filter(&self) -> McFilter {
        match self {
            Groups::All => McFilter::ALL,
            Groups::Only(g) => McFilter::of_groups(g.iter().copied()),
        }
    }
}

/// One port as the follower needs it: its id, and its container end's key from the host end.
pub struct PortEnd<'a> {
    pub id: u32,
    pub host_end: &'a Link,
}

impl PortEnd<'_> {
    fn key(&self) -> Option<PeerKey> {
        Some(PeerKey {
            netnsid: self.host_end.link_netnsid,
            ifindex: self.host_end.link?,
        })
    }
}

pub struct Follow {
    /// `None` when the kernel cannot list groups: every port then receives every group.
    reader: Option<GroupReader>,
    watch: Option<MembershipWatch>,
    /// Port id -> what the dataplane was last told.
    applied: BTreeMap<u32, Groups>,
    /// Ports to read at the next poll.
    due: BTreeSet<u32>,
    rota: MacRota,
}

impl Follow {
    /// Opens the reader and the watch in the calling thread's netns (the daemon's).
    pub fn open() -> Follow {
        let reader = GroupReader::open()
            .map_err(|e| {
                tracing::warn!(
                    "multicast groups cannot be read ({e}); every port receives every group"
                )
            })
            .ok();
        let watch = MembershipWatch::open()
            .map_err(|e| tracing::warn!("no multicast group notifications ({e}, Linux 6.13+); group changes are seen in turn, a few ports per poll"))
            .ok();
        Follow {
            reader,
            watch,
            applied: BTreeMap::new(),
            due: BTreeSet::new(),
            rota: MacRota::default(),
        }
    }

    /// Port `id` is new (or re-adopted): read it at the next poll.
    pub fn added(&mut self, id: u32) {
        self.due.insert(id);
    }

    pub fn removed(&mut self, id: u32) {
        self.due.remove(&id);
        self.applied.remove(&id);
    }

    /// The dataplane refused the last changes for `ids`: read them again at the next poll.
    pub fn refused(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            self.applied.remove(&id);
            self.due.insert(id);
        }
    }

    /// What port `id` receives, as last read; `None` before its first read.
    pub fn groups(&self, id: u32) -> Option<&Groups> {
        self.applied.get(&id)
    }

    /// Reads the ports that are due among `ports` (in id order) through `nl` (for the container
    /// end's promiscuity and ALLMULTI counts); returns the filters that changed.
    pub fn poll(&mut self, nl: &Netlink, ports: &[PortEnd<'_>]) -> Vec<(u32, McFilter)> {
        let Some(reader) = self.reader.as_mut() else {
            return Vec::new();
        };
        if let Some(watch) = self.watch.as_mut() {
            let ev = watch.drain();
            if ev.lost {
                self.due.extend(ports.iter().map(|p| p.id));
            } else if !ev.changed.is_empty() {
                self.due.extend(
                    ports
                        .iter()
                        .filter(|p| p.key().is_some_and(|k| ev.changed.contains(&k)))
                        .map(|p| p.id),
                );
            }
        }
        let ids: Vec<u32> = ports.iter().map(|p| p.id).collect();
        self.due.extend(self.rota.take(&ids, ROTA_PER_POLL));
        let mut changes = Vec::new();
        let mut read = 0;
        for p in ports {
            if read == READS_PER_POLL {
                break;
            }
            if !self.due.remove(&p.id) {
                continue;
            }
            read += 1;
            let groups = read_groups(reader, nl, p);
            if self.applied.get(&p.id) != Some(&groups) {
                changes.push((p.id, groups.filter()));
                self.applied.insert(p.id, groups);
            }
        }
        // Ports that are gone or have no host end leave nothing due behind.
        self.due.retain(|id| ids.binary_search(id).is_ok());
        changes
    }
}

fn read_groups(reader: &mut GroupReader, nl: &Netlink, p: &PortEnd<'_>) -> Groups {
    let Some(key) = p.key() else {
        return Groups::All;
    };
    let peer = match nl.peer_of(p.host_end) {
        Ok(Some(peer)) => peer,
        Ok(None) => return Groups::All,
        Err(e) => {
            tracing::debug!(port = p.id, "reading the container end: {e}");
            return Groups::All;
        }
    };
    if receives_all(peer.promiscuity, peer.allmulti) {
        return Groups::All;
    }
    match reader.groups(key) {
        Ok(g) => Groups::Only(g),
        Err(e) => {
            tracing::debug!(port = p.id, "reading the container end's groups: {e}");
            Groups::All
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_all_and_a_list_is_its_groups_and_broadcast() {
        assert!(Groups::All.filter().is_all());
        let g = Mac([0x33, 0x33, 0, 0, 0, 1]);
        let f = Groups::Only(vec![g]).filter();
        assert_eq!(f, McFilter::of_groups([g]));
        assert!(!f.is_all());
    }
}
