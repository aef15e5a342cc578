//! Drop reasons and the counters the decision engine keeps.
//!
//! Plain `u64`s in flat arrays: one `Counters` per fast-path thread, read by
//! the stats exporter through whatever copy mechanism the caller chooses.

use crate::table::{PortId, Tables};

/// Why a frame (or, for `FloodBudget`, its port copies) was not delivered.
/// `name()` is the stable key for stats; never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    Runt,
    /// 802.1Q EtherType with the tag cut short.
    TruncatedTag,
    /// From a port, with a source MAC that is not the port's own.
    SpoofedSource,
    /// From a port, carrying an 802.1Q or 802.1ad tag.
    VlanFromPort,
    /// From the wire, on a VLAN with no network on this parent.
    UnknownVlan,
    /// The ingress names a parent or port the current table does not have.
    UnknownIngress,
    /// The destination (passthru) or the sending port is down.
    PortDown,
    /// The segment's broadcast budget was spent: port copies not made.
    FloodBudget,
    /// A broadcast or multicast from a port whose flood share of the turn was spent (a storm):
    /// dropped whole, neither flooded nor sent to the wire.
    FloodShare,
    /// A broadcast or multicast from a port whose flood rate (its token bucket) was spent: dropped
    /// whole, as for `FloodShare`.
    FloodRate,
    /// Consumed by a `nodst` source-mode port that is down.
    SourceNodst,
    /// Nothing left to do: e.g. the flood path's copy for the host, which
    /// the XDP program already passed up.
    NoReceiver,
}

impl DropReason {
    pub const COUNT: usize = 12;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Runt,
        DropReason::TruncatedTag,
        DropReason::SpoofedSource,
        DropReason::VlanFromPort,
        DropReason::UnknownVlan,
        DropReason::UnknownIngress,
        DropReason::PortDown,
        DropReason::FloodBudget,
        DropReason::FloodShare,
        DropReason::FloodRate,
        DropReason::SourceNodst,
        DropReason::NoReceiver,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::TruncatedTag => "truncated_tag",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::VlanFromPort => "vlan_from_port",
            DropReason::UnknownVlan => "unknown_vlan",
            DropReason::UnknownIngress => "unknown_ingress",
            DropReason::PortDown => "port_down",
            DropReason::FloodBudget => "flood_budget",
            DropReason::FloodShare => "flood_share",
            DropReason::FloodRate => "flood_rate",
            DropReason::SourceNodst => "source_nodst",
            DropReason::NoReceiver => "no_receiver",
        }
    }

    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A port's own flood limits (its share of a turn, its rate): the drops `flood_dropped`
    /// counts on the sending port.
    #[inline]
    pub const fn is_port_flood_limit(self) -> bool {
        matches!(self, DropReason::FloodShare | DropReason::FloodRate)
    }
}

/// A port's traffic, the one per-port counters type of every layer: the decision engine fills
/// `rx_frames`/`rx_dropped` for the frames a port sends into the switch; the AF_XDP engine counts
/// all six per socket; the daemon reports them per port and sums them per network.
/// "rx" is what the switch received from the port, "tx" what it sent to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames from this port the switch dropped (spoofed source, injected tag, no receiver, ...).
    pub rx_dropped: u64,
    /// Frames for this port that found its TX ring full, or no free chunk to be copied into.
    pub tx_dropped: u64,
    /// Of `rx_dropped`: broadcasts and multicasts beyond the port's flood share of a turn or its
    /// flood rate (a storm from this port); the reasons are `flood_share` and `flood_rate`.
    #[serde(default)]
    pub flood_dropped: u64,
}

impl PortCounters {
    /// Adds `o` field by field (a network's sum over its ports).
    pub fn add(&mut self, o: &PortCounters) {
        self.rx_frames += o.rx_frames;
        self.rx_bytes += o.rx_bytes;
        self.tx_frames += o.tx_frames;
        self.tx_bytes += o.tx_bytes;
        self.rx_dropped += o.rx_dropped;
        self.tx_dropped += o.tx_dropped;
        self.flood_dropped += o.flood_dropped;
    }
}

/// What the engine decided, summed. Verdict kinds are counted per frame
/// (a flood that also goes to the wire counts in both `floods` and `to_wire`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames: u64,
    pub drops: [u64; DropReason::COUNT],
    pub to_port: u64,
    pub floods: u64,
    pub to_wire: u64,
    pub to_host: u64,
    pub to_source_taps: u64,
    /// Indexed by `PortId`; sized by `fit`. Ports beyond it are not counted.
    pub per_port: Vec<PortCounters>,
}

impl Counters {
    pub fn new(tables: &Tables) -> Counters {
        let mut c = Counters::default();
        c.fit(tables);
        c
    }

    /// Resizes the per-port array for a new table. Allocates: call it when
    /// swapping tables, not per batch.
    pub fn fit(&mut self, tables: &Tables) {
        self.per_port
            .resize(tables.port_count(), PortCounters::default());
    }

    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c += 1;
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    pub fn port(&self, id: PortId) -> PortCounters {
        self.per_port
            .get(id.0 as usize)
            .copied()
            .unwrap_or_default()
    }

    /// (name, count) pairs for every drop reason, for stats output.
    pub fn drop_names(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(move |r| (r.name(), self.dropped(*r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indices_dense() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
