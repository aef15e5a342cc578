//! The flood tap as the engine's source of broadcast and multicast frames.

use std::os::fd::{AsRawFd, RawFd};

use crate::engine::FloodSource;
use mvdp_ebpf::FloodTap;

pub(super) struct Tap(pub(super) FloodTap);

impl FloodSource for Tap {
    fn recv(&mut self, buf: &mut [u8]) -> Option<(usize, usize)> {
        match self.0.recv(buf) {
            Ok(Some(f)) => Some((f.offset, f.len)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "flood tap");
                None
            }
        }
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
