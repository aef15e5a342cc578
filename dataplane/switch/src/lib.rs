//! mvdp's switch core: a pure forwarding engine with kernel macvlan's semantics, no I/O, no
//! allocation and no locks on the per-frame path, and no `unsafe` anywhere.
//!
//! [`plane`] is the contract between a forwarding plane (the AF_XDP engine in `mvdp-engine`) and
//! the control plane (the daemon in `mvdp-control`): what can be asked of it, and its stats.
//!
//! The AF_XDP fast path owns an `Arc<Tables>` (swapped between batches), a
//! `FloodBudget` (refilled per batch or tick) and a `Counters`, and calls
//! [`decide_batch`] once per received batch. See README.md.

#![forbid(unsafe_code)]

pub mod counters;
pub mod decide;
pub mod flood;
pub mod hops;
pub mod mac;
mod macmap;
pub mod mcfilter;
pub mod plane;
pub mod table;
pub mod wire;

pub use counters::{Counters, DropReason, PortCounters};
pub use decide::{decide, decide_batch, Delivery, Ingress, Ports, Verdict};
pub use flood::{FloodBudget, FloodRate, FloodRateError};
pub use mac::{Mac, ParseMacError};
pub use mcfilter::{McBucket, McFilter};
pub use table::{
    BuildError, Mode, ModeMask, Network, NetworkId, NetworkSpec, ParentId, ParseModeError, Port,
    PortId, PortSpec, Segment, SegmentId, Tables, TablesBuilder, TapSet,
};

/// Benchmark-only access to internals (the table's own hash map).
#[doc(hidden)]
pub mod bench_support {
    pub use crate::macmap::{key, MacMap};
}
