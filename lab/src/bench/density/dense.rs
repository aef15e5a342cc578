//! A dense lab: the bench's lab shape (wire switch, external host, host with parent `eth1`) whose
//! containers are added as it grows, up to a thousand namespaces `{prefix}-c{i}`, each attached
//! as a port of one backend: the `mvdp daemon` binary running in the lab's host netns (a process
//! of its own, so its RSS is the daemon's), or kernel macvlan children of `eth1`.
//!
//! Port `i` gets `eth0` with [`port_mac`]`(i)` and [`port_ip`]`(i)` in 198.18.16.0/20 (inside
//! the RFC 2544 range, next to the lab's own 198.18.0.0/24), on either backend.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mvdp_control::daemon::{call, NetworkCreate, PortAdd, Request};
use mvdp_control::netlink::{MacvlanOptions, Netlink};
use mvdp_control::{Mode, NetNs};
use mvdp_switch::Mac;

use crate::bench::cpu::named_threads_cpu;
use crate::bench::topology::{Backend, Endpoint, DAEMON_WORKER_PREFIX};
use crate::lab::daemon::{DaemonPaths, OwnedDaemon};
use crate::lab::{Lab, CONTAINER_IFNAME, PARENT_IFNAME};

/// The ports' subnet: 198.18.16.0/20 (4,094 addresses; the first is the network's gateway).
pub const DENSE_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 16, 0);
pub const DENSE_PREFIX_LEN: u8 = 20;
/// Most ports a dense lab takes: the mvdp demux's port slots.
pub const MAX_PORTS: u32 = 1024;
/// The mvdp network the ports join.
const NETWORK: &str = "dense";

/// Port `i`'s (1-based) address: 198.18.16.(1 + i) onwards (198.18.16.1 is the gateway).
pub fn port_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(DENSE_NET) + 1 + i)
}

/// Port `i`'s MAC: 02:6d:76:10:hi:lo, apart from the lab's hosts (…:00:…) and containers (…:01:…).
pub fn port_mac(i: u32) -> Mac {
    Mac::lab(0x10, (i >> 8) as u8, i as u8)
}

/// What attaches the containers.
enum Ports {
    /// The daemon process and its control socket.
    Mvdp(OwnedDaemon),
    /// Netlink in the host namespace, which creates the children of `eth1`.
    Macvlan(Mode, Netlink),
}

/// A lab growing to N ports of one backend. Dropping it stops the daemon, then removes every
/// namespace.
pub struct DenseLab {
    pub backend: Backend,
    // Field order is drop order: the daemon goes before the namespaces.
    ports: Ports,
    /// Container `i`'s namespace at `i - 1`; each has a port.
    containers: Vec<NetNs>,
    lab: Lab,
}

impl DenseLab {
    /// Builds lab `name` with no containers and starts `backend`'s side of it: for mvdp, `bin
    /// daemon` in the host netns with one bridge-mode network on `eth1` over [`DENSE_NET`].
    pub fn build(name: &str, backend: Backend, bin: &Path) -> Result<DenseLab> {
        DenseLab::build_with(name, backend, bin, &[])
    }

    /// The same, with more `mvdp daemon` options (mvdp only).
    pub fn build_with(
        name: &str,
        backend: Backend,
        bin: &Path,
        daemon_args: &[String],
    ) -> Result<DenseLab> {
        let lab = Lab::builder(name)
            .containers(0)
            .build()
            .with_context(|| format!("building lab {name} for {}", backend.name()))?;
        let ports = match backend {
            Backend::Mvdp(mode) => Ports::Mvdp(start_daemon(&lab, bin, mode, daemon_args)?),
            Backend::Macvlan(mode) => Ports::Macvlan(mode, Netlink::in_netns(lab.host())?),
            other => anyhow::bail!(
                "the density scenario measures mvdp and kernel macvlan, not {}",
                other.name()
            ),
        };
        Ok(DenseLab {
            backend,
            ports,
            containers: Vec::new(),
            lab,
        })
    }

    /// How many ports the lab has.
    pub fn ports(&self) -> u32 {
        self.containers.len() as u32
    }

    /// Adds containers with a port each until there are `n`, timing each port add (the
    /// namespace is made first, untimed); `tick` is called after each.
    pub fn grow(&mut self, n: u32, mut tick: impl FnMut()) -> Result<Vec<Duration>> {
        let mut took = Vec::new();
        for i in self.ports() + 1..=n {
            let ns = self.lab.add_bare_container(i)?;
            self.containers.push(ns);
            took.push(self.add_port(i)?);
            tick();
        }
        Ok(took)
    }

    /// Removes port `i` and adds it again, each timed: (remove, add).
    pub fn churn(&self, i: u32) -> Result<(Duration, Duration)> {
        let removed = self.remove_port(i)?;
        Ok((removed, self.add_port(i)?))
    }

    fn add_port(&self, i: u32) -> Result<Duration> {
        let ns = &self.containers[i as usize - 1];
        let t = Instant::now();
        match &self.ports {
            Ports::Mvdp(d) => mvdp_port_add(&d.socket(), ns, i),
            Ports::Macvlan(mode, host) => macvlan_add(host, *mode, ns, i),
        }
        .with_context(|| format!("{}: adding port {i} in {}", self.backend.name(), ns.name()))?;
        Ok(t.elapsed())
    }

    fn remove_port(&self, i: u32) -> Result<Duration> {
        let ns = &self.containers[i as usize - 1];
        let t = Instant::now();
        match &self.ports {
            Ports::Mvdp(d) => {
                let rm = Request::PortRm {
                    network: NETWORK.into(),
                    port: ns.name().into(),
                };
                call(&d.socket(), &rm)
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            }
            Ports::Macvlan(..) => Netlink::in_netns(ns)
                .and_then(|nl| nl.del_link(CONTAINER_IFNAME))
                .map_err(anyhow::Error::from),
        }
        .with_context(|| format!("{}: removing port {i}", self.backend.name()))?;
        Ok(t.elapsed())
    }

    /// Container `i` (1-based) as a measuring endpoint.
    pub fn endpoint(&self, i: u32) -> Endpoint {
        Endpoint {
            ns: self.containers[i as usize - 1].clone(),
            ip: port_ip(i),
        }
    }

    /// The daemon's process id (mvdp only).
    pub fn daemon_pid(&self) -> Option<u32> {
        match &self.ports {
            Ports::Mvdp(d) => Some(d.pid()),
            Ports::Macvlan(..) => None,
        }
    }

    /// CPU time so far of the daemon's worker threads (mvdp only).
    pub fn switch_cpu(&self) -> Result<Option<Duration>> {
        let Some(pid) = self.daemon_pid() else {
            return Ok(None);
        };
        Ok(Some(named_threads_cpu(pid, DAEMON_WORKER_PREFIX)?.0))
    }

    /// CPU time so far of the daemon's (worker threads, all threads) (mvdp only).
    pub fn daemon_cpu(&self) -> Result<Option<(Duration, Duration)>> {
        let Some(pid) = self.daemon_pid() else {
            return Ok(None);
        };
        let workers = named_threads_cpu(pid, DAEMON_WORKER_PREFIX)?.0;
        Ok(Some((workers, named_threads_cpu(pid, "")?.0)))
    }

    /// The daemon's `mvdp stats --json` (mvdp only).
    pub fn mvdp_stats(&self) -> Result<Option<serde_json::Value>> {
        match &self.ports {
            Ports::Mvdp(d) => Ok(Some(call(&d.socket(), &Request::Stats {})?)),
            Ports::Macvlan(..) => Ok(None),
        }
    }
}

/// `bin daemon` (with `args`) in `lab`'s host netns (its files in a directory of its own, removed
/// with it), with network [`NETWORK`] on `eth1`.
fn start_daemon(lab: &Lab, bin: &Path, mode: Mode, args: &[String]) -> Result<OwnedDaemon> {
    let dir = std::env::temp_dir().join(format!("mvdp-bench-{}", lab.prefix()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut paths = DaemonPaths::new(dir);
    paths.args = args.to_vec();
    let d = OwnedDaemon::start(bin, lab.host(), paths)?;
    let create = Request::NetworkCreate(NetworkCreate {
        name: NETWORK.into(),
        parent: PARENT_IFNAME.into(),
        mode: Some(mode.to_string()),
        subnet: Some(format!("{DENSE_NET}/{DENSE_PREFIX_LEN}")),
        ..Default::default()
    });
    call(&d.socket(), &create).context("mvdp network create")?;
    Ok(d)
}

/// `mvdp port add` for container `i` in `ns`, through the daemon's API.
fn mvdp_port_add(socket: &Path, ns: &NetNs, i: u32) -> Result<()> {
    let add = Request::PortAdd(PortAdd {
        network: NETWORK.into(),
        netns: Some(ns.name().into()),
        ifname: Some(CONTAINER_IFNAME.into()),
        mac: Some(port_mac(i).to_string()),
        ip: Some(format!("{}/{DENSE_PREFIX_LEN}", port_ip(i))),
        ..Default::default()
    });
    call(socket, &add)?;
    Ok(())
}

/// A kernel macvlan child of `eth1` made straight into `ns` as `eth0`, addressed and up.
fn macvlan_add(host: &Netlink, mode: Mode, ns: &NetNs, i: u32) -> Result<()> {
    let mut o = MacvlanOptions::new(mode);
    o.netns = Some(ns);
    o.mac = Some(port_mac(i));
    host.add_macvlan(CONTAINER_IFNAME, PARENT_IFNAME, &o)?;
    let nl = Netlink::in_netns(ns)?;
    nl.add_address(CONTAINER_IFNAME, IpAddr::V4(port_ip(i)), DENSE_PREFIX_LEN)?;
    nl.set_up(CONTAINER_IFNAME)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_addresses_stay_in_the_dense_subnet_and_apart() {
        let net = u32::from(DENSE_NET);
        let mask = !0u32 << (32 - DENSE_PREFIX_LEN);
        let mut macs = std::collections::BTreeSet::new();
        for i in 1..=MAX_PORTS {
            let ip = u32::from(port_ip(i));
            assert_eq!(ip & mask, net, "{}", port_ip(i));
            assert!(ip > net + 1 && ip < net | !mask, "{}", port_ip(i));
            assert!(port_mac(i).is_valid_unicast());
            assert!(macs.insert(port_mac(i)));
        }
        assert!(!macs.contains(&crate::lab::container_mac(1)));
        assert!(!macs.contains(&crate::lab::host_mac(1)));
    }
}
