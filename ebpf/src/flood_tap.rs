//! The flood tap: how broadcast and multicast frames reach userspace.
//!
//! XDP cannot clone a frame, yet a broadcast from the wire must reach both the host stack
//! (ARP, neighbour discovery: the host keeps working) and mvdp's ports. The demux program
//! passes every group-addressed frame to the host stack; this AF_PACKET socket, bound to the
//! parent with a classic BPF filter on the group bit, receives a copy of each. The flood path
//! copies into every port anyway, so the copy costs little, and it keeps the kernel's own
//! broadcast handling untouched.
//!
//! By the time a frame reaches a packet socket the stack has moved its 802.1Q tag into
//! metadata; the tap puts the tag back so userspace sees the frame as it was on the wire.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::DemuxError;

/// Where [`FloodTap::recv`] put a frame in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TappedFrame {
    /// Start of the frame in the buffer.
    pub offset: usize,
    /// Length of the frame, tag included.
    pub len: usize,
    /// The outer tag the frame carried, if any, as (TPID, TCI): 0x8100 for 802.1Q, 0x88a8 for
    /// 802.1ad. The tag is back in the frame bytes with its own TPID, so an 802.1ad frame
    /// never passes for an 802.1Q one.
    pub vlan: Option<(u16, u16)>,
}

/// A non-blocking AF_PACKET socket receiving the broadcast/multicast frames that arrive on
/// one interface (incoming only).
#[derive(Debug)]
pub struct FloodTap {
    fd: OwnedFd,
    ifindex: u32,
    /// Frames longer than the caller's buffer, dropped.
    pub truncated: u64,
}

const VLAN_HLEN: usize = 4;

impl FloodTap {
    /// Opens the tap on `ifname` in the calling thread's network namespace.
    pub fn open(ifname: &str) -> Result<FloodTap, DemuxError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| DemuxError::NoSuchInterface(ifname.into()))?;
        let err = |what: &str| DemuxError::Attach {
            ifname: ifname.into(),
            detail: format!("flood tap: {what}: {}", io::Error::last_os_error()),
        };
        // Protocol 0: the socket receives nothing until bind, so no frame slips in before
        // the filter is in place.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(err("socket(AF_PACKET)"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // ldb [0]; jset #1 -> accept : reject   (the I/G bit of the destination MAC)
        let mut prog = [
            libc::sock_filter {
                code: 0x30,
                jt: 0,
                jf: 0,
                k: 0,
            },
            libc::sock_filter {
                code: 0x45,
                jt: 0,
                jf: 1,
                k: 1,
            },
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: u32::MAX,
            },
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
            .map_err(|_| err("attaching the filter"))?;
        let one: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)
            .map_err(|_| err("PACKET_AUXDATA"))?;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
            .map_err(|_| err("PACKET_IGNORE_OUTGOING"))?;

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(err("bind"));
        }
        Ok(FloodTap {
            fd,
            ifindex,
            truncated: 0,
        })
    }

    /// Puts the interface in promiscuous mode for as long as this socket lives. A real NIC
    /// drops frames for MACs it does not own, and mvdp's ports have their own MACs. Held as a
    /// packet-socket membership, the kernel undoes it when the socket closes, also when the
    /// process is killed, so a crash never leaves the parent promiscuous.
    pub fn hold_promisc(&self) -> io::Result<()> {
        let mreq = libc::packet_mreq {
            mr_ifindex: self.ifindex as libc::c_int,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(
            &self.fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
        )
    }

    /// Receives one frame into `buf` as it was on the wire (802.1Q tag restored).
    /// `Ok(None)` when no frame is waiting. `buf` must have room for the frame plus 4 bytes.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<TappedFrame>> {
        loop {
            if buf.len() < VLAN_HLEN + 14 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "flood tap buffer too small",
                ));
            }
            let room = buf.len() - VLAN_HLEN;
            let mut iov = libc::iovec {
                iov_base: buf[VLAN_HLEN..].as_mut_ptr().cast(),
                iov_len: room,
            };
            // u64 array: cmsg buffers must be aligned for cmsghdr.
            let mut cbuf = [0u64; 8];
            // SAFETY: msghdr is plain old data; all-zero is a valid value.
            let mut msg: libc::msghdr = unsafe { zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = size_of::<[u64; 8]>();
            // SAFETY: `msg` points at `iov` (inside `buf`) and `cbuf`, both alive and
            // exclusively borrowed for the duration of the call.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            let len = n as usize;
            if len > room || msg.msg_flags & libc::MSG_TRUNC != 0 {
                self.truncated += 1;
                continue;
            }
            return Ok(Some(match vlan_from_cmsgs(&msg) {
                Some((tpid, tci)) if len >= 12 => {
                    buf.copy_within(VLAN_HLEN..VLAN_HLEN + 12, 0);
                    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
                    buf[14..16].copy_from_slice(&tci.to_be_bytes());
                    TappedFrame {
                        offset: 0,
                        len: len + VLAN_HLEN,
                        vlan: Some((tpid, tci)),
                    }
                }
                _ => TappedFrame {
                    offset: VLAN_HLEN,
                    len,
                    vlan: None,
                },
            }));
        }
    }
}

impl AsFd for FloodTap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for FloodTap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live reference to a `T` and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// (TPID, TCI) of the tag the stack took out of the frame; kernels that predate
/// TP_STATUS_VLAN_TPID_VALID only ever strip 802.1Q tags.
fn vlan_from_cmsgs(msg: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: `msg` was filled in by a successful recvmsg, so its control buffer holds
    // well-formed cmsgs within msg_controllen; CMSG_* only walk inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::tpacket_auxdata);
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    return Some((tpid, aux.tp_vlan_tci));
                }
                return None;
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}
