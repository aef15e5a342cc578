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

use crate::table::{PortId, SegmentId, Tables};

/// Broadcasts one port may have flooded per refill (per worker turn in the engine).
pub const PORT_FLOOD_SHARE: u16 = 4;

/// A port's share: how much of it was used in refill `epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Share {
    epoch: u32,
    used: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodBudget {
    remaining: Vec<u32>,
    /// Indexed by `PortId`; an entry from an older epoch counts as unused.
    shares: Vec<Share>,
    epoch: u32,
    port_share: u16,
}

impl Default for FloodBudget {
    fn default() -> FloodBudget {
        FloodBudget {
            remaining: Vec::new(),
            shares: Vec::new(),
            // Entries start at epoch 0: the first refill makes them all unused.
            epoch: 0,
            port_share: PORT_FLOOD_SHARE,
        }
    }
}

impl FloodBudget {
    /// A full budget for every segment of `tables`.
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

    /// Resets every segment to its `bc_queue_len` and every port's share. Call
    /// after swapping in a new table too: segments the budget does not know get
    /// no floods. Only allocates when the table has more segments or ports than
    /// before; costs one step per segment, none per port.
    pub fn refill(&mut self, tables: &Tables) {
        let n = tables.segment_count();
        self.remaining.resize(n, 0);
        for (i, r) in self.remaining.iter_mut().enumerate() {
            *r = tables
                .segment(SegmentId(i as u16))
                .map_or(0, |s| s.bc_queue_len);
        }
        if self.shares.len() < tables.port_count() {
            self.shares.resize(tables.port_count(), Share::default());
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped (after 2^32 refills): forget every share so none looks current.
            self.shares.fill(Share::default());
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

    /// Takes one broadcast from `port`'s share; `false` if it is spent. A port the table did
    /// not have at the last refill is not limited (the next refill, at the latest the next
    /// turn, gives it a share).
    #[inline]
    pub fn take_share(&mut self, port: PortId) -> bool {
        let epoch = self.epoch;
        let Some(s) = self.shares.get_mut(port.0 as usize) else {
            return true;
        };
        if s.epoch != epoch {
            *s = Share { epoch, used: 0 };
        }
        if s.used >= self.port_share {
            return false;
        }
        s.used += 1;
        true
    }

    pub fn remaining(&self, segment: SegmentId) -> u32 {
        self.remaining.get(segment.0 as usize).copied().unwrap_or(0)
    }

    /// What is left of `port`'s share in this refill.
    pub fn share_left(&self, port: PortId) -> u16 {
        match self.shares.get(port.0 as usize) {
            Some(s) if s.epoch == self.epoch => self.port_share.saturating_sub(s.used),
            Some(_) => self.port_share,
            None => self.port_share,
        }
    }
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
        assert!(b.take_share(PortId(0)));
        assert!(b.take_share(PortId(0)));
        assert!(!b.take_share(PortId(0)), "the third of a share of two");
        assert_eq!(b.share_left(PortId(0)), 0);
        // Another port's share is untouched by port 0's.
        assert_eq!(b.share_left(PortId(1)), 2);
        assert!(b.take_share(PortId(1)));
        b.refill(&t);
        assert_eq!(b.share_left(PortId(0)), 2);
        assert!(b.take_share(PortId(0)));
        assert_eq!(b.share_left(PortId(1)), 2);
    }

    #[test]
    fn the_default_share_is_the_constant_and_at_least_one() {
        let t = tables(1);
        let mut b = FloodBudget::new(&t);
        for _ in 0..PORT_FLOOD_SHARE {
            assert!(b.take_share(PortId(0)));
        }
        assert!(!b.take_share(PortId(0)));
        let mut z = FloodBudget::with_port_share(&t, 0);
        assert!(z.take_share(PortId(0)));
        assert!(!z.take_share(PortId(0)));
    }

    #[test]
    fn a_port_added_after_the_refill_is_not_limited_until_the_next() {
        let t1 = tables(1);
        let mut b = FloodBudget::with_port_share(&t1, 1);
        // Port 1 is not in the table the budget was refilled from.
        assert!(b.take_share(PortId(1)));
        assert!(b.take_share(PortId(1)));
        let t2 = tables(2);
        b.refill(&t2);
        assert!(b.take_share(PortId(1)));
        assert!(!b.take_share(PortId(1)));
    }

    #[test]
    fn shares_survive_the_epoch_wrapping() {
        let t = tables(1);
        let mut b = FloodBudget::with_port_share(&t, 1);
        b.epoch = u32::MAX - 1;
        b.shares[0] = Share { epoch: 1, used: 1 };
        b.refill(&t); // epoch u32::MAX
        assert!(b.take_share(PortId(0)));
        assert!(!b.take_share(PortId(0)));
        b.refill(&t); // wraps: every share forgotten, epoch 1
        assert_eq!(b.epoch, 1);
        assert!(b.take_share(PortId(0)));
        assert!(!b.take_share(PortId(0)));
    }
}
