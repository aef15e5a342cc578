//! AF_XDP probe sockets: one UMEM shared by several sockets on one (device, queue), as the
//! dataplane uses them, so a caller can see which socket a frame landed in. Copies every
//! frame out: a probe, not a fast path.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

const FRAMES: u32 = 1024;

pub struct XskProbe {
    umem: Umem,
    fill: FillQueue,
    _comp: CompQueue,
    rx: Vec<RxQueue>,
    _tx: Vec<TxQueue>,
}

impl XskProbe {
    /// `count` (≥ 1) sockets bound to (`ifname`, `queue`), sharing one UMEM and its rings.
    pub fn new(ifname: &str, queue: u32, count: usize) -> Result<XskProbe> {
        let (umem, descs) = Umem::new(
            UmemConfig::default(),
            NonZeroU32::new(FRAMES).expect("non-zero"),
            false,
        )
        .map_err(|e| anyhow!("creating a UMEM: {e}"))?;
        let iface: Interface = ifname
            .parse()
            .map_err(|_| anyhow!("bad interface name {ifname:?}"))?;
        let cfg = SocketConfig::builder()
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY)
            .build();
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        let mut rings = None;
        for _ in 0..count.max(1) {
            // SAFETY: libxdp's own program loading is inhibited, as binding one
            // (device, queue) from a shared UMEM more than once requires.
            let (t, r, fq_cq) = unsafe { xsk_rs::Socket::new(cfg, &umem, &iface, queue) }
                .map_err(|e| anyhow!("AF_XDP socket on {ifname} queue {queue}: {e}"))?;
            if let Some(fc) = fq_cq {
                rings = Some(fc);
            }
            rx.push(r);
            tx.push(t);
        }
        let (mut fill, comp) =
            rings.context("no fill ring: the (device, queue) was already bound elsewhere")?;
        // SAFETY: the descriptors come from this UMEM and are handed to the kernel once.
        let filled = unsafe { fill.produce(&descs) };
        anyhow::ensure!(
            filled == descs.len(),
            "the fill ring took {filled} of {} frames",
            descs.len()
        );
        Ok(XskProbe {
            umem,
            fill,
            _comp: comp,
            rx,
            _tx: tx,
        })
    }

    /// The sockets' descriptors, in creation order, for the demux program's XSKMAP.
    pub fn fds(&self) -> Vec<RawFd> {
        self.rx.iter().map(|r| r.fd().as_raw_fd()).collect()
    }

    /// Everything each socket receives within `wait`: the frames' bytes, per socket.
    pub fn drain(&mut self, wait: Duration) -> Vec<Vec<Vec<u8>>> {
        let mut got = vec![Vec::new(); self.rx.len()];
        let mut descs = [FrameDesc::default(); 64];
        let end = Instant::now() + wait;
        while Instant::now() < end {
            let mut any = false;
            for (i, rx) in self.rx.iter_mut().enumerate() {
                // SAFETY: `descs` only carries descriptors of this UMEM between its rx and
                // fill rings.
                let n = unsafe { rx.consume(&mut descs) };
                for d in &descs[..n] {
                    // SAFETY: the kernel handed this frame to us and nothing else touches it
                    // until it goes back on the fill ring below.
                    let data = unsafe { self.umem.data(d) };
                    got[i].push(data.contents().to_vec());
                }
                if n > 0 {
                    any = true;
                    // SAFETY: the frames were copied out above; they go back to the kernel.
                    unsafe { self.fill.produce(&descs[..n]) };
                }
            }
            if !any {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        got
    }
}
