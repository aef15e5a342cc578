//! Where a frame's time goes inside the switch: per-hop latency histograms of sampled frames
//! (`mvdp daemon --trace-hops`). The XDP programs stamp a frame with the kernel's monotonic
//! clock; the worker reads that stamp and the same clock at RX pickup, after the decision and
//! after the TX kick returns. This module is the arithmetic: fixed log-linear buckets (8 per
//! power of two, so a bucket is at most 12.5 % wide), built once, counted with no allocation,
//! and percentiles read back from the counts.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two (3 bits of mantissa).
const SUB: u64 = 8;
const SUB_BITS: u32 = 3;
/// Largest exponent with buckets of its own: 2^40 ns ≈ 18 minutes; longer lands in the last.
const MAX_EXP: u32 = 40;
/// Buckets of one hop's histogram.
pub const BUCKETS: usize = ((MAX_EXP - 1) as u64 * SUB) as usize;

/// A hop of a frame's way through mvdp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hop {
    /// XDP program (frame stamped on the ingress veth or parent) to the worker taking the frame
    /// off its RX ring: the kernel's copy into the UMEM, the socket's wake-up, the worker's
    /// wake-up or its next poll, and the turn up to this device.
    XdpToPickup,
    /// Of the frames picked up in a turn right after the worker slept: XDP program to the
    /// worker's return from epoll_wait (the scheduler's wake-up of the worker).
    XdpToWake,
    /// The same frames: the worker's return from epoll_wait to the RX pickup.
    WakeToPickup,
    /// RX pickup to the frame's batch decided and staged on its TX queues.
    Decision,
    /// Staged to the TX kick (sendto) returning: the rest of the turn, the copy into an skb and
    /// the veth transmit. For a veth whose peer has no XDP program the kernel hands the frame
    /// to the receiver's stack within that call (netif_rx in process context runs the softirq
    /// when it re-enables bottom halves).
    TxKick,
}

impl Hop {
    pub const COUNT: usize = 5;
    pub const ALL: [Hop; Hop::COUNT] = [
        Hop::XdpToPickup,
        Hop::XdpToWake,
        Hop::WakeToPickup,
        Hop::Decision,
        Hop::TxKick,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Hop::XdpToPickup => "xdp_to_pickup",
            Hop::XdpToWake => "xdp_to_wake",
            Hop::WakeToPickup => "wake_to_pickup",
            Hop::Decision => "decision",
            Hop::TxKick => "tx_kick",
        }
    }
}

/// The bucket of a duration of `ns` nanoseconds.
#[inline]
pub fn bucket(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let mant = (ns >> (exp - SUB_BITS)) & (SUB - 1);
    ((u64::from(exp) - u64::from(SUB_BITS) + 1) * SUB + mant) as usize
}

/// The smallest value of bucket `b` and its width.
pub fn bucket_range(b: usize) -> (u64, u64) {
    let b = b as u64;
    if b < SUB {
        return (b, 1);
    }
    let exp = (b / SUB) as u32 + SUB_BITS - 1;
    let mant = b % SUB;
    let width = 1u64 << (exp - SUB_BITS);
    ((SUB + mant) * width, width)
}

/// One hop's counts: sparse (bucket, count) pairs, as `mvdp stats --json` shows them and the
/// bench subtracts them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopHistogram {
    pub samples: u64,
    /// (bucket, count) for every non-empty bucket, ascending; see [`bucket_range`].
    pub buckets: Vec<(u32, u64)>,
}

impl HopHistogram {
    /// From dense counts (one per bucket).
    pub fn from_counts(counts: impl IntoIterator<Item = u64>) -> HopHistogram {
        let mut h = HopHistogram::default();
        for (b, n) in counts.into_iter().enumerate() {
            if n > 0 {
                h.samples += n;
                h.buckets.push((b as u32, n));
            }
        }
        h
    }

    fn dense(&self) -> Vec<u64> {
        let mut d = vec![0u64; BUCKETS];
        for &(b, n) in &self.buckets {
            if let Some(x) = d.get_mut(b as usize) {
                *x += n;
            }
        }
        d
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &HopHistogram) {
        let mut d = self.dense();
        for (x, y) in d.iter_mut().zip(other.dense()) {
            *x += y;
        }
        *self = HopHistogram::from_counts(d);
    }

    /// What was counted after `earlier` (a snapshot of the same counters taken before).
    pub fn since(&self, earlier: &HopHistogram) -> HopHistogram {
        let e = earlier.dense();
        HopHistogram::from_counts(self.dense().iter().zip(e).map(|(a, b)| a.saturating_sub(b)))
    }

    /// The `q` quantile (0..=1) in nanoseconds: the middle of the bucket holding it.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.samples == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let (lo, w) = bucket_range(b as usize);
                return Some(lo + w / 2);
            }
        }
        None
    }
}

/// Every hop's histogram, by [`Hop::name`], plus the sampled frames that carried no usable XDP
/// stamp (none written, or one older than a second: a stale one left in the chunk).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopStats {
    /// One batch in this many is sampled; 0: tracing is off.
    pub sample_every: u32,
    pub no_stamp: u64,
    pub hops: std::collections::BTreeMap<String, HopHistogram>,
}

impl HopStats {
    pub fn hop(&self, h: Hop) -> Option<&HopHistogram> {
        self.hops.get(h.name())
    }

    /// What was counted after `earlier`.
    pub fn since(&self, earlier: &HopStats) -> HopStats {
        let mut out = HopStats {
            sample_every: self.sample_every,
            no_stamp: self.no_stamp.saturating_sub(earlier.no_stamp),
            hops: Default::default(),
        };
        for (k, v) in &self.hops {
            let d = match earlier.hops.get(k) {
                Some(e) => v.since(e),
                None => v.clone(),
            };
            out.hops.insert(k.clone(), d);
        }
        out
    }

    pub fn merge(&mut self, other: &HopStats) {
        self.sample_every = self.sample_every.max(other.sample_every);
        self.no_stamp += other.no_stamp;
        for (k, v) in &other.hops {
            self.hops.entry(k.clone()).or_default().merge(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_that_contains_it() {
        let mut v = 0u64;
        while v < (1u64 << MAX_EXP) {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v}");
            let (lo, w) = bucket_range(b);
            assert!(
                lo <= v && v < lo + w,
                "{v} not in bucket {b} [{lo}, {})",
                lo + w
            );
            // At most 12.5 % wide: the percentiles are that precise.
            assert!(w == 1 || w * 8 <= lo, "bucket {b} too wide");
            v = v * 9 / 8 + 1;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_are_ordered_like_their_values() {
        let mut last = 0;
        for v in (0..100_000u64).step_by(7) {
            let b = bucket(v);
            assert!(b >= last, "{v}");
            last = b;
        }
    }

    #[test]
    fn quantiles_come_from_the_counts() {
        let mut counts = vec![0u64; BUCKETS];
        // 90 samples of 1 µs, 10 of 100 µs.
        counts[bucket(1_000)] += 90;
        counts[bucket(100_000)] += 10;
        let h = HopHistogram::from_counts(counts);
        assert_eq!(h.samples, 100);
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((900..=1_100).contains(&p50), "{p50}");
        assert!((90_000..=110_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(0.9).map(bucket), Some(bucket(1_000)));
        assert_eq!(HopHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn a_later_snapshot_less_an_earlier_one_is_what_came_between() {
        let mut a = vec![0u64; BUCKETS];
        a[bucket(5_000)] = 3;
        let before = HopHistogram::from_counts(a.clone());
        a[bucket(5_000)] += 2;
        a[bucket(70_000)] += 4;
        let after = HopHistogram::from_counts(a);
        let d = after.since(&before);
        assert_eq!(d.samples, 6);
        assert_eq!(
            d.buckets,
            vec![(bucket(5_000) as u32, 2), (bucket(70_000) as u32, 4)]
        );
        let mut m = before.clone();
        m.merge(&d);
        assert_eq!(m, after);

        let mut s1 = HopStats::default();
        s1.hops.insert("decision".into(), before);
        s1.no_stamp = 1;
        let mut s2 = s1.clone();
        s2.hops.insert("decision".into(), after);
        s2.no_stamp = 4;
        let d = s2.since(&s1);
        assert_eq!(d.no_stamp, 3);
        assert_eq!(d.hop(Hop::Decision).map(|h| h.samples), Some(6));
    }
}
