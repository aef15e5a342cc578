//! `mvdp lab up|down|ls`: build, remove and list the network-namespace lab (see `mvdp_lab::lab`).

use anyhow::{Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use mvdp_lab::lab::{ContainerLink, Lab, LabDescription};
use mvdp_lab::Backend;
use mvdp_switch::Mode;

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the standard lab and leave it up: a wire switch (Linux bridge) netns, an external host, a
    /// host netns holding the parent NIC `eth1`, and N container netns, empty or attached to the parent
    /// by the chosen backend. Addresses from 198.18.0.0/24.
    Up(UpArgs),
    /// Remove a lab built by `mvdp lab up`: only namespaces named NAME-<wire|ext|host|hostN|cN>.
    Down(DownArgs),
    /// List the labs on this machine (found by their namespace names).
    Ls(LsArgs),
    /// Soak an `mvdp daemon`: unicast and broadcast traffic on a lab of eight containers, port
    /// churn and a daemon restart every few minutes; checks the UMEM books balance and the
    /// daemon's RSS and open fds do not grow; writes soak.csv, report.json and summary.md and
    /// exits non-zero when a check fails. Needs root; takes --minutes.
    Soak(SoakArgs),
}

#[derive(Args)]
pub struct SoakArgs {
    /// How long to soak.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Seconds between daemon restarts.
    #[arg(long, default_value_t = 180.0)]
    restart_every: f64,
    /// Seconds between port churns (one port removed and added again).
    #[arg(long, default_value_t = 5.0)]
    churn_every: f64,
    /// Seconds between samples (books, RSS, fds).
    #[arg(long, default_value_t = 15.0)]
    sample_every: f64,
    /// Lab name (its namespaces' prefix) [default: mvs<pid>].
    #[arg(long)]
    name: Option<String>,
    /// Directory for soak.csv, report.json and summary.md.
    #[arg(long, default_value = "soak-results")]
    out: std::path::PathBuf,
}

#[derive(Args)]
pub struct UpArgs {
    /// Lab name: the prefix of its namespaces (NAME-wire, NAME-ext, NAME-host, NAME-c1, ...).
    #[arg(long, default_value = "lab")]
    name: String,
    /// Number of container namespaces.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=200))]
    containers: u32,
    /// Number of hosts with a parent NIC (2: NAME-host1 and NAME-host2 on the same wire).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    hosts: u32,
    /// Turn hairpin (reflective relay) on for the parents' wire-bridge ports, as VEPA needs.
    #[arg(long)]
    hairpin: bool,
    /// What connects the containers to the parent: nothing (empty namespaces), one kernel macvlan per
    /// container, a Linux bridge holding the parent and a veth per container, or mvdp ports.
    #[arg(long, default_value = "none", value_parser = backend_kind())]
    backend: Backend,
    /// Macvlan mode, for the macvlan and mvdp backends (default bridge; passthru takes 1 container).
    #[arg(long, value_parser = macvlan_mode())]
    mode: Option<Mode>,
    /// Print what was built as JSON.
    #[arg(long)]
    json: bool,
}

/// `--backend`: the kinds `mvdp lab up` builds, as [`Backend`]s (macvlan and mvdp in bridge mode
/// until `--mode` says otherwise).
fn backend_kind() -> impl TypedValueParser<Value = Backend> {
    PossibleValuesParser::new(["none", "macvlan", "bridge", "mvdp"])
        .map(|k| k.parse::<Backend>().expect("a listed backend kind parses"))
}

/// `--mode`: the macvlan modes a lab's containers can have.
fn macvlan_mode() -> impl TypedValueParser<Value = Mode> {
    PossibleValuesParser::new(["bridge", "private", "vepa", "passthru"])
        .map(|m| m.parse::<Mode>().expect("a listed mode parses"))
}

impl UpArgs {
    /// The backend asked for; refuses a mode given to a backend that has none.
    fn backend(&self) -> Result<Backend> {
        Ok(Backend::from_parts(self.backend.kind(), self.mode)?)
    }
}

#[derive(Args)]
pub struct DownArgs {
    /// Name of the lab to remove.
    #[arg(long = "name", default_value = "lab")]
    name: String,
    /// Print what was removed as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct LsArgs {
    /// Print the list as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: LabCmd) -> Result<()> {
    match cmd {
        LabCmd::Up(a) => up(a),
        LabCmd::Down(a) => down(a),
        LabCmd::Ls(a) => ls(a),
        LabCmd::Soak(a) => soak(a),
    }
}

fn soak(a: SoakArgs) -> Result<()> {
    let secs = |what: &str, v: f64| -> Result<std::time::Duration> {
        anyhow::ensure!(
            v.is_finite() && (0.5..=86_400.0).contains(&v),
            "--{what} {v}: give 0.5..=86400 seconds"
        );
        Ok(std::time::Duration::from_secs_f64(v))
    };
    let cfg = mvdp_lab::soak::SoakConfig {
        name: a
            .name
            .unwrap_or_else(|| format!("mvs{}", std::process::id())),
        mvdp_bin: std::env::current_exe().context("finding the mvdp binary")?,
        duration: secs("minutes", a.minutes * 60.0)?,
        restart_every: secs("restart-every", a.restart_every)?,
        churn_every: secs("churn-every", a.churn_every)?,
        sample_every: secs("sample-every", a.sample_every)?,
    };
    anyhow::ensure!(
        mvdp_control::is_root(),
        "mvdp lab soak needs root (network namespaces, XDP, AF_XDP); run it with sudo"
    );
    // Ctrl-C stops the daemon and removes the lab.
    mvdp_lab::install_signal_handler()?;
    let report = mvdp_lab::soak::run(&cfg, |m| eprintln!("soak: {m}"))?;
    let files = report.write(&a.out)?;
    print!("{}", report.summary());
    println!("\nwritten:");
    for f in files {
        println!("  {}", f.display());
    }
    anyhow::ensure!(
        report.passed(),
        "the soak failed: {}",
        report.failures.join("; ")
    );
    Ok(())
}

fn up(a: UpArgs) -> Result<()> {
    let backend = a.backend()?;
    // The lab cannot attach mvdp ports itself: it is built empty and the daemon attaches them.
    let (lab_backend, mvdp_mode) = match backend {
        Backend::Mvdp(m) => (Backend::None, Some(m)),
        b => (b, None),
    };
    let builder = Lab::builder(&a.name)
        .containers(a.containers)
        .hosts(a.hosts)
        .hairpin(a.hairpin)
        .backend(lab_backend);
    // Checked before root and before anything is built: nothing is left half-made.
    backend
        .validate(a.containers)
        .and_then(|()| builder.validate())
        .with_context(|| format!("lab {}", a.name))?;
    anyhow::ensure!(
        mvdp_control::is_root(),
        "mvdp lab up needs root (it creates network namespaces and links); run it with sudo"
    );
    // Ctrl-C while building removes what was built so far.
    mvdp_lab::install_signal_handler()?;
    let lab = builder
        .build()
        .with_context(|| format!("building lab {}", a.name))?;
    let d = match mvdp_mode {
        None => lab.keep()?,
        Some(mode) => {
            let bin = std::env::current_exe().context("finding the mvdp binary")?;
            lab.keep_with_daemon(&bin, mode)?
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print_up(&d);
    }
    Ok(())
}

fn print_up(d: &LabDescription) {
    println!(
        "lab {} is up ({}, backend {}):",
        d.name, d.subnet, d.backend
    );
    println!(
        "  wire  {:<24} bridge {}, ports {} (hairpin on parent ports: {})",
        d.wire.netns,
        d.wire.bridge,
        d.wire.ports.join(", "),
        if d.wire.hairpin { "on" } else { "off" }
    );
    println!(
        "  ext   {:<24} {} {} {}/24 (wire port {})",
        d.ext.netns, d.ext.ifname, d.ext.mac, d.ext.ip, d.ext.wire_port
    );
    for h in &d.hosts {
        println!(
            "  host  {:<24} parent {} {} {}/24 on {} (wire port {})",
            h.netns, h.parent, h.mac, h.ip, h.ip_ifname, h.wire_port
        );
    }
    for c in &d.containers {
        match c.link {
            ContainerLink::Veth => println!(
                "  cont  {:<24} {} {} {}/24 (veth, host end {})",
                c.netns, c.ifname, c.mac, c.ip, c.host_ifname
            ),
            ContainerLink::Macvlan => println!(
                "  cont  {:<24} {} {} {}/24 (macvlan on the parent)",
                c.netns, c.ifname, c.mac, c.ip
            ),
            ContainerLink::Mvdp => println!(
                "  cont  {:<24} {} {} {}/24 (mvdp port)",
                c.netns, c.ifname, c.mac, c.ip
            ),
            ContainerLink::None => {
                println!("  cont  {:<24} empty (planned {} {})", c.netns, c.mac, c.ip)
            }
        }
    }
    if let Some(dm) = &d.daemon {
        println!(
            "  mvdp  daemon pid {} in {}; try: MVDP_SOCKET={} mvdp port ls",
            dm.pid,
            d.hosts.first().map_or("", |h| h.netns.as_str()),
            dm.socket.display()
        );
    }
    if let Some(h) = d.hosts.first() {
        println!("try:    ip netns exec {} ping -c1 {}", d.ext.netns, h.ip);
    }
    println!("remove: mvdp lab down --name {}", d.name);
}

fn down(a: DownArgs) -> Result<()> {
    anyhow::ensure!(
        mvdp_control::is_root(),
        "mvdp lab down needs root (it removes network namespaces); run it with sudo"
    );
    let removed = Lab::destroy_by_name(&a.name)?;
    if a.json {
        let v = serde_json::json!({ "name": a.name, "removed": removed });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "lab {} removed (namespaces: {})",
            a.name,
            removed.join(", ")
        );
    }
    Ok(())
}

fn ls(a: LsArgs) -> Result<()> {
    let labs = Lab::list()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&labs)?);
    } else if labs.is_empty() {
        println!("no labs");
    } else {
        for l in labs {
            let backend = l.backend.map_or("?".to_string(), |b| b.to_string());
            println!("{:<24} {:<16} {}", l.name, backend, l.namespaces.join(" "));
        }
    }
    Ok(())
}
