//! The forwarding decision: kernel macvlan's semantics, per frame, no I/O.
//!
//! Mirrors drivers/net/macvlan.c: frames from a port follow
//! `macvlan_queue_xmit`, frames from the wire follow `macvlan_handle_frame`,
//! floods follow `macvlan_multicast_rx`/`macvlan_broadcast` and their mode
//! masks. Comments name the kernel behaviour each branch reproduces.

use crate::counters::{Counters, DropReason};
use crate::flood::FloodBudget;
use crate::mcfilter::McBucket;
use crate::table::{Mode, ModeMask, ParentId, Port, PortId, Segment, SegmentId, Tables, TapSet};
use crate::wire::{ethertype, L2Header, WireError};

/// Where a batch of frames came from. One batch has one ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ingress {
    /// A parent's wire queue: frames the XDP program redirected to a port.
    Wire(ParentId),
    /// The parent's flood path: broadcast/multicast the XDP program also
    /// passed to the host stack, so verdicts never include the host again.
    WireFlood(ParentId),
    /// A port's own socket: untagged frames from its container.
    Port(PortId),
}

/// Which ports get a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ports {
    None,
    One(PortId),
    /// The up ports of the segment whose mode is in `modes`, minus `except`, whose
    /// multicast filter passes `group` (the destination's bucket); iterate them with
    /// `Tables::flood_ports`. Has at least one port of `modes` when emitted, which the
    /// filters may still all turn away.
    Flood {
        modes: ModeMask,
        except: Option<PortId>,
        group: McBucket,
    },
}

/// The destinations of one frame. Frames to ports must be untagged (pop when
/// `tagged`); frames to the wire carry `vlan` as an 802.1Q tag unless it is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delivery {
    pub segment: SegmentId,
    pub vlan: u16,
    pub ports: Ports,
    pub wire: bool,
    /// The parent's own stack (only ever for frames from the wire).
    pub host: bool,
    /// Source-mode ports listening for this frame's source: `Tables::taps`.
    pub taps: Option<TapSet>,
    /// The frame as received has an outer 802.1Q tag (possibly VID 0).
    pub tagged: bool,
}

impl Delivery {
    fn new(segment: SegmentId, seg: &Segment, tagged: bool) -> Delivery {
        Delivery {
            segment,
            vlan: seg.vlan,
            ports: Ports::None,
            wire: false,
            host: false,
            taps: None,
            tagged,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self.ports, Ports::None) && !self.wire && !self.host && self.taps.is_none()
    }

    /// The tag to push for the wire, if any.
    pub fn wire_tci(&self) -> Option<u16> {
        (self.vlan != 0).then_some(self.vlan)
    }

    /// Exactly one destination and it is a port: the descriptor can move
    /// instead of being copied.
    pub fn single_port(&self) -> Option<PortId> {
        match self.ports {
            Ports::One(p) if !self.wire && !self.host && self.taps.is_none() => Some(p),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Drop(DropReason),
    Deliver(Delivery),
}

impl Default for Verdict {
    fn default() -> Verdict {
        Verdict::Drop(DropReason::NoReceiver)
    }
}

/// Every flood from the wire by an unknown source: `macvlan_multicast_rx`
/// with `src == NULL` (note: not SOURCE, so source-mode ports get no floods).
const FROM_OUTSIDE: ModeMask =
    ModeMask::of(&[Mode::Private, Mode::Vepa, Mode::Passthru, Mode::Bridge]);
/// A VEPA port's broadcast reflected by the wire: everyone except the source.
const FROM_VEPA: ModeMask = ModeMask::of(&[Mode::Vepa, Mode::Bridge]);
/// A bridge port's broadcast reflected by the wire: bridge ports already saw
/// it on the way out, so only VEPA ports.
const FROM_BRIDGE: ModeMask = ModeMask::of(&[Mode::Vepa]);
const BRIDGE: ModeMask = ModeMask::of(&[Mode::Bridge]);

/// The ingress resolved once per batch.
enum Source<'t> {
    Wire {
        vlans: &'t [u16],
        host: bool,
    },
    Port {
        id: PortId,
        port: &'t Port,
        segment: &'t Segment,
    },
    Invalid(DropReason),
}

fn resolve(tables: &Tables, ingress: Ingress) -> Source<'_> {
    match ingress {
        Ingress::Wire(p) | Ingress::WireFlood(p) => match tables.vlan_map(p) {
            Some(vlans) => Source::Wire {
                vlans,
                host: matches!(ingress, Ingress::Wire(_)),
            },
            None => Source::Invalid(DropReason::UnknownIngress),
        },
        Ingress::Port(id) => match tables.port(id) {
            Some(port) if !port.up => Source::Invalid(DropReason::PortDown),
            Some(port) => match tables.segment(port.segment) {
                Some(segment) => Source::Port { id, port, segment },
                None => Source::Invalid(DropReason::UnknownIngress),
            },
            None => Source::Invalid(DropReason::UnknownIngress),
        },
    }
}

/// Counts for one batch, kept in registers/stack and added to `Counters`
/// once at the end, so the per-frame path does not write through a pointer
/// the compiler must assume aliases everything else.
#[derive(Default)]
struct Tally {
    drops: [u32; DropReason::COUNT],
    to_port: u32,
    floods: u32,
    to_wire: u32,
    to_host: u32,
    taps: u32,
    dropped_frames: u32,
}

impl Tally {
    #[inline]
    fn drop(&mut self, r: DropReason) {
        if let Some(c) = self.drops.get_mut(r.index()) {
            *c += 1;
        }
    }

    #[inline]
    fn verdict(&mut self, v: &Verdict) {
        match v {
            Verdict::Drop(r) => {
                self.drop(*r);
                self.dropped_frames += 1;
            }
            Verdict::Deliver(d) => {
                match d.ports {
                    Ports::None => {}
                    Ports::One(_) => self.to_port += 1,
                    Ports::Flood { .. } => self.floods += 1,
                }
                self.to_wire += u32::from(d.wire);
                self.to_host += u32::from(d.host);
                self.taps += u32::from(d.taps.is_some());
            }
        }
    }

    fn flush(&self, c: &mut Counters) {
        for (total, &n) in c.drops.iter_mut().zip(&self.drops) {
            *total += u64::from(n);
        }
        c.to_port += u64::from(self.to_port);
        c.floods += u64::from(self.floods);
        c.to_wire += u64::from(self.to_wire);
        c.to_host += u64::from(self.to_host);
        c.to_source_taps += u64::from(self.taps);
    }
}

/// Decides a batch. Writes one verdict per frame for the first
/// `min(frames.len(), verdicts.len())` frames and returns that count.
/// Counts every verdict and drop in `counters`.
pub fn decide_batch<F: AsRef<[u8]>>(
    tables: &Tables,
    ingress: Ingress,
    frames: &[F],
    verdicts: &mut [Verdict],
    budget: &mut FloodBudget,
    counters: &mut Counters,
) -> usize {
    let n = frames.len().min(verdicts.len());
    let mut tally = Tally::default();
    let pairs = frames.iter().zip(verdicts.iter_mut());
    // One loop per ingress kind, so the per-frame path has no ingress dispatch.
    match resolve(tables, ingress) {
        Source::Port { id, port, segment } => {
            let own = port.mac.to_u64();
            for (frame, out) in pairs {
                let v = match L2Header::parse(frame.as_ref()) {
                    Ok(h) => from_port(tables, id, port, own, segment, &h, budget, &mut tally),
                    Err(e) => malformed(e),
                };
                tally.verdict(&v);
                *out = v;
            }
        }
        Source::Wire { vlans, host } => {
            for (frame, out) in pairs {
                let v = match L2Header::parse(frame.as_ref()) {
                    Ok(h) => from_wire(tables, vlans, host, &h, budget, &mut tally),
                    Err(e) => malformed(e),
                };
                tally.verdict(&v);
                *out = v;
            }
        }
        Source::Invalid(r) => {
            for (_, out) in pairs {
                let v = Verdict::Drop(r);
                tally.verdict(&v);
                *out = v;
            }
        }
    }
    tally.flush(counters);
    counters.frames += n as u64;
    if let Ingress::Port(id) = ingress {
        if let Some(pc) = counters.per_port.get_mut(id.0 as usize) {
            pc.rx_frames += n as u64;
            pc.rx_dropped += u64::from(tally.dropped_frames);
            pc.flood_dropped += u64::from(
                tally.drops[DropReason::FloodShare.index()]
                    + tally.drops[DropReason::FloodRate.index()],
            );
        }
    }
    n
}

/// Decides one frame; `decide_batch` is the same with the ingress resolved once.
pub fn decide(
    tables: &Tables,
    ingress: Ingress,
    frame: &[u8],
    budget: &mut FloodBudget,
    counters: &mut Counters,
) -> Verdict {
    let mut v = [Verdict::default()];
    decide_batch(tables, ingress, &[frame], &mut v, budget, counters);
    v[0]
}

#[cold]
fn malformed(e: WireError) -> Verdict {
    match e {
        WireError::TruncatedTag => Verdict::Drop(DropReason::TruncatedTag),
        _ => Verdict::Drop(DropReason::Runt),
    }
}

fn finish(d: Delivery, otherwise: DropReason) -> Verdict {
    if d.is_empty() {
        Verdict::Drop(otherwise)
    } else {
        Verdict::Deliver(d)
    }
}

/// `macvlan_forward_source`: source-mode ports listing the frame's source get
/// a copy; returns whether a `nodst` listener consumes the frame.
#[inline]
fn source_taps(
    tables: &Tables,
    seg_id: SegmentId,
    seg: &Segment,
    h: &L2Header,
    d: &mut Delivery,
) -> bool {
    if !seg.has_sources {
        return false;
    }
    match tables.lookup_taps(seg_id, h.src) {
        Some((set, entry)) => {
            if !tables.taps(set).is_empty() {
                d.taps = Some(set);
            }
            entry.nodst
        }
        None => false,
    }
}

/// A frame a port transmits: `macvlan_queue_xmit`.
#[inline]
#[allow(clippy::too_many_arguments)]
fn from_port(
    tables: &Tables,
    id: PortId,
    port: &Port,
    own_mac: u64,
    seg: &Segment,
    h: &L2Header,
    budget: &mut FloodBudget,
    tally: &mut Tally,
) -> Verdict {
    // Deliberate: the kernel forwards whatever a macvlan sends; a port here
    // may not inject tags (VLAN hopping onto the trunk) ...
    if h.tci.is_some() || ethertype::is_tag(h.ethertype) {
        return Verdict::Drop(DropReason::VlanFromPort);
    }
    // ... nor use another source MAC. Passthru owns the whole parent (and may
    // change its MAC), so it is exempt.
    if h.src != own_mac && port.mode != Mode::Passthru {
        return Verdict::Drop(DropReason::SpoofedSource);
    }
    // Deliberate: a port's broadcasts beyond its share of the turn or its rate are dropped whole
    // (a storm's wire frames cost the worker as much as its copies). Passthru owns the parent.
    if h.dst_is_multicast() && port.mode != Mode::Passthru {
        if let Err(r) = budget.admit(id) {
            return Verdict::Drop(r);
        }
    }
    let seg_id = port.segment;
    let mut d = Delivery::new(seg_id, seg, false);
    // Everything but bridge mode goes straight to the lower device (xmit_world).
    d.wire = true;
    if port.mode != Mode::Bridge {
        return Verdict::Deliver(d);
    }
    if h.dst_is_multicast() {
        // macvlan_broadcast(.., MACVLAN_MODE_BRIDGE) then xmit_world; PAUSE
        // frames are never replicated. The budget is our addition here.
        if h.ethertype != ethertype::PAUSE && seg.flood_size(BRIDGE, Some(port)) > 0 {
            if budget.take(seg_id) {
                d.ports = Ports::Flood {
                    modes: BRIDGE,
                    except: Some(id),
                    group: McBucket::of_packed(h.dst),
                };
            } else {
                tally.drop(DropReason::FloodBudget);
            }
        }
        return Verdict::Deliver(d);
    }
    // Unicast to another up bridge-mode port goes through the lower device's
    // receive path (dev_forward_skb), so it meets macvlan_handle_frame again:
    // source-mode taps see it, and it reaches the destination, even when the
    // destination is the sender itself. Anything else leaves on the wire.
    if let Some(dst) = tables.hit(seg_id, h.dst) {
        if dst.mode == Mode::Bridge {
            d.wire = false;
            if !source_taps(tables, seg_id, seg, h, &mut d) {
                d.ports = Ports::One(dst.port);
            }
            return finish(d, DropReason::SourceNodst);
        }
    }
    Verdict::Deliver(d)
}

/// A frame from the wire: `macvlan_handle_frame`.
#[inline]
fn from_wire(
    tables: &Tables,
    vlans: &[u16],
    host_ok: bool,
    h: &L2Header,
    budget: &mut FloodBudget,
    tally: &mut Tally,
) -> Verdict {
    let Some(seg_id) = tables.segment_on(vlans, h.vid()) else {
        return Verdict::Drop(DropReason::UnknownVlan);
    };
    let Some(seg) = tables.segment(seg_id) else {
        return Verdict::Drop(DropReason::UnknownVlan);
    };
    let mut d = Delivery::new(seg_id, seg, h.tci.is_some());
    // Source-mode delivery comes first, for unicast and multicast alike.
    if source_taps(tables, seg_id, seg, h, &mut d) {
        return finish(d, DropReason::SourceNodst);
    }

    if h.dst_is_multicast() {
        let src = tables.hit(seg_id, h.src);
        let modes = match src.map(|p| p.mode) {
            None => FROM_OUTSIDE,
            Some(Mode::Vepa) => FROM_VEPA,
            Some(Mode::Bridge) => FROM_BRIDGE,
            // Our own private/passthru/source port's broadcast came back:
            // "forward to original port" only; the host does not get it.
            Some(_) => {
                d.ports = src.map_or(Ports::None, |s| Ports::One(s.port));
                return finish(d, DropReason::NoReceiver);
            }
        };
        let src_id = src.map(|s| s.port);
        // RX_HANDLER_PASS: the host always sees a wire broadcast, whether or
        // not the broadcast queue had room for the port copies.
        d.host = host_ok;
        let except = src_id.and_then(|p| tables.port(p));
        if h.ethertype != ethertype::PAUSE && seg.flood_size(modes, except) > 0 {
            if budget.take(seg_id) {
                d.ports = Ports::Flood {
                    modes,
                    except: src_id,
                    group: McBucket::of_packed(h.dst),
                };
            } else {
                tally.drop(DropReason::FloodBudget);
            }
        }
        return finish(d, DropReason::NoReceiver);
    }

    // Unicast: a passthru port takes all of it, even while down (then dropped).
    if let Some(pt) = seg.passthru {
        if !tables.port(pt).is_some_and(|p| p.up) {
            return Verdict::Drop(DropReason::PortDown);
        }
        d.ports = Ports::One(pt);
        return Verdict::Deliver(d);
    }
    // Down ports are not hashed, so their unicast goes to the host; a
    // source-mode port's own MAC is not a destination either.
    match tables.hit(seg_id, h.dst) {
        Some(p) if p.mode != Mode::Source => d.ports = Ports::One(p.port),
        _ => d.host = host_ok,
    }
    finish(d, DropReason::NoReceiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path writes one verdict per frame into a batch array: keep it
    /// within half a cache line.
    #[test]
    fn verdict_stays_small() {
        let size = std::mem::size_of::<Verdict>();
        assert!(size <= 32, "{size}");
    }
}
