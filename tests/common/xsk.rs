//! AF_XDP sockets for tests: one UMEM shared by several sockets on one (device, queue),
//! as the dataplane uses them, so a test can see which socket a frame landed in.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

pub struct XskSet {
    umem: Umem,
    fill: FillQueue,
    _comp: CompQueue,
    rx: Vec<RxQueue>,
    _tx: Vec<TxQueue>,
}

impl XskSet {
    /// `count` sockets on (`ifname`, queue 0) in the calling thread's netns.
    pub fn new(ifname: &str, count: usize) -> XskSet {
        let (umem, mut descs) =
            Umem::new(UmemConfig::default(), NonZeroU32::new(1024).unwrap(), false).expect("umem");
        let iface: Interface = ifname.parse().unwrap();
        let cfg = SocketConfig::builder()
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY)
            .build();
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        let mut rings = None;
        for _ in 0..count {
            // SAFETY: libxdp program loading is inhibited, as sharing a (device, queue) requires.
            let (t, r, fq_cq) =
                unsafe { xsk_rs::Socket::new(cfg, &umem, &iface, 0) }.expect("AF_XDP socket");
            if let Some(fc) = fq_cq {
                rings = Some(fc);
            }
            rx.push(r);
            tx.push(t);
        }
        let (mut fill, comp) =
            rings.expect("the first socket on a (device, queue) owns the fill ring");
        // SAFETY: the descriptors come from this UMEM and are handed to the kernel once.
        let filled = unsafe { fill.produce(&descs) };
        assert_eq!(filled, descs.len(), "the fill ring takes every frame");
        descs.clear();
        XskSet {
            umem,
            fill,
            _comp: comp,
            rx,
            _tx: tx,
        }
    }

    pub fn fds(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        self.rx.iter().map(|r| r.fd().as_raw_fd()).collect()
    }

    /// Everything each socket receives within `wait`, frame bytes per socket.
    pub fn drain(&mut self, wait: Duration) -> Vec<Vec<Vec<u8>>> {
        let mut got = vec![Vec::new(); self.rx.len()];
        let mut descs: Vec<FrameDesc> = (0..64).map(|_| FrameDesc::default()).collect();
        let end = Instant::now() + wait;
        while Instant::now() < end {
            let mut any = false;
            for (i, rx) in self.rx.iter_mut().enumerate() {
                // SAFETY: `descs` is only used to read frames of this UMEM and refill it.
                let n = unsafe { rx.consume(&mut descs) };
                for d in &descs[..n] {
                    // SAFETY: the kernel handed this descriptor to us; nothing else touches it.
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
