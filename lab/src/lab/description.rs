//! What a lab looks like from outside: `mvdp lab up --json`, `mvdp lab ls`.

use std::net::Ipv4Addr;

use super::addressing::*;
use super::built::{ContainerLink, Lab};
use super::daemon::LabDaemon;
use crate::backend::Backend;
use mvdp_switch::Mac;

/// What `mvdp lab up --json` prints; also `Lab::description`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabDescription {
    pub name: String,
    /// "none", "bridge", "macvlan:MODE", "mvdp:MODE".
    pub backend: Backend,
    /// With the mvdp backend: the daemon `lab up` started (stopped by `lab down`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<LabDaemon>,
    pub subnet: String,
    pub namespaces: Vec<String>,
    pub wire: WireDescription,
    pub ext: EndpointDescription,
    pub hosts: Vec<HostDescription>,
    pub containers: Vec<ContainerDescription>,
}

/// A daemon serving a lab (the mvdp backend), as recorded for `lab down`.

#[derive(Debug, Clone, serde::Serialize)]
pub struct WireDescription {
    pub netns: String,
    pub bridge: String,
    pub ports: Vec<String>,
    pub hairpin: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointDescription {
    pub netns: String,
    pub ifname: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub wire_port: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostDescription {
    pub netns: String,
    pub parent: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub wire_port: String,
    /// The interface carrying `ip` (the parent, or the host bridge with the bridge backend).
    pub ip_ifname: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerDescription {
    pub netns: String,
    /// Interface in the container (only when `veth`).
    pub ifname: String,
    /// The host-side veth end (only when `veth`).
    pub host_ifname: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub veth: bool,
    /// What `ifname` is ("none" when the container has no interface).
    pub link: ContainerLink,
}

/// A lab found on the system by its namespace names (`mvdp lab ls`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabSummary {
    pub name: String,
    pub namespaces: Vec<String>,
    /// The backend `mvdp lab up` recorded; `None` for labs it did not record (built by a test in another
    /// process, or by hand).
    pub backend: Option<Backend>,
}

impl Lab {
    /// A serialisable description of the lab (what `mvdp lab up` prints).
    pub fn description(&self) -> LabDescription {
        let mut ports = vec![EXT_WIRE_PORT.to_string()];
        ports.extend(self.hosts.iter().map(|h| h.wire_port.clone()));
        LabDescription {
            name: self.prefix.clone(),
            backend: self.backend,
            daemon: None,
            subnet: format!("{LAB_NET}/{LAB_PREFIX_LEN}"),
            namespaces: self.namespaces(),
            wire: WireDescription {
                netns: self.wire.name().to_string(),
                bridge: BRIDGE.to_string(),
                ports,
                hairpin: self.hairpin,
            },
            ext: EndpointDescription {
                netns: self.ext.name().to_string(),
                ifname: EXT_IFNAME.to_string(),
                mac: EXT_MAC,
                ip: EXT_IP,
                wire_port: EXT_WIRE_PORT.to_string(),
            },
            hosts: self
                .hosts
                .iter()
                .map(|h| HostDescription {
                    netns: h.ns.name().to_string(),
                    parent: h.parent_ifname.clone(),
                    mac: h.parent_mac,
                    ip: h.ip,
                    wire_port: h.wire_port.clone(),
                    ip_ifname: h.ip_ifname().to_string(),
                })
                .collect(),
            containers: self
                .containers
                .iter()
                .map(|c| ContainerDescription {
                    netns: c.ns.name().to_string(),
                    ifname: c.ifname.clone(),
                    host_ifname: c.host_ifname.clone(),
                    mac: c.mac,
                    ip: c.ip,
                    veth: c.veth,
                    link: c.link,
                })
                .collect(),
        }
    }
}
