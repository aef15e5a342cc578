//! Forwarding tables: immutable snapshots built and validated by the control
//! plane, read by the fast path through an `Arc<Tables>` swapped between batches.
//!
//! A *segment* is what the kernel calls a `macvlan_port`: everything attached
//! to one lower device, here one (parent, VLAN) pair. Several networks (one per
//! mode) may share a segment, exactly as macvlans of different modes may share
//! a lower device; MAC uniqueness, passthru exclusivity, flooding and the
//! broadcast budget are all per segment, as in the kernel.

use crate::mac::Mac;
use crate::macmap::{key, MacMap};
use crate::mcfilter::{McBucket, McFilter};

/// Highest usable 802.1Q VID; 4095 is reserved by the standard.
pub const MAX_VLAN: u16 = 4094;
/// Parent ids index a per-parent VLAN array, so they are kept small.
pub const MAX_PARENTS: u16 = 1024;
const NO_SEGMENT: u16 = u16::MAX;
/// The kernel's MACVLAN_DEFAULT_BC_QUEUE_LEN.
pub const DEFAULT_BC_QUEUE_LEN: u32 = 1000;

/// The macvlan modes, with the kernel's `enum macvlan_mode` bit values so the
/// mode masks of `macvlan_broadcast` read the same here. One type for every layer: the switch's
/// decisions, the daemon's networks (which refuse `source`), kernel macvlan links in the lab.
/// Written and read as the kernel's lowercase names (`ip link ... macvlan mode bridge`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Private = 1,
    Vepa = 2,
    /// Docker's and the kernel's default.
    #[default]
    Bridge = 4,
    Passthru = 8,
    Source = 16,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Private,
        Mode::Vepa,
        Mode::Bridge,
        Mode::Passthru,
        Mode::Source,
    ];

    #[inline]
    pub const fn bit(self) -> u8 {
        self as u8
    }

    #[inline]
    const fn index(self) -> usize {
        (self as u8).trailing_zeros() as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Mode::Private => "private",
            Mode::Vepa => "vepa",
            Mode::Bridge => "bridge",
            Mode::Passthru => "passthru",
            Mode::Source => "source",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode name that is none of macvlan's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid macvlan mode {0:?}: expected bridge, private, vepa, passthru or source")]
pub struct ParseModeError(pub String);

impl std::str::FromStr for Mode {
    type Err = ParseModeError;
    fn from_str(s: &str) -> Result<Mode, ParseModeError> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| ParseModeError(s.to_string()))
    }
}

/// A set of modes, as in the kernel's `mode` argument to `macvlan_broadcast`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ModeMask(pub u8);

impl ModeMask {
    pub const NONE: ModeMask = ModeMask(0);

    pub const fn of(modes: &[Mode]) -> ModeMask {
        let mut m = 0;
        let mut i = 0;
        while i < modes.len() {
            m |= modes[i].bit();
            i += 1;
        }
        ModeMask(m)
    }

    #[inline]
    pub const fn contains(self, mode: Mode) -> bool {
        self.0 & mode.bit() != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParentId(pub u16);
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub u32);
/// Dense index of a port: counters and per-port state are flat arrays by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);
/// Dense index of a (parent, VLAN) segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u16);
/// Handle to the source-mode ports listening for one source MAC in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TapSet(pub u32);

/// A macvlan network as the control plane configures it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub parent: ParentId,
    /// 0 = the untagged network; 1..=4094 = that 802.1Q VLAN on the trunk.
    pub vlan: u16,
    pub mode: Mode,
    /// Source mode's `nodst`: frames from a listed source go only to the
    /// source-mode ports, never on to their destination.
    pub nodst: bool,
    /// Requested broadcast queue length (`bcqueuelen`); a segment uses the
    /// largest request among its networks, as the kernel does.
    pub bc_queue_len: u32,
}

impl NetworkSpec {
    pub fn new(parent: ParentId, vlan: u16, mode: Mode) -> NetworkSpec {
        NetworkSpec {
            parent,
            vlan,
            mode,
            nodst: false,
            bc_queue_len: DEFAULT_BC_QUEUE_LEN,
        }
    }
}

/// A virtual port (one container interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub network: NetworkId,
    pub mac: Mac,
    pub up: bool,
    /// Source mode only: the remote source MACs whose frames this port receives.
    pub allowed_sources: Vec<Mac>,
    /// The groups its interface listens to (every group by default).
    pub multicast: McFilter,
}

impl PortSpec {
    pub fn new(network: NetworkId, mac: Mac) -> PortSpec {
        PortSpec {
            network,
            mac,
            up: true,
            allowed_sources: Vec::new(),
            multicast: McFilter::ALL,
        }
    }
}

/// Why the control plane's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("network {network:?}: VLAN {vlan} out of range 0..={MAX_VLAN}")]
    VlanOutOfRange { network: NetworkId, vlan: u16 },
    #[error("network {network:?}: parent id {parent:?} must be below {MAX_PARENTS}")]
    ParentOutOfRange {
        network: NetworkId,
        parent: ParentId,
    },
    #[error("port {port:?}: network {network:?} does not exist")]
    UnknownNetwork { port: PortId, network: NetworkId },
    #[error("port {port:?}: {mac} is not a valid unicast address")]
    InvalidMac { port: PortId, mac: Mac },
    #[error("ports {first:?} and {second:?} both use {mac} on parent {parent:?} VLAN {vlan}")]
    DuplicateMac {
        mac: Mac,
        parent: ParentId,
        vlan: u16,
        first: PortId,
        second: PortId,
    },
    #[error("passthru network {network:?} must be alone on parent {parent:?} VLAN {vlan}")]
    PassthruNotAlone {
        network: NetworkId,
        parent: ParentId,
        vlan: u16,
    },
    #[error("passthru network {network:?} needs exactly one port, has {ports}")]
    PassthruPortCount { network: NetworkId, ports: usize },
    #[error("port {port:?}: allowed source MACs are only meaningful in source mode")]
    SourcesOutsideSourceMode { port: PortId },
    #[error("port {port:?}: allowed source {mac} is not a valid unicast address")]
    InvalidSourceMac { port: PortId, mac: Mac },
    #[error("network {network:?}: nodst is only meaningful in source mode")]
    NodstOutsideSourceMode { network: NetworkId },
    #[error("too many {what} (limit {limit})")]
    TooMany { what: &'static str, limit: usize },
}

/// Collects the configuration; `build` validates it into a `Tables` snapshot.
#[derive(Clone, Debug, Default)]
pub struct TablesBuilder {
    networks: Vec<NetworkSpec>,
    ports: Vec<PortSpec>,
}

impl TablesBuilder {
    pub fn new() -> TablesBuilder {
        TablesBuilder::default()
    }

    pub fn add_network(&mut self, spec: NetworkSpec) -> NetworkId {
        self.networks.push(spec);
        NetworkId(self.networks.len() as u32 - 1)
    }

    /// Ports get dense ids in the order they are added.
    pub fn add_port(&mut self, spec: PortSpec) -> PortId {
        self.ports.push(spec);
        PortId(self.ports.len() as u32 - 1)
    }

    pub fn build(&self) -> Result<Tables, BuildError> {
        build(self)
    }
}

/// A validated network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub spec: NetworkSpec,
    pub segment: SegmentId,
}

/// A validated port, laid out for the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    pub mac: Mac,
    pub network: NetworkId,
    pub segment: SegmentId,
    pub mode: Mode,
    pub up: bool,
}

/// One (parent, VLAN): the kernel's `macvlan_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub parent: ParentId,
    pub vlan: u16,
    /// The passthru port, which takes all unicast from the wire.
    pub passthru: Option<PortId>,
    /// Whether any source-mode port lists allowed sources here; lets the
    /// common case skip the source lookup.
    pub has_sources: bool,
    /// Broadcast budget per refill: max of the networks' `bc_queue_len`.
    pub bc_queue_len: u32,
    /// Ports that are up, per mode (kernel: only open devices are hashed).
    up_by_mode: [u32; 5],
    /// Range of `Tables::flood` holding this segment's up ports.
    flood: (u32, u32),
}

impl Segment {
    /// How many ports a flood over `modes` reaches, less `except` if it is one of them.
    #[inline]
    pub fn flood_size(&self, modes: ModeMask, except: Option<&Port>) -> u32 {
        let mut n = 0;
        for m in Mode::ALL {
            if modes.contains(m) {
                n += self.up_by_mode[m.index()];
            }
        }
        if let Some(p) = except {
            if p.up && modes.contains(p.mode) && n > 0 {
                n -= 1;
            }
        }
        n
    }
}

/// What a (segment, MAC) lookup yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) port: PortId,
    pub(crate) mode: Mode,
}

impl Default for Hit {
    fn default() -> Hit {
        Hit {
            port: PortId(u32::MAX),
            mode: Mode::Private,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TapEntry {
    start: u32,
    len: u32,
    /// Some port listing this source has nodst (even if that port is down:
    /// the kernel sets `consume` before checking IFF_UP).
    pub(crate) nodst: bool,
}

/// An immutable, validated forwarding table.
#[derive(Clone)]
pub struct Tables {
    networks: Vec<Network>,
    ports: Vec<Port>,
    segments: Vec<Segment>,
    /// Per parent id: VID -> segment number (NO_SEGMENT if none).
    parents: Vec<Option<Box<[u16]>>>,
    /// (segment, MAC) -> port and its mode, for ports that are up. The mode
    /// rides along so the decision needs no second load.
    by_mac: MacMap<Hit>,
    /// (segment, source MAC) -> index into `taps`.
    sources: MacMap,
    taps: Vec<TapEntry>,
    tap_ports: Vec<PortId>,
    /// The up ports, grouped by segment.
    flood: Vec<FloodEntry>,
}

impl std::fmt::Debug for Tables {
    // The lookup structures are derived data (and one is 4096 entries per
    // parent); the configuration is what a reader wants to see.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("networks", &self.networks)
            .field("ports", &self.ports)
            .field("segments", &self.segments)
            .field("taps", &self.taps)
            .field("tap_ports", &self.tap_ports)
            .finish_non_exhaustive()
    }
}

impl Tables {
    /// A table with nothing in it: every frame is dropped as unknown.
    pub fn empty() -> Tables {
        build(&TablesBuilder::new()).unwrap_or_else(|_| unreachable!("empty config is valid"))
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    #[inline]
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.0 as usize)
    }

    pub fn ports(&self) -> impl Iterator<Item = (PortId, &Port)> {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| (PortId(i as u32), p))
    }

    pub fn network(&self, id: NetworkId) -> Option<&Network> {
        self.networks.get(id.0 as usize)
    }

    #[inline]
    pub fn segment(&self, id: SegmentId) -> Option<&Segment> {
        self.segments.get(id.0 as usize)
    }

    /// The segment carrying `vid` on `parent`.
    #[inline]
    pub fn segment_of(&self, parent: ParentId, vid: u16) -> Option<SegmentId> {
        let per_vid = self.parents.get(parent.0 as usize)?.as_ref()?;
        self.segment_on(per_vid, vid)
    }

    #[inline]
    pub(crate) fn vlan_map(&self, parent: ParentId) -> Option<&[u16]> {
        self.parents.get(parent.0 as usize)?.as_deref()
    }

    #[inline]
    pub(crate) fn segment_on(&self, per_vid: &[u16], vid: u16) -> Option<SegmentId> {
        match per_vid.get(vid as usize) {
            Some(&s) if s != NO_SEGMENT => Some(SegmentId(s)),
            _ => None,
        }
    }

    /// The up port with `mac` in `segment` (the kernel's `macvlan_hash_lookup`).
    #[inline]
    pub fn lookup(&self, segment: SegmentId, mac: Mac) -> Option<PortId> {
        self.hit(segment, mac.to_u64()).map(|h| h.port)
    }

    /// `lookup` by a packed MAC, with the port's mode.
    #[inline]
    pub(crate) fn hit(&self, segment: SegmentId, mac48: u64) -> Option<Hit> {
        self.by_mac.get(key(segment.0, mac48))
    }

    #[inline]
    pub(crate) fn lookup_taps(&self, segment: SegmentId, src48: u64) -> Option<(TapSet, TapEntry)> {
        let i = self.sources.get(key(segment.0, src48))?;
        let e = *self.taps.get(i as usize)?;
        Some((TapSet(i), e))
    }

    /// The up source-mode ports that receive frames from one source.
    pub fn taps(&self, set: TapSet) -> &[PortId] {
        match self.taps.get(set.0 as usize) {
            Some(e) => self
                .tap_ports
                .get(e.start as usize..(e.start + e.len) as usize)
                .unwrap_or(&[]),
            None => &[],
        }
    }

    /// The up ports of `segment` whose mode is in `modes`, except `except`, that listen to groups
    /// in bucket `group`: what a `Ports::Flood` verdict means. Iterates the table; no allocation.
    pub fn flood_ports(
        &self,
        segment: SegmentId,
        modes: ModeMask,
        except: Option<PortId>,
        group: McBucket,
    ) -> impl Iterator<Item = PortId> + '_ {
        let range = self.segment(segment).map_or(0..0, |s| {
            s.flood.0 as usize..(s.flood.0 + s.flood.1) as usize
        });
        self.flood
            .get(range)
            .unwrap_or(&[])
            .iter()
            .filter(move |e| {
                e.mode_bit & modes.0 != 0 && Some(e.port) != except && e.multicast.passes(group)
            })
            .map(|e| e.port)
    }
}

/// One up port in its segment's flood list.
#[derive(Clone, Copy, Debug)]
struct FloodEntry {
    port: PortId,
    mode_bit: u8,
    multicast: McFilter,
}

fn too_many(what: &'static str, limit: usize) -> BuildError {
    BuildError::TooMany { what, limit }
}

fn build(b: &TablesBuilder) -> Result<Tables, BuildError> {
    if b.networks.len() >= u32::MAX as usize {
        return Err(too_many("networks", u32::MAX as usize - 1));
    }
    if b.ports.len() >= u32::MAX as usize {
        return Err(too_many("ports", u32::MAX as usize - 1));
    }
    let Segments {
        parents,
        mut segments,
        networks,
        seg_networks,
    } = build_segments(b)?;
    check_passthru_alone(&segments, &seg_networks, &networks)?;
    let (ports, mut all_macs) = build_ports(b, &networks, &mut segments)?;
    let by_mac = build_mac_index(&ports, &segments, &mut all_macs)?;
    let flood = build_flood_lists(&ports, &b.ports, &mut segments);
    let (taps, tap_ports, sources) = build_taps(b, &ports, &networks, &mut segments);
    Ok(Tables {
        networks,
        ports,
        segments,
        parents,
        by_mac,
        sources,
        taps,
        tap_ports,
        flood,
    })
}

/// Networks grouped into segments (one per (parent, VLAN), like the kernel's `macvlan_port`).
struct Segments {
    parents: Vec<Option<Box<[u16]>>>,
    segments: Vec<Segment>,
    networks: Vec<Network>,
    seg_networks: Vec<Vec<NetworkId>>,
}

fn check_network(id: NetworkId, spec: &NetworkSpec) -> Result<(), BuildError> {
    if spec.vlan > MAX_VLAN {
        return Err(BuildError::VlanOutOfRange {
            network: id,
            vlan: spec.vlan,
        });
    }
    if spec.parent.0 >= MAX_PARENTS {
        return Err(BuildError::ParentOutOfRange {
            network: id,
            parent: spec.parent,
        });
    }
    if spec.nodst && spec.mode != Mode::Source {
        return Err(BuildError::NodstOutsideSourceMode { network: id });
    }
    Ok(())
}

fn build_segments(b: &TablesBuilder) -> Result<Segments, BuildError> {
    let mut parents: Vec<Option<Box<[u16]>>> = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut networks = Vec::with_capacity(b.networks.len());
    let mut seg_networks: Vec<Vec<NetworkId>> = Vec::new();
    for (i, spec) in b.networks.iter().enumerate() {
        let id = NetworkId(i as u32);
        check_network(id, spec)?;
        let pi = spec.parent.0 as usize;
        if parents.len() <= pi {
            parents.resize(pi + 1, None);
        }
        let per_vid = parents[pi].get_or_insert_with(|| vec![NO_SEGMENT; 4096].into_boxed_slice());
        let seg = match per_vid[spec.vlan as usize] {
            NO_SEGMENT => {
                if segments.len() >= NO_SEGMENT as usize {
                    return Err(too_many("segments", NO_SEGMENT as usize));
                }
                let s = segments.len() as u16;
                per_vid[spec.vlan as usize] = s;
                segments.push(Segment {
                    parent: spec.parent,
                    vlan: spec.vlan,
                    passthru: None,
                    has_sources: false,
                    bc_queue_len: 0,
                    up_by_mode: [0; 5],
                    flood: (0, 0),
                });
                seg_networks.push(Vec::new());
                s
            }
            s => s,
        };
        let segment = &mut segments[seg as usize];
        segment.bc_queue_len = segment.bc_queue_len.max(spec.bc_queue_len);
        seg_networks[seg as usize].push(id);
        networks.push(Network {
            spec: spec.clone(),
            segment: SegmentId(seg),
        });
    }
    Ok(Segments {
        parents,
        segments,
        networks,
        seg_networks,
    })
}

/// The kernel refuses a passthru macvlan on a lower device that already has macvlans, and any
/// macvlan on one that is in passthru.
fn check_passthru_alone(
    segments: &[Segment],
    seg_networks: &[Vec<NetworkId>],
    networks: &[Network],
) -> Result<(), BuildError> {
    for (s, nets) in seg_networks.iter().enumerate() {
        if let Some(&n) = nets
            .iter()
            .find(|n| networks[n.0 as usize].spec.mode == Mode::Passthru)
        {
            if nets.len() > 1 {
                return Err(BuildError::PassthruNotAlone {
                    network: n,
                    parent: segments[s].parent,
                    vlan: segments[s].vlan,
                });
            }
        }
    }
    Ok(())
}

fn check_port(id: PortId, spec: &PortSpec, mode: Mode) -> Result<(), BuildError> {
    if !spec.mac.is_valid_unicast() {
        return Err(BuildError::InvalidMac {
            port: id,
            mac: spec.mac,
        });
    }
    if !spec.allowed_sources.is_empty() && mode != Mode::Source {
        return Err(BuildError::SourcesOutsideSourceMode { port: id });
    }
    if let Some(&bad) = spec.allowed_sources.iter().find(|m| !m.is_valid_unicast()) {
        return Err(BuildError::InvalidSourceMac { port: id, mac: bad });
    }
    Ok(())
}

/// Every port's (segment, MAC) key with its port id.
type MacKeys = Vec<(u64, u32)>;

/// The ports, and every port's (segment, MAC) key with its id.
fn build_ports(
    b: &TablesBuilder,
    networks: &[Network],
    segments: &mut [Segment],
) -> Result<(Vec<Port>, MacKeys), BuildError> {
    let mut ports = Vec::with_capacity(b.ports.len());
    let mut all_macs: MacKeys = Vec::with_capacity(b.ports.len());
    let mut ports_per_network = vec![0usize; networks.len()];
    for (i, spec) in b.ports.iter().enumerate() {
        let id = PortId(i as u32);
        let net = networks
            .get(spec.network.0 as usize)
            .ok_or(BuildError::UnknownNetwork {
                port: id,
                network: spec.network,
            })?;
        let mode = net.spec.mode;
        check_port(id, spec, mode)?;
        ports_per_network[spec.network.0 as usize] += 1;
        let segment = net.segment;
        if mode == Mode::Passthru {
            segments[segment.0 as usize].passthru = Some(id);
        }
        all_macs.push((key(segment.0, spec.mac.to_u64()), id.0));
        ports.push(Port {
            mac: spec.mac,
            network: spec.network,
            segment,
            mode,
            up: spec.up,
        });
    }
    for (n, &count) in ports_per_network.iter().enumerate() {
        if networks[n].spec.mode == Mode::Passthru && count != 1 {
            return Err(BuildError::PassthruPortCount {
                network: NetworkId(n as u32),
                ports: count,
            });
        }
    }
    Ok((ports, all_macs))
}

/// The (segment, MAC) -> up port map, after refusing duplicate MACs within a segment. The kernel
/// only refuses a duplicate when the second device comes up; refusing it outright is stricter.
fn build_mac_index(
    ports: &[Port],
    segments: &[Segment],
    all_macs: &mut [(u64, u32)],
) -> Result<MacMap<Hit>, BuildError> {
    all_macs.sort_unstable();
    for w in all_macs.windows(2) {
        if w[0].0 == w[1].0 {
            let p = &ports[w[0].1 as usize];
            let seg = &segments[p.segment.0 as usize];
            return Err(BuildError::DuplicateMac {
                mac: p.mac,
                parent: seg.parent,
                vlan: seg.vlan,
                first: PortId(w[0].1),
                second: PortId(w[1].1),
            });
        }
    }
    let up_macs: Vec<(u64, Hit)> = all_macs
        .iter()
        .filter(|&&(_, p)| ports[p as usize].up)
        .map(|&(k, p)| {
            let port = PortId(p);
            let mode = ports[p as usize].mode;
            (k, Hit { port, mode })
        })
        .collect();
    Ok(MacMap::build(&up_macs))
}

/// Flood lists, grouped by segment, ports in id order; each segment notes its range and how many
/// up ports it has per mode.
fn build_flood_lists(
    ports: &[Port],
    specs: &[PortSpec],
    segments: &mut [Segment],
) -> Vec<FloodEntry> {
    let mut flood = Vec::new();
    let mut order: Vec<usize> = (0..ports.len()).filter(|&i| ports[i].up).collect();
    order.sort_by_key(|&i| (ports[i].segment, i));
    let mut at = 0;
    for (s, seg) in segments.iter_mut().enumerate() {
        let start = flood.len();
        while at < order.len() && ports[order[at]].segment.0 as usize == s {
            let p = &ports[order[at]];
            seg.up_by_mode[p.mode.index()] += 1;
            flood.push(FloodEntry {
                port: PortId(order[at] as u32),
                mode_bit: p.mode.bit(),
                multicast: specs[order[at]].multicast,
            });
            at += 1;
        }
        seg.flood = (start as u32, (flood.len() - start) as u32);
    }
    flood
}

/// Source taps: (segment, source MAC) -> the up source-mode ports listing it.
fn build_taps(
    b: &TablesBuilder,
    ports: &[Port],
    networks: &[Network],
    segments: &mut [Segment],
) -> (Vec<TapEntry>, Vec<PortId>, MacMap<u32>) {
    let mut listens: Vec<(u64, u32)> = Vec::new();
    for (i, spec) in b.ports.iter().enumerate() {
        let seg = ports[i].segment;
        for m in &spec.allowed_sources {
            listens.push((key(seg.0, m.to_u64()), i as u32));
        }
    }
    listens.sort_unstable();
    listens.dedup();
    let mut taps = Vec::new();
    let mut tap_ports = Vec::new();
    let mut tap_index = Vec::new();
    let mut j = 0;
    while j < listens.len() {
        let k = listens[j].0;
        let start = tap_ports.len();
        let mut nodst = false;
        while j < listens.len() && listens[j].0 == k {
            let p = listens[j].1;
            let port = &ports[p as usize];
            nodst |= networks[port.network.0 as usize].spec.nodst;
            if port.up {
                tap_ports.push(PortId(p));
            }
            j += 1;
        }
        segments[(k >> 48) as usize].has_sources = true;
        tap_index.push((k, taps.len() as u32));
        taps.push(TapEntry {
            start: start as u32,
            len: (tap_ports.len() - start) as u32,
            nodst,
        });
    }
    let sources = MacMap::build(&tap_index);
    (taps, tap_ports, sources)
}
