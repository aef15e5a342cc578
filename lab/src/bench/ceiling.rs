//! The ceiling: the least an AF_XDP userspace switch can do between two veth host ends — every
//! frame received on one is sent on the other, with no lookup at all. One UMEM shared by both
//! sockets (copy bind, queue 0), the ebpf crate's `port_redirect` XDP program (native mode) on
//! both host ends. mvdp does this plus switching, so its pps cannot exceed this on the same veths.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use mvdp_control::NetNs;
use mvdp_ebpf::PortRedirect;
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use super::cpu::thread_cpu;
use mvdp_engine::engine::HopCounters;
use mvdp_switch::hops::{Hop, HopStats};

/// Descriptors moved per ring operation.
pub const BATCH: usize = 64;
/// UMEM frames: half per direction, each half exactly one fill ring's worth (2048 by default),
/// so returning completions to the fill ring can never overflow it.
pub const FRAMES: u32 = 4096;
/// UMEM frame size (xsk-rs/libxdp default).
pub const FRAME_SIZE: u32 = 4096;
/// After this many empty polls an active forwarder yields the CPU once (2 cores, shared).
const SPINS_BEFORE_YIELD: u32 = 1024;
/// How often a resting forwarder looks at its rings. It used to be every millisecond: a
/// thousand wake-ups a second per forwarder, each preempting whatever the bench was measuring.
const RESTING_POLL: Duration = Duration::from_millis(50);

/// What the forwarder counted.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ForwardCounters {
    pub forwarded: u64,
    /// Frames dropped because the other side's TX ring was full.
    pub tx_ring_full: u64,
    /// The kernel's XDP socket statistics summed over both sockets: frames it dropped before
    /// they reached us, and why.
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_invalid: u64,
}

/// A running forwarder between two interfaces of one namespace. Stops and detaches on drop.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    active: Arc<AtomicBool>,
    cpu_ns: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    /// Frames dropped on a full TX ring so far.
    tx_full: Arc<AtomicU64>,
    /// The two sockets (alive while the thread runs), for their kernel statistics.
    fds: [RawFd; 2],
    /// With [`Forwarder::start_traced`]: the first frame of every batch timed from its XDP
    /// stamp to pickup (`xdp_to_pickup`) and from pickup to the TX kick returning (`tx_kick`).
    hops: Option<Arc<HopCounters>>,
    /// The thread polling the sockets (inside the netns), unparked when it is to look at them
    /// at once: made active, or stopping.
    poller: Option<Thread>,
    handle: Option<JoinHandle<Result<ForwardCounters>>>,
}

struct Side {
    fill: FillQueue,
    comp: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    /// Frames produced on `tx` and not yet completed: copy-mode TX only progresses on a kick.
    in_flight: u64,
}

impl Forwarder {
    /// Starts forwarding between `a` and `b` (interfaces in `ns`). Inactive forwarders poll only
    /// every 50 ms, so they cost nothing while other backends are measured; see
    /// [`Forwarder::set_active`].
    pub fn start(ns: &NetNs, a: &str, b: &str) -> Result<Forwarder> {
        Forwarder::start_traced(ns, a, b, false)
    }

    /// [`Forwarder::start`], with `trace`: the XDP program stamps every frame and the forwarder
    /// splits the first frame of every batch into hops like `mvdp daemon --trace-hops` (no
    /// decision: the pickup-to-kick time is all `tx_kick`); see [`Forwarder::hops`].
    pub fn start_traced(ns: &NetNs, a: &str, b: &str, trace: bool) -> Result<Forwarder> {
        let hops = trace.then(|| Arc::new(HopCounters::default()));
        let thread_hops = hops.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicBool::new(false));
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let tx_full = Arc::new(AtomicU64::new(0));
        // The sockets, and the thread that polls them: `NetNs::run` runs the closure on a
        // thread of its own inside the netns, and that is the one to unpark, not ours.
        let (ready_tx, ready_rx) = mpsc::channel::<Result<([RawFd; 2], Thread)>>();
        let (ns, a, b) = (ns.clone(), a.to_string(), b.to_string());
        let (s, act, cpu, fwd, full) = (
            stop.clone(),
            active.clone(),
            cpu_ns.clone(),
            forwarded.clone(),
            tx_full.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("bench-xsk-fwd".into())
            .spawn(move || -> Result<ForwardCounters> {
                ns.run(|| {
                    let setup = setup(&a, &b, thread_hops.is_some());
                    match setup {
                        Err(e) => {
                            let msg = format!("{e:#}");
                            let _ = ready_tx.send(Err(e));
                            Err(anyhow!(msg))
                        }
                        Ok((umem, sides, prog)) => {
                            let fds = sides.each_ref().map(|s| s.rx.fd().as_raw_fd());
                            let _ = ready_tx.send(Ok((fds, std::thread::current())));
                            let shared = Shared {
                                stop: &s,
                                active: &act,
                                cpu_ns: &cpu,
                                forwarded: &fwd,
                                tx_full: &full,
                                hops: thread_hops.as_deref(),
                            };
                            let r = forward(&umem, sides, &shared);
                            // The program goes before the sockets it redirects to.
                            drop(prog);
                            r
                        }
                    }
                })?
            })
            .context("spawning the forwarder thread")?;
        let mut fwd = Forwarder {
            stop,
            active,
            cpu_ns,
            forwarded,
            tx_full,
            fds: [-1, -1],
            hops,
            poller: None,
            handle: Some(handle),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok((fds, poller))) => {
                fwd.fds = fds;
                fwd.poller = Some(poller);
                Ok(fwd)
            }
            Ok(Err(e)) => {
                let _ = fwd.halt();
                Err(e.context("starting the AF_XDP ceiling forwarder"))
            }
            Err(_) => {
                let r = fwd.halt();
                Err(anyhow!("the AF_XDP ceiling forwarder did not start: {r:?}"))
            }
        }
    }

    /// Busy-polls while active; polls every [`RESTING_POLL`] otherwise (woken at once when
    /// made active).
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
        if let (true, Some(t)) = (on, &self.poller) {
            t.unpark();
        }
    }

    /// CPU time the forwarding thread has used so far (updated every 256 polls).
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed))
    }

    /// The hop histograms so far (empty when not traced).
    pub fn hops(&self) -> HopStats {
        HopCounters::stats(self.hops.as_deref(), u32::from(self.hops.is_some()))
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Drops so far: the kernel's statistics of both sockets and the forwarder's full TX rings.
    pub fn drop_sites(&self) -> super::drops::DropSites {
        let mut d = super::drops::DropSites {
            fill_ring_empty: Some(0),
            rx_ring_full: Some(0),
            xsk_rx_dropped: Some(0),
            tx_ring_full: Some(self.tx_full.load(Ordering::Relaxed)),
            flood_budget: None,
            udp_rcvbuf: None,
            late_turns: None,
        };
        // A socket already closed (fd -1, or its thread gone) reads as an error and adds nothing.
        for fd in self.fds.into_iter().filter(|fd| *fd >= 0) {
            if let Ok(st) = mvdp_engine::xsk::xsk_statistics(fd) {
                let add = |s: &mut Option<u64>, n: u64| *s = Some(s.unwrap_or(0) + n);
                add(&mut d.fill_ring_empty, st.rx_fill_ring_empty);
                add(&mut d.rx_ring_full, st.rx_ring_full);
                add(&mut d.xsk_rx_dropped, st.rx_dropped);
            }
        }
        d
    }

    /// Stops the forwarder and reports its counters (or why it failed).
    pub fn stop(mut self) -> Result<ForwardCounters> {
        self.halt()
    }

    fn halt(&mut self) -> Result<ForwardCounters> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => {
                if let Some(t) = &self.poller {
                    t.unpark();
                }
                h.join()
                    .map_err(|_| anyhow!("the forwarder thread panicked"))?
            }
            None => Err(anyhow!("already stopped")),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn setup(a: &str, b: &str, trace: bool) -> Result<(Umem, [Side; 2], PortRedirect)> {
    let (umem, descs) = Umem::new(
        UmemConfig::default(),
        NonZeroU32::new(FRAMES).expect("non-zero"),
        false,
    )
    .map_err(|e| anyhow!("creating a UMEM: {e}"))?;
    let cfg = SocketConfig::builder()
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_COPY)
        .build();
    let mut prog =
        PortRedirect::load_traced(trace).map_err(|e| anyhow!("loading port_redirect: {e}"))?;
    let mut sides = Vec::new();
    for (slot, ifname) in [a, b].into_iter().enumerate() {
        let iface: Interface = ifname
            .parse()
            .map_err(|_| anyhow!("bad interface name {ifname:?}"))?;
        // SAFETY: libxdp's own program is inhibited (port_redirect is ours), and each
        // (device, queue) is bound once, so this socket gets its own fill/completion rings.
        let (tx, rx, rings) = unsafe { xsk_rs::Socket::new(cfg, &umem, &iface, 0) }
            .map_err(|e| anyhow!("AF_XDP socket on {ifname} queue 0: {e}"))?;
        let (fill, comp) = rings.context("no fill ring: the device was already bound")?;
        prog.attach(ifname, slot as u32, rx.fd().as_raw_fd(), false)
            .map_err(|e| anyhow!("attaching port_redirect to {ifname}: {e}"))?;
        sides.push(Side {
            fill,
            comp,
            rx,
            tx,
            in_flight: 0,
        });
    }
    let half = descs.len() / 2;
    for (side, part) in sides.iter_mut().zip([&descs[..half], &descs[half..]]) {
        // SAFETY: every descriptor is of this UMEM and handed to exactly one fill ring, once.
        let n = unsafe { side.fill.produce(part) };
        anyhow::ensure!(
            n == part.len(),
            "the fill ring took {n} of {} frames",
            part.len()
        );
    }
    let mut it = sides.into_iter();
    let sides = [it.next().expect("two sides"), it.next().expect("two sides")];
    Ok((umem, sides, prog))
}

/// What the forwarding thread shares with its [`Forwarder`].
struct Shared<'a> {
    stop: &'a AtomicBool,
    active: &'a AtomicBool,
    cpu_ns: &'a AtomicU64,
    forwarded: &'a AtomicU64,
    tx_full: &'a AtomicU64,
    hops: Option<&'a HopCounters>,
}

fn forward(umem: &Umem, mut sides: [Side; 2], sh: &Shared<'_>) -> Result<ForwardCounters> {
    let (stop, active, cpu_ns, forwarded) = (sh.stop, sh.active, sh.cpu_ns, sh.forwarded);
    let mut c = ForwardCounters::default();
    let mut descs = [FrameDesc::default(); BATCH];
    let mut idle = 0u32;
    let mut polls = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut work = false;
        for from in 0..2 {
            let (lo, hi) = sides.split_at_mut(1);
            let (src, dst) = if from == 0 {
                (&mut lo[0], &mut hi[0])
            } else {
                (&mut hi[0], &mut lo[0])
            };
            let full = c.tx_ring_full;
            let trace = sh.hops.map(|h| (umem, h));
            work |= forward_one_way(src, dst, 1 - from, &mut descs, &mut c, trace)?;
            if c.tx_ring_full != full {
                sh.tx_full.store(c.tx_ring_full, Ordering::Relaxed);
            }
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(256) {
            cpu_ns.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
            forwarded.store(c.forwarded, Ordering::Relaxed);
        }
        wait_for_work(work, active, &mut idle);
    }
    cpu_ns.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
    forwarded.store(c.forwarded, Ordering::Relaxed);
    add_xsk_statistics(&sides, &mut c);
    Ok(c)
}

/// One pass of `src` → `dst` (side number `to`): recycles `dst`'s completed frames into `src`'s
/// fill ring, moves `src`'s received frames to `dst`'s TX ring and kicks it. True when anything moved.
fn forward_one_way(
    src: &mut Side,
    dst: &mut Side,
    to: usize,
    descs: &mut [FrameDesc; BATCH],
    c: &mut ForwardCounters,
    trace: Option<(&Umem, &HopCounters)>,
) -> Result<bool> {
    let mut work = false;
    // Frames `dst` finished sending came from `src`'s fill ring: they go back there,
    // which keeps each direction's frames in its own closed loop.
    // SAFETY: completed descriptors belong to this UMEM and are no longer in use.
    let done = unsafe { dst.comp.consume(descs) };
    if done > 0 {
        dst.in_flight -= done as u64;
        // SAFETY: the frames just completed; each goes to one fill ring once.
        unsafe { src.fill.produce(&descs[..done]) };
        work = true;
    }
    // SAFETY: received descriptors are moved to the other socket's TX ring unchanged.
    let got = unsafe { src.rx.consume(descs) };
    // The first frame's XDP stamp and its pickup time, when traced.
    let mut picked = None;
    if let (Some((umem, hops)), true) = (trace, got > 0) {
        let now = mvdp_engine::engine::now_ns();
        match xdp_stamp(umem, &mut descs[0], now) {
            Some(xdp) => {
                hops.record(Hop::XdpToPickup, now - xdp);
                picked = Some((hops, now));
            }
            None => hops.missed(),
        }
    }
    if got > 0 {
        work = true;
        // SAFETY: as above; frames the TX ring refuses go straight back to fill.
        let sent = unsafe { dst.tx.produce(&descs[..got]) };
        dst.in_flight += sent as u64;
        c.forwarded += sent as u64;
        if sent < got {
            c.tx_ring_full += (got - sent) as u64;
            // SAFETY: these frames were not queued anywhere else.
            unsafe { src.fill.produce(&descs[sent..got]) };
        }
    }
    // Copy-mode TX sends a bounded batch per kick: keep kicking and reaping while it
    // makes progress, or the TX ring holds the frames the fill ring is starving for.
    while dst.in_flight > 0 {
        dst.tx
            .wakeup()
            .with_context(|| format!("kicking TX of side {to}"))?;
        // SAFETY: as above, completed frames go back to the fill ring they came from.
        let done = unsafe { dst.comp.consume(descs) };
        if done == 0 {
            break;
        }
        dst.in_flight -= done as u64;
        // SAFETY: as above.
        unsafe { src.fill.produce(&descs[..done]) };
    }
    if let Some((hops, t)) = picked {
        hops.record(Hop::TxKick, mvdp_engine::engine::now_ns().saturating_sub(t));
    }
    Ok(work)
}

/// The XDP stamp in front of a received frame (see `mvdp_abi.h`), cleared once read.
fn xdp_stamp(umem: &Umem, desc: &mut FrameDesc, now: u64) -> Option<u64> {
    // Copy-mode RX puts a frame XDP_PACKET_HEADROOM (256 B) into its chunk (this UMEM has no
    // frame headroom of its own), the metadata right before it.
    let off = desc.addr() % FRAME_SIZE as usize;
    if off < mvdp_ebpf::abi::HOP_META_LEN {
        return None;
    }
    // SAFETY: `desc` was just received: this thread owns its chunk, and the
    // HOP_META_LEN bytes in front of the data (checked to be within the chunk above) are
    // part of it; nothing else reads or writes them until the frame is queued for TX.
    let head = unsafe {
        let mut data = umem.data_mut(desc);
        let p = data.contents_mut().as_mut_ptr();
        std::slice::from_raw_parts_mut(
            p.sub(mvdp_ebpf::abi::HOP_META_LEN),
            mvdp_ebpf::abi::HOP_META_LEN,
        )
    };
    mvdp_engine::engine::take_stamp(head, now)
}

/// After a pass without work: sleep while not measuring, else spin and now and then yield.
fn wait_for_work(work: bool, active: &AtomicBool, idle: &mut u32) {
    if work {
        *idle = 0;
    } else if !active.load(Ordering::Relaxed) {
        // Unparked by `set_active(true)` and by `halt`.
        std::thread::park_timeout(RESTING_POLL);
    } else {
        *idle += 1;
        if *idle >= SPINS_BEFORE_YIELD {
            *idle = 0;
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Adds the kernel's XSK statistics of both sockets.
fn add_xsk_statistics(sides: &[Side; 2], c: &mut ForwardCounters) {
    for side in sides {
        if let Ok(st) = side.rx.fd().xdp_statistics() {
            c.rx_dropped += st.rx_dropped();
            c.rx_ring_full += st.rx_ring_full();
            c.rx_fill_ring_empty += st.rx_fill_ring_empty_descs();
            c.tx_invalid += st.tx_invalid_descs();
        }
    }
}
