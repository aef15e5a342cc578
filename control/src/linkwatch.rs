//! The links of one network namespace, kept current from the kernel's link notifications
//! (RTNLGRP_LINK) instead of a dump per poll.
//!
//! The daemon used to dump every link five times a second to notice vanished ports, carrier
//! changes and container ends going down. At a thousand ports a dump is thousands of messages
//! to parse: ~12 % of a CPU while nothing happened, and a request that arrived during one waited
//! for it (the tail of port add/remove latency). The kernel announces every change of a link in
//! the namespace; with those, an idle daemon reads nothing. A full dump is still taken at the
//! start, when the kernel says notifications were lost (the socket's buffer overflowed), and
//! every [`RESYNC`] as a safety net.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};
use crate::netlink::{parse_link, Link, Netlink};

/// How often the cache is rebuilt from a full dump even when no notification was lost.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Receive buffer for notifications: a burst of port adds and removals (a few messages each)
/// between two polls must fit, or the kernel drops them and the cache resyncs.
const RCVBUF: usize = 4 << 20;

/// A socket subscribed to the link notifications of the namespace it was opened in.
pub struct LinkWatch {
    sock: Socket,
    buf: Vec<u8>,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link appeared or changed (RTM_NEWLINK).
    Changed(Link),
    /// The link with this ifindex is gone (RTM_DELLINK).
    Removed(u32),
}

/// What [`LinkWatch::drain`] read.
#[derive(Debug, Default)]
pub struct LinkEvents {
    /// In the order the kernel sent them, which matters: a veth whose peer was deleted is
    /// announced as a change (down) and then a deletion.
    pub events: Vec<LinkEvent>,
    /// The kernel dropped notifications (ENOBUFS): only a dump tells the state now.
    pub lost: bool,
}

impl LinkWatch {
    /// Subscribes in the calling thread's network namespace (see [`crate::netns::run_in`]).
    pub fn open() -> io::Result<LinkWatch> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, libc::RTMGRP_LINK as u32))?;
        sock.set_non_blocking(true)?;
        // A larger buffer is a wish the kernel caps at rmem_max; smaller only means earlier
        // resyncs.
        let _ = sock.set_rx_buf_sz(RCVBUF);
        Ok(LinkWatch {
            sock,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Reads every notification waiting, without blocking.
    pub fn drain(&mut self) -> io::Result<LinkEvents> {
        let mut ev = LinkEvents::default();
        loop {
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ev),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    ev.lost = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            parse_events(&self.buf[..n], &mut ev);
        }
    }
}

/// Adds the link messages in one datagram to `ev`; anything else (or a message that does not
/// parse) is skipped: the next resync covers it.
fn parse_events(mut b: &[u8], ev: &mut LinkEvents) {
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            ev.lost = true;
            return;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b[..len]) {
            Ok(m) => match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    ev.events.push(LinkEvent::Changed(parse_link(&l)))
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                    ev.events.push(LinkEvent::Removed(l.header.index))
                }
                _ => {}
            },
            Err(_) => ev.lost = true,
        }
        // Messages are 4-byte aligned within a datagram.
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
}

/// The links of the daemon's namespace by name, fed by a [`LinkWatch`].
pub struct LinkCache {
    watch: LinkWatch,
    by_name: HashMap<String, Link>,
    /// ifindex -> name, to apply deletions and renames.
    names: HashMap<u32, String>,
    synced: Option<Instant>,
}

impl LinkCache {
    /// A cache over `watch`, which must have been opened in the namespace `nl` dumps; the first
    /// [`LinkCache::refresh`] dumps.
    pub fn new(watch: LinkWatch) -> LinkCache {
        LinkCache {
            watch,
            by_name: HashMap::new(),
            names: HashMap::new(),
            synced: None,
        }
    }

    /// The links as last seen.
    pub fn links(&self) -> &HashMap<String, Link> {
        &self.by_name
    }

    /// Brings the cache up to date: applies waiting notifications, or dumps when it never did,
    /// notifications were lost, or [`RESYNC`] has passed. True when anything changed (or may
    /// have: a dump counts as a change).
    pub fn refresh(&mut self, nl: &Netlink) -> Result<bool> {
        let ev = self
            .watch
            .drain()
            .map_err(|e| Error::io("reading link notifications", e))?;
        let stale = self.synced.is_none_or(|t| t.elapsed() >= RESYNC);
        if ev.lost || stale {
            // Notifications read before the dump are older than it; later ones apply on top,
            // in order, so the cache ends at the newest state either way.
            self.load(nl.links()?);
            return Ok(true);
        }
        let changed = !ev.events.is_empty();
        self.apply(ev.events);
        Ok(changed)
    }

    fn apply(&mut self, events: Vec<LinkEvent>) {
        for e in events {
            match e {
                LinkEvent::Changed(link) => self.put(link),
                LinkEvent::Removed(index) => self.forget(index),
            }
        }
    }

    fn load(&mut self, links: Vec<Link>) {
        self.by_name.clear();
        self.names.clear();
        for l in links {
            self.put(l);
        }
        self.synced = Some(Instant::now());
    }

    fn forget(&mut self, index: u32) {
        if let Some(name) = self.names.remove(&index) {
            self.by_name.remove(&name);
        }
    }

    fn put(&mut self, link: Link) {
        if let Some(old) = self.names.insert(link.index, link.name.clone()) {
            if old != link.name {
                self.by_name.remove(&old);
            }
        }
        self.by_name.insert(link.name.clone(), link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkHeader;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};

    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
            nl.finalize();
            let mut b = vec![0; nl.buffer_len()];
            nl.serialize(&mut b);
            b.resize((b.len() + 3) & !3, 0);
            out.extend(b);
        }
        out
    }

    fn link(index: u32, name: &str) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m
    }

    #[test]
    fn a_datagram_of_link_messages_becomes_events() {
        let d = datagram(vec![
            RouteNetlinkMessage::NewLink(link(7, "mvp1")),
            RouteNetlinkMessage::DelLink(link(8, "mvp2")),
            RouteNetlinkMessage::NewLink(link(9, "mvp3")),
        ]);
        let mut ev = LinkEvents::default();
        parse_events(&d, &mut ev);
        let got: Vec<_> = ev
            .events
            .iter()
            .map(|e| match e {
                LinkEvent::Changed(l) => (l.index, l.name.as_str()),
                LinkEvent::Removed(i) => (*i, "-"),
            })
            .collect();
        assert_eq!(got, vec![(7, "mvp1"), (8, "-"), (9, "mvp3")]);
        assert!(!ev.lost);
    }

    #[test]
    fn a_truncated_datagram_asks_for_a_resync() {
        let d = datagram(vec![RouteNetlinkMessage::NewLink(link(7, "mvp1"))]);
        let mut ev = LinkEvents::default();
        parse_events(&d[..d.len() - 8], &mut ev);
        assert!(ev.lost);
        assert!(ev.events.is_empty());
    }

    #[test]
    fn the_cache_follows_renames_and_deletions_by_index() {
        let mut c = LinkCache::new(LinkWatch::open().unwrap());
        let l = |index, name: &str| Link {
            index,
            name: name.into(),
            ..Link::default()
        };
        c.put(l(7, "mvp1"));
        c.put(l(8, "mvp2"));
        c.put(l(7, "renamed"));
        let mut names: Vec<_> = c.links().keys().cloned().collect();
        names.sort();
        assert_eq!(names, vec!["mvp2", "renamed"]);
        c.forget(8);
        c.forget(99);
        assert_eq!(c.links().keys().collect::<Vec<_>>(), vec!["renamed"]);
    }

    #[test]
    fn a_change_then_a_deletion_leaves_the_link_gone() {
        // Applied out of order (deletions first), the veth would come back from its last
        // change and the port would never be seen to vanish.
        let mut c = LinkCache::new(LinkWatch::open().unwrap());
        let l = Link {
            index: 7,
            name: "mvp0".into(),
            ..Link::default()
        };
        c.put(l.clone());
        c.apply(vec![LinkEvent::Changed(l), LinkEvent::Removed(7)]);
        assert!(c.links().is_empty());
    }
}
