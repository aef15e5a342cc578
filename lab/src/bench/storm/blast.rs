//! The storm itself: a thread in one container sending UDP broadcasts to its subnet's broadcast
//! address as fast as its socket takes them, until stopped.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mvdp_control::NetNs;

use crate::bench::udp::socket_in;

/// UDP port the broadcasts go to (discard: nobody listens, so receivers drop them quietly).
const DISCARD_PORT: u16 = 9;
/// Bytes of UDP payload per broadcast (a 64-byte payload: a small frame, the costly kind).
const PAYLOAD: usize = 64;

/// What a storm sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blasted {
    pub sent: u64,
    /// Sends the socket refused (ENOBUFS and the like): the sender outran its own queue.
    pub refused: u64,
    pub seconds: f64,
}

impl Blasted {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sent as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A running storm; [`Blaster::stop`] ends it and says what it sent (dropping it stops it too).
pub struct Blaster {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Blasted>>,
}

impl Blaster {
    /// Starts broadcasting from `ns` (bound to `local`) to `broadcast`, from a thread pinned to
    /// `cpu` when one is given.
    pub fn start(
        ns: &NetNs,
        local: Ipv4Addr,
        broadcast: Ipv4Addr,
        cpu: Option<usize>,
    ) -> Result<Blaster> {
        let sock = socket_in(ns, SocketAddrV4::new(local, 0))?;
        sock.set_broadcast(true)
            .context("SO_BROADCAST on the storm's socket")?;
        let to = SocketAddrV4::new(broadcast, DISCARD_PORT);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mvdp-bench-storm".into())
            .spawn(move || {
                if let Some(c) = cpu {
                    if let Err(e) = crate::bench::pinning::pin_thread_to(c) {
                        tracing::warn!("storm sender: {e:#}");
                    }
                }
                let buf = [0xb5u8; PAYLOAD];
                let mut out = Blasted::default();
                let t0 = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    // Checked every 64 sends: the flag's load is cheap, but not free.
                    for _ in 0..64 {
                        match sock.send_to(&buf, to) {
                            Ok(_) => out.sent += 1,
                            Err(_) => out.refused += 1,
                        }
                    }
                }
                out.seconds = t0.elapsed().as_secs_f64();
                out
            })
            .context("starting the storm thread")?;
        Ok(Blaster {
            stop,
            thread: Some(thread),
        })
    }

    /// Lets the storm reach its rate before anything is measured under it.
    pub fn settle(&self, d: Duration) {
        std::thread::sleep(d);
    }

    pub fn stop(mut self) -> Blasted {
        self.halt()
    }

    fn halt(&mut self) -> Blasted {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Blaster {
    fn drop(&mut self) {
        self.halt();
    }
}
