//! `mvdp network create|ls|inspect|rm`: Docker's network commands, answered by the daemon.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use mvdp_control::daemon::api::{NetworkCreate, NetworkSummary};
use mvdp_control::daemon::Request;

use super::daemon::{ListArgs as LsArgs, SocketArg};

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network on a parent NIC (prints its id).
    Create(CreateArgs),
    /// List networks.
    Ls(LsArgs),
    /// Show a network as JSON, shaped like `docker network inspect`.
    Inspect(InspectArgs),
    /// Remove a network (refused while it has ports, unless --force).
    Rm(RmArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Network name.
    name: String,
    /// Parent NIC; Docker's `eth1.100` means parent eth1, VLAN 100 (no kernel VLAN interface needed).
    #[arg(long, required_unless_present = "opt")]
    parent: Option<String>,
    /// 802.1Q VLAN id (1-4094); untagged when absent.
    #[arg(long)]
    vlan: Option<u32>,
    /// Macvlan mode (default bridge).
    #[arg(long, value_parser = ["bridge", "private", "vepa", "passthru"])]
    mode: Option<String>,
    /// Docker's driver options, accepted as Docker spells them: `-o parent=eth1.100`,
    /// `-o macvlan_mode=private`.
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// Docker's `-d macvlan` (mvdp is the only driver here).
    #[arg(short = 'd', long, value_parser = ["macvlan", "mvdp"])]
    driver: Option<String>,
    /// IPv4 subnet (CIDR) ports get addresses from.
    #[arg(long)]
    subnet: Option<String>,
    /// Default gateway for ports (default: the subnet's first host address).
    #[arg(long)]
    gateway: Option<String>,
    /// Allocate port addresses only from this part of the subnet (CIDR).
    #[arg(long)]
    ip_range: Option<String>,
    #[command(flatten)]
    sock: SocketArg,
}

#[derive(Args)]
pub struct InspectArgs {
    name: String,
    #[command(flatten)]
    sock: SocketArg,
}

#[derive(Args)]
pub struct RmArgs {
    name: String,
    /// Also remove the network's ports (their veths too).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    sock: SocketArg,
}

pub fn run(cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => {
            let (mut parent, mut mode) = (a.parent, a.mode);
            for o in &a.opt {
                let (slot, flag, value) = match o.split_once('=') {
                    Some(("parent", v)) => (&mut parent, "--parent", v),
                    Some(("macvlan_mode", v)) => (&mut mode, "--mode", v),
                    _ => bail!(
                        "unknown option -o {o}: mvdp knows parent=IF[.VLAN] and macvlan_mode=MODE"
                    ),
                };
                match slot {
                    Some(prev) if prev != value => {
                        bail!("-o {o} contradicts {flag} {prev}")
                    }
                    _ => *slot = Some(value.to_string()),
                }
            }
            let Some(parent) = parent else {
                bail!("a network needs a parent: --parent IF or -o parent=IF")
            };
            let v = a.sock.call(&Request::NetworkCreate(NetworkCreate {
                name: a.name,
                parent,
                vlan: a.vlan,
                mode,
                subnet: a.subnet,
                gateway: a.gateway,
                ip_range: a.ip_range,
            }))?;
            let n: NetworkSummary = serde_json::from_value(v)?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls(a) => {
            let v = a.sock.call(&Request::NetworkLs {})?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let nets: Vec<NetworkSummary> = serde_json::from_value(v)?;
            println!(
                "{:<16} {:<12} {:<10} {:<5} {:<9} {:<18} {:<15} {:>5}  CARRIER",
                "NAME", "ID", "PARENT", "VLAN", "MODE", "SUBNET", "GATEWAY", "PORTS"
            );
            for n in nets {
                println!(
                    "{:<16} {:<12} {:<10} {:<5} {:<9} {:<18} {:<15} {:>5}  {}",
                    n.name,
                    n.id,
                    n.parent,
                    if n.vlan == 0 {
                        "-".into()
                    } else {
                        n.vlan.to_string()
                    },
                    n.mode,
                    n.subnet.as_deref().unwrap_or("-"),
                    n.gateway.as_deref().unwrap_or("-"),
                    n.ports,
                    if n.parent_up { "up" } else { "down" }
                );
            }
        }
        NetworkCmd::Inspect(a) => {
            let v = a.sock.call(&Request::NetworkInspect { name: a.name })?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        NetworkCmd::Rm(a) => {
            let v = a.sock.call(&Request::NetworkRm {
                name: a.name.clone(),
                force: a.force,
            })?;
            let removed = v["removed_ports"].as_u64().unwrap_or(0);
            if removed > 0 {
                println!("{} (and {removed} port(s))", a.name);
            } else {
                println!("{}", a.name);
            }
        }
    }
    Ok(())
}
