//! The bounded broadcast budget.
//!
//! The kernel queues broadcasts from the wire on a per-lower-device queue of
//! `bc_queue_len` (default 1000) frames, drained by a work item, and drops what
//! does not fit. Here the queue becomes a budget of replicated frames per
//! segment that the caller refills every batch or tick: replication work per
//! refill is bounded, overflow is counted as `flood_budget`, and unicast never
//! waits behind it because unicast never touches the budget.
//!
//! On top of it, each port has a *share*: at most [`PORT_FLOOD_SHARE`] of its
//! own broadcasts and multicasts are forwarded (to the wire and flooded) per
//! refill. A port that sends more (a storm) has the rest dropped
//! (`flood_share`, counted on the port), so the copies and wire frames one
//! port's floods cost per refill are bounded by its share, and cannot fill the
//! time other ports' unicast needs. Refilling costs the same with 2 ports or
//! 1,000: a port's share is reset lazily, by a refill epoch.
//!
//! And each port has a *rate* ([`FloodRate`]): a token bucket of `burst`
//! broadcasts refilled at `pps` per second, so a storm also costs a bounded
//! amount of work per second, however many turns the worker spins through.
//! What is beyond it is dropped whole too (`flood_rate`, counted on the port
//! in the same `flood_dropped`). The budget has no clock of its own: the
//! caller tells it the time ([`FloodBudget::set_clock`], the engine once per
//! turn), and a port's bucket is topped up lazily, when that port floods.

mod rate;

use std::time::Duration;

pub use rate::{FloodRate, FloodRateError};

use crate::counters::DropReason;
use crate::table::{PortId, SegmentId, Tables};

/// Broadcasts one port may have flooded per refill (per worker turn in the engine).
pub const PORT_FLOOD_SHARE: u16 = 4;

/// One broadcast in the bucket's fixed point: tokens are counted in token-nanoseconds, so a
/// refill of `pps` per second is `elapsed_ns * pps` with no division and no rounding.
const TOKEN: u64 = 1_000_000_000;

/// A port's share and bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PortFlood {
    /// The refill epoch `used` counts in.
    epoch: u32,
    used: u16,
    /// In [`TOKEN`]s.
    tokens: u64,
    /// The clock (ns) when `tokens` was last topped up.
    at: u64,
}

impl PortFlood {
    /// A port seen for the first time: a full bucket.
    fn fresh(rate: FloodRate, now: u64) -> PortFlood {
        PortFlood {
            epoch: 0,
            used: 0,
            tokens: u64::from(rate.burst) * TOKEN,
            at: now,
        }
    }

    /// Adds what `rate` earned since `at`, up to the burst. A clock going back adds nothing.
    #[inline]
    fn top_up(&mut self, rate: FloodRate, now: u64) {
        let elapsed = now.saturating_sub(self.at);
        self.at = self.at.max(now);
        let earned = elapsed.saturating_mul(u64::from(rate.pps));
        self.tokens = self
            .tokens
            .saturating_add(earned)
            .min(u64::from(rate.burst) * TOKEN);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodBudget {
    remaining: Vec<u32>,
    /// Indexed by `PortId`; a share from an older epoch counts as unused.
    ports: Vec<PortFlood>,
    epoch: u32,
    port_share: u16,
    rate: FloodRate,
    /// The caller's clock, in ns, as of the last `set_clock`.
    now: u64,
}

impl Default for FloodBudget {
    /// The per-turn share and no rate cap (the daemon sets one: [`FloodBudget::with_rate`]).
    fn default() -> FloodBudget {
        FloodBudget {
            remaining: Vec::new(),
            ports: Vec::new(),
            // Entries start at epoch 0: the first refill makes them all unused.
            epoch: 0,
            port_share: PORT_FLOOD_SHARE,
            rate: FloodRate::UNLIMITED,
            now: 0,
        }
    }
}

impl FloodBudget {
    /// A full budget for every segment of `tables`, with no rate cap.
    pub fn new(tables: &Tables) -> FloodBudget {
        let mut b = FloodBudget::default();
        b.refill(tables);
        b
    }

    /// The same with another per-port share (at least 1).
    pub fn with_port_share(tables: &Tables, share: u16) -> FloodBudget {
        let mut b = FloodBudget {
            port_share: share.max(1),
            ..FloodBudget::default()
        };
        b.refill(tables);
        b
    }

    /// The same with each port's floods also capped in time by `rate`; every port starts with a
    /// full bucket at clock `now`.
    pub fn with_rate(tables: &Tables, rate: FloodRate, now: Duration) -> FloodBudget {
        let mut b = FloodBudget {
            rate,
            now: nanos(now),
            ..FloodBudget::default()
        };
        b.refill(tables);
        b
    }

    pub fn rate(&self) -> FloodRate {
        self.rate
    }

    /// The time on the caller's monotonic clock (any origin, the same every call), which the
    /// buckets refill by. The engine reads its clock once per turn, not per frame: a frame's
    /// bucket is as of the start of its turn.
    #[inline]
    pub fn set_clock(&mut self, now: Duration) {
        self.now = nanos(now);
    }

    /// Resets every segment to its `bc_queue_len` and every port's share. Call
    /// after swapping in a new table too: segments the budget does not know get
    /// no floods. Only allocates when the table has more segments or ports than
    /// before; costs one step per segment, none per port. Buckets are not refilled
    /// here but by the clock; a port new to the budget starts with a full one.
    pub fn refill(&mut self, tables: &Tables) {
        let n = tables.segment_count();
        self.remaining.resize(n, 0);
        for (i, r) in self.remaining.iter_mut().enumerate() {
            *r = tables
                .segment(SegmentId(i as u16))
                .map_or(0, |s| s.bc_queue_len);
        }
        if self.ports.len() < tables.port_count() {
            let fresh = PortFlood::fresh(self.rate, self.now);
            self.ports.resize(tables.port_count(), fresh);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped (after 2^32 refills): forget every share so none looks current.
            for p in &mut self.ports {
                p.epoch = 0;
            }
            self.epoch = 1;
        }
    }

    /// Takes one flood from the segment's budget; `false` if it is spent.
    #[inline]
    pub fn take(&mut self, segment: SegmentId) -> bool {
        match self.remaining.get_mut(segment.0 as usize) {
            Some(r) if *r > 0 => {
                *r -= 1;
                true
            }
            _ => false,
        }
    }

    /// Admits one broadcast/multicast from `port`: takes one from its share of this refill and
    /// one token from its bucket, or neither. `Err` names what was spent: `FloodShare` (the
    /// turn's share, checked first) or `FloodRate` (the bucket). A port the table did not have
    /// at the last refill is not limited (the next refill, at the latest the next turn, gives it
    /// a share and a full bucket).
    #[inline]
    pub fn admit(&mut self, port: PortId) -> Result<(), DropReason> {
        let (epoch, rate, now) = (self.epoch, self.rate, self.now);
        let Some(s) = self.ports.get_mut(port.0 as usize) else {
            return Ok(());
        };
        if s.epoch != epoch {
            s.epoch = epoch;
            s.used = 0;
        }
        if s.used >= self.port_share {
            return Err(DropReason::FloodShare);
        }
        if !rate.is_unlimited() {
            s.top_up(rate, now);
            if s.tokens < TOKEN {
                return Err(DropReason::FloodRate);
            }
            s.tokens -= TOKEN;
        }
        s.used += 1;
        Ok(())
    }

    pub fn remaining(&self, segment: SegmentId) -> u32 {
        self.remaining.get(segment.0 as usize).copied().unwrap_or(0)
    }

    /// What is left of `port`'s share in this refill.
    pub fn share_left(&self, port: PortId) -> u16 {
        match self.ports.get(port.0 as usize) {
            Some(s) if s.epoch == self.epoch => self.port_share.saturating_sub(s.used),
            Some(_) => self.port_share,
            None => self.port_share,
        }
    }

    /// Whole broadcasts in `port`'s bucket as of the clock (`None`: no cap, or a port the
    /// budget does not know yet).
    pub fn tokens_left(&self, port: PortId) -> Option<u32> {
        if self.rate.is_unlimited() {
            return None;
        }
        let mut s = *self.ports.get(port.0 as usize)?;
        s.top_up(self.rate, self.now);
        Some((s.tokens / TOKEN) as u32)
    }
}

/// A clock reading in ns; saturates after 584 years.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::Mac;
    use crate::table::Mode;
    use crate::table::{NetworkSpec, ParentId, PortSpec, TablesBuilder};

    fn tables(ports: u8) -> Tables {
        let mut b = TablesBuilder::new();
        let net = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Bridge));
        for i in 0..ports {
            b.add_port(PortSpec::new(net, Mac([0x02, 0, 0, 0x20, 0, i])));
        }
        b.build().unwrap()
    }

    #[test]
    fn each_port_has_its_own_share_per_refill() {
        let t = tables(3);
        let mut b = FloodBudget::with_port_share(&t, 2);
        assert!(b.admit(PortId(0)).is_ok());
        assert!(b.admit(PortId(0)).is_ok());
        assert_eq!(
            b.admit(PortId(0)),
            Err(DropReason::FloodShare),
            "the third of a share of two"
        );
        assert_eq!(b.share_left(PortId(0)), 0);
        // Another port's share is untouched by port 0's.
        assert_eq!(b.share_left(PortId(1)), 2);
        assert!(b.admit(PortId(1)).is_ok());
        b.refill(&t);
        assert_eq!(b.share_left(PortId(0)), 2);
        assert!(b.admit(PortId(0)).is_ok());
        assert_eq!(b.share_left(PortId(1)), 2);
    }

    #[test]
    fn the_default_share_is_the_constant_and_at_least_one() {
        let t = tables(1);
        let mut b = FloodBudget::new(&t);
        for _ in 0..PORT_FLOOD_SHARE {
            assert!(b.admit(PortId(0)).is_ok());
        }
        assert_eq!(b.admit(PortId(0)), Err(DropReason::FloodShare));
        let mut z = FloodBudget::with_port_share(&t, 0);
        assert!(z.admit(PortId(0)).is_ok());
        assert_eq!(z.admit(PortId(0)), Err(DropReason::FloodShare));
    }

    #[test]
    fn a_port_added_after_the_refill_is_not_limited_until_the_next() {
        let t1 = tables(1);
        let mut b = FloodBudget::with_port_share(&t1, 1);
        // Port 1 is not in the table the budget was refilled from.
        assert!(b.admit(PortId(1)).is_ok());
        assert!(b.admit(PortId(1)).is_ok());
        let t2 = tables(2);
        b.refill(&t2);
        assert!(b.admit(PortId(1)).is_ok());
        assert_eq!(b.admit(PortId(1)), Err(DropReason::FloodShare));
    }

    #[test]
    fn shares_survive_the_epoch_wrapping() {
        let t = tables(1);
        let mut b = FloodBudget::with_port_share(&t, 1);
        b.epoch = u32::MAX - 1;
        b.ports[0].epoch = 1;
        b.ports[0].used = 1;
        b.refill(&t); // epoch u32::MAX
        assert!(b.admit(PortId(0)).is_ok());
        assert_eq!(b.admit(PortId(0)), Err(DropReason::FloodShare));
        b.refill(&t); // wraps: every share forgotten, epoch 1
        assert_eq!(b.epoch, 1);
        assert!(b.admit(PortId(0)).is_ok());
        assert_eq!(b.admit(PortId(0)), Err(DropReason::FloodShare));
    }

    // ---- the rate cap ------------------------------------------------------------------------

    const MS: Duration = Duration::from_millis(1);

    /// A budget with `rate` from clock 0 and a share too large to matter.
    fn capped(t: &Tables, pps: u64, burst: u64) -> FloodBudget {
        let mut b = FloodBudget::with_rate(t, FloodRate::new(pps, burst).unwrap(), Duration::ZERO);
        b.port_share = u16::MAX;
        b
    }

    /// Admits up to `n` from `port`, stopping at the first refusal; returns (admitted, refusal).
    fn storm(b: &mut FloodBudget, port: PortId, n: u32) -> (u32, Option<DropReason>) {
        for k in 0..n {
            if let Err(r) = b.admit(port) {
                return (k, Some(r));
            }
        }
        (n, None)
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_one_per_period() {
        let t = tables(1);
        let mut b = capped(&t, 1000, 10);
        assert_eq!(b.tokens_left(PortId(0)), Some(10));
        assert_eq!(
            storm(&mut b, PortId(0), 100),
            (10, Some(DropReason::FloodRate))
        );
        // 1,000/s: one per millisecond, nothing before.
        b.set_clock(MS / 2);
        assert_eq!(
            storm(&mut b, PortId(0), 100),
            (0, Some(DropReason::FloodRate))
        );
        b.set_clock(MS);
        assert_eq!(
            storm(&mut b, PortId(0), 100),
            (1, Some(DropReason::FloodRate))
        );
        b.set_clock(MS * 4);
        assert_eq!(
            storm(&mut b, PortId(0), 100),
            (3, Some(DropReason::FloodRate))
        );
        // A long quiet spell fills the bucket to its burst, not beyond.
        b.set_clock(Duration::from_secs(60));
        assert_eq!(b.tokens_left(PortId(0)), Some(10));
        assert_eq!(
            storm(&mut b, PortId(0), 100),
            (10, Some(DropReason::FloodRate))
        );
    }

    #[test]
    fn fractions_of_a_token_carry_over() {
        let t = tables(1);
        let mut b = capped(&t, 3, 2);
        assert_eq!(storm(&mut b, PortId(0), 5).0, 2);
        // 3/s is a token every 333,333,333.3 ns: over a second of 1 ms ticks exactly 3 (with a
        // burst of 1 the bucket would be full at 333.3 ms and lose what it earns until 334).
        let mut admitted = 0;
        for ms in 1..=1000 {
            b.set_clock(MS * ms);
            admitted += storm(&mut b, PortId(0), 5).0;
        }
        assert_eq!(admitted, 3);
    }

    #[test]
    fn a_refusal_takes_neither_the_share_nor_a_token() {
        let t = tables(1);
        let mut b = FloodBudget::with_rate(&t, FloodRate::new(1000, 10).unwrap(), Duration::ZERO);
        b.port_share = 2;
        assert_eq!(
            storm(&mut b, PortId(0), 5),
            (2, Some(DropReason::FloodShare))
        );
        assert_eq!(
            b.tokens_left(PortId(0)),
            Some(8),
            "the share's refusal took no token"
        );
        let mut b = FloodBudget::with_rate(&t, FloodRate::new(1000, 3).unwrap(), Duration::ZERO);
        assert_eq!(
            storm(&mut b, PortId(0), 5),
            (3, Some(DropReason::FloodRate))
        );
        assert_eq!(
            b.share_left(PortId(0)),
            PORT_FLOOD_SHARE - 3,
            "the bucket's took no share"
        );
    }

    #[test]
    fn each_port_has_its_own_bucket() {
        let t = tables(3);
        let mut b = capped(&t, 100, 5);
        assert_eq!(
            storm(&mut b, PortId(2), 1000),
            (5, Some(DropReason::FloodRate))
        );
        assert_eq!(b.tokens_left(PortId(2)), Some(0));
        assert_eq!(b.tokens_left(PortId(0)), Some(5));
        assert_eq!(storm(&mut b, PortId(0), 5), (5, None));
        assert_eq!(storm(&mut b, PortId(1), 1), (1, None));
    }

    #[test]
    fn a_port_new_to_the_budget_starts_full_and_ports_beyond_are_not_capped() {
        let t1 = tables(1);
        let mut b = capped(&t1, 10, 2);
        b.set_clock(Duration::from_secs(5));
        assert_eq!(b.tokens_left(PortId(1)), None, "not in the table yet");
        assert_eq!(storm(&mut b, PortId(1), 50), (50, None));
        b.refill(&tables(2));
        assert_eq!(
            storm(&mut b, PortId(1), 50),
            (2, Some(DropReason::FloodRate))
        );
    }

    #[test]
    fn unlimited_never_refuses_for_the_rate_and_the_clock_may_go_back() {
        let t = tables(1);
        let mut b = FloodBudget::with_rate(&t, FloodRate::UNLIMITED, Duration::ZERO);
        b.port_share = u16::MAX;
        assert_eq!(b.tokens_left(PortId(0)), None);
        assert_eq!(storm(&mut b, PortId(0), 10_000), (10_000, None));
        let mut b = capped(&t, 1000, 1);
        b.set_clock(Duration::from_secs(10));
        assert_eq!(storm(&mut b, PortId(0), 5).0, 1);
        b.set_clock(Duration::from_secs(1)); // backwards: adds nothing, takes nothing
        assert_eq!(storm(&mut b, PortId(0), 5).0, 0);
        b.set_clock(Duration::from_secs(10) + MS);
        assert_eq!(storm(&mut b, PortId(0), 5).0, 1);
        // The clock's far end saturates instead of overflowing.
        b.set_clock(Duration::MAX);
        assert_eq!(storm(&mut b, PortId(0), 5).0, 1);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a port sends and however the clock ticks, what it got through by time t
            /// is at most its burst plus t times its rate.
            #[test]
            fn admitted_never_exceeds_burst_plus_rate_times_elapsed(
                pps in 1u64..100_000,
                burst in 1u64..1_000,
                ticks in proptest::collection::vec((0u64..5_000_000, 0u32..64), 1..200),
            ) {
                let t = tables(1);
                let mut b = capped(&t, pps, burst);
                let (mut now, mut admitted) = (0u64, 0u64);
                for (dt, tries) in ticks {
                    now += dt;
                    b.refill(&t); // a turn: the share (too large to matter) starts again
                    b.set_clock(Duration::from_nanos(now));
                    admitted += u64::from(storm(&mut b, PortId(0), tries).0);
                    let bound = u128::from(burst) + u128::from(now) * u128::from(pps) / 1_000_000_000;
                    prop_assert!(u128::from(admitted) <= bound, "{admitted} > {bound} at {now} ns");
                }
            }

            /// A storm that never lets its bucket fill (ticks no further apart than all but one
            /// of the burst takes to refill: what is left after draining is under one) gets
            /// exactly its burst plus its rate times the time: no token is lost to rounding.
            #[test]
            fn a_storm_gets_exactly_its_burst_plus_its_rate(
                pps in 1u64..100_000,
                burst in 2u64..1_000,
                ticks in proptest::collection::vec(0u64..=1_000_000, 1..200),
            ) {
                let t = tables(1);
                let mut b = capped(&t, pps, burst);
                let refill_ns = (burst - 1) * 1_000_000_000 / pps;
                let (mut now, mut admitted) = (0u64, 0u64);
                for per_mille in ticks {
                    admitted += u64::from(storm(&mut b, PortId(0), 2_000).0);
                    now += refill_ns * per_mille / 1_000_000;
                    b.refill(&t);
                    b.set_clock(Duration::from_nanos(now));
                }
                admitted += u64::from(storm(&mut b, PortId(0), 2_000).0);
                let exact = u128::from(burst) + u128::from(now) * u128::from(pps) / 1_000_000_000;
                prop_assert_eq!(u128::from(admitted), exact);
            }

            /// A port that sends no faster than its rate is never refused by it.
            #[test]
            fn a_port_within_its_rate_is_never_refused(
                pps in 1u64..100_000,
                burst in 1u64..100,
                gaps in proptest::collection::vec(0u64..3, 1..300),
            ) {
                let t = tables(1);
                let mut b = capped(&t, pps, burst);
                let period = 1_000_000_000u64.div_ceil(pps);
                let mut now = 0;
                for g in gaps {
                    // One frame per period at least (g extra periods of silence).
                    now += period * (1 + g);
                    b.set_clock(Duration::from_nanos(now));
                    prop_assert_eq!(b.admit(PortId(0)), Ok(()));
                }
            }
        }
    }
}
