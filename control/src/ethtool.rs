//! NIC features set over ethtool's generic netlink family (ETHTOOL_MSG_FEATURES_SET), what
//! `ethtool -K` does, without running a program: the rust-netlink `ethtool` crate only reads
//! features, so the few messages needed are built here. No `unsafe`: the socket is netlink-sys's.
//!
//! Works in the calling thread's network namespace (see [`crate::netns::run_in`]).

use std::io;

use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_MSG_FEATURES_SET: u8 = 12;
const ETHTOOL_A_FEATURES_HEADER: u16 = 1;
const ETHTOOL_A_FEATURES_WANTED: u16 = 3;
const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;
const ETHTOOL_A_HEADER_FLAGS: u16 = 3;
/// Skip the reply message: the ack says whether it worked.
const ETHTOOL_FLAG_OMIT_REPLY: u32 = 1 << 1;
const ETHTOOL_A_BITSET_BITS: u16 = 3;
const ETHTOOL_A_BITSET_BITS_BIT: u16 = 1;
const ETHTOOL_A_BITSET_BIT_NAME: u16 = 2;
const ETHTOOL_A_BITSET_BIT_VALUE: u16 = 3;

/// One netlink request being written: header, generic netlink header, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(family: u16, cmd: u8, version: u8) -> Msg {
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        b.extend_from_slice(&family.to_ne_bytes());
        b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        b.extend_from_slice(&[cmd, version, 0, 0]);
        Msg(b)
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.pad();
    }

    fn string(&mut self, kind: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v);
    }

    /// A nested attribute whose content `fill` writes.
    fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Msg)) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        fill(self);
        let len = (self.0.len() - at) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// The attributes (type without flag bits, payload) in `b`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & !(NLA_F_NESTED | (1 << 14));
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = b.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    out
}

/// Sends `msg` and reads until the kernel's ack; the messages that came before it (payloads
/// after the generic netlink header) are returned.
fn transact(sock: &Socket, msg: Vec<u8>) -> io::Result<Vec<Vec<u8>>> {
    sock.send(&msg, 0)?;
    let mut replies = Vec::new();
    loop {
        let (buf, _) = sock.recv_from_full()?;
        let mut b = &buf[..];
        while b.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let kind = u16::from_ne_bytes([b[4], b[5]]);
            if len < NLMSG_HDRLEN || len > b.len() {
                return Err(io::Error::other("a truncated netlink message"));
            }
            if kind == NLMSG_ERROR {
                let code = b
                    .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
                    .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(0);
                return match code {
                    0 => Ok(replies),
                    c => Err(io::Error::from_raw_os_error(-c)),
                };
            }
            if let Some(payload) = b.get(NLMSG_HDRLEN + GENL_HDRLEN..len) {
                replies.push(payload.to_vec());
            }
            b = b.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
        }
    }
}

/// The id the kernel gave the "ethtool" generic netlink family.
fn ethtool_family(sock: &Socket) -> io::Result<u16> {
    let mut m = Msg::new(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
    m.string(CTRL_ATTR_FAMILY_NAME, "ethtool");
    for reply in transact(sock, m.finish())? {
        for (kind, v) in attrs(&reply) {
            if kind == CTRL_ATTR_FAMILY_ID && v.len() >= 2 {
                return Ok(u16::from_ne_bytes([v[0], v[1]]));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the kernel has no ethtool netlink family",
    ))
}

/// Sets each named feature (`ethtool -k`'s names, e.g. `tx-checksum-ip-generic`) on or off on
/// `ifname`, in one request. Features the device cannot change are left as they are, as with
/// `ethtool -K`.
pub fn set_features(ifname: &str, features: &[(&str, bool)]) -> io::Result<()> {
    let mut sock = Socket::new(NETLINK_GENERIC)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let family = ethtool_family(&sock)?;
    let mut m = Msg::new(family, ETHTOOL_MSG_FEATURES_SET, ETHTOOL_GENL_VERSION);
    m.nest(ETHTOOL_A_FEATURES_HEADER, |m| {
        m.string(ETHTOOL_A_HEADER_DEV_NAME, ifname);
        m.attr(
            ETHTOOL_A_HEADER_FLAGS,
            &ETHTOOL_FLAG_OMIT_REPLY.to_ne_bytes(),
        );
    });
    // A bitset in list form without NOMASK: only the listed bits change, to on when VALUE is
    // there, off when it is not.
    m.nest(ETHTOOL_A_FEATURES_WANTED, |m| {
        m.nest(ETHTOOL_A_BITSET_BITS, |m| {
            for (name, on) in features {
                m.nest(ETHTOOL_A_BITSET_BITS_BIT, |m| {
                    m.string(ETHTOOL_A_BITSET_BIT_NAME, name);
                    if *on {
                        m.attr(ETHTOOL_A_BITSET_BIT_VALUE, &[]);
                    }
                });
            }
        });
    });
    transact(&sock, m.finish()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_and_nested_as_netlink_wants() {
        let mut m = Msg::new(0x20, ETHTOOL_MSG_FEATURES_SET, 1);
        m.nest(ETHTOOL_A_FEATURES_HEADER, |m| {
            m.string(ETHTOOL_A_HEADER_DEV_NAME, "eth0")
        });
        let b = m.finish();
        assert_eq!(
            u32::from_ne_bytes(b[..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(b.len() % 4, 0);
        assert_eq!(b[16], ETHTOOL_MSG_FEATURES_SET);
        let top = attrs(&b[20..]);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, ETHTOOL_A_FEATURES_HEADER);
        let inner = attrs(top[0].1);
        assert_eq!(inner, vec![(ETHTOOL_A_HEADER_DEV_NAME, &b"eth0\0"[..])]);
    }

    #[test]
    fn attribute_walk_stops_at_garbage() {
        assert!(attrs(&[]).is_empty());
        assert!(attrs(&[1, 0]).is_empty());
        assert!(
            attrs(&[200, 0, 1, 0, 0, 0, 0, 0]).is_empty(),
            "length past the end"
        );
        assert!(attrs(&[2, 0, 1, 0]).is_empty(), "length under the header");
    }
}
