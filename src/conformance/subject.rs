//! The implementation under test. A [`Subject`] builds, for one mode, a lab whose containers are the
//! ports of one network on the host's parent `eth1`; the [`Network`] it returns lets the runner change
//! the ports' state. The runner does the rest (wire hairpin, sending, recording) the same way for all.
//!
//! mvdp plugs in with one impl: build a lab with `Backend::None`, run the daemon in the host namespace,
//! `mvdp network create` + `mvdp port add NET --netns NS --mac MAC --ip IP` per container (port `n` is
//! container `n`, interface `eth0`, MAC/IP from `lab::container_mac`/`container_ip`), and map
//! `set_port_up`/`set_port_mac` onto the daemon's port commands.

use anyhow::{Context, Result};
use mvdp_control::{Backend, Lab, MacAddr, MacvlanMode, Netlink};

/// An implementation of the macvlan modes.
pub trait Subject: Sync {
    /// Column name in the report ("kernel", "mvdp").
    fn name(&self) -> &'static str;
    /// Builds lab `prefix` with `ports` containers attached as ports of one `mode` network. The ports'
    /// MACs are the lab's container MACs, except that a passthru port may carry the parent's.
    fn build(&self, prefix: &str, mode: MacvlanMode, ports: u32) -> Result<Box<dyn Network>>;
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
    fn set_port_mac(&mut self, n: u32, mac: MacAddr) -> Result<()>;
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

    fn build(&self, prefix: &str, mode: MacvlanMode, ports: u32) -> Result<Box<dyn Network>> {
        let lab = Lab::builder(prefix)
            .containers(ports)
            .backend(Backend::Macvlan(mode))
            .build()
            .with_context(|| format!("building a kernel macvlan {mode} lab"))?;
        Ok(Box::new(KernelNetwork { lab }))
    }
}

impl KernelNetwork {
    fn port_nl(&self, n: u32) -> Result<Netlink> {
        Ok(Netlink::in_netns(&self.lab.container(n).ns)?)
    }
}

impl Network for KernelNetwork {
    fn lab(&self) -> &Lab {
        &self.lab
    }

    fn set_port_up(&mut self, n: u32, up: bool) -> Result<()> {
        let nl = self.port_nl(n)?;
        if up {
            nl.set_up("eth0")?;
        } else {
            nl.set_down("eth0")?;
        }
        Ok(())
    }

    fn set_port_mac(&mut self, n: u32, mac: MacAddr) -> Result<()> {
        Ok(self.port_nl(n)?.set_mac("eth0", mac)?)
    }
}
