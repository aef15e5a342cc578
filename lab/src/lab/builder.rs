//! Building a lab: [`LabBuilder`], its checks, and attaching containers with the lab's own backends.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::addressing::*;
use super::built::{ContainerLink, Lab, LabContainer, LabHost};
use super::cleanup::Created;
use crate::backend::Backend;
use mvdp_control::error::{Error, Result};
use mvdp_control::names::{validate_prefix, Role};
use mvdp_control::netlink::{Netlink, VethEnd};
use mvdp_control::netns::{is_root, NetNs};
use mvdp_control::offload::set_offloads;
use mvdp_switch::Mac;

impl Lab {
    /// Starts building lab `prefix` (namespaces `{prefix}-wire`, `{prefix}-ext`, `{prefix}-host`, ...).
    pub fn builder(prefix: &str) -> LabBuilder {
        LabBuilder {
            prefix: prefix.to_string(),
            containers: 2,
            hosts: 1,
            hairpin: false,
            container_veths: false,
            container_addrs: BTreeMap::new(),
            ipv6: false,
            backend: Backend::None,
        }
    }
}

/// Per-container addressing (defaults: [`container_mac`], [`container_ip`], MTU 1500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerAddr {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub mtu: Option<u32>,
}

/// Builds a [`Lab`]; see the module docs for the shape.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    prefix: String,
    containers: u32,
    hosts: u32,
    hairpin: bool,
    container_veths: bool,
    container_addrs: BTreeMap<u32, ContainerAddr>,
    ipv6: bool,
    backend: Backend,
}

impl LabBuilder {
    /// What connects the containers to the (first) host's parent (default [`Backend::None`]: nothing).
    /// Every container gets `eth0` with its [`ContainerAddr`], up, except with `None`.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// Number of container namespaces `{prefix}-c1..cN` (default 2; at most [`MAX_CONTAINERS`]).
    pub fn containers(mut self, n: u32) -> Self {
        self.containers = n;
        self
    }
    /// Number of hosts (default 1 → `{prefix}-host`; 2 or more → `{prefix}-host1..hostN`).
    pub fn hosts(mut self, n: u32) -> Self {
        self.hosts = n;
        self
    }
    /// Hairpin (reflective relay) on the wire bridge's ports towards the parents: what VEPA needs.
    pub fn hairpin(mut self, on: bool) -> Self {
        self.hairpin = on;
        self
    }
    /// Also create a veth per container between the (first) host and the container, see
    /// [`Lab::add_container_veth`] (default off: containers are empty except `lo`).
    pub fn container_veths(mut self, on: bool) -> Self {
        self.container_veths = on;
        self
    }
    /// Overrides container `n`'s (1-based) MAC, IP and MTU for its veth.
    pub fn container_addr(mut self, n: u32, addr: ContainerAddr) -> Self {
        self.container_addrs.insert(n, addr);
        self
    }
    /// Keep IPv6 enabled in the lab's namespaces (default off: no router solicitations, MLD reports or
    /// DAD frames showing up in captures).
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// The addressing container `n` (1-based) will get.
    pub fn container_addr_of(&self, n: u32) -> ContainerAddr {
        self.container_addrs
            .get(&n)
            .copied()
            .unwrap_or(ContainerAddr {
                mac: container_mac(n),
                ip: container_ip(n),
                mtu: None,
            })
    }

    fn host_roles(&self) -> Vec<Role> {
        if self.hosts == 1 {
            vec![Role::Host(None)]
        } else {
            (1..=self.hosts).map(|n| Role::Host(Some(n))).collect()
        }
    }

    /// Checks everything that can be checked without touching the system.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        if self.hosts == 0 || self.hosts > MAX_HOSTS {
            return Err(Error::invalid(
                "host count",
                self.hosts.to_string(),
                format!("must be 1..={MAX_HOSTS}"),
            ));
        }
        self.validate_backend()?;
        if self.containers > MAX_CONTAINERS {
            return Err(Error::invalid(
                "container count",
                self.containers.to_string(),
                format!("at most {MAX_CONTAINERS}"),
            ));
        }
        if let Some(n) = self
            .container_addrs
            .keys()
            .find(|n| **n == 0 || **n > self.containers)
        {
            return Err(Error::invalid(
                "container number",
                n.to_string(),
                format!("must be 1..={}", self.containers),
            ));
        }
        self.validate_addresses()
    }

    /// The backend can serve the containers, and the lab can build it.
    fn validate_backend(&self) -> Result<()> {
        self.backend.validate(self.containers)?;
        if let Backend::Mvdp(_) = self.backend {
            return Err(Error::invalid(
                "backend",
                self.backend.to_string(),
                "the lab cannot attach mvdp ports itself: the mvdp daemon owns them. Build the lab \
                 with Backend::None, run the daemon in the host namespace and add the ports with \
                 `mvdp port add`",
            ));
        }
        if matches!(
            self.backend,
            Backend::Ceiling
                | Backend::MvdpBusy
                | Backend::MvdpTraced
                | Backend::CeilingTraced
                | Backend::MvdpBusyTraced
                | Backend::MvdpColocated
                | Backend::OvsAfxdp
                | Backend::OvsAfxdpNonPmd
        ) {
            return Err(Error::invalid(
                "backend",
                self.backend.to_string(),
                "a bench-only backend: mvdp bench starts it itself on a lab built with container \
                 veths (or with Backend::None)",
            ));
        }
        if self.backend != Backend::None && self.container_veths {
            return Err(Error::invalid(
                "backend",
                self.backend.to_string(),
                "container_veths(true) makes its own container links; use one or the other",
            ));
        }
        Ok(())
    }

    /// Container IPs and MACs are lab addresses, unicast, and unique (hosts and the external
    /// host included).
    fn validate_addresses(&self) -> Result<()> {
        let mut used: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        used.insert(EXT_IP, "the external host".into());
        for h in 1..=self.hosts {
            used.insert(host_ip(h), format!("host {h}"));
        }
        let mut macs: BTreeMap<Mac, String> = BTreeMap::new();
        macs.insert(EXT_MAC, "the external host".into());
        for h in 1..=self.hosts {
            macs.insert(host_mac(h), format!("host {h}"));
        }
        for n in 1..=self.containers {
            let a = self.container_addr_of(n);
            if !is_lab_ip(a.ip) {
                return Err(Error::invalid(
                    "container IP",
                    a.ip.to_string(),
                    "lab addresses must be host addresses in 198.18.0.0/24 (RFC 2544)",
                ));
            }
            if let Some(other) = used.insert(a.ip, format!("container {n}")) {
                return Err(Error::invalid(
                    "container IP",
                    a.ip.to_string(),
                    format!("already used by {other}"),
                ));
            }
            if !a.mac.is_valid_unicast() {
                return Err(Error::invalid(
                    "container MAC",
                    a.mac.to_string(),
                    "must be a non-zero unicast address",
                ));
            }
            if let Some(other) = macs.insert(a.mac, format!("container {n}")) {
                return Err(Error::invalid(
                    "container MAC",
                    a.mac.to_string(),
                    format!("already used by {other}"),
                ));
            }
        }
        Ok(())
    }

    /// Builds the lab. All or nothing: on any error every namespace created so far is removed first.
    /// Refuses when any `{prefix}-<role>` namespace already exists.
    pub fn build(self) -> Result<Lab> {
        if !is_root() {
            return Err(Error::NotRoot(format!("building lab {}", self.prefix)));
        }
        self.validate()?;
        let existing = Lab::namespaces_of(&self.prefix)?;
        if !existing.is_empty() {
            return Err(Error::LabExists {
                prefix: self.prefix.clone(),
                namespaces: existing,
            });
        }
        let mut created = Created::new();
        // On error `created` drops here and removes what was made.
        let parts = self.build_parts(&mut created)?;
        Ok(Lab { created, ..parts })
    }

    fn new_ns(&self, created: &mut Created, role: Role) -> Result<(NetNs, Netlink)> {
        let ns = created.create(&role.netns_name(&self.prefix))?;
        if !self.ipv6 {
            ns.run(disable_ipv6)??;
        }
        let nl = Netlink::in_netns(&ns)?;
        nl.set_up("lo")?;
        Ok((ns, nl))
    }

    fn build_parts(&self, created: &mut Created) -> Result<Lab> {
        tracing::debug!(lab = %self.prefix, "building lab");
        let (wire, wire_nl) = self.build_wire(created)?;
        let ext = self.build_ext(created, &wire, &wire_nl)?;
        let mut hosts = Vec::new();
        for (i, role) in self.host_roles().into_iter().enumerate() {
            hosts.push(self.build_host(created, &wire, &wire_nl, i as u32 + 1, role)?);
        }
        let mut containers = Vec::new();
        for n in 1..=self.containers {
            containers.push(self.build_container(created, n)?);
        }
        let mut lab = Lab {
            prefix: self.prefix.clone(),
            hairpin: self.hairpin,
            backend: self.backend,
            wire,
            ext,
            hosts,
            containers,
            // The caller's guard owns the namespaces.
            created: Created {
                id: 0,
                namespaces: Vec::new(),
                keep: true,
            },
        };
        if self.container_veths {
            lab.attach_veths()?;
        }
        match self.backend {
            Backend::None => {}
            Backend::Macvlan(mode) => lab.attach_macvlans(mode)?,
            Backend::Bridge => lab.attach_bridge()?,
            // Refused by validate().
            Backend::Mvdp(_)
            | Backend::Ceiling
            | Backend::MvdpBusy
            | Backend::MvdpTraced
            | Backend::CeilingTraced
            | Backend::MvdpBusyTraced
            | Backend::MvdpColocated
            | Backend::OvsAfxdp
            | Backend::OvsAfxdpNonPmd => {
                unreachable!("validate refuses the mvdp and bench-only backends")
            }
        }
        Ok(lab)
    }

    /// The wire switch: a namespace with bridge [`BRIDGE`].
    fn build_wire(&self, created: &mut Created) -> Result<(NetNs, Netlink)> {
        let (wire, wire_nl) = self.new_ns(created, Role::Wire)?;
        wire_nl.add_bridge(BRIDGE)?;
        wire_nl.set_up(BRIDGE)?;
        Ok((wire, wire_nl))
    }

    /// The external host, on the wire bridge's port [`EXT_WIRE_PORT`].
    fn build_ext(&self, created: &mut Created, wire: &NetNs, wire_nl: &Netlink) -> Result<NetNs> {
        let (ext, ext_nl) = self.new_ns(created, Role::Ext)?;
        wire_nl.add_veth(
            VethEnd::new(EXT_WIRE_PORT),
            VethEnd::new(EXT_IFNAME).netns(&ext).mac(EXT_MAC),
        )?;
        wire_nl.set_master(EXT_WIRE_PORT, BRIDGE)?;
        set_offloads(wire, EXT_WIRE_PORT, TAGS_IN_DATA_TX)?;
        wire_nl.set_up(EXT_WIRE_PORT)?;
        set_offloads(&ext, EXT_IFNAME, WIRE_TX)?;
        ext_nl.add_address(EXT_IFNAME, IpAddr::V4(EXT_IP), LAB_PREFIX_LEN)?;
        ext_nl.set_up(EXT_IFNAME)?;
        Ok(ext)
    }

    /// Host `n`, with a parent NIC whose peer is the wire bridge's port `whost{n}`.
    fn build_host(
        &self,
        created: &mut Created,
        wire: &NetNs,
        wire_nl: &Netlink,
        n: u32,
        role: Role,
    ) -> Result<LabHost> {
        let (ns, nl) = self.new_ns(created, role)?;
        let port = format!("whost{n}");
        wire_nl.add_veth(
            VethEnd::new(&port),
            VethEnd::new(PARENT_IFNAME).netns(&ns).mac(host_mac(n)),
        )?;
        wire_nl.set_master(&port, BRIDGE)?;
        if self.hairpin {
            wire_nl.set_hairpin(&port, true)?;
        }
        set_offloads(wire, &port, TAGS_IN_DATA_TX)?;
        wire_nl.set_up(&port)?;
        set_offloads(&ns, PARENT_IFNAME, TAGS_IN_DATA_RX)?;
        set_offloads(&ns, PARENT_IFNAME, WIRE_TX)?;
        nl.add_address(PARENT_IFNAME, IpAddr::V4(host_ip(n)), LAB_PREFIX_LEN)?;
        nl.set_up(PARENT_IFNAME)?;
        Ok(LabHost {
            n,
            ns,
            parent_ifname: PARENT_IFNAME.to_string(),
            parent_mac: host_mac(n),
            ip: host_ip(n),
            wire_port: port,
            bridge: None,
        })
    }

    /// Container `n`: an empty namespace (lo up) with its planned addressing.
    fn build_container(&self, created: &mut Created, n: u32) -> Result<LabContainer> {
        let (ns, _nl) = self.new_ns(created, Role::Container(n))?;
        let addr = self.container_addr_of(n);
        Ok(LabContainer {
            n,
            ns,
            ifname: CONTAINER_IFNAME.to_string(),
            host_ifname: format!("vc{n}"),
            mac: addr.mac,
            ip: addr.ip,
            mtu: addr.mtu,
            veth: false,
            link: ContainerLink::None,
        })
    }
}

impl Lab {
    /// Creates container namespace `{prefix}-c{n}` after the build, for scenarios with more
    /// containers than the builder makes (the density bench: up to a thousand): the namespace
    /// only, IPv6 off and `lo` up, registered like the lab's own (removed with the lab, on error
    /// and on Ctrl-C). It is not one of [`Lab::containers`]: its link and addressing are the
    /// caller's. Fails when the namespace exists.
    pub fn add_bare_container(&mut self, n: u32) -> Result<NetNs> {
        if n == 0 {
            return Err(Error::invalid("container number", "0", "must be 1 or more"));
        }
        let ns = self
            .created
            .create(&Role::Container(n).netns_name(&self.prefix))?;
        ns.run(disable_ipv6)??;
        Netlink::in_netns(&ns)?.set_up("lo")?;
        Ok(ns)
    }
}

fn disable_ipv6() -> Result<()> {
    for knob in ["all", "default"] {
        let path = format!("/proc/sys/net/ipv6/conf/{knob}/disable_ipv6");
        match std::fs::write(&path, "1") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()), // no IPv6 in this kernel
            Err(e) => return Err(Error::io(format!("writing {path}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvdp_switch::Mode;

    #[test]
    fn builder_validation() {
        assert!(Lab::builder("ok").validate().is_ok());
        assert!(Lab::builder("ok")
            .hosts(2)
            .containers(MAX_CONTAINERS)
            .validate()
            .is_ok());
        assert!(Lab::builder("Bad").validate().is_err());
        assert!(Lab::builder("ok").hosts(0).validate().is_err());
        assert!(Lab::builder("ok")
            .containers(MAX_CONTAINERS + 1)
            .validate()
            .is_err());
        let addr = |mac: Mac, ip: [u8; 4]| ContainerAddr {
            mac,
            ip: Ipv4Addr::from(ip),
            mtu: None,
        };
        let b = Lab::builder("ok").containers(2);
        let e = b
            .clone()
            .container_addr(1, addr(container_mac(1), [10, 0, 0, 1]))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("198.18.0.0/24"), "{e}");
        assert!(b
            .clone()
            .container_addr(1, addr(container_mac(1), [198, 18, 0, 254]))
            .validate()
            .is_err());
        assert!(b
            .clone()
            .container_addr(1, addr(container_mac(1), [198, 18, 0, 11]))
            .validate()
            .is_err());
        let e = b
            .clone()
            .container_addr(2, addr(Mac([1, 0, 0x5e, 0, 0, 1]), [198, 18, 0, 50]))
            .validate();
        assert!(e.unwrap_err().to_string().contains("container MAC"));
        assert!(b
            .clone()
            .container_addr(2, addr(container_mac(1), [198, 18, 0, 50]))
            .validate()
            .is_err());
        assert!(b
            .clone()
            .container_addr(3, addr(container_mac(3), [198, 18, 0, 50]))
            .validate()
            .is_err());
        assert!(b
            .container_addr(2, addr(Mac::lab(9, 9, 9), [198, 18, 0, 50]))
            .validate()
            .is_ok());
    }

    #[test]
    fn backend_validation() {
        let b = Lab::builder("ok").containers(2);
        assert!(b
            .clone()
            .backend(Backend::Macvlan(Mode::Passthru))
            .validate()
            .is_err());
        assert!(b
            .clone()
            .containers(1)
            .backend(Backend::Macvlan(Mode::Passthru))
            .validate()
            .is_ok());
        let e = b
            .clone()
            .backend(Backend::Mvdp(Mode::Bridge))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("mvdp daemon"), "{e}");
        assert!(b
            .backend(Backend::Bridge)
            .container_veths(true)
            .validate()
            .is_err());
    }

    #[test]
    fn host_roles() {
        assert_eq!(Lab::builder("x").host_roles(), vec![Role::Host(None)]);
        assert_eq!(
            Lab::builder("x").hosts(2).host_roles(),
            vec![Role::Host(Some(1)), Role::Host(Some(2))]
        );
    }
}
