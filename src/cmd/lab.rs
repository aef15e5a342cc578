//! `mvdp lab up|down|ls`: build, remove and list the network-namespace lab (see `mvdp_control::lab`).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mvdp_control::lab::{Lab, LabDescription};

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the standard lab and leave it up: a wire switch (Linux bridge) netns, an external host, a
    /// host netns holding the parent NIC `eth1`, and N empty container netns. Addresses from 198.18.0.0/24.
    Up(UpArgs),
    /// Remove a lab built by `mvdp lab up`: only namespaces named NAME-<wire|ext|host|hostN|cN>.
    Down(DownArgs),
    /// List the labs on this machine (found by their namespace names).
    Ls(LsArgs),
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
    /// Print what was built as JSON.
    #[arg(long)]
    json: bool,
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
    }
}

fn up(a: UpArgs) -> Result<()> {
    anyhow::ensure!(
        mvdp_control::is_root(),
        "mvdp lab up needs root (it creates network namespaces and links); run it with sudo"
    );
    // Ctrl-C while building removes what was built so far.
    mvdp_control::install_signal_handler()?;
    let lab = Lab::builder(&a.name)
        .containers(a.containers)
        .hosts(a.hosts)
        .hairpin(a.hairpin)
        .build()
        .with_context(|| format!("building lab {}", a.name))?;
    let d = lab.keep()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print_up(&d);
    }
    Ok(())
}

fn print_up(d: &LabDescription) {
    println!("lab {} is up ({}):", d.name, d.subnet);
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
            "  host  {:<24} parent {} {} {}/24 (wire port {})",
            h.netns, h.parent, h.mac, h.ip, h.wire_port
        );
    }
    for c in &d.containers {
        if c.veth {
            println!(
                "  cont  {:<24} {} {} {}/24 (host end {})",
                c.netns, c.ifname, c.mac, c.ip, c.host_ifname
            );
        } else {
            println!("  cont  {:<24} empty (planned {} {})", c.netns, c.mac, c.ip);
        }
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
            println!("{:<24} {}", l.name, l.namespaces.join(" "));
        }
    }
    Ok(())
}
