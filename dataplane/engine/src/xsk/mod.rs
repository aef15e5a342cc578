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

use std::io;
use std::time::{Duration, Instant};

/// How long a bind keeps trying a queue the kernel says is busy.
const BUSY_WAIT: Duration = Duration::from_secs(3);

/// Runs `bind` again while it fails with EBUSY, for up to [`BUSY_WAIT`]. A queue stays busy
/// for a moment after the socket that held it is closed: the kernel releases a UMEM's hold on
/// its queues from a workqueue, after the close has returned. A daemon restarted at once, or a
/// parent attached again right after a detach, meets that window.
pub(crate) fn retry_busy<T>(mut bind: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match bind() {
            Err(e)
                if (e.kind() == io::ErrorKind::ResourceBusy
                    || e.raw_os_error() == Some(libc::EBUSY))
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}
