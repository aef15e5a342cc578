//! The AF_XDP fast path: worker threads that receive on every socket, decide with
//! [`decide_batch`](mvdp_switch::decide_batch), and move or copy frames between sockets of one shared
//! UMEM.
//!
//! The control side ([`Engine`]) creates sockets (libxdp's UMEM bookkeeping is not thread safe,
//! so only the control thread touches it), hands them to a worker through a crossbeam channel,
//! and publishes forwarding state as an immutable [`Snapshot`]. Workers apply commands between
//! batches; nothing on the per-frame path locks or allocates.

mod budget;
mod pool;
mod retire;
mod stats;
mod trace;
mod worker;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use crossbeam_queue::ArrayQueue;

use crate::xsk::{Desc, Umem, UmemConfig, XskSocket};
use mvdp_switch::decide::Ingress;
use mvdp_switch::flood::FloodRate;
use mvdp_switch::plane::UmemBooks;
use mvdp_switch::table::{ParentId, Tables};

pub use budget::{FillBudget, FramePromises, FramesExhausted};
pub use retire::Keepsake;
pub use stats::{DeviceStats, HopCounters, WorkerStats};
pub use trace::{now_ns, take_stamp};

use pool::Shared;
use retire::{Retiree, Retirer};

/// How workers wait for frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Spin on the rings: lowest latency, one core per worker always busy.
    BusyPoll,
    /// Spin briefly after traffic, then sleep in poll(2): an idle host burns no core.
    #[default]
    Adaptive,
}

impl PollMode {
    pub fn name(self) -> &'static str {
        match self {
            PollMode::BusyPoll => "busy-poll",
            PollMode::Adaptive => "adaptive",
        }
    }
}

/// The workers' poll mode, switchable while they run (the configured one at start). The bench
/// rests a busy-polling switch's workers while it measures other backends: a spinning worker,
/// even at the lowest priority, took millisecond slices from the switch being measured.
#[derive(Clone, Debug)]
pub struct PollSwitch {
    busy: Arc<AtomicBool>,
    wakes: Vec<Arc<OwnedFd>>,
}

impl PollSwitch {
    pub fn get(&self) -> PollMode {
        if self.is_busy() {
            PollMode::BusyPoll
        } else {
            PollMode::Adaptive
        }
    }

    /// Switches every worker; a sleeping one is woken so that it starts spinning at once.
    pub fn set(&self, mode: PollMode) {
        self.busy
            .store(mode == PollMode::BusyPoll, Ordering::Release);
        for w in &self.wakes {
            wake(w);
        }
    }

    #[inline]
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub workers: usize,
    pub poll: PollMode,
    /// UMEM chunks shared by every socket.
    pub frames: u32,
    pub frame_size: u32,
    /// Descriptors taken from one ring per turn (32–64 is the sweet spot).
    pub batch: usize,
    /// How long an adaptive worker keeps spinning after its last frame.
    pub spin: Duration,
    /// Each port's cap on broadcasts/multicasts per second (its token bucket).
    pub flood_rate: FloodRate,
    /// `--trace-hops`: follow one batch in this many through the worker (0: off).
    pub trace_hops: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            poll: PollMode::Adaptive,
            frames: 16384,
            frame_size: 2048,
            batch: 64,
            spin: Duration::from_micros(50),
            flood_rate: FloodRate::DEFAULT,
            trace_hops: 0,
        }
    }
}

/// Most devices (sockets) one worker serves.
pub const MAX_DEVICES_PER_WORKER: usize = 2048;
/// Largest batch.
pub const MAX_BATCH: usize = 256;
/// Bytes kept free in front of every frame the switch writes, so a tag can be pushed in place.
pub const FRAME_OFFSET: u32 = crate::xsk::XDP_PACKET_HEADROOM;

/// Where a device lives: its worker and its row in that worker's device table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DevRef {
    pub worker: u16,
    pub index: u16,
    /// Unique for the engine's life: a stale reference to a reused row never matches.
    pub uid: u32,
}

/// Forwarding state for the workers. Immutable; replaced whole.
pub struct Snapshot {
    pub tables: Tables,
    /// Per `PortId` of `tables`: the port's device.
    pub port_dev: Vec<DevRef>,
    /// Per `ParentId`: the device that transmits to the wire.
    pub parent_tx: Vec<Option<DevRef>>,
    /// Per worker, per device row: the ingress its frames have.
    pub ingress: Vec<Vec<Option<Ingress>>>,
}

impl Snapshot {
    pub fn empty(workers: usize) -> Snapshot {
        Snapshot {
            tables: Tables::empty(),
            port_dev: Vec::new(),
            parent_tx: Vec::new(),
            ingress: vec![Vec::new(); workers],
        }
    }
}

/// Broadcast and multicast frames the XDP program passed to the host, read back by userspace
/// (the flood tap). Implemented outside this crate (AF_PACKET).
pub trait FloodSource: Send {
    /// Receives one frame into `buf`, returns (offset, len) of the frame in it (any outer
    /// tag restored), or `None` when nothing is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> Option<(usize, usize)>;
    fn fd(&self) -> RawFd;
}

/// A device as handed to a worker.
pub(crate) struct Device {
    pub(crate) sock: XskSocket,
    pub(crate) uid: u32,
    /// Chunks kept on the fill ring: grows while bursts take much of it (a burst, or a worker
    /// that was off the CPU), back to the floor when the device comes back from an idle spell,
    /// within the budget, so idle ports hold few chunks and busy ones ride out bursts.
    pub(crate) fill_target: u32,
    /// When the device left the every-turn list, if it is off it.
    pub(crate) cold_since: Option<std::time::Instant>,
    pub(crate) fill: FillBudget,
    /// Turns since the device last had anything to do; a worker stops visiting it after a few
    /// (it comes back when epoll says its RX ring has frames, or a frame is staged for it).
    pub(crate) quiet_turns: u32,
    /// Frames taken off the RX ring this turn (read by the turn's upkeep).
    pub(crate) took: u32,
    /// Frames received since `rate_since`: the rate its fill target follows (see
    /// `budget::rate_fill_target`).
    pub(crate) rate_frames: u32,
    pub(crate) rate_since: std::time::Instant,
    pub(crate) fill_level: u32,
    pub(crate) tx_level: u32,
    /// Frames staged for the TX ring this turn: unicast (and single copies) ...
    pub(crate) pending: Vec<Desc>,
    /// ... and flood copies, pushed only after every device's unicast (see the worker's flush).
    pub(crate) pending_flood: Vec<Desc>,
    pub(crate) stats: Arc<DeviceStats>,
    /// Whether the device's socket is in the worker's epoll set: a hot device's leaves it after
    /// `UNWATCH_AFTER` frames and is put back by the worker's `watch` (see worker.rs).
    pub(crate) watched: bool,
    /// Frames taken since the device was last put in the epoll set.
    pub(crate) since_watched: u32,
}

/// A frame on its way to another worker's device.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handoff {
    pub(crate) desc: Desc,
    pub(crate) to: DevRef,
}

pub(crate) enum Command {
    AddDevice(u16, Box<Device>),
    RemoveDevice(u16),
    Reclaim(u32),
    Snapshot(Arc<Snapshot>),
    AddFlood(ParentId, Box<dyn FloodSource>),
    RemoveFlood(ParentId),
    Exit,
}

pub(crate) enum Reply {
    Removed(Option<Box<Device>>),
    Garbage(#[allow(dead_code)] Arc<Snapshot>),
    FloodRemoved(#[allow(dead_code)] Option<Box<dyn FloodSource>>),
}

struct WorkerHandle {
    commands: Sender<Command>,
    replies: Receiver<Reply>,
    wake: Arc<OwnedFd>,
    stats: Arc<WorkerStats>,
    inbox: Arc<ArrayQueue<Handoff>>,
    rows: Vec<bool>,
    /// Per row: the fill floor promised to its device.
    floors: Vec<u32>,
    thread: Option<JoinHandle<()>>,
}

/// Why a device could not be handed to a worker.
#[derive(Debug, thiserror::Error)]
pub enum AddDeviceError {
    /// Its fill floor does not fit the UMEM's promises.
    #[error(transparent)]
    Frames(#[from] FramesExhausted),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The fast path's control handle. Dropping it stops the workers.
pub struct Engine {
    cfg: EngineConfig,
    umem: Umem,
    shared: Arc<Shared>,
    workers: Vec<WorkerHandle>,
    poll: PollSwitch,
    next_uid: u32,
    promises: FramePromises,
    /// Closes removed devices' sockets off the control thread (flushed in `Drop` before the
    /// workers exit).
    retirer: Retirer,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl Engine {
    /// Maps the UMEM and starts the workers (idle until devices arrive).
    pub fn new(cfg: EngineConfig) -> io::Result<Engine> {
        if cfg.workers == 0 || cfg.workers > 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "workers must be 1..=64",
            ));
        }
        if cfg.batch == 0 || cfg.batch > MAX_BATCH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("batch must be 1..={MAX_BATCH}"),
            ));
        }
        let umem = crate::xsk::retry_busy(|| {
            Umem::new(UmemConfig {
                frames: cfg.frames,
                frame_size: cfg.frame_size,
                ring_size: 64,
            })
        })?;
        let shared = Arc::new(Shared::new(cfg.frames));
        let inboxes: Vec<_> = (0..cfg.workers)
            .map(|_| Arc::new(ArrayQueue::new(4096)))
            .collect();
        let mut wakes = Vec::new();
        for _ in 0..cfg.workers {
            // SAFETY: eventfd(2) with valid flags; the result is checked before use.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor we own.
            wakes.push(Arc::new(unsafe {
                <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
            }));
        }
        let sleeping: Vec<_> = (0..cfg.workers)
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        let poll = PollSwitch {
            busy: Arc::new(AtomicBool::new(cfg.poll == PollMode::BusyPoll)),
            wakes: wakes.clone(),
        };
        let mut workers = Vec::new();
        for id in 0..cfg.workers {
            let (ctx, crx) = bounded(256);
            let (rtx, rrx) = bounded(256);
            let stats = Arc::new(WorkerStats::default());
            let w = worker::Worker::new(
                id as u16,
                cfg,
                umem.clone(),
                shared.clone(),
                crx,
                rtx,
                wakes.clone(),
                sleeping.clone(),
                inboxes.clone(),
                stats.clone(),
                poll.clone(),
            )?;
            let thread = std::thread::Builder::new()
                .name(format!("mvdp-worker-{id}"))
                .spawn(move || w.run())?;
            workers.push(WorkerHandle {
                commands: ctx,
                replies: rrx,
                wake: wakes[id].clone(),
                stats,
                inbox: inboxes[id].clone(),
                rows: vec![false; MAX_DEVICES_PER_WORKER],
                floors: vec![0; MAX_DEVICES_PER_WORKER],
                thread: Some(thread),
            });
        }
        Ok(Engine {
            cfg,
            umem,
            shared,
            workers,
            poll,
            next_uid: 1,
            promises: FramePromises::new(cfg.frames, cfg.workers),
            retirer: Retirer::start()?,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A handle on the workers' poll mode (see [`PollSwitch`]).
    pub fn poll_switch(&self) -> PollSwitch {
        self.poll.clone()
    }

    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The worker that owns a port's socket, sharding ports round robin by a stable key.
    pub fn worker_for(&self, key: u32) -> u16 {
        (key as usize % self.workers.len()) as u16
    }

    fn send(&self, worker: u16, cmd: Command) -> io::Result<()> {
        let w = &self.workers[worker as usize];
        w.commands
            .send(cmd)
            .map_err(|_| io::Error::other("worker thread is gone"))?;
        wake(&w.wake);
        Ok(())
    }

    fn wait_reply(&self, worker: u16, want: impl Fn(&Reply) -> bool) -> io::Result<Reply> {
        let w = &self.workers[worker as usize];
        let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match w.replies.recv_timeout(left) {
                Ok(r) if want(&r) => return Ok(r),
                // Old snapshots and flood sources come back to be freed here, off the fast path.
                Ok(_) => continue,
                Err(_) => return Err(io::Error::other("worker did not answer")),
            }
        }
    }

    /// Drops what workers sent back (old snapshots), so their reply queues never fill.
    pub fn collect_garbage(&self) {
        for w in &self.workers {
            while w.replies.try_recv().is_ok() {}
        }
    }

    /// What the UMEM has promised so far (fill floors of admitted devices, the reserve).
    pub fn promises(&self) -> FramePromises {
        self.promises
    }

    /// Gives `sock` to worker `worker`, which keeps between `fill.min` and `fill.max` chunks on
    /// its fill ring, depending on the traffic. Refused, changing nothing, when the UMEM cannot
    /// promise `fill.min` more frames.
    pub fn add_device(
        &mut self,
        worker: u16,
        sock: XskSocket,
        fill: FillBudget,
    ) -> Result<(DevRef, Arc<DeviceStats>), AddDeviceError> {
        if self.promises.room() < u64::from(fill.min) {
            return Err(FramesExhausted {
                promises: self.promises,
                needed: u64::from(fill.min),
            }
            .into());
        }
        let w = self
            .workers
            .get_mut(worker as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such worker"))?;
        let index = w
            .rows
            .iter()
            .position(|used| !used)
            .ok_or_else(|| io::Error::other("worker has no free device row"))?;
        w.rows[index] = true;
        let uid = self.next_uid;
        self.next_uid = self.next_uid.wrapping_add(1).max(1) & !pool::TAG_TX;
        let stats = Arc::new(DeviceStats::default());
        let dev = Box::new(Device {
            sock,
            uid,
            fill_target: fill.min,
            fill,
            quiet_turns: 0,
            took: 0,
            rate_frames: 0,
            rate_since: std::time::Instant::now(),
            cold_since: None,
            fill_level: 0,
            tx_level: 0,
            // Two turns' worth of one ring's batch: `enqueue` flushes a full stage, so this only
            // bounds how much waits for one kick. Sized from the configured batch, not the
            // largest one allowed: at a thousand ports that was 8 MiB of staging nobody used.
            pending: Vec::with_capacity(self.cfg.batch * 2),
            pending_flood: Vec::with_capacity(self.cfg.batch * 2),
            stats: stats.clone(),
            watched: false,
            since_watched: 0,
        });
        let r = DevRef {
            worker,
            index: index as u16,
            uid,
        };
        if let Err(e) = self.send(worker, Command::AddDevice(index as u16, dev)) {
            self.workers[worker as usize].rows[index] = false;
            return Err(e.into());
        }
        self.promises.promise(fill.min)?;
        self.workers[worker as usize].floors[index] = fill.min;
        Ok((r, stats))
    }

    /// Takes a device back from its worker and returns at once: its socket is closed, `keep`
    /// dropped after it, and the chunks the kernel held on its rings reclaimed, by the retiring
    /// thread (closing waits for the kernel; see `retire`). [`Engine::settle`] waits for that.
    pub fn remove_device(&mut self, dev: DevRef, keep: Option<Keepsake>) -> io::Result<()> {
        self.send(dev.worker, Command::RemoveDevice(dev.index))?;
        let removed = match self.wait_reply(dev.worker, |r| matches!(r, Reply::Removed(_)))? {
            Reply::Removed(d) => d,
            _ => unreachable!("filtered by wait_reply"),
        };
        let w = &mut self.workers[dev.worker as usize];
        w.rows[dev.index as usize] = false;
        self.promises
            .release(std::mem::take(&mut w.floors[dev.index as usize]));
        self.retirer.retire(Retiree {
            dev: removed,
            keep,
            uid: dev.uid,
            worker: w.commands.clone(),
            wake: w.wake.clone(),
        });
        Ok(())
    }

    /// Waits until every removed device's socket is closed and its reclaim is queued to its
    /// worker (which applies it at its next turn).
    pub fn settle(&self) {
        self.retirer.flush();
    }

    /// Publishes new forwarding state to every worker; it applies at their next turn.
    pub fn publish(&mut self, snap: Snapshot) -> io::Result<()> {
        let snap = Arc::new(snap);
        for w in 0..self.workers.len() {
            self.send(w as u16, Command::Snapshot(snap.clone()))?;
        }
        self.collect_garbage();
        Ok(())
    }

    /// Worker `worker` reads `parent`'s flood tap.
    pub fn add_flood_source(
        &mut self,
        worker: u16,
        parent: ParentId,
        src: Box<dyn FloodSource>,
    ) -> io::Result<()> {
        self.send(worker, Command::AddFlood(parent, src))
    }

    pub fn remove_flood_source(&mut self, worker: u16, parent: ParentId) -> io::Result<()> {
        self.send(worker, Command::RemoveFlood(parent))?;
        self.wait_reply(worker, |r| matches!(r, Reply::FloodRemoved(_)))
            .map(|_| ())
    }

    /// The workers' kernel thread ids (waits for each to have started, up to a second).
    pub fn worker_tids(&self) -> Vec<u32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let tids: Vec<u32> = self
                .workers
                .iter()
                .map(|w| w.stats.tid.load(Ordering::Relaxed) as u32)
                .collect();
            if tids.iter().all(|t| *t != 0) || std::time::Instant::now() > deadline {
                return tids.into_iter().filter(|t| *t != 0).collect();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn worker_stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers.iter().map(|w| w.stats.clone()).collect()
    }

    /// Where every chunk is, summed over workers, the spare pool and the handoff queues.
    pub fn accounting(&self) -> UmemBooks {
        let mut a = UmemBooks {
            total: u64::from(self.cfg.frames),
            free: self.shared.spare.len() as u64,
            frame_size: self.umem().frame_size(),
            ..UmemBooks::default()
        };
        for w in &self.workers {
            let r = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
            a.free += r(&w.stats.free);
            a.fill += r(&w.stats.fill) + r(&w.stats.orphaned);
            a.tx_in_flight += r(&w.stats.tx_in_flight);
            a.in_transit += w.inbox.len() as u64;
        }
        a
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Sockets still being retired are closed while their workers can still reclaim.
        self.settle();
        for w in 0..self.workers.len() {
            let _ = self.send(w as u16, Command::Exit);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

pub(crate) fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local to our own eventfd.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}
