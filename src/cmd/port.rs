//! `mvdp port add|ls|rm`: a container's interface on an mvdp network (a veth the dataplane drives).

use anyhow::Result;
use clap::{Args, Subcommand};
use mvdp_control::daemon::api::{PortAdd, PortSummary};
use mvdp_control::daemon::Request;

use super::daemon::{ListArgs as LsArgs, SocketArg};

#[derive(Subcommand)]
pub enum PortCmd {
    /// Give a network namespace (a container) an interface on NETWORK, or the host one with --host.
    Add(AddArgs),
    /// List ports.
    Ls(LsArgs),
    /// Remove a port and its veth.
    Rm(RmArgs),
}

#[derive(Args)]
pub struct AddArgs {
    /// Network name.
    network: String,
    /// The container's netns: a name under /run/netns or a path such as /proc/PID/ns/net.
    #[arg(long, required_unless_present = "host", conflicts_with = "host")]
    netns: Option<String>,
    /// A shim port for the host itself (interface mvh-NETWORK with a /32 and routes to every port),
    /// so the host reaches its containers; kernel macvlan cannot do that without the same trick.
    #[arg(long)]
    host: bool,
    /// Interface name inside the container.
    #[arg(long, default_value = "eth0", conflicts_with = "host")]
    ifname: String,
    /// MAC address (default: random, locally administered).
    #[arg(long)]
    mac: Option<String>,
    /// Address, `198.18.0.20` or `198.18.0.20/24` (default: the next free one of the network).
    #[arg(long)]
    ip: Option<String>,
    /// MTU (default: the parent's, at most mvdp's frame limit).
    #[arg(long)]
    mtu: Option<u32>,
    /// Print the new port as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sock: SocketArg,
}

#[derive(Args)]
pub struct RmArgs {
    /// Network name.
    network: String,
    /// Port id, its host interface (mvpN), its netns, or `host` for the host port.
    port: String,
    #[command(flatten)]
    sock: SocketArg,
}

fn line(p: &PortSummary) -> String {
    format!(
        "{:<4} {:<12} {:<24} {:<8} {:<8} {:<17} {:<18} {:>5}  {}",
        p.id,
        p.network,
        p.netns.as_deref().unwrap_or("(host)"),
        p.ifname,
        p.host_ifname,
        p.mac,
        p.ip.as_deref().unwrap_or("-"),
        p.mtu,
        p.state
    )
}

const HEADER: &str = "ID   NETWORK      NETNS                    IFNAME   HOST-IF  MAC               IP                   MTU  STATE";

pub fn run(cmd: PortCmd) -> Result<()> {
    match cmd {
        PortCmd::Add(a) => {
            let v = a.sock.call(&Request::PortAdd(PortAdd {
                network: a.network,
                netns: a.netns,
                host: a.host,
                ifname: (!a.host).then_some(a.ifname),
                mac: a.mac,
                ip: a.ip,
                mtu: a.mtu,
                ..Default::default()
            }))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let p: PortSummary = serde_json::from_value(v)?;
                println!("{HEADER}\n{}", line(&p));
            }
        }
        PortCmd::Ls(a) => {
            let v = a.sock.call(&Request::PortLs {})?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let ports: Vec<PortSummary> = serde_json::from_value(v)?;
            println!("{HEADER}");
            for p in &ports {
                println!("{}", line(p));
            }
        }
        PortCmd::Rm(a) => {
            let v = a.sock.call(&Request::PortRm {
                network: a.network,
                port: a.port,
            })?;
            let p: PortSummary = serde_json::from_value(v)?;
            println!("removed port {} ({})", p.id, p.host_ifname);
        }
    }
    Ok(())
}
