//! One worker thread: a loop of turns. Each turn applies pending commands, asks epoll which
//! devices have frames waiting, then for every device with work (frames waiting, TX in
//! flight, a fill ring below target, or traffic in its last few turns) reaps TX completions,
//! tops up the fill ring, takes one batch from the RX ring, decides it and stages the results
//! on the destinations' TX queues; then the flood taps and the handoffs from other workers;
//! then flushes the staged TX queues, every device's unicast before any flood copy, and kicks
//! the kernel. A device with nothing to do is not visited at all, so a turn costs the same with
//! 2 ports or 1,000 of which 998 are idle.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_queue::ArrayQueue;

use super::budget::{next_fill_target, rate_fill_target, refill_amount, RATE_WINDOW};
use super::pool::{FreeStack, Shared, TAG_TX};
use super::stats::{DeviceStats, WorkerStats};
use super::trace::HopTracer;
use super::{
    Command, DevRef, Device, EngineConfig, FloodSource, Handoff, PollSwitch, Reply, Snapshot,
    FRAME_OFFSET, MAX_BATCH, MAX_DEVICES_PER_WORKER,
};
use crate::xsk::{Desc, Umem};
use mvdp_switch::counters::Counters;
use mvdp_switch::decide::{decide_batch, Delivery, Ingress, Ports, Verdict};
use mvdp_switch::flood::FloodBudget;
use mvdp_switch::table::ParentId;
use mvdp_switch::wire;

/// Bytes of an 802.1Q tag.
const TAG: usize = 4;
/// sendto calls per device per turn; copy-mode TX sends at most 32 frames per call.
const MAX_KICKS: usize = 64;
/// How long an adaptive worker sleeps in epoll_wait(2) at most before looking at its rings again.
const POLL_TIMEOUT_MS: i32 = 100;
/// Turns without anything to do after which a device is no longer visited every turn.
const QUIET_TURNS: u32 = 64;
/// How long a device must have been off the every-turn list for its fill target to fall back to
/// its floor when it has work again. Not a number of turns: a busy-polling worker spins through
/// 64 turns in microseconds, and a flow's port that lost its grown fill stock at every gap
/// between bursts dropped frames at the next one (fill ring empty).
const IDLE_SPELL: std::time::Duration = std::time::Duration::from_millis(500);
/// A turn that took this long (the worker off the CPU, or a long turn; sleeps excluded) is
/// counted as late: a port's fill ring at its ceiling (2,048 chunks) lasts 3.5 ms at
/// 580 kpps, and what arrives once it is empty is dropped (fill ring empty).
const LATE_TURN: std::time::Duration = std::time::Duration::from_millis(1);
/// Full statistics (fill and TX levels of every device) are summed every this many turns and
/// before sleeping; per-turn figures come from the devices with work only.
const FULL_PUBLISH_TURNS: u64 = 256;
/// epoll user data for the worker's own eventfd and for flood taps (devices use their row).
const EP_WAKE: u64 = u64::MAX;
const EP_FLOOD: u64 = u64::MAX - 1;
/// Under load, epoll is asked which cold sockets have frames once in this many turns.
const READINESS_EVERY: u64 = 16;
/// Readiness events taken per epoll_wait.
const EP_EVENTS: usize = 256;
/// Frames a hot device takes after which its socket leaves the epoll set until it goes cold or
/// the worker sleeps. A socket in an epoll set costs the sending CPU an epoll callback (a lock,
/// the ready list) on every XDP flush that lands a frame on its RX ring, one per frame for a
/// container sending datagrams one by one; a hot device's ring is read every turn anyway.
const UNWATCH_AFTER: u32 = 256;

/// A received frame as the decision sees it.
#[derive(Clone, Copy)]
struct View {
    ptr: *const u8,
    len: usize,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: built from a chunk this worker owns (just taken off an RX ring or filled by
        // the flood tap), used only within the turn that built it, before any write to it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Default for View {
    fn default() -> View {
        View {
            ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            len: 0,
        }
    }
}

pub(crate) struct Worker {
    id: u16,
    cfg: EngineConfig,
    umem: Umem,
    frame_size: u64,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    replies: Sender<Reply>,
    wakes: Vec<Arc<OwnedFd>>,
    sleeping: Vec<Arc<AtomicBool>>,
    inboxes: Vec<Arc<ArrayQueue<Handoff>>>,
    stats: Arc<WorkerStats>,
    /// Whether to spin when idle (busy poll) or sleep after `cfg.spin` (adaptive).
    poll: PollSwitch,
    devices: Vec<Option<Box<Device>>>,
    /// Rows of the devices visited every turn (those with work); `hot[row]` says who is in it.
    active: Vec<u16>,
    hot: Vec<bool>,
    /// Readiness of every device's RX ring, the flood taps and the wake eventfd.
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
    floods: Vec<(ParentId, Box<dyn FloodSource>)>,
    snap: Arc<Snapshot>,
    free: FreeStack,
    budget: FloodBudget,
    /// The origin of the flood budget's clock (read once per turn when ports' floods are
    /// capped in time).
    started: Instant,
    counters: Counters,
    orphaned: u64,
    /// Fill and TX levels summed over the devices off the every-turn list, whose levels do not
    /// move while they are off it: the full statistics then sum the hot devices only, and their
    /// cost does not grow with idle ports.
    cold_levels: Levels,
    /// Workers owed a wake-up for handoffs pushed this turn (bit per worker).
    wake_owed: u64,
    addrs: Vec<u64>,
    last_work: Instant,
    /// When the last turn ended, and whether the worker slept since (see `note_turn`).
    turn_end: Instant,
    slept: bool,
    // Counted locally, published once per turn.
    no_chunk: u64,
    handoff_full: u64,
    host_from_socket: u64,
    tapped: u64,
    flood_copies: u64,
    sleeps: u64,
    turns: u64,
    late_turns: u64,
    longest_turn_us: u64,
    unwatched: u64,
    /// Whether the worker has already warned that a socket could not be put back in epoll.
    unwatchable_warned: bool,
    /// `--trace-hops`: follows one frame now and then through the turn.
    trace: HopTracer,
    /// Whether the last turn did any work (then readiness is asked only every
    /// [`READINESS_EVERY`] turns).
    busy_turn: bool,
    /// A flood tap was reported readable since the taps were last read.
    floods_ready: bool,
}

/// A turn's batch buffers, made once when the worker starts. Arrays of `MAX_BATCH` on the stack
/// were zeroed on every device visit and every decision (16 KiB a batch, ~0.2 µs of each
/// crossing) for the handful of entries a latency-bound turn uses.
struct Scratch {
    descs: Vec<Desc>,
    views: Vec<View>,
    verdicts: Vec<Verdict>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            descs: vec![Desc::default(); MAX_BATCH],
            views: vec![View::default(); MAX_BATCH],
            verdicts: vec![Verdict::default(); MAX_BATCH],
        }
    }
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u16,
        cfg: EngineConfig,
        umem: Umem,
        shared: Arc<Shared>,
        commands: Receiver<Command>,
        replies: Sender<Reply>,
        wakes: Vec<Arc<OwnedFd>>,
        sleeping: Vec<Arc<AtomicBool>>,
        inboxes: Vec<Arc<ArrayQueue<Handoff>>>,
        stats: Arc<WorkerStats>,
        poll: PollSwitch,
    ) -> std::io::Result<Worker> {
        let snap = Arc::new(Snapshot::empty(cfg.workers));
        let mut counters = Counters::new(&snap.tables);
        counters.per_port.reserve(4096);
        // SAFETY: epoll_create1(2) with a valid flag; the result is checked before use.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let epoll = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
        epoll_add(&epoll, wakes[id as usize].as_raw_fd(), EP_WAKE)?;
        Ok(Worker {
            id,
            cfg,
            frame_size: u64::from(umem.frame_size()),
            umem,
            free: FreeStack::new(shared.tags.len() as u32),
            shared,
            commands,
            replies,
            wakes,
            sleeping,
            inboxes,
            stats,
            poll,
            devices: (0..MAX_DEVICES_PER_WORKER).map(|_| None).collect(),
            active: Vec::with_capacity(MAX_DEVICES_PER_WORKER),
            hot: vec![false; MAX_DEVICES_PER_WORKER],
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EP_EVENTS],
            floods: Vec::with_capacity(64),
            budget: FloodBudget::with_rate(&snap.tables, cfg.flood_rate, std::time::Duration::ZERO),
            started: Instant::now(),
            snap,
            counters,
            orphaned: 0,
            cold_levels: Levels::default(),
            wake_owed: 0,
            addrs: vec![0; 4096],
            last_work: Instant::now(),
            turn_end: Instant::now(),
            slept: false,
            no_chunk: 0,
            handoff_full: 0,
            host_from_socket: 0,
            tapped: 0,
            flood_copies: 0,
            sleeps: 0,
            turns: 0,
            late_turns: 0,
            longest_turn_us: 0,
            unwatched: 0,
            unwatchable_warned: false,
            trace: HopTracer::new(cfg.trace_hops),
            busy_turn: false,
            floods_ready: true,
        })
    }

    pub(crate) fn run(mut self) {
        // SAFETY: gettid(2) takes no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        self.stats.tid.store(tid as u64, Ordering::Relaxed);
        let mut scratch = Scratch::new();
        while self.apply_commands() {
            let snap = self.snap.clone();
            self.budget.refill(&snap.tables);
            if !self.cfg.flood_rate.is_unlimited() {
                // One clock read per turn (vDSO, no syscall), none per frame.
                self.budget.set_clock(self.started.elapsed());
            }
            // Which cold sockets have frames is a syscall (`epoll_wait(.., 0)`); the hot ones'
            // rings are read directly below. Ask on every turn that follows an idle one (the
            // spin has nothing better to do) and on every 16th turn under load: asking on
            // every turn cost a busy crossing ~0.4 µs (`--trace-hops`, XDP to pickup 1.6 →
            // 1.2 µs), and a cold port's first frame now waits at most 16 busy turns.
            if !self.busy_turn || self.turns.is_multiple_of(READINESS_EVERY) {
                self.take_readiness(0);
            }
            let mut work = 0;
            for k in 0..self.active.len() {
                let i = self.active[k] as usize;
                work += self.service(i, &snap, &mut scratch);
            }
            // The flood taps only when epoll said one is readable (level-triggered: a tap left
            // with frames is reported again): reading every tap on every turn was a `recvmsg`
            // per turn, ~0.7 µs of every busy crossing's kick hop.
            if std::mem::take(&mut self.floods_ready) {
                for f in 0..self.floods.len() {
                    let n = self.service_flood(f, &snap, &mut scratch);
                    // A full batch may have left frames on the tap, and under load readiness
                    // is asked only every 16th turn: read the taps again next turn.
                    self.floods_ready |= n >= self.cfg.batch;
                    work += n;
                }
            }
            work += self.drain_inbox();
            work += self.flush_all();
            if self.trace.on() {
                self.trace.kicked(&self.stats.hops);
            }
            for k in 0..self.active.len() {
                let i = self.active[k] as usize;
                work += self.upkeep(i);
            }
            self.wake_others();
            let want = self.cool_down();
            self.free
                .balance(&self.shared, want.max(self.cfg.batch * 2));
            self.turns += 1;
            self.busy_turn = work > 0;
            self.publish(self.turns.is_multiple_of(FULL_PUBLISH_TURNS));
            // One clock read per turn (an idle adaptive turn read it for its spin anyway).
            let now = Instant::now();
            if !std::mem::take(&mut self.slept) {
                // From the end of the last turn to the end of this one, with whatever time the
                // worker was off the CPU; not across a sleep.
                self.note_turn(now.saturating_duration_since(self.turn_end));
            }
            self.turn_end = now;
            if work > 0 {
                self.last_work = now;
            } else if !self.poll.is_busy()
                && now.saturating_duration_since(self.last_work) >= self.cfg.spin
            {
                self.sleep();
                self.slept = true;
            }
        }
        // Leaving: sockets are deleted by the Engine's thread only after join, so hand nothing
        // back; dropping the devices here is safe because the control thread is waiting in join.
    }

    /// Counts a turn that was late (see [`LATE_TURN`]).
    fn note_turn(&mut self, took: std::time::Duration) {
        if took >= LATE_TURN {
            self.late_turns += 1;
            self.longest_turn_us = self.longest_turn_us.max(took.as_micros() as u64);
        }
    }

    /// Applies every queued command. `false` when told to exit.
    fn apply_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::AddDevice(i, mut dev) => {
                    match epoll_add(&self.epoll, dev.sock.fd(), u64::from(i)) {
                        Ok(()) => dev.watched = true,
                        // Still served, only never woken by its own RX ring: it stays hot
                        // until a later registration succeeds (see `cool_down`).
                        Err(e) => tracing::warn!("epoll_ctl(ADD) for a device failed: {e}"),
                    }
                    self.devices[i as usize] = Some(dev);
                    self.make_hot(i);
                }
                Command::RemoveDevice(i) => {
                    let was_hot = self.hot[i as usize];
                    let dev = self.devices[i as usize].take().map(|mut d| {
                        if !was_hot {
                            self.cold_levels.sub(&d);
                        }
                        if d.watched {
                            epoll_del(&self.epoll, d.sock.fd());
                        }
                        self.retire(&mut d);
                        d
                    });
                    if std::mem::take(&mut self.hot[i as usize]) {
                        self.active.retain(|&x| x != i);
                    }
                    let _ = self.replies.send(Reply::Removed(dev));
                }
                Command::Reclaim(uid) => self.reclaim(uid),
                Command::Snapshot(s) => {
                    let old = std::mem::replace(&mut self.snap, s);
                    self.counters.fit(&self.snap.tables);
                    self.budget.refill(&self.snap.tables);
                    // Freed on the control thread, not here.
                    let _ = self.replies.try_send(Reply::Garbage(old));
                }
                Command::AddFlood(p, src) => {
                    if let Err(e) = epoll_add(&self.epoll, src.fd(), EP_FLOOD) {
                        tracing::warn!("epoll_ctl(ADD) for a flood tap failed: {e}");
                    }
                    self.floods.push((p, src));
                }
                Command::RemoveFlood(p) => {
                    let src = self
                        .floods
                        .iter()
                        .position(|(q, _)| *q == p)
                        .map(|k| self.floods.swap_remove(k).1);
                    if let Some(f) = &src {
                        epoll_del(&self.epoll, f.fd());
                    }
                    let _ = self.replies.send(Reply::FloodRemoved(src));
                }
                Command::Exit => return false,
            }
        }
        true
    }

    /// A device leaves: what userspace can see of its frames comes back now; what the kernel
    /// still holds (fill ring, unfinished TX) is counted as orphaned until `reclaim`.
    fn retire(&mut self, dev: &mut Device) {
        let mut descs = [Desc::default(); MAX_BATCH];
        loop {
            let n = dev.sock.rx.pop_descs(&mut descs);
            if n == 0 {
                break;
            }
            dev.fill_level = dev.fill_level.saturating_sub(n as u32);
            for d in &descs[..n] {
                self.free_chunk(d.addr);
            }
        }
        reap(
            dev,
            &mut self.free,
            &self.shared,
            &mut self.addrs,
            self.frame_size,
        );
        for d in dev.pending.drain(..).chain(dev.pending_flood.drain(..)) {
            self.free.push((d.addr / self.frame_size) as u32);
        }
        self.orphaned += u64::from(dev.fill_level) + u64::from(dev.tx_level);
        dev.fill_level = 0;
        dev.tx_level = 0;
    }

    /// Takes back every chunk still tagged as on the rings of the (deleted) device `uid`.
    fn reclaim(&mut self, uid: u32) {
        let mut n = 0;
        for (c, t) in self.shared.tags.iter().enumerate() {
            let v = t.load(Ordering::Relaxed);
            if v != 0 && v & !TAG_TX == uid {
                t.store(0, Ordering::Relaxed);
                self.free.push(c as u32);
                n += 1;
            }
        }
        self.orphaned = self.orphaned.saturating_sub(n);
    }

    #[inline]
    fn chunk(&self, addr: u64) -> u32 {
        (addr / self.frame_size) as u32
    }

    #[inline]
    fn free_chunk(&mut self, addr: u64) {
        let c = self.chunk(addr);
        self.free.push(c);
    }

    fn take_chunk(&mut self) -> Option<u32> {
        if let Some(c) = self.free.pop() {
            return Some(c);
        }
        self.free.balance(&self.shared, self.cfg.batch);
        if let Some(c) = self.free.pop() {
            return Some(c);
        }
        self.replenish();
        self.free.pop()
    }

    /// Out of chunks mid-turn: sends what is staged and takes back what the kernel finished.
    /// A flood stages one copy per port before anything is sent, so a burst of broadcasts on a
    /// network of a thousand ports ran the free stack dry and the ports last in flood order
    /// never got their copies (an ARP request among them). Copy-mode TX is synchronous, so the
    /// chunks of what was just sent are on the completion rings when `flush` returns.
    #[cold]
    fn replenish(&mut self) {
        self.flush_all();
        let fs = self.frame_size;
        for k in 0..self.active.len() {
            let i = self.active[k] as usize;
            if let Some(dev) = self.devices[i].as_deref_mut() {
                reap(dev, &mut self.free, &self.shared, &mut self.addrs, fs);
            }
        }
    }

    /// One device's share of a turn; returns the frames handled.
    fn service(&mut self, i: usize, snap: &Snapshot, scratch: &mut Scratch) -> usize {
        let batch = self.cfg.batch;
        let descs = &mut scratch.descs;
        let n;
        let stats: Arc<DeviceStats>;
        {
            let Some(dev) = self.devices[i].as_deref_mut() else {
                return 0;
            };
            n = dev.sock.rx.pop_descs(&mut descs[..batch]);
            dev.fill_target = next_fill_target(dev.fill_target, dev.fill, dev.fill_level, n, batch);
            dev.took = n as u32;
            if n == 0 {
                return 0;
            }
            dev.quiet_turns = 0;
            dev.since_watched = dev.since_watched.saturating_add(n as u32);
            dev.fill_level = dev.fill_level.saturating_sub(n as u32);
            // The rate over at least RATE_WINDOW, timed by the end of the last working turn
            // (no clock read of its own).
            dev.rate_frames = dev.rate_frames.saturating_add(n as u32);
            let span = self.last_work.saturating_duration_since(dev.rate_since);
            if span >= RATE_WINDOW {
                dev.fill_target =
                    rate_fill_target(dev.fill_target, dev.fill, dev.rate_frames, span);
                dev.rate_frames = 0;
                dev.rate_since = self.last_work;
            }
            for d in &descs[..n] {
                self.shared.tag((d.addr / self.frame_size) as u32, 0);
            }
            stats = dev.stats.clone();
        }
        if self.trace.on() {
            self.trace_pickup(descs[0]);
        }
        let ingress = snap
            .ingress
            .get(self.id as usize)
            .and_then(|rows| rows.get(i).copied().flatten());
        let bytes: u64 = descs[..n].iter().map(|d| u64::from(d.len)).sum();
        DeviceStats::add(&stats.rx_frames, n as u64);
        DeviceStats::add(&stats.rx_bytes, bytes);
        let Some(ingress) = ingress else {
            // Not in the published state yet (being added) or any more (being removed).
            for d in &descs[..n] {
                self.free_chunk(d.addr);
            }
            DeviceStats::add(&stats.rx_dropped, n as u64);
            return n;
        };
        let (dropped, storm) = self.decide_and_deliver(
            ingress,
            &scratch.descs[..n],
            snap,
            &mut scratch.views,
            &mut scratch.verdicts,
        );
        if self.trace.on() {
            self.trace.decided();
        }
        DeviceStats::add(&stats.rx_dropped, dropped);
        DeviceStats::add(&stats.flood_dropped, storm);
        n
    }

    /// A hot device's bookkeeping, after the turn's TX kicks so that it never sits between a
    /// frame's pickup and its kick: completions reaped, the fill ring topped up, TX left on the
    /// ring kicked again. A device that took nothing and had nothing to do counts a quiet turn.
    fn upkeep(&mut self, i: usize) -> usize {
        let Some(dev) = self.devices[i].as_deref_mut() else {
            return 0;
        };
        let mut work = reap(
            dev,
            &mut self.free,
            &self.shared,
            &mut self.addrs,
            self.frame_size,
        );
        work += refill(
            dev,
            &mut self.free,
            &self.shared,
            &mut self.addrs,
            self.frame_size,
        );
        if dev.sock.tx.pending() > 0 {
            kick(dev);
            work += 1;
        }
        if dev.watched && dev.since_watched >= UNWATCH_AFTER {
            // Here, after the turn's kicks, the syscall never sits in front of a frame.
            epoll_del(&self.epoll, dev.sock.fd());
            dev.watched = false;
            self.unwatched += 1;
        }
        if work == 0 && dev.took == 0 {
            dev.quiet_turns = dev.quiet_turns.saturating_add(1);
        }
        work
    }

    /// Hands the bytes in front of a batch's first frame (its XDP metadata) to the tracer.
    fn trace_pickup(&mut self, d: Desc) {
        let c = self.chunk(d.addr);
        let off = (d.addr % self.frame_size) as usize;
        // SAFETY: the chunk just came off an RX ring: this worker owns it, and nothing else
        // writes the bytes in front of the frame.
        let bytes = unsafe { self.umem.chunk_mut(c) };
        if let Some(head) = bytes.get_mut(..off) {
            self.trace.pickup(head, &self.stats.hops);
        }
    }

    /// Decides a batch of frames this worker owns and hands each to its destinations.
    /// Returns how many were dropped, and how many of those for the sender's flood share or rate.
    fn decide_and_deliver(
        &mut self,
        ingress: Ingress,
        descs: &[Desc],
        snap: &Snapshot,
        views: &mut [View],
        verdicts: &mut [Verdict],
    ) -> (u64, u64) {
        let n = descs.len();
        for (v, d) in views.iter_mut().zip(descs) {
            let c = self.chunk(d.addr);
            let off = (d.addr % self.frame_size) as usize;
            // SAFETY: the chunk came off an RX ring (or the flood tap) this turn; this
            // worker owns it and nothing writes it until the verdicts are applied below.
            let bytes = unsafe { self.umem.chunk_mut(c) };
            let len = (d.len as usize).min(bytes.len().saturating_sub(off));
            *v = View {
                ptr: bytes[off..].as_ptr(),
                len,
            };
        }
        decide_batch(
            &snap.tables,
            ingress,
            &views[..n],
            &mut verdicts[..n],
            &mut self.budget,
            &mut self.counters,
        );
        let (mut dropped, mut storm) = (0, 0);
        for (d, v) in descs.iter().zip(&verdicts[..n]) {
            match *v {
                Verdict::Drop(r) => {
                    dropped += 1;
                    storm += u64::from(r.is_port_flood_limit());
                    self.free_chunk(d.addr);
                }
                Verdict::Deliver(del) => self.deliver(*d, &del, snap),
            }
        }
        (dropped, storm)
    }

    fn deliver(&mut self, desc: Desc, del: &Delivery, snap: &Snapshot) {
        if del.host {
            self.host_from_socket += 1;
        }
        if let Some(p) = del.single_port() {
            match snap.port_dev.get(p.0 as usize) {
                Some(&to) => {
                    let desc = if del.tagged {
                        self.pop_tag(desc)
                    } else {
                        Some(desc)
                    };
                    if let Some(desc) = desc {
                        self.enqueue(to, desc);
                    }
                }
                None => self.free_chunk(desc.addr),
            }
            return;
        }
        match del.ports {
            Ports::None => {}
            Ports::One(p) => self.copy_to_port(desc, del.tagged, p.0, snap, Staged::Unicast),
            Ports::Flood {
                modes,
                except,
                group,
            } => {
                for p in snap.tables.flood_ports(del.segment, modes, except, group) {
                    self.copy_to_port(desc, del.tagged, p.0, snap, Staged::Flood);
                    self.flood_copies += 1;
                }
            }
        }
        if let Some(set) = del.taps {
            for &p in snap.tables.taps(set) {
                self.copy_to_port(desc, del.tagged, p.0, snap, Staged::Unicast);
            }
        }
        let wire_to = snap
            .tables
            .segment(del.segment)
            .and_then(|s| snap.parent_tx.get(s.parent.0 as usize).copied().flatten());
        match (del.wire, wire_to) {
            (true, Some(to)) => {
                // The original goes to the wire: tag pushed in place when the network has one.
                let desc = match (del.wire_tci(), del.tagged) {
                    (Some(tci), false) => self.push_tag(desc, tci),
                    _ => Some(desc),
                };
                // A flood's wire frame goes out with its copies, after every unicast of the
                // turn: a parent's sendto runs the receiving stack, and a unicast frame for the
                // wire staged in the same turn waited behind a storm's wire frames.
                let q = match del.ports {
                    Ports::Flood { .. } => Staged::Flood,
                    _ => Staged::Unicast,
                };
                if let Some(desc) = desc {
                    self.enqueue_to(to, desc, q);
                }
            }
            _ => self.free_chunk(desc.addr),
        }
    }

    fn pop_tag(&mut self, desc: Desc) -> Option<Desc> {
        let c = self.chunk(desc.addr);
        let off = (desc.addr % self.frame_size) as usize;
        // SAFETY: this worker owns the chunk (taken off an RX ring this turn, not yet staged).
        let bytes = unsafe { self.umem.chunk_mut(c) };
        match wire::pop_vlan_tag(bytes, off, desc.len as usize) {
            Ok(start) => Some(Desc {
                addr: u64::from(c) * self.frame_size + start as u64,
                len: desc.len - TAG as u32,
            }),
            Err(_) => {
                self.free_chunk(desc.addr);
                None
            }
        }
    }

    fn push_tag(&mut self, desc: Desc, tci: u16) -> Option<Desc> {
        let c = self.chunk(desc.addr);
        let off = (desc.addr % self.frame_size) as usize;
        // SAFETY: as in pop_tag.
        let bytes = unsafe { self.umem.chunk_mut(c) };
        match wire::push_vlan_tag(bytes, off, desc.len as usize, tci) {
            Ok(start) => Some(Desc {
                addr: u64::from(c) * self.frame_size + start as u64,
                len: desc.len + TAG as u32,
            }),
            Err(_) => {
                self.free_chunk(desc.addr);
                None
            }
        }
    }

    /// Copies a frame into a fresh chunk for port `port` (without its tag when `strip`).
    fn copy_to_port(&mut self, src: Desc, strip: bool, port: u32, snap: &Snapshot, q: Staged) {
        let Some(&to) = snap.port_dev.get(port as usize) else {
            return;
        };
        let Some(c) = self.take_chunk() else {
            self.no_chunk += 1;
            return;
        };
        let sc = self.chunk(src.addr);
        let soff = (src.addr % self.frame_size) as usize;
        let len = src.len as usize;
        // SAFETY: `sc` and `c` are distinct chunks owned by this worker: `sc` is the frame
        // being delivered, `c` was just taken from the free stack.
        let (s, d) = unsafe { (self.umem.chunk_mut(sc), self.umem.chunk_mut(c)) };
        let o = FRAME_OFFSET as usize;
        let Some(s) = s.get(soff..soff + len) else {
            self.free.push(c);
            return;
        };
        let out_len = if strip && len >= 12 + TAG {
            d[o..o + 12].copy_from_slice(&s[..12]);
            d[o + 12..o + len - TAG].copy_from_slice(&s[12 + TAG..]);
            len - TAG
        } else {
            d[o..o + len].copy_from_slice(s);
            len
        };
        self.enqueue_to(
            to,
            Desc {
                addr: u64::from(c) * self.frame_size + o as u64,
                len: out_len as u32,
            },
            q,
        );
    }

    /// Stages a frame for a device's TX ring, here or on another worker.
    fn enqueue(&mut self, to: DevRef, desc: Desc) {
        self.enqueue_to(to, desc, Staged::Unicast)
    }

    /// Stages a frame on one of a device's queues. Another worker's devices get it as unicast:
    /// the handoff carries no queue, and a flood copy there is already bounded by the sender's
    /// share.
    fn enqueue_to(&mut self, to: DevRef, desc: Desc, q: Staged) {
        if to.worker == self.id {
            let fs = self.frame_size;
            match self.devices.get_mut(to.index as usize) {
                Some(Some(dev)) if dev.uid == to.uid => {
                    let staged = q.of(dev);
                    if staged.len() == staged.capacity() {
                        flush(dev, q, &mut self.free, &self.shared, &mut self.addrs, fs);
                    }
                    q.of(dev).push(desc);
                    self.make_hot(to.index);
                }
                _ => self.free_chunk(desc.addr),
            }
            return;
        }
        match self.inboxes.get(to.worker as usize) {
            Some(q) => match q.push(Handoff { desc, to }) {
                Ok(()) => self.wake_owed |= 1 << to.worker,
                Err(h) => {
                    self.handoff_full += 1;
                    self.free_chunk(h.desc.addr);
                }
            },
            None => self.free_chunk(desc.addr),
        }
    }

    fn drain_inbox(&mut self) -> usize {
        let mut n = 0;
        while n < MAX_BATCH * 4 {
            let Some(h) = self.inboxes[self.id as usize].pop() else {
                break;
            };
            n += 1;
            self.enqueue(h.to, h.desc);
        }
        n
    }

    fn service_flood(&mut self, f: usize, snap: &Snapshot, scratch: &mut Scratch) -> usize {
        let batch = self.cfg.batch;
        let descs = &mut scratch.descs;
        let mut n = 0;
        let fs = self.frame_size;
        while n < batch {
            let Some(c) = self.take_chunk() else {
                self.no_chunk += 1;
                break;
            };
            // The tap restores a stripped tag in front of the frame: start 4 bytes early.
            let base = FRAME_OFFSET as usize - TAG;
            // SAFETY: `c` was just taken from the free stack; this worker owns it.
            let bytes = unsafe { self.umem.chunk_mut(c) };
            match self.floods[f].1.recv(&mut bytes[base..]) {
                Some((off, len)) => {
                    descs[n] = Desc {
                        addr: u64::from(c) * fs + (base + off) as u64,
                        len: len as u32,
                    };
                    n += 1;
                }
                None => {
                    self.free.push(c);
                    break;
                }
            }
        }
        if n == 0 {
            return 0;
        }
        self.tapped += n as u64;
        let parent = self.floods[f].0;
        self.decide_and_deliver(
            Ingress::WireFlood(parent),
            &scratch.descs[..n],
            snap,
            &mut scratch.views,
            &mut scratch.verdicts,
        );
        n
    }

    /// Pushes every device's unicast onto its TX ring and kicks, and only then the flood
    /// copies: a turn's floods never go out ahead of any device's unicast.
    fn flush_all(&mut self) -> usize {
        let fs = self.frame_size;
        let mut work = 0;
        for q in [Staged::Unicast, Staged::Flood] {
            for k in 0..self.active.len() {
                let i = self.active[k] as usize;
                if let Some(dev) = self.devices[i].as_deref_mut() {
                    if !q.of(dev).is_empty() {
                        work += flush(dev, q, &mut self.free, &self.shared, &mut self.addrs, fs);
                    }
                }
            }
        }
        work
    }

    fn wake_others(&mut self) {
        while self.wake_owed != 0 {
            let w = self.wake_owed.trailing_zeros() as usize;
            self.wake_owed &= !(1 << w);
            if self.sleeping[w].load(Ordering::SeqCst) {
                super::wake(&self.wakes[w]);
            }
        }
    }

    /// Puts device row `i` on the list of devices visited every turn.
    fn make_hot(&mut self, i: u16) {
        let Some(dev) = self.devices[i as usize].as_deref_mut() else {
            return;
        };
        dev.quiet_turns = 0;
        if !std::mem::replace(&mut self.hot[i as usize], true) {
            self.active.push(i);
            self.cold_levels.sub(dev);
            // What it grew for a burst is given back as frames arrive after a long rest.
            if dev
                .cold_since
                .take()
                .is_some_and(|t| t.elapsed() >= IDLE_SPELL)
            {
                dev.fill_target = dev.fill.min;
            }
        }
    }

    /// Takes the devices with nothing left to do off the every-turn list, and returns how many
    /// chunks the remaining ones want for their fill rings. A device leaves only when nothing
    /// of it is pending: no TX in flight or staged, its fill ring at target, quiet for a while.
    fn cool_down(&mut self) -> usize {
        let mut want = 0;
        let mut k = 0;
        while k < self.active.len() {
            let i = self.active[k] as usize;
            let cold = match self.devices[i].as_deref_mut() {
                Some(d) => {
                    want += d.fill_target.saturating_sub(d.fill_level) as usize;
                    let cold = d.quiet_turns >= QUIET_TURNS
                        && d.tx_level == 0
                        && d.pending.is_empty()
                        && d.pending_flood.is_empty()
                        && d.sock.tx.pending() == 0
                        && refill_amount(d.fill_target, d.fill_level) == 0
                        // Off the list only with a way back: its RX ring watched again.
                        && watch(&self.epoll, d, i);
                    if cold {
                        d.cold_since = Some(Instant::now());
                        self.cold_levels.add(d);
                    }
                    cold
                }
                None => true,
            };
            if cold {
                self.hot[i] = false;
                self.active.swap_remove(k);
            } else {
                k += 1;
            }
        }
        want
    }

    /// Marks the devices whose RX rings have frames as hot, waiting up to `timeout_ms` for one
    /// (0: just look). Also drains the worker's wake-up eventfd.
    fn take_readiness(&mut self, timeout_ms: i32) {
        // SAFETY: `events` is a live array of EP_EVENTS epoll_event structs.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        for k in 0..n.max(0) as usize {
            match self.events[k].u64 {
                EP_WAKE => {
                    let mut buf = 0u64;
                    // SAFETY: reads 8 bytes into a local from our own non-blocking eventfd.
                    unsafe {
                        libc::read(
                            self.wakes[self.id as usize].as_raw_fd(),
                            (&mut buf as *mut u64).cast(),
                            8,
                        )
                    };
                }
                EP_FLOOD => self.floods_ready = true,
                row => self.make_hot(row as u16),
            }
        }
    }

    /// Publishes the counters; with `full`, also where every chunk is: the hot devices' levels
    /// plus the cold ones' running sum. Summing every device here, every 256 turns and before
    /// every sleep, was a walk over a thousand devices' state at 1,000 ports, on the turn a
    /// frame could be waiting behind.
    fn publish(&self, full: bool) {
        let s = &self.stats;
        let st = |a: &std::sync::atomic::AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        if full {
            let (mut fill, mut tx) = (self.cold_levels.fill, self.cold_levels.tx);
            for &i in &self.active {
                if let Some(d) = self.devices[i as usize].as_deref() {
                    fill += u64::from(d.fill_level);
                    tx += u64::from(d.tx_level);
                }
            }
            st(&s.free, self.free.len() as u64);
            st(&s.fill, fill);
            st(&s.tx_in_flight, tx);
            st(&s.orphaned, self.orphaned);
        }
        st(&s.no_chunk, self.no_chunk);
        st(&s.handoff_full, self.handoff_full);
        st(&s.host_from_socket, self.host_from_socket);
        st(&s.tapped, self.tapped);
        st(&s.flood_copies, self.flood_copies);
        st(&s.sleeps, self.sleeps);
        st(&s.turns, self.turns);
        st(&s.late_turns, self.late_turns);
        st(&s.unwatched, self.unwatched);
        st(&s.longest_turn_us, self.longest_turn_us);
        st(&s.hot_devices, self.active.len() as u64);
        s.publish_counters(&self.counters);
    }

    /// Sleeps in epoll_wait(2) until a socket, a flood tap, a command or a handoff needs us.
    fn sleep(&mut self) {
        // Frames still staged for the kernel: keep turning instead of sleeping.
        let busy = self.active.iter().any(|&i| {
            self.devices[i as usize]
                .as_ref()
                .is_some_and(|d| d.sock.tx.pending() > 0 || d.tx_level > 0)
        });
        if busy {
            return;
        }
        // Asleep, the worker learns of frames only through epoll: every hot device's RX ring
        // is watched again first. One that cannot be (out of epoll watches) is looked at
        // every millisecond instead.
        let mut timeout = POLL_TIMEOUT_MS;
        for k in 0..self.active.len() {
            let i = self.active[k] as usize;
            if let Some(d) = self.devices[i].as_deref_mut() {
                if !watch(&self.epoll, d, i) {
                    timeout = 1;
                }
            }
        }
        if timeout != POLL_TIMEOUT_MS && !std::mem::replace(&mut self.unwatchable_warned, true) {
            tracing::warn!(
                "epoll_ctl(ADD) refused a port's socket: polling it every 1 ms while asleep"
            );
        }
        // Idle from here on: the books as they stand are what `mvdp stats` should show.
        self.publish(true);
        let me = &self.sleeping[self.id as usize];
        me.store(true, Ordering::SeqCst);
        if self.inboxes[self.id as usize].is_empty() && self.commands.is_empty() {
            self.sleeps += 1;
            self.take_readiness(timeout);
            if self.trace.on() {
                self.trace.woke();
            }
        }
        self.sleeping[self.id as usize].store(false, Ordering::SeqCst);
    }
}

fn epoll_add(ep: &OwnedFd, fd: std::os::fd::RawFd, data: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: data,
    };
    // SAFETY: both descriptors are open; `ev` is a valid event for the call's duration.
    let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Puts device row `row`'s socket back in the epoll set if it left it; false if it could not.
fn watch(ep: &OwnedFd, d: &mut Device, row: usize) -> bool {
    if !d.watched {
        // Not logged here: a refusal (out of epoll watches) is retried on every turn, and the
        // device meanwhile stays on the every-turn list, served. EEXIST means it is watched.
        match epoll_add(ep, d.sock.fd(), row as u64) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(_) => return false,
        }
        d.watched = true;
    }
    d.since_watched = 0;
    true
}

fn epoll_del(ep: &OwnedFd, fd: std::os::fd::RawFd) {
    // SAFETY: both descriptors are open; DEL ignores the event argument.
    unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
}

/// Chunks on devices' fill and TX rings, summed.
#[derive(Debug, Default)]
struct Levels {
    fill: u64,
    tx: u64,
}

impl Levels {
    fn add(&mut self, d: &Device) {
        self.fill += u64::from(d.fill_level);
        self.tx += u64::from(d.tx_level);
    }

    fn sub(&mut self, d: &Device) {
        self.fill = self.fill.saturating_sub(u64::from(d.fill_level));
        self.tx = self.tx.saturating_sub(u64::from(d.tx_level));
    }
}

/// Returns completed TX chunks to the free stack.
fn reap(
    dev: &mut Device,
    free: &mut FreeStack,
    shared: &Shared,
    addrs: &mut [u64],
    fs: u64,
) -> usize {
    let mut total = 0;
    loop {
        let n = dev.sock.comp.pop_addrs(&mut addrs[..MAX_BATCH]);
        for &a in &addrs[..n] {
            let c = (a / fs) as u32;
            shared.tag(c, 0);
            free.push(c);
        }
        dev.tx_level = dev.tx_level.saturating_sub(n as u32);
        total += n;
        if n < MAX_BATCH {
            return total;
        }
    }
}

/// Tops up the fill ring to the device's target.
fn refill(
    dev: &mut Device,
    free: &mut FreeStack,
    shared: &Shared,
    addrs: &mut [u64],
    fs: u64,
) -> usize {
    let want = (refill_amount(dev.fill_target, dev.fill_level) as usize).min(addrs.len());
    if want == 0 {
        return 0;
    }
    let mut k = 0;
    while k < want {
        let Some(c) = free.pop() else { break };
        addrs[k] = u64::from(c) * fs;
        k += 1;
    }
    let pushed = dev.sock.fill.push_addrs(&addrs[..k]);
    for &a in &addrs[..pushed] {
        shared.tag((a / fs) as u32, dev.uid);
    }
    for &a in addrs[pushed..k].iter().rev() {
        free.push((a / fs) as u32);
    }
    dev.fill_level += pushed as u32;
    0
}

/// Which of a device's staged queues.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Staged {
    Unicast,
    Flood,
}

impl Staged {
    fn of(self, dev: &mut Device) -> &mut Vec<Desc> {
        match self {
            Staged::Unicast => &mut dev.pending,
            Staged::Flood => &mut dev.pending_flood,
        }
    }
}

/// Moves one queue of staged frames onto the TX ring and kicks the kernel until it has taken
/// them or the kick budget is spent. Frames that find the ring full after a reap are dropped and
/// counted.
fn flush(
    dev: &mut Device,
    q: Staged,
    free: &mut FreeStack,
    shared: &Shared,
    addrs: &mut [u64],
    fs: u64,
) -> usize {
    // Taken out for the borrow and put back below: the same buffer, no allocation.
    let mut pending = std::mem::take(q.of(dev));
    let staged = pending.len();
    let mut sent = 0;
    for attempt in 0..2 {
        let n = dev.sock.tx.push_descs(&pending[sent..]);
        let mut bytes = 0u64;
        for d in &pending[sent..sent + n] {
            shared.tag((d.addr / fs) as u32, dev.uid | TAG_TX);
            bytes += u64::from(d.len);
        }
        dev.tx_level += n as u32;
        DeviceStats::add(&dev.stats.tx_frames, n as u64);
        DeviceStats::add(&dev.stats.tx_bytes, bytes);
        sent += n;
        kick(dev);
        if sent == staged || attempt == 1 {
            break;
        }
        reap(dev, free, shared, addrs, fs);
    }
    for d in &pending[sent..] {
        free.push((d.addr / fs) as u32);
    }
    DeviceStats::add(&dev.stats.tx_dropped, (staged - sent) as u64);
    pending.clear();
    *q.of(dev) = pending;
    staged
}

/// Copy-mode TX is synchronous and bounded per sendto: kick until the ring drains.
fn kick(dev: &mut Device) {
    for _ in 0..MAX_KICKS {
        if dev.sock.tx.pending() == 0 || !dev.sock.tx.needs_wakeup() {
            break;
        }
        if dev.sock.kick_tx().is_err() {
            break;
        }
    }
}
