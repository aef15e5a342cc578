//! `--trace-hops`: one batch in `every` has its first frame followed through the worker. The
//! XDP program stamped it with `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) in the XDP metadata,
//! which copy-mode AF_XDP puts right before the frame in its UMEM chunk (`xsk_copy_xdp`); the
//! worker reads the same clock at RX pickup, after the decision and after the TX kick, and
//! counts the differences in its [`HopCounters`]. Off (`every == 0`), the worker pays one
//! branch per batch and one per turn.

use mvdp_ebpf::abi::{HOP_MAGIC, HOP_META_LEN};
use mvdp_switch::hops::Hop;

use super::stats::HopCounters;

/// A stamp older than this is not the frame's own: one left in the chunk by an earlier frame.
const STALE_NS: u64 = 1_000_000_000;

/// The clock the XDP programs stamp with (bpf_ktime_get_ns is CLOCK_MONOTONIC), in ns.
#[inline]
pub fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64);
    t.unwrap_or(0)
}

/// The XDP stamp at the end of `head` (the bytes in front of a received frame), if it is one
/// and not older than a second at `now`; cleared once read, so a later frame in the same chunk
/// without one is not taken for it.
pub fn take_stamp(head: &mut [u8], now: u64) -> Option<u64> {
    let at = head.len().checked_sub(HOP_META_LEN)?;
    let m = &mut head[at..];
    let magic = u32::from_ne_bytes(m[0..4].try_into().ok()?);
    let xdp = u64::from_ne_bytes(m[8..16].try_into().ok()?);
    m[0..4].fill(0);
    (magic == HOP_MAGIC && xdp <= now && now - xdp < STALE_NS).then_some(xdp)
}

/// The times of the frame followed this turn.
#[derive(Clone, Copy, Debug)]
struct Sample {
    xdp: u64,
    /// The worker's return from epoll_wait, when this turn followed a sleep.
    woke: Option<u64>,
    pickup: u64,
    decided: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct HopTracer {
    /// One batch in this many is sampled; 0: off.
    pub(crate) every: u32,
    countdown: u32,
    woke: Option<u64>,
    sample: Option<Sample>,
}

impl HopTracer {
    pub(crate) fn new(every: u32) -> HopTracer {
        HopTracer {
            every,
            countdown: 0,
            woke: None,
            sample: None,
        }
    }

    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.every > 0
    }

    /// The worker returned from sleeping in epoll_wait.
    pub(crate) fn woke(&mut self) {
        self.woke = Some(now_ns());
    }

    /// A batch was taken off an RX ring; `head` is the chunk bytes up to its first frame.
    /// Samples it when its turn has come and no other frame is followed this turn. The stamp
    /// is cleared once read, so a later frame in the same chunk without one is not taken for it.
    pub(crate) fn pickup(&mut self, head: &mut [u8], counters: &HopCounters) {
        if self.countdown > 0 {
            self.countdown -= 1;
            return;
        }
        if self.sample.is_some() {
            return;
        }
        self.countdown = self.every - 1;
        let now = now_ns();
        match take_stamp(head, now) {
            Some(xdp) => {
                self.sample = Some(Sample {
                    xdp,
                    woke: self.woke,
                    pickup: now,
                    decided: None,
                })
            }
            None => counters.missed(),
        }
    }

    /// The batch of the followed frame is decided and staged.
    pub(crate) fn decided(&mut self) {
        if let Some(s) = &mut self.sample {
            if s.decided.is_none() {
                s.decided = Some(now_ns());
            }
        }
    }

    /// The turn's TX kicks returned: counts the followed frame's hops and starts afresh.
    pub(crate) fn kicked(&mut self, counters: &HopCounters) {
        self.woke = None;
        let Some(s) = self.sample.take() else {
            return;
        };
        let Some(decided) = s.decided else {
            return; // dropped before its decision (device leaving)
        };
        let kicked = now_ns();
        counters.record(Hop::XdpToPickup, s.pickup - s.xdp);
        if let Some(w) = s.woke.filter(|&w| w >= s.xdp) {
            counters.record(Hop::XdpToWake, w - s.xdp);
            counters.record(Hop::WakeToPickup, s.pickup.saturating_sub(w));
        }
        counters.record(Hop::Decision, decided.saturating_sub(s.pickup));
        counters.record(Hop::TxKick, kicked.saturating_sub(decided));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvdp_switch::hops::HopHistogram;

    fn snapshot(c: &HopCounters) -> Vec<HopHistogram> {
        let mut rows: [Vec<u64>; Hop::COUNT] = Default::default();
        c.add_to(&mut rows);
        rows.into_iter().map(HopHistogram::from_counts).collect()
    }

    fn stamped(ago_ns: u64) -> Vec<u8> {
        let mut head = vec![0u8; 256];
        let at = 256 - HOP_META_LEN;
        head[at..at + 4].copy_from_slice(&HOP_MAGIC.to_ne_bytes());
        head[at + 8..].copy_from_slice(&(now_ns() - ago_ns).to_ne_bytes());
        head
    }

    #[test]
    fn a_stamped_frame_is_counted_in_every_hop_once() {
        let c = HopCounters::default();
        let mut t = HopTracer::new(1);
        // Stamped, then the worker wakes: the wake-up split is counted too.
        let mut head = stamped(0);
        t.woke();
        t.pickup(&mut head, &c);
        t.decided();
        t.kicked(&c);
        let h = snapshot(&c);
        for hop in Hop::ALL {
            assert_eq!(h[hop.index()].samples, 1, "{}", hop.name());
        }
        // The stamp was consumed: the same chunk read again is a frame without one.
        t.pickup(&mut head, &c);
        t.decided();
        t.kicked(&c);
        assert_eq!(snapshot(&c)[Hop::Decision.index()].samples, 1);
        assert_eq!(c.no_stamp.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn only_one_batch_in_every_is_followed_and_stale_stamps_are_refused() {
        let c = HopCounters::default();
        let mut t = HopTracer::new(4);
        for _ in 0..8 {
            t.pickup(&mut stamped(1_000), &c);
            t.decided();
            t.kicked(&c);
        }
        let h = snapshot(&c);
        assert_eq!(h[Hop::XdpToPickup.index()].samples, 2);
        // No sleep before these turns: no wake-up split.
        assert_eq!(h[Hop::XdpToWake.index()].samples, 0);
        let mut t = HopTracer::new(1);
        t.pickup(&mut stamped(2 * STALE_NS), &c);
        t.pickup(&mut [0u8; 4], &c);
        assert_eq!(c.no_stamp.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
