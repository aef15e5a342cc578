//! A built lab: [`Lab`], its hosts and containers, and what can be done to it.

use std::net::{IpAddr, Ipv4Addr};

use super::addressing::*;
use super::cleanup::Created;
use crate::backend::Backend;
use mvdp_control::error::{Error, Result};
use mvdp_control::names::validate_ifname;
use mvdp_control::netlink::{Netlink, VethEnd};
use mvdp_control::netns::NetNs;
use mvdp_control::offload::{set_offloads, Offload};
use mvdp_switch::Mac;

/// A host namespace holding a parent NIC.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// 1-based host number.
    pub n: u32,
    pub ns: NetNs,
    pub parent_ifname: String,
    pub parent_mac: Mac,
    pub ip: Ipv4Addr,
    /// The wire bridge's port (in the wire namespace) that is the parent's veth peer.
    pub wire_port: String,
    /// With [`Backend::Bridge`] (first host only): the bridge holding the parent, which carries `ip`.
    pub bridge: Option<String>,
}

impl LabHost {
    /// The interface carrying the host's IP: the bridge with [`Backend::Bridge`], else the parent.
    pub fn ip_ifname(&self) -> &str {
        self.bridge.as_deref().unwrap_or(&self.parent_ifname)
    }
}

/// What a container's `eth0` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerLink {
    /// No interface besides `lo`.
    None,
    /// A veth whose peer is `host_ifname` in the host.
    Veth,
    /// A kernel macvlan child of the host's parent.
    Macvlan,
    /// A port of the lab's mvdp daemon (a veth whose host end the daemon drives).
    Mvdp,
}

/// A container namespace. `mac`/`ip` are its planned addressing; `veth` says whether the lab created its
/// veth (`host_ifname` in the host namespace ↔ `ifname` here).
#[derive(Debug, Clone)]
pub struct LabContainer {
    /// 1-based container number.
    pub n: u32,
    pub ns: NetNs,
    pub ifname: String,
    pub host_ifname: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub mtu: Option<u32>,
    pub veth: bool,
    pub link: ContainerLink,
}

impl LabContainer {
    /// A veth for this container with its planned name, MAC, IP and MTU (host end `host_ifname`).
    pub fn veth_spec(&self) -> ContainerVeth {
        ContainerVeth {
            host_ifname: self.host_ifname.clone(),
            container_ifname: self.ifname.clone(),
            mac: Some(self.mac),
            ip: Some((self.ip, LAB_PREFIX_LEN)),
            mtu: self.mtu,
        }
    }
}

/// A veth between a host namespace and a container namespace (see [`Lab::add_container_veth`]).
#[derive(Debug, Clone)]
pub struct ContainerVeth {
    pub host_ifname: String,
    pub container_ifname: String,
    pub mac: Option<Mac>,
    pub ip: Option<(Ipv4Addr, u8)>,
    pub mtu: Option<u32>,
}

/// A built lab. Dropping it removes every namespace it created (their interfaces die with them).
#[derive(Debug)]
pub struct Lab {
    pub(super) prefix: String,
    pub(super) hairpin: bool,
    pub(super) backend: Backend,
    pub(super) wire: NetNs,
    pub(super) ext: NetNs,
    pub(super) hosts: Vec<LabHost>,
    pub(super) containers: Vec<LabContainer>,
    pub(super) created: Created,
}

impl Lab {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn hairpin(&self) -> bool {
        self.hairpin
    }
    pub fn backend(&self) -> Backend {
        self.backend
    }
    /// Every namespace name of this lab, in creation order.
    pub fn namespaces(&self) -> Vec<String> {
        self.created
            .namespaces
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    /// The wire switch's namespace (bridge [`BRIDGE`]).
    pub fn wire(&self) -> &NetNs {
        &self.wire
    }
    pub fn bridge_name(&self) -> &str {
        BRIDGE
    }
    /// The external host's namespace.
    pub fn ext(&self) -> &NetNs {
        &self.ext
    }
    pub fn ext_ifname(&self) -> &str {
        EXT_IFNAME
    }
    pub fn ext_ip(&self) -> Ipv4Addr {
        EXT_IP
    }
    pub fn ext_mac(&self) -> Mac {
        EXT_MAC
    }
    /// The wire bridge's port towards the external host.
    pub fn ext_wire_port(&self) -> &str {
        EXT_WIRE_PORT
    }

    /// All hosts.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }
    /// Host `n` (1-based). Panics when out of range.
    pub fn host_n(&self, n: u32) -> &LabHost {
        &self.hosts[(n - 1) as usize]
    }
    /// The first host's namespace.
    pub fn host(&self) -> &NetNs {
        &self.hosts[0].ns
    }
    /// The first host's parent NIC name ("eth1").
    pub fn parent_ifname(&self) -> &str {
        &self.hosts[0].parent_ifname
    }
    /// The first host's parent IP (198.18.0.1).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.hosts[0].ip
    }
    /// The first host's parent MAC.
    pub fn parent_mac(&self) -> Mac {
        self.hosts[0].parent_mac
    }
    /// The wire bridge port of host `n`'s (1-based) parent.
    pub fn wire_port(&self, n: u32) -> &str {
        &self.host_n(n).wire_port
    }

    /// All containers.
    pub fn containers(&self) -> &[LabContainer] {
        &self.containers
    }
    /// Container `n` (1-based). Panics when out of range.
    pub fn container(&self, n: u32) -> &LabContainer {
        &self.containers[(n - 1) as usize]
    }

    /// Creates a veth between host `host` (1-based; 0 means the first) and container `container`
    /// (1-based): `spec.host_ifname` in the host namespace, `spec.container_ifname` directly in the
    /// container's namespace (never anywhere else) with the given MAC, MTU (both ends) and IP. Both ends
    /// are set up, `lo` too; the container end gets TX checksum offload off. On error the pair is removed.
    pub fn add_container_veth(
        &self,
        host: u32,
        container: u32,
        spec: &ContainerVeth,
    ) -> Result<()> {
        validate_ifname(&spec.host_ifname)?;
        validate_ifname(&spec.container_ifname)?;
        if let Some((ip, _)) = spec.ip {
            if !is_lab_ip(ip) {
                return Err(Error::invalid(
                    "container IP",
                    ip.to_string(),
                    "lab addresses must be in 198.18.0.0/24",
                ));
            }
        }
        let h = &self.hosts[host.saturating_sub(1) as usize];
        let c = self
            .containers
            .get((container as usize).wrapping_sub(1))
            .ok_or_else(|| {
                Error::invalid(
                    "container number",
                    container.to_string(),
                    "no such container",
                )
            })?;
        let host_nl = Netlink::in_netns(&h.ns)?;
        let mut peer = VethEnd::new(&spec.container_ifname).netns(&c.ns);
        let mut local = VethEnd::new(&spec.host_ifname);
        if let Some(mac) = spec.mac {
            peer = peer.mac(mac);
        }
        if let Some(mtu) = spec.mtu {
            peer = peer.mtu(mtu);
            local = local.mtu(mtu);
        }
        host_nl.add_veth(local, peer)?;
        let rest = || -> Result<()> {
            let c_nl = Netlink::in_netns(&c.ns)?;
            set_offloads(
                &c.ns,
                &spec.container_ifname,
                &[(Offload::TxChecksum, false)],
            )?;
            if let Some((ip, len)) = spec.ip {
                c_nl.add_address(&spec.container_ifname, IpAddr::V4(ip), len)?;
            }
            c_nl.set_up("lo")?;
            c_nl.set_up(&spec.container_ifname)?;
            host_nl.set_up(&spec.host_ifname)?;
            Ok(())
        };
        rest().inspect_err(|_| {
            let _ = host_nl.del_link(&spec.host_ifname);
        })
    }

    /// Removes the lab now, reporting cleanup errors (dropping does the same silently).
    pub fn destroy(mut self) -> Result<()> {
        self.created.destroy()
    }
}
