//! The implementation under test. A [`Subject`] builds, for one mode, a lab whose containers are the
//! ports of one network on the host's parent `eth1`; the [`Network`] it returns lets the runner change
//! the ports' state. The runner does the rest (wire hairpin, sending, recording) the same way for all.
//!
//! [`KernelMacvlan`]: kernel macvlan children of the parent. [`Mvdp`]: a `Backend::None` lab with
//! `mvdp daemon` in the host namespace and one `mvdp port add` per container (port `n` is container
//! `n`, interface `eth0`, the lab's MAC/IP for it). Port state changes happen inside the container
//! for both; the daemon follows them by itself, and the mvdp network waits until it has.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{Backend, Lab};
use anyhow::{bail, Context, Result};
use mvdp_control::daemon::api::PortSummary;
use mvdp_control::daemon::{call, Request};
use mvdp_control::{Mac, Mode, Netlink};

use crate::lab::daemon::{attach_containers, DaemonPaths, OwnedDaemon, LAB_NETWORK};

/// An implementation of the macvlan modes.
pub trait Subject: Sync {
    /// Column name in the report ("kernel", "mvdp").
    fn name(&self) -> &'static str;
    /// Builds lab `prefix` with `ports` containers attached as ports of one `mode` network. The ports'
    /// MACs are the lab's container MACs, except that a passthru port may carry the parent's.
    fn build(&self, prefix: &str, mode: Mode, ports: u32) -> Result<Box<dyn Network>>;
}

/// A built network of ports.
pub trait Network: Send {
    fn lab(&self) -> &Lab;
    /// Port `n`'s interface inside container `n`'s namespace.
    fn port_ifname(&self, _n: u32) -> &str {
        "eth0"
    }
    /// Brings port `n` administratively up or down.
    fn set_port_up(&mut self, n: u32, up: bool) -> Result<()>;
    /// Changes port `n`'s MAC while it is up.
    fn set_port_mac(&mut self, n: u32, mac: Mac) -> Result<()>;
    /// Ports 1..=`ports` were made promiscuous from inside their containers (the recorders):
    /// returns once each port receives every multicast group. A kernel macvlan's filter opens
    /// as the flag is set.
    fn ports_promiscuous(&self, _ports: u32) -> Result<()> {
        Ok(())
    }
}

/// Kernel macvlan: the lab's [`Backend::Macvlan`].
pub struct KernelMacvlan;

struct KernelNetwork {
    lab: Lab,
}

impl Subject for KernelMacvlan {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn build(&self, prefix: &str, mode: Mode, ports: u32) -> Result<Box<dyn Network>> {
        let lab = Lab::builder(prefix)
            .containers(ports)
            .backend(Backend::Macvlan(mode))
            .build()
            .with_context(|| format!("building a kernel macvlan {mode} lab"))?;
        Ok(Box::new(KernelNetwork { lab }))
    }
}

/// What a container does to its own interface: the same for every subject, so a scenario means the
/// same thing on each (the container cannot tell a macvlan from an mvdp veth end).
fn container_set_up(lab: &Lab, n: u32, up: bool) -> Result<()> {
    let nl = Netlink::in_netns(&lab.container(n).ns)?;
    if up {
        nl.set_up("eth0")?;
    } else {
        nl.set_down("eth0")?;
    }
    Ok(())
}

fn container_set_mac(lab: &Lab, n: u32, mac: Mac) -> Result<()> {
    Ok(Netlink::in_netns(&lab.container(n).ns)?.set_mac("eth0", mac)?)
}

impl Network for KernelNetwork {
    fn lab(&self) -> &Lab {
        &self.lab
    }

    fn set_port_up(&mut self, n: u32, up: bool) -> Result<()> {
        container_set_up(&self.lab, n, up)
    }

    fn set_port_mac(&mut self, n: u32, mac: Mac) -> Result<()> {
        container_set_mac(&self.lab, n, mac)
    }
}

/// mvdp: a [`Backend::None`] lab, `mvdp daemon` in its host namespace (socket, state and log in a
/// temp dir of the run), one network on the parent and a port per container with the lab's MAC/IP.
/// Port state changes are made inside the container, exactly as for [`KernelMacvlan`]; the daemon
/// notices them by itself.
pub struct Mvdp {
    /// The `mvdp` binary (`env!("CARGO_BIN_EXE_mvdp")` in tests).
    pub bin: PathBuf,
}

/// How long the daemon may take to notice a container's change to its end (it polls every 200 ms).
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(3);

struct MvdpNetwork {
    // Declared first so it drops first: the daemon releases the parent before the lab goes.
    daemon: OwnedDaemon,
    lab: Lab,
}

impl Subject for Mvdp {
    fn name(&self) -> &'static str {
        "mvdp"
    }

    fn build(&self, prefix: &str, mode: Mode, ports: u32) -> Result<Box<dyn Network>> {
        let lab = Lab::builder(prefix)
            .containers(ports)
            .build()
            .with_context(|| format!("building the lab for mvdp {mode}"))?;
        let paths = DaemonPaths::new(std::env::temp_dir().join(format!("mvdp-{prefix}")));
        let _ = std::fs::remove_dir_all(&paths.dir);
        let daemon = OwnedDaemon::start(&self.bin, lab.host(), paths)?;
        let net = MvdpNetwork { daemon, lab };
        attach_containers(&net.daemon.socket(), &net.lab, LAB_NETWORK, mode)
            .with_context(|| format!("daemon log:\n{}", net.daemon.log()))?;
        Ok(Box::new(net))
    }
}

impl Network for MvdpNetwork {
    fn lab(&self) -> &Lab {
        &self.lab
    }

    fn set_port_up(&mut self, n: u32, up: bool) -> Result<()> {
        container_set_up(&self.lab, n, up)?;
        let want = if up { "up" } else { "down" };
        self.await_port(n, want, |p| p.state == want)
    }

    fn set_port_mac(&mut self, n: u32, mac: Mac) -> Result<()> {
        container_set_mac(&self.lab, n, mac)?;
        let want = mac.to_string();
        self.await_port(n, "MAC", |p| p.mac == want)
    }

    /// The daemon opens a port's multicast filter when the kernel announces its container end's
    /// new promiscuity; `port ls` then shows no group list.
    fn ports_promiscuous(&self, ports: u32) -> Result<()> {
        for n in 1..=ports {
            self.await_port(n, "promiscuous", |p| p.multicast.is_none())?;
        }
        Ok(())
    }
}

impl MvdpNetwork {
    /// Waits until the daemon's `port ls` shows container `n`'s port satisfying `done` (it polls the
    /// containers' ends every 200 ms).
    fn await_port(&self, n: u32, what: &str, done: impl Fn(&PortSummary) -> bool) -> Result<()> {
        let ns = self.lab.container(n).ns.name();
        let end = Instant::now() + FOLLOW_TIMEOUT;
        loop {
            let v = call(&self.daemon.socket(), &Request::PortLs {})?;
            let ports: Vec<PortSummary> = serde_json::from_value(v)?;
            if ports
                .iter()
                .any(|p| p.netns.as_deref() == Some(ns) && done(p))
            {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "the daemon did not follow {ns}'s eth0 ({what}) within {FOLLOW_TIMEOUT:?}: {ports:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
