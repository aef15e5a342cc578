//! What the containers did to their ends of the ports' veths, seen from the daemon's netns.
//!
//! A kernel macvlan port follows its container: taken down, it stops receiving (its MAC is unhashed);
//! given a new MAC, frames to the new one reach it. An mvdp port's container end is a veth in a netns
//! the daemon does not live in, so the daemon asks the kernel about it through the host end: the host
//! end's IFLA_LINK is the peer's ifindex and IFLA_LINK_NETNSID the peer netns's id as the daemon's
//! netns knows it, and RTM_GETLINK with IFLA_IF_NETNSID reads a link in that netns. No fd of the
//! container's netns is ever held, so a removed container's netns still goes away with its veth.

use std::collections::BTreeMap;
use std::io;

use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use mvdp_switch::Mac as MacAddr;

/// A container end as it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mac: Option<MacAddr>,
}

/// A synchronous rtnetlink socket in the netns it was created in.
pub struct PeerQuery {
    sock: Socket,
    seq: u32,
}

impl PeerQuery {
    /// Opens the socket in the calling thread's netns.
    pub fn open() -> io::Result<PeerQuery> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(PeerQuery { sock, seq: 0 })
    }

    /// The peers of the veths named in `host_ifnames` (those found; a name missing from the map has
    /// no veth peer any more).
    pub fn peers(&mut self, host_ifnames: &[&str]) -> io::Result<BTreeMap<String, Peer>> {
        let mut out = BTreeMap::new();
        for l in self.request(LinkMessage::default(), true)? {
            let mut name = None;
            let mut peer = None;
            let mut nsid = None;
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.as_str()),
                    LinkAttribute::Link(i) => peer = Some(*i),
                    LinkAttribute::LinkNetNsId(id) => nsid = Some(*id),
                    _ => {}
                }
            }
            let (Some(name), Some(peer)) = (name, peer) else {
                continue;
            };
            if !host_ifnames.contains(&name) {
                continue;
            }
            let mut req = LinkMessage::default();
            req.header.index = peer;
            if let Some(id) = nsid {
                req.attributes.push(LinkAttribute::IfNetnsId(id));
            }
            // The peer may vanish between the two requests: then it is simply not reported.
            if let Some(p) = self
                .request(req, false)
                .ok()
                .and_then(|v| v.into_iter().next())
            {
                let mac = p.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(b) if b.len() == 6 => {
                        Some(MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]))
                    }
                    _ => None,
                });
                out.insert(
                    name.to_string(),
                    Peer {
                        up: p.header.flags.contains(LinkFlags::Up),
                        mac,
                    },
                );
            }
        }
        Ok(out)
    }

    fn request(&mut self, msg: LinkMessage, dump: bool) -> io::Result<Vec<LinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(
            header,
            NetlinkPayload::from(RouteNetlinkMessage::GetLink(msg)),
        );
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 1 << 16];
        loop {
            let n = self.sock.recv(&mut &mut rbuf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                    .map_err(|e| io::Error::other(format!("rtnetlink reply: {e}")))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        out.push(l);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return Err(match e.code {
                            Some(c) => io::Error::from_raw_os_error(-c.get()),
                            None => io::Error::other("rtnetlink error without a code"),
                        })
                    }
                    _ => {}
                }
            }
        }
    }
}
