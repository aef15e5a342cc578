//! AF_XDP over libxdp's C API (libxdp-sys, the library xsk-rs wraps): a UMEM shared by every
//! socket, and sockets with their four rings.
//!
//! xsk-rs hides a descriptor's address behind its own frame type and cannot move it, but the
//! switch must: popping or pushing an 802.1Q tag in place moves the start of the frame four bytes
//! within its chunk, and a descriptor received on one socket is transmitted on another. So the
//! fast path talks to the rings directly; this module is the only place it does, and every
//! `unsafe` block here says why it holds.

mod ring;
mod socket;
mod umem;

pub use ring::{ConsRing, Desc, ProdRing};
pub use socket::{xsk_statistics, SocketConfig, XskSocket, XskStatistics};
pub use umem::{Umem, UmemConfig, XDP_PACKET_HEADROOM};
