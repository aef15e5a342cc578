//! Runs every scenario of one mode on one subject, phase by phase, on one lab.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::lab::EXT_MAC;
use anyhow::{bail, Context, Result};
use mvdp_control::{Mac, Mode, NetNs, Netlink};
use pnet_datalink::{Channel, Config, DataLinkSender};

use super::record::{StackRecorder, WireRecorder};
use super::report::Cell;
use super::scenario::{
    down_port, scenarios, Dst, Endpoint, Phase, Scenario, Sender, GROUP_MAC, NEW_MAC, SPOOFED_MAC,
    UNKNOWN_MAC,
};
use super::subject::{Network, Subject};
use crate::probe::raw::frame;

/// Marker of the frames that only teach the wire switch where each MAC lives.
const WARMUP: &str = "warmup";
/// After a phase's last frame: macvlan floods through a work queue, so give it time.
const SETTLE: Duration = Duration::from_millis(400);
/// Per receiver, after settling.
const DRAIN: Duration = Duration::from_millis(40);

/// Ports per network: passthru takes one, the other modes get two.
pub fn ports_for(mode: Mode) -> u32 {
    if mode == Mode::Passthru {
        1
    } else {
        2
    }
}

/// One mode's results: scenario id → cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModeResult {
    pub subject: String,
    pub mode: Mode,
    pub ports: u32,
    pub cells: BTreeMap<String, Cell>,
}

fn open_tx(ns: &NetNs, ifname: &str) -> Result<Box<dyn DataLinkSender>> {
    let ifname = ifname.to_string();
    ns.run(move || -> Result<Box<dyn DataLinkSender>> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .with_context(|| format!("no interface {ifname}"))?;
        let cfg = Config {
            promiscuous: false,
            ..Config::default()
        };
        match pnet_datalink::channel(&iface, cfg)
            .with_context(|| format!("packet socket on {ifname}"))?
        {
            Channel::Ethernet(tx, _rx) => Ok(tx),
            _ => bail!("{ifname}: not an Ethernet channel"),
        }
    })?
}

fn send(tx: &mut dyn DataLinkSender, f: &[u8]) -> Result<()> {
    match tx.send_to(f, None) {
        Some(r) => Ok(r.context("sending a probe frame")?),
        None => bail!("send refused"),
    }
}

struct Endpoints {
    /// 1-based: index 0 unused.
    port_tx: Vec<Box<dyn DataLinkSender>>,
    ext_tx: Box<dyn DataLinkSender>,
    host_tx: Box<dyn DataLinkSender>,
    stacks: Vec<(Endpoint, StackRecorder)>,
    wire: WireRecorder,
}

fn open_endpoints(net: &dyn Network, ports: u32) -> Result<Endpoints> {
    let lab = net.lab();
    let mut port_tx = Vec::new();
    let mut stacks = Vec::new();
    for n in 1..=ports {
        let c = &lab.container(n).ns;
        port_tx.push(open_tx(c, net.port_ifname(n))?);
        stacks.push((
            Endpoint::Port(n),
            StackRecorder::open(c, net.port_ifname(n))?,
        ));
    }
    stacks.push((
        Endpoint::Host,
        StackRecorder::open(lab.host(), lab.parent_ifname())?,
    ));
    stacks.push((
        Endpoint::Ext,
        StackRecorder::open(lab.ext(), lab.ext_ifname())?,
    ));
    net.ports_promiscuous(ports)?;
    Ok(Endpoints {
        port_tx,
        ext_tx: open_tx(lab.ext(), lab.ext_ifname())?,
        host_tx: open_tx(lab.host(), lab.parent_ifname())?,
        stacks,
        wire: WireRecorder::open(lab.wire(), lab.wire_port(1))?,
    })
}

fn link_mac(ns: &NetNs, ifname: &str) -> Result<Mac> {
    Netlink::in_netns(ns)?
        .link(ifname)?
        .mac
        .with_context(|| format!("{ifname} in {} has no MAC", ns.name()))
}

/// Runs every scenario for `mode` on a fresh lab `prefix` built by `subject`; the lab is gone on return.
pub fn run_mode(subject: &dyn Subject, prefix: &str, mode: Mode) -> Result<ModeResult> {
    let ports = ports_for(mode);
    let mut net = subject.build(prefix, mode, ports)?;
    let mut ep = open_endpoints(net.as_ref(), ports)?;
    let mut macs = vec![Mac::default()];
    for n in 1..=ports {
        macs.push(link_mac(&net.lab().container(n).ns, net.port_ifname(n))?);
    }
    let old_p1 = macs[1];
    teach_wire_switch(net.as_ref(), &mut ep, &macs)?;

    let wire_nl = Netlink::in_netns(net.lab().wire())?;
    let wire_port = net.lab().wire_port(1).to_string();
    let all = scenarios();
    let mut cells = BTreeMap::new();
    let mut phases: Vec<Phase> = all.iter().map(|s| s.phase).collect();
    phases.dedup();
    for phase in phases {
        match phase {
            Phase::HairpinOff => wire_nl.set_hairpin(&wire_port, false)?,
            Phase::HairpinOn => wire_nl.set_hairpin(&wire_port, true)?,
            Phase::PortDown => net.set_port_up(down_port(ports), false)?,
            Phase::MacChange => {
                net.set_port_up(down_port(ports), true)?;
                net.set_port_mac(1, Mac(NEW_MAC))?;
                macs[1] = Mac(NEW_MAC);
            }
            Phase::Special => {}
        }
        std::thread::sleep(Duration::from_millis(50));
        let dsts = Destinations {
            ports: &macs,
            host: link_mac(net.lab().host(), net.lab().parent_ifname())?,
            old_p1,
        };
        let mut sent = Vec::new();
        for s in all.iter().filter(|s| s.phase == phase) {
            if let Some(why) = s.not_applicable(ports) {
                cells.insert(s.id.clone(), Cell::NotApplicable(why));
                continue;
            }
            sent.push((send_scenario(&mut ep, s, ports, &dsts)?, s.id.clone()));
            std::thread::sleep(Duration::from_millis(2));
        }
        if !sent.is_empty() {
            std::thread::sleep(SETTLE);
            let mut got = receivers(&mut ep);
            for (marker, id) in sent {
                cells.insert(id, Cell::Received(got.remove(&marker).unwrap_or_default()));
            }
        }
    }
    drop(ep);
    Ok(ModeResult {
        subject: subject.name().to_string(),
        mode,
        ports,
        cells,
    })
}

/// Teaches the wire switch where every MAC lives (a broadcast from each), so unicast to a known
/// MAC is never flooded.
fn teach_wire_switch(net: &dyn Network, ep: &mut Endpoints, macs: &[Mac]) -> Result<()> {
    let bcast = Mac::BROADCAST.0;
    for (tx, mac) in ep.port_tx.iter_mut().zip(&macs[1..]) {
        send(tx.as_mut(), &frame(bcast, mac.0, None, WARMUP))?;
    }
    let host_mac = link_mac(net.lab().host(), net.lab().parent_ifname())?;
    send(ep.host_tx.as_mut(), &frame(bcast, host_mac.0, None, WARMUP))?;
    send(ep.ext_tx.as_mut(), &frame(bcast, EXT_MAC.0, None, WARMUP))?;
    Ok(())
}

/// The MACs scenarios send to in the current phase.
struct Destinations<'a> {
    /// Index n: port n's MAC (index 0 unused).
    ports: &'a [Mac],
    host: Mac,
    old_p1: Mac,
}

/// Sends scenario `s`'s frame; returns its marker.
fn send_scenario(
    ep: &mut Endpoints,
    s: &Scenario,
    ports: u32,
    dsts: &Destinations,
) -> Result<String> {
    let dst = match s.dst.resolve(ports) {
        Dst::Port(k) => dsts.ports[k as usize].0,
        Dst::Unknown => UNKNOWN_MAC,
        Dst::Ext => EXT_MAC.0,
        Dst::Host => dsts.host.0,
        Dst::Broadcast => Mac::BROADCAST.0,
        Dst::Multicast => GROUP_MAC,
        Dst::OldPort1 => dsts.old_p1.0,
    };
    let marker = format!("conf {}", s.id);
    let (tx, src) = match s.from {
        Sender::Port(n) => (ep.port_tx[n as usize - 1].as_mut(), dsts.ports[n as usize]),
        Sender::Ext => (ep.ext_tx.as_mut(), EXT_MAC),
    };
    let src = if s.spoofed { SPOOFED_MAC } else { src.0 };
    send(tx, &frame(dst, src, s.vlan, &marker)).with_context(|| format!("scenario {}", s.id))?;
    Ok(marker)
}

/// Every marker received since the last drain, and by whom.
fn receivers(ep: &mut Endpoints) -> BTreeMap<String, BTreeSet<Endpoint>> {
    let mut got: BTreeMap<String, BTreeSet<Endpoint>> = BTreeMap::new();
    for (who, rec) in &mut ep.stacks {
        for m in rec.drain(DRAIN) {
            got.entry(m).or_default().insert(*who);
        }
    }
    for m in ep.wire.drain(DRAIN) {
        got.entry(m).or_default().insert(Endpoint::Wire);
    }
    got
}
