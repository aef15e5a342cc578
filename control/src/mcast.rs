//! Which multicast groups the container end of a port listens to, read from the daemon's netns.
//!
//! A kernel macvlan is the container's own interface, so its multicast filter follows the
//! device's list as it changes. An mvdp port's container end is a veth in another netns, and the
//! daemon holds no fd of that netns (a removed container's netns must go away with its veth). So:
//! - **the groups**: RTM_GETMULTICAST dumps, IPv6 and IPv4, with IFA_TARGET_NETNSID naming the
//!   peer netns by the id the daemon's netns has for it ([`GroupReader`]); each group maps to the
//!   Ethernet address the stack listens on (33:33:… and 01:00:5e:…);
//! - **the changes**: one netlink socket in the daemon's netns with NETLINK_LISTEN_ALL_NSID gets
//!   RTNLGRP_IPV4_MCADDR / RTNLGRP_IPV6_MCADDR (Linux 6.13+) and RTNLGRP_LINK notifications from
//!   every netns that has an id here, each tagged with that id ([`MembershipWatch`]).
//!
//! Not seen: link-layer memberships without an IP group (`ip maddr add` of a MAC, a packet
//! socket's PACKET_MR_MULTICAST). A container that needs those sets ALLMULTI on its interface.

use std::collections::BTreeSet;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use netlink_packet_core::{NetlinkBuffer, NlaBuffer, NlasIterator};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use mvdp_switch::Mac;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWMULTICAST: u16 = 56;
const RTM_DELMULTICAST: u16 = 57;
const RTM_GETMULTICAST: u16 = 58;
const IFA_MULTICAST: u16 = 7;
const IFA_TARGET_NETNSID: u16 = 10;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// `enum rtnetlink_groups` (linux/rtnetlink.h, 6.13+).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_MCADDR: u32 = 37;
const RTNLGRP_IPV6_MCADDR: u32 = 38;
/// SOL_NETLINK's NETLINK_LISTEN_ALL_NSID: the cmsg type carrying a notification's netns id.
const NETLINK_LISTEN_ALL_NSID: i32 = 8;
const SOL_NETLINK: i32 = 270;
/// Header of an ifaddrmsg / ifinfomsg body: the ifindex is at this offset in both.
const IFINDEX_AT: usize = 4;
const IFADDRMSG_LEN: usize = 8;

/// A container end as the daemon's netns names it: the netns id of its namespace (`None`: the
/// daemon's own) and its ifindex there. What a host end's IFLA_LINK_NETNSID and IFLA_LINK say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub netnsid: Option<i32>,
    pub ifindex: u32,
}

/// The Ethernet address an IPv6 group is received on (RFC 2464 §7).
pub fn ipv6_group_mac(g: Ipv6Addr) -> Mac {
    let o = g.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The Ethernet address an IPv4 group is received on (RFC 1112 §6.4: the low 23 bits).
pub fn ipv4_group_mac(g: Ipv4Addr) -> Mac {
    let o = g.octets();
    Mac([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

/// Whether a container end receives every group: promiscuous or ALLMULTI, read as the counts,
/// since a packet socket's membership raises them without the flag a user sets.
pub fn receives_all(promiscuity: u32, allmulti: u32) -> bool {
    promiscuity > 0 || allmulti > 0
}

/// Dumps the groups of container ends, over one socket in the daemon's netns.
pub struct GroupReader {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl GroupReader {
    /// Opens in the calling thread's netns. Strict checking makes the kernel honour the target
    /// netns and the ifindex of a dump request.
    pub fn open() -> io::Result<GroupReader> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_netlink_get_strict_chk(true)?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // The control thread reads on this socket: a dump that never ends must not hold it.
        nix::sys::socket::setsockopt(
            &sock,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(1, 0),
        )
        .map_err(io::Error::from)?;
        Ok(GroupReader {
            sock,
            seq: 0,
            buf: vec![0; 64 << 10],
        })
    }

    /// The Ethernet addresses of the IPv6 and IPv4 groups `peer` has joined. An error when either
    /// family cannot be listed (IPv4 needs Linux 6.13): the caller then knows nothing.
    pub fn groups(&mut self, peer: PeerKey) -> io::Result<Vec<Mac>> {
        let mut out = Vec::new();
        for family in [libc::AF_INET6 as u8, libc::AF_INET as u8] {
            self.dump(family, peer, &mut out)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn dump(&mut self, family: u8, peer: PeerKey, out: &mut Vec<Mac>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.sock.send(&dump_request(family, peer, seq), 0)?;
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            for msg in messages(&self.buf[..n]) {
                if msg.sequence_number() != seq {
                    continue;
                }
                match msg.message_type() {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let code = msg
                            .payload()
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(());
                    }
                    // A dump's replies carry the request's type; RTM_NEWMULTICAST is what a
                    // notification carries.
                    RTM_GETMULTICAST | RTM_NEWMULTICAST => {
                        let body = msg.payload();
                        if ifindex_of(body) != Some(peer.ifindex) {
                            continue;
                        }
                        out.extend(body.get(IFADDRMSG_LEN..).into_iter().flat_map(group_macs));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// An RTM_GETMULTICAST dump of `family` for one interface, in another netns when it has an id.
fn dump_request(family: u8, peer: PeerKey, seq: u32) -> Vec<u8> {
    let mut body = vec![family, 0, 0, 0];
    body.extend_from_slice(&peer.ifindex.to_ne_bytes());
    if let Some(id) = peer.netnsid {
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&IFA_TARGET_NETNSID.to_ne_bytes());
        body.extend_from_slice(&id.to_ne_bytes());
    }
    let mut msg = vec![0u8; 16];
    msg.extend_from_slice(&body);
    let len = msg.len() as u32;
    let mut hdr = NetlinkBuffer::new(&mut msg[..]);
    hdr.set_length(len);
    hdr.set_message_type(RTM_GETMULTICAST);
    hdr.set_flags(NLM_F_REQUEST | NLM_F_DUMP);
    hdr.set_sequence_number(seq);
    msg
}

/// The netlink messages in one datagram; stops at the first malformed one.
fn messages(buf: &[u8]) -> impl Iterator<Item = NetlinkBuffer<&[u8]>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = buf.get(at..)?;
        let msg = NetlinkBuffer::new_checked(rest).ok()?;
        let len = msg.length() as usize;
        at += (len + 3) & !3;
        Some(msg)
    })
}

fn ifindex_of(body: &[u8]) -> Option<u32> {
    let b = body.get(IFINDEX_AT..IFINDEX_AT + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The group addresses in an ifaddrmsg's attributes, as Ethernet addresses.
fn group_macs(attrs: &[u8]) -> impl Iterator<Item = Mac> + '_ {
    NlasIterator::new(attrs)
        .map_while(Result::ok)
        .filter_map(|nla: NlaBuffer<&[u8]>| {
            if nla.kind() != IFA_MULTICAST {
                return None;
            }
            let v = nla.value();
            match v.len() {
                16 => <[u8; 16]>::try_from(v)
                    .ok()
                    .map(|o| ipv6_group_mac(Ipv6Addr::from(o))),
                4 => <[u8; 4]>::try_from(v)
                    .ok()
                    .map(|o| ipv4_group_mac(Ipv4Addr::from(o))),
                _ => None,
            }
        })
}

/// What [`MembershipWatch::drain`] read.
#[derive(Debug, Default)]
pub struct MembershipEvents {
    /// Interfaces whose groups, flags or existence changed.
    pub changed: BTreeSet<PeerKey>,
    /// The kernel dropped notifications (ENOBUFS): anything may have changed.
    pub lost: bool,
}

/// Group and link notifications from every netns with an id in the daemon's.
pub struct MembershipWatch {
    sock: Socket,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl MembershipWatch {
    /// Subscribes in the calling thread's netns. Fails on kernels without the group
    /// notifications (before 6.13); ports then keep receiving every group.
    pub fn open() -> io::Result<MembershipWatch> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_rx_buf_sz(4 << 20)?;
        sock.set_listen_all_namespaces(true)?;
        for g in [RTNLGRP_LINK, RTNLGRP_IPV4_MCADDR, RTNLGRP_IPV6_MCADDR] {
            sock.add_membership(g)?;
        }
        sock.set_non_blocking(true)?;
        Ok(MembershipWatch {
            sock,
            buf: vec![0; 64 << 10],
            cmsg: nix::cmsg_space!([i32; 4]),
        })
    }

    /// Reads every pending notification, without waiting.
    pub fn drain(&mut self) -> MembershipEvents {
        let mut ev = MembershipEvents::default();
        loop {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            let (n, netnsid) = match recvmsg::<UnixAddr>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut self.cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(m) => {
                    let nsid = m.cmsgs().ok().into_iter().flatten().find_map(|c| match c {
                        ControlMessageOwned::Unknown(u)
                            if u.cmsg_header.cmsg_level == SOL_NETLINK
                                && u.cmsg_header.cmsg_type == NETLINK_LISTEN_ALL_NSID =>
                        {
                            u.data_bytes
                                .get(..4)
                                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        }
                        _ => None,
                    });
                    (m.bytes, nsid)
                }
                Err(nix::errno::Errno::EAGAIN) => return ev,
                Err(nix::errno::Errno::ENOBUFS) => {
                    ev.lost = true;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("reading multicast notifications: {e}");
                    ev.lost = true;
                    return ev;
                }
            };
            if n == 0 {
                return ev;
            }
            for msg in messages(&self.buf[..n]) {
                if matches!(
                    msg.message_type(),
                    RTM_NEWLINK | RTM_DELLINK | RTM_NEWMULTICAST | RTM_DELMULTICAST
                ) {
                    if let Some(ifindex) = ifindex_of(msg.payload()) {
                        ev.changed.insert(PeerKey { netnsid, ifindex });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_the_addresses_the_stack_listens_on() {
        let sn: Ipv6Addr = "ff02::1:ff31:bf93".parse().unwrap();
        assert_eq!(ipv6_group_mac(sn).to_string(), "33:33:ff:31:bf:93");
        assert_eq!(
            ipv6_group_mac(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)).to_string(),
            "33:33:00:00:00:01"
        );
        // The top bit of the second octet does not reach the wire: 224.128.0.1 and 224.0.0.1
        // share an address.
        assert_eq!(
            ipv4_group_mac(Ipv4Addr::new(224, 128, 0, 1)),
            ipv4_group_mac(Ipv4Addr::new(224, 0, 0, 1))
        );
        assert_eq!(
            ipv4_group_mac(Ipv4Addr::new(239, 1, 2, 3)).to_string(),
            "01:00:5e:01:02:03"
        );
    }

    #[test]
    fn promiscuous_or_allmulti_ends_get_every_group() {
        assert!(receives_all(1, 0));
        assert!(receives_all(0, 2));
        assert!(!receives_all(0, 0));
    }

    #[test]
    fn a_dump_request_names_the_interface_and_the_netns() {
        let r = dump_request(
            libc::AF_INET6 as u8,
            PeerKey {
                netnsid: Some(7),
                ifindex: 2,
            },
            9,
        );
        let b = NetlinkBuffer::new_checked(&r[..]).unwrap();
        assert_eq!(b.message_type(), RTM_GETMULTICAST);
        assert_eq!(b.sequence_number(), 9);
        assert_eq!(ifindex_of(b.payload()), Some(2));
        let attrs: Vec<(u16, Vec<u8>)> = NlasIterator::new(&b.payload()[IFADDRMSG_LEN..])
            .map(|n| {
                let n: NlaBuffer<&[u8]> = n.unwrap();
                (n.kind(), n.value().to_vec())
            })
            .collect();
        assert_eq!(
            attrs,
            vec![(IFA_TARGET_NETNSID, 7i32.to_ne_bytes().to_vec())]
        );
        // Without an id (a peer in the daemon's own netns) there is no attribute.
        let r = dump_request(
            libc::AF_INET as u8,
            PeerKey {
                netnsid: None,
                ifindex: 2,
            },
            1,
        );
        assert_eq!(r.len(), 16 + IFADDRMSG_LEN);
    }

    #[test]
    fn group_attributes_of_both_families_are_read_and_others_skipped() {
        let mut attrs = Vec::new();
        let mut push = |kind: u16, v: &[u8]| {
            attrs.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            attrs.extend_from_slice(&kind.to_ne_bytes());
            attrs.extend_from_slice(v);
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        };
        push(
            IFA_MULTICAST,
            &"ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets(),
        );
        push(6, &[0; 16]); // IFA_CACHEINFO
        push(IFA_MULTICAST, &[224, 0, 0, 251]);
        push(IFA_MULTICAST, &[1, 2, 3]); // malformed: skipped
        let got: Vec<String> = group_macs(&attrs).map(|m| m.to_string()).collect();
        assert_eq!(got, vec!["33:33:ff:00:00:02", "01:00:5e:00:00:fb"]);
    }
}
