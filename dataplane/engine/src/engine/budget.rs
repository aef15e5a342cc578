//! How many UMEM chunks the engine promises, and to whom.
//!
//! A socket receives only into chunks on its fill ring, so every device keeps a floor of chunks
//! there, and the kernel never gives fill-ring chunks back except as received frames. A device
//! admitted without its floor would never receive: so the engine admits a device only when the
//! UMEM can cover every floor plus a reserve for frames in flight (TX rings, flood copies, the
//! workers' free stacks). Above its floor a device's fill target follows its traffic, drawing on
//! whatever the floors and the reserve leave free.

/// The fill-ring range of one device: its floor (promised at admission) and its ceiling (the
/// most its fill target grows to under load; at most its fill ring's size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillBudget {
    pub min: u32,
    pub max: u32,
}

impl FillBudget {
    pub fn new(min: u32, max: u32) -> FillBudget {
        let min = min.max(1);
        FillBudget {
            min,
            max: max.max(min),
        }
    }
}

/// The UMEM's promises: every admitted device's floor, and the reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePromises {
    pub total: u64,
    /// Kept back for frames in flight, never promised to a fill ring.
    pub reserve: u64,
    /// The sum of admitted devices' floors.
    pub promised: u64,
    /// Admitted devices.
    pub devices: u64,
}

/// Admitting a device would promise more frames than the UMEM has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the UMEM's {} frames are promised ({} to the fill rings of {} sockets, {} kept for frames in flight); another socket needs {needed}", .promises.total, .promises.promised, .promises.devices, .promises.reserve)]
pub struct FramesExhausted {
    pub promises: FramePromises,
    pub needed: u64,
}

impl FramePromises {
    /// `total` frames; the reserve is an eighth of them, and at least what `workers` free stacks
    /// keep at their low-water mark twice over.
    pub fn new(total: u32, workers: usize) -> FramePromises {
        let total = u64::from(total);
        let floor = (workers as u64) * 2 * super::pool::LOW as u64;
        FramePromises {
            total,
            reserve: (total / 8).max(floor).min(total),
            promised: 0,
            devices: 0,
        }
    }

    /// Frames still free to promise.
    pub fn room(&self) -> u64 {
        self.total
            .saturating_sub(self.reserve)
            .saturating_sub(self.promised)
    }

    /// How many more devices of floor `min` fit.
    pub fn more_devices(&self, min: u32) -> u64 {
        self.room() / u64::from(min.max(1))
    }

    pub fn promise(&mut self, min: u32) -> Result<(), FramesExhausted> {
        let needed = u64::from(min);
        if needed > self.room() {
            return Err(FramesExhausted {
                promises: *self,
                needed,
            });
        }
        self.promised += needed;
        self.devices += 1;
        Ok(())
    }

    pub fn release(&mut self, min: u32) {
        self.promised = self.promised.saturating_sub(u64::from(min));
        self.devices = self.devices.saturating_sub(1);
    }
}

/// A device's next fill target after a turn in which it received `got` frames, with `level`
/// chunks on its fill ring before the turn: it quadruples when a turn took half the ring's stock
/// or a whole batch (a burst, or a worker that was off the CPU: the next burst would find the
/// ring empty). It falls back to the floor when the worker stops visiting the idle device (see
/// the worker's cool-down): the chunks then on the ring come back as frames and are not put back
/// above the floor.
pub(crate) fn next_fill_target(
    target: u32,
    b: FillBudget,
    level: u32,
    got: usize,
    batch: usize,
) -> u32 {
    if got > 0 && (got >= batch || (got as u32).saturating_mul(2) >= level.max(1)) {
        return target.saturating_mul(4).clamp(b.min, b.max);
    }
    target
}

/// How long a busy device's fill stock should last at the rate it receives: longer than a
/// worker is typically off the CPU on a shared core (a scheduler slice is a few ms). Growing
/// only on bursts that took half the stock left a steady flow arriving in small bursts at a
/// target of 128 chunks (a 29-frame burst never takes half of it): 0.2 ms at 580 kpps, and every
/// longer absence of the worker dropped frames (fill ring empty) before the target grew.
pub(crate) const FILL_HORIZON: std::time::Duration = std::time::Duration::from_millis(4);
/// The shortest span over which a device's rate is measured.
pub(crate) const RATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// A device's fill target after it received `frames` over `span` (at least [`RATE_WINDOW`]):
/// at least what arrives over [`FILL_HORIZON`] at that rate, rounded up to a power of two,
/// within the budget. It never lowers the target (that is the cool-down's job), and a device
/// receiving a trickle keeps its floor: 100 frames a second ask for less than one chunk.
pub(crate) fn rate_fill_target(
    target: u32,
    b: FillBudget,
    frames: u32,
    span: std::time::Duration,
) -> u32 {
    let span = span.as_nanos().max(1);
    let want = u128::from(frames) * FILL_HORIZON.as_nanos() / span;
    let want = u32::try_from(want).unwrap_or(u32::MAX);
    let want = want.checked_next_power_of_two().unwrap_or(u32::MAX);
    target.max(want).clamp(b.min, b.max)
}

/// How many chunks to push to a fill ring holding `level` of `target`: nothing while the gap is
/// small (a ring write and its cache line cost more than a few chunks are worth), the whole gap
/// once it is a quarter of the target or 16 chunks, whichever is less.
pub(crate) fn refill_amount(target: u32, level: u32) -> u32 {
    let gap = target.saturating_sub(level);
    let threshold = (target / 4).clamp(1, 16);
    if gap >= threshold {
        gap
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promises_stop_at_total_less_reserve() {
        let mut p = FramePromises::new(16384, 1);
        assert_eq!(p.reserve, 2048);
        assert_eq!(p.more_devices(8), (16384 - 2048) / 8);
        for _ in 0..p.more_devices(8) {
            p.promise(8).unwrap();
        }
        let e = p.promise(8).unwrap_err();
        assert_eq!(e.needed, 8);
        assert_eq!(e.promises.devices, (16384 - 2048) / 8);
        let msg = e.to_string();
        assert!(msg.contains("16384 frames"), "{msg}");
        assert!(msg.contains("2048 kept"), "{msg}");
        p.release(8);
        assert!(p.promise(8).is_ok());
    }

    #[test]
    fn reserve_covers_every_workers_free_stack() {
        let p = FramePromises::new(4096, 8);
        assert_eq!(p.reserve, 8 * 2 * super::super::pool::LOW as u64);
        let tiny = FramePromises::new(100, 4);
        assert_eq!(tiny.reserve, 100, "never more than the UMEM");
        assert_eq!(tiny.room(), 0);
    }

    #[test]
    fn a_thousand_idle_ports_fit_the_default_umem() {
        let mut p = FramePromises::new(16384, 1);
        p.promise(512).unwrap(); // one parent queue
        for _ in 0..1000 {
            p.promise(8).unwrap();
        }
        assert!(p.room() > 0);
    }

    #[test]
    fn fill_target_grows_on_bursts() {
        let b = FillBudget::new(8, 1024);
        // A burst that took half the ring: quadruple, up to the ceiling.
        assert_eq!(next_fill_target(8, b, 8, 4, 64), 32);
        assert_eq!(next_fill_target(512, b, 512, 64, 64), 1024);
        // A trickle, or nothing, keeps the target.
        assert_eq!(next_fill_target(32, b, 32, 1, 64), 32);
        assert_eq!(next_fill_target(32, b, 32, 0, 64), 32);
    }

    #[test]
    fn fill_target_covers_the_horizon_at_the_rate_seen() {
        use std::time::Duration;
        let b = FillBudget::new(8, 2048);
        let ms = Duration::from_millis;
        // 580 kpps in bursts too small to take half the stock: the ceiling (4 ms is 2,320).
        assert_eq!(rate_fill_target(128, b, 1160, ms(2)), 2048);
        // 50 kpps: 200 frames over 4 ms, rounded up.
        assert_eq!(rate_fill_target(8, b, 100, ms(2)), 256);
        // A trickle keeps the floor; nothing keeps what the target is.
        assert_eq!(rate_fill_target(8, b, 1, ms(10)), 8);
        assert_eq!(rate_fill_target(512, b, 0, ms(2)), 512);
        // A long quiet span is a low rate; a zero span is no division by zero.
        assert_eq!(rate_fill_target(8, b, 5000, Duration::from_secs(10)), 8);
        assert_eq!(rate_fill_target(8, b, 5, Duration::ZERO), 2048);
        assert_eq!(rate_fill_target(8, b, u32::MAX, ms(1)), 2048);
    }

    #[test]
    fn refill_waits_for_a_worthwhile_gap() {
        assert_eq!(refill_amount(8, 8), 0);
        assert_eq!(refill_amount(8, 6), 2, "a quarter of a small target");
        assert_eq!(refill_amount(8, 7), 0);
        assert_eq!(refill_amount(8, 0), 8);
        assert_eq!(refill_amount(2048, 2040), 0);
        assert_eq!(refill_amount(2048, 2032), 16);
        assert_eq!(refill_amount(1, 0), 1);
    }

    #[test]
    fn budget_is_never_empty_or_inverted() {
        assert_eq!(FillBudget::new(0, 0), FillBudget { min: 1, max: 1 });
        assert_eq!(FillBudget::new(64, 8), FillBudget { min: 64, max: 64 });
    }
}
