//! Shared test helpers: frame builders and expansion of a verdict into the
//! set of destinations it names.
#![allow(dead_code)]

use mvdp_switch::{
    decide, Counters, Delivery, DropReason, FloodBudget, Ingress, Mac, Ports, Tables, Verdict,
};
use std::collections::BTreeSet;

pub const EXT: Mac = Mac([0x02, 0, 0, 0, 0xee, 0x01]);
pub const HOST: Mac = Mac([0x02, 0, 0, 0, 0xee, 0xfe]);
pub const MCAST: Mac = Mac([0x01, 0, 0x5e, 0, 0, 0x01]);

pub fn port_mac(i: u8) -> Mac {
    Mac([0x02, 0, 0, 0, 0, i])
}

/// A 60-byte frame with an optional 802.1Q tag (TCI).
pub fn eth(dst: Mac, src: Mac, tci: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if let Some(t) = tci {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.resize(60, 0xab);
    f
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dest {
    Port(u32),
    Wire,
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Drop(DropReason),
    To(BTreeSet<Dest>),
}

/// Every destination a delivery names, ports expanded through the table.
pub fn destinations(t: &Tables, d: &Delivery) -> BTreeSet<Dest> {
    let mut s = BTreeSet::new();
    match d.ports {
        Ports::None => {}
        Ports::One(p) => {
            s.insert(Dest::Port(p.0));
        }
        Ports::Flood {
            modes,
            except,
            group,
        } => {
            // Ports' multicast filters may turn every copy away (a group nobody joined).
            for p in t.flood_ports(d.segment, modes, except, group) {
                s.insert(Dest::Port(p.0));
            }
        }
    }
    if let Some(set) = d.taps {
        for p in t.taps(set) {
            s.insert(Dest::Port(p.0));
        }
    }
    if d.wire {
        s.insert(Dest::Wire);
    }
    if d.host {
        s.insert(Dest::Host);
    }
    s
}

pub fn outcome(t: &Tables, v: &Verdict) -> Outcome {
    match v {
        Verdict::Drop(r) => Outcome::Drop(*r),
        Verdict::Deliver(d) => Outcome::To(destinations(t, d)),
    }
}

/// Decides one frame with a fresh budget and counters.
pub fn run(t: &Tables, ingress: Ingress, frame: &[u8]) -> Outcome {
    let mut b = FloodBudget::new(t);
    let mut c = Counters::new(t);
    outcome(t, &decide(t, ingress, frame, &mut b, &mut c))
}

pub fn to(d: &[Dest]) -> Outcome {
    Outcome::To(d.iter().copied().collect())
}
