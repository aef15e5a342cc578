//! What the control plane needs from the forwarding plane, as a trait, so the daemon's state machine
//! (validation, IPAM, netlink, persistence) is written and tested apart from the AF_XDP machinery.
//!
//! The real implementation is `mvdp_engine::runtime::Runtime` (XDP demux on the parent, one shared UMEM,
//! worker threads); tests of the control plane may use a recording fake.
//!
//! Division of labour: the daemon creates and removes veth pairs, addresses, routes and namespaces;
//! the dataplane only attaches to interfaces that already exist in the daemon's own netns and forwards
//! between them. Every method either succeeds completely or leaves the dataplane as it was.

use std::collections::BTreeMap;

use crate::{Mac, McFilter, Mode, PortCounters};
use serde::Serialize;

/// A parent NIC the dataplane is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ParentHandle(pub u16);

/// A virtual port (one veth pair's host end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortHandle(pub u32);

/// One virtual port as the dataplane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub parent: ParentHandle,
    /// 0 = untagged network; 1..=4094 = that 802.1Q VLAN on the parent.
    pub vlan: u16,
    pub mode: Mode,
    /// The container-side MAC: frames to it are delivered to this port, and (anti-spoofing) the
    /// only source MAC the port may send with, except in passthru mode.
    pub mac: Mac,
    /// The veth end in the daemon's netns (already created and up); its peer is the container's interface.
    pub veth_ifname: String,
}

/// What went wrong below the contract (the kernel, libxdp, the BPF loader), kept as the error's
/// `source()` so nothing of it is lost on the way to the user.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the dataplane refused or failed a request. Refusals name what was wrong with the request;
/// failures keep their cause. The messages are for the user.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error("no attached parent #{}", .0.0)]
    UnknownParent(ParentHandle),
    #[error("no port #{}", .0.0)]
    UnknownPort(PortHandle),
    #[error("{0} is already attached")]
    AlreadyAttached(String),
    #[error("the parent still has ports; remove them first")]
    ParentHasPorts,
    #[error("VLAN {0} is outside 0..=4094")]
    VlanOutOfRange(u16),
    #[error("{0} is not a unicast MAC")]
    NotUnicast(Mac),
    #[error("MAC {mac} is already used by port {port} on this parent and VLAN")]
    MacInUse { mac: Mac, port: String },
    /// A fixed limit of the dataplane is reached.
    #[error("{what}: all {limit} are in use")]
    Capacity { what: &'static str, limit: u64 },
    /// The UMEM cannot keep another socket's fill ring stocked: taking it would starve it (or
    /// others) of frames to receive into.
    #[error("no UMEM frames left for {what}: the {total} frames are promised ({promised} to the fill rings of {sockets} sockets, {reserve} kept for frames in flight) and it needs {needed}; start `mvdp daemon` with a larger --frames")]
    UmemFull {
        what: String,
        total: u64,
        promised: u64,
        sockets: u64,
        reserve: u64,
        needed: u64,
    },
    /// The ports would not make valid forwarding tables.
    #[error(transparent)]
    Tables(#[from] crate::BuildError),
    /// The request was refused for a reason of the implementation's own (e.g. a test double's).
    #[error("{0}")]
    Refused(String),
    /// A system call or program load failed while carrying the request out; nothing was left
    /// half-done.
    #[error("dataplane failure: {op}: {source}")]
    System {
        op: String,
        #[source]
        source: Cause,
    },
}

impl DataplaneError {
    /// A failure while doing `op`, keeping its cause.
    pub fn system(op: impl Into<String>, source: impl Into<Cause>) -> DataplaneError {
        DataplaneError::System {
            op: op.into(),
            source: source.into(),
        }
    }
}

/// The forwarding plane. Called from one control thread; `Send` so the daemon may own it on any thread.
pub trait Dataplane: Send {
    /// Attaches to a parent NIC: XDP demux, AF_XDP sockets on each rx queue, the flood path, promiscuous
    /// mode held for as long as it is attached. Called when the first network on `ifname` is created.
    fn attach_parent(&mut self, ifname: &str) -> Result<ParentHandle, DataplaneError>;
    /// Detaches (XDP program, sockets, promiscuity all released). Refused while ports use it.
    fn detach_parent(&mut self, parent: ParentHandle) -> Result<(), DataplaneError>;
    /// Starts forwarding for one port. A passthru port makes all wire unicast on its (parent, VLAN) go to it.
    fn add_port(&mut self, port: &PortConfig) -> Result<PortHandle, DataplaneError>;
    /// Stops forwarding for a port and takes back every frame it held; the veth is left to the caller.
    fn remove_port(&mut self, port: PortHandle) -> Result<(), DataplaneError>;
    /// Marks a port up or down (down ports receive nothing, as in the kernel); used for carrier follow.
    fn set_port_up(&mut self, port: PortHandle, up: bool) -> Result<(), DataplaneError>;
    /// A passthru port changed its MAC (the kernel lets a passthru macvlan do that).
    fn set_port_mac(&mut self, port: PortHandle, mac: Mac) -> Result<(), DataplaneError>;
    /// Ports' multicast filters changed (their containers joined or left groups, or became
    /// promiscuous): each port then receives only the broadcasts and the groups its filter passes.
    /// One call for many ports, because each call republishes the tables.
    fn set_ports_multicast(
        &mut self,
        ports: &[(PortHandle, McFilter)],
    ) -> Result<(), DataplaneError>;
    /// Counters and frame accounting, as of now.
    fn stats(&self) -> DataplaneStats;
}

/// Everything `mvdp stats` shows about the forwarding plane.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DataplaneStats {
    /// "native" or "generic" per attached parent.
    pub parents: BTreeMap<String, ParentStats>,
    pub ports: BTreeMap<u32, PortStats>,
    /// Switch-core drops by reason (snake_case names), summed over workers.
    pub drops: BTreeMap<String, u64>,
    pub umem: UmemBooks,
    pub capacity: Capacity,
    pub workers: usize,
    /// "busy-poll" or "adaptive".
    pub poll_mode: String,
    /// Each port's cap on broadcasts/multicasts per second (`None`: the plane has no such cap).
    pub flood_rate: Option<crate::flood::FloodRate>,
    /// `--trace-hops`: per-hop histograms of the sampled frames, summed over workers.
    pub hops: crate::hops::HopStats,
    /// Turns that took a worker 1 ms or more (sleeps excluded), summed over workers: the worker
    /// was off the CPU, or had a long turn. A port's fill ring lasts
    /// its size over the arrival rate (2,048 frames: 3.5 ms at 580 kpps); fill-ring-empty drops
    /// come with late turns.
    pub late_turns: u64,
    /// The longest of them, in µs (over the workers' life).
    pub longest_turn_us: u64,
    /// Times a hot port's socket was taken out of its worker's epoll set (after a burst; it is
    /// watched again before the port goes cold or the worker sleeps).
    pub unwatched: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ParentStats {
    pub xdp_mode: String,
    pub rx_queues: u32,
    /// The XDP demux program's own counters (rx, redirect, pass_host, ...).
    pub xdp: BTreeMap<String, u64>,
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub flood_frames: u64,
    /// The kernel's counters for the parent queues' AF_XDP sockets, summed.
    pub xsk: XskCounters,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PortStats {
    #[serde(flatten)]
    pub traffic: PortCounters,
    /// The kernel's own counters for the port's AF_XDP socket (XDP_STATISTICS).
    pub xsk: XskCounters,
}

/// The kernel's counters for one AF_XDP socket: frames it dropped before userspace saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct XskCounters {
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub fill_ring_empty: u64,
    pub tx_invalid: u64,
}

/// Where every UMEM frame is: the fast path's books, one type from the engine to `mvdp stats`.
/// `free + fill + tx_in_flight + in_transit == total` whenever the workers are idle (under traffic
/// a snapshot may straddle a worker's turn).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UmemBooks {
    pub total: u64,
    /// On the workers' free stacks and the shared spare pool.
    pub free: u64,
    /// Handed to the kernel on fill rings (including rings of removed devices not yet reclaimed).
    pub fill: u64,
    /// On TX rings, not yet completed.
    pub tx_in_flight: u64,
    /// Handed between worker threads (queues) at the moment of the snapshot.
    pub in_transit: u64,
    pub frame_size: u32,
}

impl UmemBooks {
    pub fn balanced(&self) -> bool {
        self.free + self.fill + self.tx_in_flight + self.in_transit == self.total
    }
}

/// How many ports the dataplane serves and how many it could: a port beyond `max_ports` is
/// refused (never accepted and starved).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Capacity {
    pub ports: u64,
    /// Ports served now plus the most that could still be added.
    pub max_ports: u64,
    /// What bounds `max_ports`, and the knob that moves it.
    pub limited_by: String,
    /// UMEM frames promised to fill rings (every socket's floor), and kept for frames in flight.
    pub frames_promised: u64,
    pub frames_reserve: u64,
}
