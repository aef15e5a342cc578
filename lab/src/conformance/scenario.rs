//! The scenario matrix. Ids are stable: they key the JSON output and the README table.

use std::fmt;

/// Who received a frame. Printed and serialised as "p1", "host", "wire", "ext".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// Port `n` (1-based): its container's stack.
    Port(u32),
    /// The host stack on the parent NIC.
    Host,
    /// The frame left the parent towards the wire switch.
    Wire,
    /// The external host's stack.
    Ext,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Port(n) => write!(f, "p{n}"),
            Endpoint::Host => f.write_str("host"),
            Endpoint::Wire => f.write_str("wire"),
            Endpoint::Ext => f.write_str("ext"),
        }
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Who sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Sender {
    Port(u32),
    Ext,
}

/// The destination MAC of a scenario's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Dst {
    /// Port `n`'s MAC (as it is in that phase).
    Port(u32),
    /// A MAC nobody has and nobody ever sent from, so the wire switch never learns it.
    Unknown,
    Ext,
    /// The host's parent NIC MAC.
    Host,
    Broadcast,
    /// 01:00:5e:42:00:01 (an IPv4-mapped group nobody joins; the frame's ethertype is not IP).
    Multicast,
    /// The MAC port 1 had before [`Phase::MacChange`].
    OldPort1,
}

/// The lab state a scenario runs in. Phases run in this order on one lab per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Phase {
    /// Every port up, the wire switch does not reflect.
    HairpinOff,
    /// The wire switch reflects frames back out of the parent's port (802.1Qbg reflective relay).
    HairpinOn,
    /// The last port is down (hairpin on).
    PortDown,
    /// Port 1 has changed its MAC to [`NEW_MAC`] (hairpin on).
    MacChange,
    /// Not expressible on every subject (see the scenario's note).
    Special,
}

/// The MAC port 1 changes to in [`Phase::MacChange`].
pub const NEW_MAC: [u8; 6] = [0x02, 0x6d, 0x76, 0x00, 0x02, 0x01];
/// The unknown unicast destination.
pub const UNKNOWN_MAC: [u8; 6] = [0x02, 0x6d, 0x76, 0x00, 0x0e, 0xee];
/// The source MAC of the spoofing scenario: nobody's.
pub const SPOOFED_MAC: [u8; 6] = [0x02, 0x6d, 0x76, 0x00, 0x0d, 0x01];
/// The VLAN id a port tries to inject.
pub const INJECTED_VLAN: u16 = 100;
/// The multicast group used.
pub const GROUP_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x42, 0x00, 0x01];

/// One row of the matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    /// Stable id, e.g. "hairpin-on/p1-bcast".
    pub id: String,
    /// What the row says in the README.
    pub title: String,
    pub phase: Phase,
    pub from: Sender,
    pub dst: Dst,
    /// Sent with [`SPOOFED_MAC`] as source instead of the sender's own.
    pub spoofed: bool,
    /// Sent with an 802.1Q tag carrying this VLAN id.
    pub vlan: Option<u16>,
    /// Where mvdp differs from the kernel on purpose (README "Deliberate differences"): why.
    pub deliberate: Option<&'static str>,
}

impl Scenario {
    /// Why this scenario cannot run with `ports` ports, if it cannot.
    pub fn not_applicable(&self, ports: u32) -> Option<String> {
        if self.phase == Phase::Special {
            return Some(
                "this kernel has no 8021Q module: kernel VLAN networks cannot be built".into(),
            );
        }
        let needs = |n: u32| match (self.from, self.dst) {
            (Sender::Port(a), Dst::Port(b)) => a.max(b) <= n,
            (Sender::Port(a), _) => a <= n,
            (_, Dst::Port(b)) => b <= n,
            _ => true,
        };
        if !needs(ports) {
            return Some(format!("needs more ports than this mode has ({ports})"));
        }
        if self.phase == Phase::PortDown && self.from == Sender::Port(down_port(ports)) {
            return Some("the sender is the port that is down".into());
        }
        None
    }
}

/// The port taken down in [`Phase::PortDown`]: the last one.
pub fn down_port(ports: u32) -> u32 {
    ports
}

fn s(id: &str, title: &str, phase: Phase, from: Sender, dst: Dst) -> Scenario {
    Scenario {
        id: id.to_string(),
        title: title.to_string(),
        phase,
        from,
        dst,
        spoofed: false,
        vlan: None,
        deliberate: None,
    }
}

/// Every scenario, in table order. `p2` stands for the last port in [`Phase::PortDown`].
pub fn scenarios() -> Vec<Scenario> {
    let mut v = port_frames(Phase::HairpinOff, "hairpin-off", "");
    v.extend(frames_mvdp_refuses());
    v.extend(wire_frames(Phase::HairpinOff, "hairpin-off"));
    v.extend(port_frames(
        Phase::HairpinOn,
        "hairpin-on",
        ", wire reflects",
    ));
    v.extend(state_changes());
    v
}

/// What P1 sends, to every kind of destination, in `phase` (ids `{tag}/p1-…`).
fn port_frames(phase: Phase, tag: &str, suffix: &str) -> Vec<Scenario> {
    use Dst as D;
    use Sender::Port as From;
    [
        ("p1-p2", "P1 → P2's MAC", From(1), D::Port(2)),
        ("p1-p1", "P1 → its own MAC", From(1), D::Port(1)),
        ("p1-unknown", "P1 → unknown MAC", From(1), D::Unknown),
        ("p1-ext", "P1 → external host", From(1), D::Ext),
        ("p1-host", "P1 → host's parent MAC", From(1), D::Host),
        ("p1-bcast", "P1 broadcast", From(1), D::Broadcast),
        ("p1-mcast", "P1 multicast", From(1), D::Multicast),
    ]
    .into_iter()
    .map(|(id, title, from, dst)| {
        s(
            &format!("{tag}/{id}"),
            &format!("{title}{suffix}"),
            phase,
            from,
            dst,
        )
    })
    .collect()
}

/// Frames a port may not send, which mvdp drops on purpose (hairpin off).
fn frames_mvdp_refuses() -> Vec<Scenario> {
    let phase = Phase::HairpinOff;
    vec![
        Scenario {
            spoofed: true,
            deliberate: Some("anti-spoofing: mvdp drops a port's frame whose source MAC is not the port's own (passthru exempt)"),
            ..s(
                "hairpin-off/p1-spoofed",
                "P1 → external host from a foreign source MAC",
                phase,
                Sender::Port(1),
                Dst::Ext,
            )
        },
        Scenario {
            vlan: Some(INJECTED_VLAN),
            deliberate: Some("no VLAN hopping: mvdp drops a port's 802.1Q-tagged frame"),
            ..s(
                "hairpin-off/p1-tagged",
                "P1 → external host, 802.1Q-tagged (VLAN 100)",
                phase,
                Sender::Port(1),
                Dst::Ext,
            )
        },
    ]
}

/// What the external host sends, to every kind of destination, in `phase` (ids `{tag}/ext-…`).
fn wire_frames(phase: Phase, tag: &str) -> Vec<Scenario> {
    use Dst as D;
    [
        ("ext-p1", "wire → P1's MAC", D::Port(1)),
        ("ext-unknown", "wire → unknown MAC", D::Unknown),
        ("ext-host", "wire → host's parent MAC", D::Host),
        ("ext-bcast", "wire broadcast", D::Broadcast),
        ("ext-mcast", "wire multicast", D::Multicast),
    ]
    .into_iter()
    .map(|(id, title, dst)| s(&format!("{tag}/{id}"), title, phase, Sender::Ext, dst))
    .collect()
}

/// Frames after a port went down or changed its MAC, and the VLAN separation check.
fn state_changes() -> Vec<Scenario> {
    use Dst as D;
    use Phase::*;
    use Sender::{Ext as FromExt, Port as From};
    // The down port is the last one: P2, or P1 in passthru (the ids say "last").
    vec![
        s(
            "port-down/ext-last",
            "last port down: wire → its MAC",
            PortDown,
            FromExt,
            D::Port(0),
        ),
        s(
            "port-down/ext-bcast",
            "last port down: wire broadcast",
            PortDown,
            FromExt,
            D::Broadcast,
        ),
        s(
            "port-down/p1-last",
            "last port down: P1 → its MAC, wire reflects",
            PortDown,
            From(1),
            D::Port(0),
        ),
        s(
            "mac-change/ext-new",
            "P1 changed its MAC: wire → new MAC",
            MacChange,
            FromExt,
            D::Port(1),
        ),
        s(
            "mac-change/ext-old",
            "P1 changed its MAC: wire → old MAC",
            MacChange,
            FromExt,
            D::OldPort1,
        ),
        s(
            "vlan/separation",
            "networks on two VLANs of one parent stay apart",
            Special,
            FromExt,
            D::Broadcast,
        ),
    ]
}

impl Dst {
    /// `Port(0)` means the down port of [`Phase::PortDown`].
    pub fn resolve(self, ports: u32) -> Dst {
        match self {
            Dst::Port(0) => Dst::Port(down_port(ports)),
            d => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_phases_in_order() {
        let v = scenarios();
        let mut ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), v.len());
        assert!(v.windows(2).all(|w| w[0].phase <= w[1].phase));
    }

    #[test]
    fn applicability() {
        let v = scenarios();
        let p1p2 = v.iter().find(|s| s.id == "hairpin-off/p1-p2").unwrap();
        assert!(p1p2.not_applicable(2).is_none());
        assert!(p1p2.not_applicable(1).is_some());
        let down = v.iter().find(|s| s.id == "port-down/p1-last").unwrap();
        assert!(down.not_applicable(1).is_some());
        assert!(down.not_applicable(2).is_none());
        let vlan = v.iter().find(|s| s.phase == Phase::Special).unwrap();
        assert!(vlan.not_applicable(2).unwrap().contains("8021Q"));
    }
}
