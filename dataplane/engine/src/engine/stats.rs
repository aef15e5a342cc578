//! Counters a worker publishes for the control plane: single writer (the worker), any number
//! of readers; updated once per loop turn, never per frame.

use std::sync::atomic::{AtomicU64, Ordering};

use mvdp_switch::counters::{Counters, DropReason, PortCounters};
use mvdp_switch::hops::{self, Hop, HopHistogram, HopStats};

/// Per device (a parent queue's or a port's socket): [`PortCounters`] as atomics, which the
/// worker publishes and [`DeviceStats::read`] snapshots.
#[derive(Debug, Default)]
pub struct DeviceStats {
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Frames from this device the switch dropped.
    pub rx_dropped: AtomicU64,
    /// Frames for this device that found its TX ring full, or no chunk to copy into.
    pub tx_dropped: AtomicU64,
    /// Of `rx_dropped`: broadcasts beyond the device's flood share of a turn (a storm).
    pub flood_dropped: AtomicU64,
}

impl DeviceStats {
    pub fn read(&self) -> PortCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PortCounters {
            rx_frames: r(&self.rx_frames),
            rx_bytes: r(&self.rx_bytes),
            tx_frames: r(&self.tx_frames),
            tx_bytes: r(&self.tx_bytes),
            rx_dropped: r(&self.rx_dropped),
            tx_dropped: r(&self.tx_dropped),
            flood_dropped: r(&self.flood_dropped),
        }
    }

    #[inline]
    pub(crate) fn add(a: &AtomicU64, n: u64) {
        if n > 0 {
            // Single writer: a load and a store, no locked instruction.
            a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        }
    }
}

/// Per worker.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// The worker thread's kernel thread id, for per-thread CPU accounting (0 until it runs).
    pub tid: AtomicU64,
    pub free: AtomicU64,
    pub fill: AtomicU64,
    pub tx_in_flight: AtomicU64,
    /// Chunks on the rings of removed devices, not yet taken back.
    pub orphaned: AtomicU64,
    pub frames: AtomicU64,
    pub to_port: AtomicU64,
    pub to_wire: AtomicU64,
    pub floods: AtomicU64,
    pub flood_copies: AtomicU64,
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Copies not made because no free chunk was left.
    pub no_chunk: AtomicU64,
    /// Handoffs to another worker that found its queue full.
    pub handoff_full: AtomicU64,
    /// Frames the decision sent to the host stack from an AF_XDP socket (never expected:
    /// the XDP program passes host traffic itself), dropped.
    pub host_from_socket: AtomicU64,
    /// Flood-tap frames received.
    pub tapped: AtomicU64,
    pub sleeps: AtomicU64,
    pub turns: AtomicU64,
    /// Turns that took 1 ms or more (the worker off the CPU, or a long turn; sleeps excluded),
    /// and the longest of them in µs.
    pub late_turns: AtomicU64,
    pub longest_turn_us: AtomicU64,
    /// Hot sockets taken out of the epoll set so far.
    pub unwatched: AtomicU64,
    /// Devices visited every turn (those with work) at the last turn.
    pub hot_devices: AtomicU64,
    /// `--trace-hops`: where the sampled frames' time went.
    pub hops: HopCounters,
}

impl WorkerStats {
    pub(crate) fn publish_counters(&self, c: &Counters) {
        let s = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        s(&self.frames, c.frames);
        s(&self.to_port, c.to_port);
        s(&self.to_wire, c.to_wire);
        s(&self.floods, c.floods);
        for (a, v) in self.drops.iter().zip(c.drops.iter()) {
            s(a, *v);
        }
    }
}

/// Per worker, with `--trace-hops`: the sampled frames' per-hop histograms, one row of
/// [`hops::BUCKETS`] counts per [`Hop`]. Allocated once when the worker starts; written by the
/// worker only for a sampled frame.
#[derive(Debug)]
pub struct HopCounters {
    counts: Box<[AtomicU64]>,
    /// Sampled frames without a usable XDP stamp.
    pub no_stamp: AtomicU64,
}

impl Default for HopCounters {
    fn default() -> Self {
        HopCounters {
            counts: (0..Hop::COUNT * hops::BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            no_stamp: AtomicU64::new(0),
        }
    }
}

impl HopCounters {
    /// Counts one sample of `hop` taking `ns` nanoseconds. Single writer: one thread records.
    #[inline]
    pub fn record(&self, hop: Hop, ns: u64) {
        let a = &self.counts[hop.index() * hops::BUCKETS + hops::bucket(ns)];
        DeviceStats::add(a, 1);
    }

    /// Counts a sampled frame that had no usable XDP stamp. Single writer.
    #[inline]
    pub fn missed(&self) {
        DeviceStats::add(&self.no_stamp, 1);
    }

    /// The sum of `counters` as `mvdp stats` shows it; `every` is the sampling (0: off, empty).
    pub fn stats<'a>(counters: impl IntoIterator<Item = &'a HopCounters>, every: u32) -> HopStats {
        let mut out = HopStats {
            sample_every: every,
            ..HopStats::default()
        };
        if every == 0 {
            return out;
        }
        let mut rows: [Vec<u64>; Hop::COUNT] = Default::default();
        for c in counters {
            c.add_to(&mut rows);
            out.no_stamp += c.no_stamp.load(Ordering::Relaxed);
        }
        for (h, row) in Hop::ALL.iter().zip(rows) {
            out.hops
                .insert(h.name().into(), HopHistogram::from_counts(row));
        }
        out
    }

    /// Adds this worker's counts to `into` (one dense row per hop).
    pub fn add_to(&self, into: &mut [Vec<u64>; Hop::COUNT]) {
        for h in Hop::ALL {
            let row = &self.counts[h.index() * hops::BUCKETS..(h.index() + 1) * hops::BUCKETS];
            let dst = &mut into[h.index()];
            dst.resize(hops::BUCKETS, 0);
            for (d, a) in dst.iter_mut().zip(row) {
                *d += a.load(Ordering::Relaxed);
            }
        }
    }
}
