//! `mvdp demo`: the XDP half of mvdp on a throwaway lab, showing where each kind of frame
//! went. It is what `scripts/main.sh` runs until the fast path and `mvdp bench` land.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::{Args, ValueEnum};
use mvdp_ebpf::{Demux, FloodTap, ModePolicy};
use mvdp_lab::lab::Lab;
use mvdp_lab::probe::raw::{frame, marker, send};
use mvdp_lab::probe::xsk::XskProbe;
use serde::Serialize;

#[derive(Args)]
pub struct DemoArgs {
    /// Frames of each kind the external host sends.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    frames: u32,
    /// XDP attach mode on the lab's parent NIC.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,
    /// Name of the throwaway lab (prefix of its namespaces) [default: mvdp-demo<pid>].
    #[arg(long)]
    lab_name: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum XdpMode {
    /// Native, falling back to generic with a warning.
    Auto,
    Native,
    Generic,
}

const PORTS: [([u8; 6], u16); 2] = [
    ([0x02, 0x6d, 0x76, 0x64, 0x70, 0x01], 0),
    ([0x02, 0x6d, 0x76, 0x64, 0x70, 0x02], 100),
];
const NOBODY: [u8; 6] = [0x02, 0x6d, 0x76, 0x64, 0x70, 0xee];
const SENDER: [u8; 6] = [0x02, 0x6d, 0x76, 0x64, 0x70, 0xfe];

#[derive(Serialize)]
struct Report {
    lab: String,
    parent: String,
    xdp_mode: &'static str,
    frames_per_kind: u32,
    /// Frames each port's AF_XDP socket received, by port.
    port_socket_frames: Vec<PortResult>,
    /// Probe broadcasts the flood tap copied to userspace.
    flood_tap_frames: usize,
    /// Whether the host answered ping from the external host over the parent while attached.
    host_ping_ok: bool,
    demux_counters: std::collections::BTreeMap<&'static str, u64>,
    seconds: f64,
}

#[derive(Serialize)]
struct PortResult {
    mac: String,
    vlan: u16,
    sent: u32,
    received: usize,
}

pub fn run(args: DemoArgs) -> Result<()> {
    ensure!(
        mvdp_control::netns::is_root(),
        "mvdp demo needs root (network namespaces, XDP, AF_XDP); run it with sudo"
    );
    let started = Instant::now();
    let prefix = args
        .lab_name
        .clone()
        .unwrap_or_else(|| format!("mvdp-demo{}", std::process::id()));
    progress(
        &args,
        &format!("building lab {prefix}: wire switch, external host, host with parent NIC"),
    );
    mvdp_lab::install_signal_handler()?;
    let lab = Lab::builder(&prefix)
        .containers(0)
        .build()
        .context("building the demo lab")?;
    let parent = lab.parent_ifname().to_string();
    let policy = match args.xdp_mode {
        XdpMode::Auto => ModePolicy::NativeOrGeneric,
        XdpMode::Native => ModePolicy::Native,
        XdpMode::Generic => ModePolicy::Generic,
    };
    let n = args.frames;
    let m = lab.host().run(|| measure(&lab, &parent, policy, &args))??;
    drop(lab);

    let report = Report {
        lab: prefix,
        parent,
        xdp_mode: m.mode.as_str(),
        frames_per_kind: n,
        port_socket_frames: PORTS
            .iter()
            .zip(&m.received)
            .map(|((mac, vlan), got)| PortResult {
                mac: fmt_mac(mac),
                vlan: *vlan,
                sent: n,
                received: *got,
            })
            .collect(),
        flood_tap_frames: m.tapped,
        host_ping_ok: m.host_ping_ok,
        demux_counters: m.counters.iter().collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// What the demo saw.
struct Measured {
    mode: mvdp_ebpf::AttachMode,
    /// Probe frames for each port that arrived in that port's socket.
    received: Vec<usize>,
    /// Probe broadcasts the flood tap copied to userspace.
    tapped: usize,
    host_ping_ok: bool,
    counters: mvdp_ebpf::Counters,
}

/// Inside the lab's host netns: attaches the demux with a socket per port and the flood tap,
/// sends every kind of frame from the external host, and counts where each arrived.
fn measure(lab: &Lab, parent: &str, policy: ModePolicy, args: &DemoArgs) -> Result<Measured> {
    let mut demux = Demux::attach(parent, policy)?;
    let mut probe = XskProbe::new(parent, 0, PORTS.len())?;
    for (slot, (fd, (mac, vlan))) in probe.fds().into_iter().zip(PORTS).enumerate() {
        demux.set_socket(slot as u32, 0, fd)?;
        demux.insert_port(vlan, mac, slot as u32, false)?;
    }
    let mut tap = FloodTap::open(parent)?;
    tap.hold_promisc()?;
    progress(
        args,
        &format!(
            "demux attached to {parent} ({} XDP, BPF link); sending traffic from the external host",
            demux.mode().as_str()
        ),
    );

    let frames = demo_frames(args.frames);
    let ext_if = lab.ext_ifname().to_string();
    lab.ext().run(move || send(&ext_if, &frames))??;
    let host_ip = lab.host_ip().to_string();
    let host_ping_ok = lab
        .ext()
        .command("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "1", &host_ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);

    let received: Vec<usize> = probe
        .drain(Duration::from_millis(500))
        .iter()
        .map(|frames| {
            frames
                .iter()
                .filter(|f| marker(f).is_some_and(|m| m.starts_with("port-")))
                .count()
        })
        .collect();
    let mut buf = vec![0u8; 4096];
    let mut tapped = 0;
    while let Some(f) = tap.recv(&mut buf)? {
        tapped += usize::from(
            marker(&buf[f.offset..f.offset + f.len]).is_some_and(|m| m.starts_with("bcast-")),
        );
    }
    Ok(Measured {
        mode: demux.mode(),
        received,
        tapped,
        host_ping_ok,
        counters: demux.counters()?,
    })
}

/// `n` rounds of: a frame to each port, one to a MAC nobody has, one broadcast.
fn demo_frames(n: u32) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..n {
        for (mac, vlan) in PORTS {
            frames.push(frame(
                mac,
                SENDER,
                (vlan != 0).then_some(vlan),
                &format!("port-{i}"),
            ));
        }
        frames.push(frame(NOBODY, SENDER, None, &format!("nobody-{i}")));
        frames.push(frame([0xff; 6], SENDER, None, &format!("bcast-{i}")));
    }
    frames
}

fn progress(args: &DemoArgs, msg: &str) {
    if !args.json {
        eprintln!("mvdp demo: {msg}");
    }
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn print_text(r: &Report) {
    println!(
        "lab {} removed; demux ran in {} XDP mode on {}",
        r.lab, r.xdp_mode, r.parent
    );
    println!();
    println!(
        "{:<20} {:>6} {:>8} {:>9}",
        "port (AF_XDP socket)", "vlan", "sent", "received"
    );
    for p in &r.port_socket_frames {
        let vlan = if p.vlan == 0 {
            "-".to_string()
        } else {
            p.vlan.to_string()
        };
        println!("{:<20} {:>6} {:>8} {:>9}", p.mac, vlan, p.sent, p.received);
    }
    println!();
    println!(
        "broadcasts sent {:>6}   copied to the flood tap {:>6}",
        r.frames_per_kind, r.flood_tap_frames
    );
    println!(
        "host answers ping over the parent while attached: {}",
        if r.host_ping_ok { "yes" } else { "NO" }
    );
    println!();
    println!("demux counters:");
    for (name, v) in &r.demux_counters {
        println!("  {name:<16} {v}");
    }
}
