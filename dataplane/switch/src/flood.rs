//! The bounded broadcast budget.
//!
//! The kernel queues broadcasts from the wire on a per-lower-device queue of
//! `bc_queue_len` (default 1000) frames, drained by a work item, and drops what
//! does not fit. Here the queue becomes a budget of replicated frames per
//! segment that the caller refills every batch or tick: replication work per
//! refill is bounded, overflow is counted as `flood_budget`, and unicast never
//! waits behind it because unicast never touches the budget.

use crate::table::{SegmentId, Tables};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodBudget {
    remaining: Vec<u32>,
}

impl FloodBudget {
    /// A full budget for every segment of `tables`.
    pub fn new(tables: &Tables) -> FloodBudget {
        let mut b = FloodBudget::default();
        b.refill(tables);
        b
    }

    /// Resets every segment to its `bc_queue_len`. Call after swapping in a new
    /// table too: segments the budget does not know get no floods. Only
    /// allocates when the table has more segments than before.
    pub fn refill(&mut self, tables: &Tables) {
        let n = tables.segment_count();
        self.remaining.resize(n, 0);
        for (i, r) in self.remaining.iter_mut().enumerate() {
            *r = tables
                .segment(SegmentId(i as u16))
                .map_or(0, |s| s.bc_queue_len);
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

    pub fn remaining(&self, segment: SegmentId) -> u32 {
        self.remaining.get(segment.0 as usize).copied().unwrap_or(0)
    }
}
