//! The netns test lab: an external switch, an external host, one or two hosts with a parent NIC, and N
//! container namespaces, all under a unique name prefix, removed on drop, on panic and on Ctrl-C.
//!
//! ```text
//!  {prefix}-ext            {prefix}-wire                          {prefix}-host (or host1, host2)
//!  eth0 198.18.0.254 ──── wext ─ br0 ─ whost1 ─────────────────── eth1 198.18.0.1 (the parent NIC)
//!                                     (hairpin on whostN if asked)  vc1..vcN ── eth0 in {prefix}-c1..cN
//!                                                                   (only with container veths)
//! ```
//!
//! Addresses come only from the RFC 2544 benchmarking range 198.18.0.0/24: hosts' parents 198.18.0.1..,
//! containers from 198.18.0.10, the external host 198.18.0.254. MACs are locally administered
//! 02:6d:76:xx:xx:xx. Offloads: the wire bridge's veth ends and the external host's end have `txvlan` (and
//! the 802.1ad twin) off so tags stay in frame data, each parent has `rxvlan` (and twin) off, container
//! ends have TX checksum offload off. IPv6 is disabled in every lab namespace unless asked for.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use crate::backend::Backend;
use mvdp_control::error::{Error, Result};
use mvdp_control::names::{parse_lab_netns, validate_ifname, validate_prefix, Role};
use mvdp_control::netlink::{MacvlanOptions, Netlink, VethEnd};
use mvdp_control::netns::{is_root, NetNs};
use mvdp_control::offload::{set_offloads, Offload};
use mvdp_control::MacAddr;
use mvdp_control::MacvlanMode;

/// The lab's subnet, 198.18.0.0/24 (RFC 2544 benchmarking range).
pub const LAB_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
pub const LAB_PREFIX_LEN: u8 = 24;
/// The external host's address.
pub const EXT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The wire switch's bridge name.
pub const BRIDGE: &str = "br0";
/// The host's bridge with [`Backend::Bridge`] (holds the parent and the containers' veths, and the host IP).
pub const HOST_BRIDGE: &str = "br0";
/// The external host's interface (in `{prefix}-ext`).
pub const EXT_IFNAME: &str = "eth0";
/// The wire bridge's port towards the external host.
pub const EXT_WIRE_PORT: &str = "wext";
/// The parent NIC's name in every host namespace.
pub const PARENT_IFNAME: &str = "eth1";
/// The interface name on the container side of container veths.
pub const CONTAINER_IFNAME: &str = "eth0";
/// Most containers a lab builds (keeps container IPs inside 198.18.0.10..=198.18.0.209).
pub const MAX_CONTAINERS: u32 = 200;
/// Most hosts a lab builds.
pub const MAX_HOSTS: u32 = 8;

/// IP of host `n` (1-based): 198.18.0.n.
pub fn host_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n as u8)
}
/// MAC of host `n`'s parent NIC.
pub fn host_mac(n: u32) -> MacAddr {
    MacAddr::lab(0, 0, n as u8)
}
/// Default IP of container `n` (1-based): 198.18.0.(9+n).
pub fn container_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, (9 + n) as u8)
}
/// Default MAC of container `n`.
pub fn container_mac(n: u32) -> MacAddr {
    MacAddr::lab(0, 1, n as u8)
}
/// The external host's MAC.
pub const EXT_MAC: MacAddr = MacAddr::lab(0, 0, 0xfe);

/// Transmit 802.1Q/802.1ad tags in frame data, not as offload metadata (wire ports, external host).
const TAGS_IN_DATA_TX: &[(Offload, bool)] =
    &[(Offload::TxVlan, false), (Offload::TxVlanStag, false)];
/// What a real wire carries: complete frames. Stacks that transmit onto the lab's wire (the external
/// host, each host's parent) finish checksums themselves, as a NIC would before the wire; a veth would
/// otherwise hand CHECKSUM_PARTIAL frames across, which XDP (and so AF_XDP) sees unfinished.
const WIRE_TX: &[(Offload, bool)] = &[
    (Offload::TxVlan, false),
    (Offload::TxVlanStag, false),
    (Offload::TxChecksum, false),
];
/// Keep received tags in frame data (parents).
const TAGS_IN_DATA_RX: &[(Offload, bool)] =
    &[(Offload::RxVlan, false), (Offload::RxVlanStag, false)];

/// True for addresses a lab may use: inside 198.18.0.0/24, not the network or broadcast address.
pub fn is_lab_ip(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 198 && o[1] == 18 && o[2] == 0 && o[3] != 0 && o[3] != 255
}

// ---- process-global registry of live labs, for the signal handler ------------------------------------

static LIVE: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static HANDLER: Once = Once::new();

fn live() -> std::sync::MutexGuard<'static, BTreeMap<u64, Vec<String>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes the namespaces of every lab still alive in this process. Returns the names removed. Called by
/// the signal handler; safe to call from anywhere (labs dropped later find their namespaces gone).
pub fn destroy_all_live() -> Vec<String> {
    delete_registered(&mut live())
}

fn delete_registered(labs: &mut BTreeMap<u64, Vec<String>>) -> Vec<String> {
    let mut removed = Vec::new();
    for name in std::mem::take(labs).into_values().flatten() {
        if NetNs::delete_by_name(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Daemons started for a lab being built (`mvdp lab up --backend mvdp`) that run in their own process
/// group, so a Ctrl-C does not reach them: the signal handler stops them before it removes the lab.
static LIVE_DAEMONS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live_daemons() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE_DAEMONS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Has the signal handler of [`install_signal_handler`] stop process `pid` (a child of this process).
pub fn stop_daemon_on_interrupt(pid: u32) {
    live_daemons().push(pid);
}

/// Undoes [`stop_daemon_on_interrupt`] (the daemon was stopped, or is meant to outlive the process).
pub fn forget_daemon_on_interrupt(pid: u32) {
    live_daemons().retain(|p| *p != pid);
}

/// SIGTERM to each of our child processes `pids`, then up to 2 s for them to exit (a daemon releases
/// its XDP program and sockets on the way out).
fn stop_children(pids: &[u32]) {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    for &p in pids {
        let _ = kill(Pid::from_raw(p as i32), Signal::SIGTERM);
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for &p in pids {
        let pid = Pid::from_raw(p as i32);
        while !matches!(
            waitpid(pid, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
        ) {
            if std::time::Instant::now() > end {
                let _ = kill(pid, Signal::SIGKILL);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Installs a SIGINT/SIGTERM/SIGHUP handler (once per process; later calls are no-ops) that removes every
/// live lab's namespaces and exits with status 130. Fails if another `ctrlc` handler is already installed.
pub fn install_signal_handler() -> Result<()> {
    let mut res = Ok(());
    HANDLER.call_once(|| {
        res = ctrlc::set_handler(|| {
            // The registry stays locked until exit: a lab still being built blocks before it
            // registers (and so before it creates) another namespace, which would otherwise leak.
            let mut labs = live();
            stop_children(&std::mem::take(&mut *live_daemons()));
            let removed = delete_registered(&mut labs);
            if !removed.is_empty() {
                eprintln!(
                    "mvdp: interrupted; removed lab namespaces: {}",
                    removed.join(", ")
                );
            }
            std::process::exit(130);
        })
        .map_err(|e| {
            Error::io(
                "installing the SIGINT/SIGTERM handler",
                std::io::Error::other(e.to_string()),
            )
        });
    });
    res
}

/// Owns the namespaces created so far; removes them on drop unless kept. Registered in [`LIVE`].
#[derive(Debug)]
struct Created {
    id: u64,
    namespaces: Vec<NetNs>,
    keep: bool,
}

impl Created {
    fn new() -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        live().insert(id, Vec::new());
        Created {
            id,
            namespaces: Vec::new(),
            keep: false,
        }
    }

    fn create(&mut self, name: &str) -> Result<NetNs> {
        // Register the name before creating it, so a signal arriving in between still removes it.
        live().entry(self.id).or_default().push(name.to_string());
        match NetNs::create(name) {
            Ok(ns) => {
                self.namespaces.push(ns.clone());
                Ok(ns)
            }
            Err(e) => {
                if let Some(v) = live().get_mut(&self.id) {
                    v.retain(|n| n != name);
                }
                Err(e)
            }
        }
    }

    fn destroy(&mut self) -> Result<()> {
        let mut first_err = None;
        // Containers first, the wire last: reverse creation order.
        for ns in self.namespaces.drain(..).rev() {
            match ns.delete() {
                Ok(()) | Err(Error::NetnsNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!("lab cleanup: {e}");
                    first_err.get_or_insert(e);
                }
            }
        }
        live().remove(&self.id);
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.keep {
            live().remove(&self.id);
        } else {
            let _ = self.destroy();
        }
    }
}

// ---- the builder ----------------------------------------------------------------------------------------

/// Per-container addressing (defaults: [`container_mac`], [`container_ip`], MTU 1500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerAddr {
    pub mac: MacAddr,
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
        if self.backend != Backend::None && self.container_veths {
            return Err(Error::invalid(
                "backend",
                self.backend.to_string(),
                "container_veths(true) makes its own container links; use one or the other",
            ));
        }
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
        let mut used: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
        used.insert(EXT_IP, "the external host".into());
        for h in 1..=self.hosts {
            used.insert(host_ip(h), format!("host {h}"));
        }
        let mut macs: BTreeMap<MacAddr, String> = BTreeMap::new();
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
        let prefix = &self.prefix;
        tracing::debug!(lab = %prefix, "building lab");
        // Wire switch.
        let (wire, wire_nl) = self.new_ns(created, Role::Wire)?;
        wire_nl.add_bridge(BRIDGE)?;
        wire_nl.set_up(BRIDGE)?;

        // External host.
        let (ext, ext_nl) = self.new_ns(created, Role::Ext)?;
        wire_nl.add_veth(
            VethEnd::new(EXT_WIRE_PORT),
            VethEnd::new(EXT_IFNAME).netns(&ext).mac(EXT_MAC),
        )?;
        wire_nl.set_master(EXT_WIRE_PORT, BRIDGE)?;
        set_offloads(&wire, EXT_WIRE_PORT, TAGS_IN_DATA_TX)?;
        wire_nl.set_up(EXT_WIRE_PORT)?;
        set_offloads(&ext, EXT_IFNAME, WIRE_TX)?;
        ext_nl.add_address(EXT_IFNAME, IpAddr::V4(EXT_IP), LAB_PREFIX_LEN)?;
        ext_nl.set_up(EXT_IFNAME)?;

        // Hosts, each with a parent NIC whose peer is a port of the wire bridge.
        let mut hosts = Vec::new();
        for (i, role) in self.host_roles().into_iter().enumerate() {
            let n = i as u32 + 1;
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
            set_offloads(&wire, &port, TAGS_IN_DATA_TX)?;
            wire_nl.set_up(&port)?;
            set_offloads(&ns, PARENT_IFNAME, TAGS_IN_DATA_RX)?;
            set_offloads(&ns, PARENT_IFNAME, WIRE_TX)?;
            nl.add_address(PARENT_IFNAME, IpAddr::V4(host_ip(n)), LAB_PREFIX_LEN)?;
            nl.set_up(PARENT_IFNAME)?;
            hosts.push(LabHost {
                n,
                ns,
                parent_ifname: PARENT_IFNAME.to_string(),
                parent_mac: host_mac(n),
                ip: host_ip(n),
                wire_port: port,
                bridge: None,
            });
        }

        // Containers: empty namespaces (lo up), plus a veth to the first host if asked.
        let mut containers = Vec::new();
        for n in 1..=self.containers {
            let (ns, _nl) = self.new_ns(created, Role::Container(n))?;
            let addr = self.container_addr_of(n);
            containers.push(LabContainer {
                n,
                ns,
                ifname: CONTAINER_IFNAME.to_string(),
                host_ifname: format!("vc{n}"),
                mac: addr.mac,
                ip: addr.ip,
                mtu: addr.mtu,
                veth: false,
                link: ContainerLink::None,
            });
        }
        let mut lab = Lab {
            prefix: prefix.clone(),
            hairpin: self.hairpin,
            backend: self.backend,
            wire,
            ext,
            hosts,
            containers,
            created: Created {
                id: 0,
                namespaces: Vec::new(),
                keep: true,
            },
        };
        if self.container_veths {
            for i in 0..lab.containers.len() {
                let c = &lab.containers[i];
                let spec = ContainerVeth {
                    host_ifname: c.host_ifname.clone(),
                    container_ifname: c.ifname.clone(),
                    mac: Some(c.mac),
                    ip: Some((c.ip, LAB_PREFIX_LEN)),
                    mtu: c.mtu,
                };
                lab.add_container_veth(0, c.n, &spec)?;
                lab.containers[i].veth = true;
                lab.containers[i].link = ContainerLink::Veth;
            }
        }
        match self.backend {
            Backend::None => {}
            Backend::Macvlan(mode) => lab.attach_macvlans(mode)?,
            Backend::Bridge => lab.attach_bridge()?,
            // Refused by validate().
            Backend::Mvdp(_) => unreachable!("validate refuses the mvdp backend"),
        }
        Ok(lab)
    }
}

impl Lab {
    /// [`Backend::Macvlan`]: each container's `eth0` is a macvlan child of the first host's parent,
    /// created straight into the container's namespace.
    fn attach_macvlans(&mut self, mode: MacvlanMode) -> Result<()> {
        let host = &self.hosts[0];
        let host_nl = Netlink::in_netns(&host.ns)?;
        let mut parent_mac = host.parent_mac;
        for c in &mut self.containers {
            let mut o = MacvlanOptions::new(mode);
            o.netns = Some(&c.ns);
            o.mtu = c.mtu;
            if mode != MacvlanMode::Passthru {
                o.mac = Some(c.mac);
            }
            host_nl.add_macvlan(&c.ifname, &host.parent_ifname, &o)?;
            let nl = Netlink::in_netns(&c.ns)?;
            if mode == MacvlanMode::Passthru {
                // The kernel gives a passthru port the parent's MAC whatever was asked, and a MAC set on
                // the port afterwards is set on the parent: the parent ends up with the container's MAC.
                nl.set_mac(&c.ifname, c.mac)?;
                parent_mac = c.mac;
            }
            nl.add_address(&c.ifname, IpAddr::V4(c.ip), LAB_PREFIX_LEN)?;
            nl.set_up(&c.ifname)?;
            c.link = ContainerLink::Macvlan;
        }
        self.hosts[0].parent_mac = parent_mac;
        Ok(())
    }

    /// [`Backend::Bridge`]: a Linux bridge in the host holding the parent and one veth per container. The
    /// host's IP moves to the bridge (an enslaved port's own address stops working), and the bridge keeps
    /// the parent's MAC so the host looks the same from the wire.
    fn attach_bridge(&mut self) -> Result<()> {
        let host = &self.hosts[0];
        let nl = Netlink::in_netns(&host.ns)?;
        nl.add_bridge(HOST_BRIDGE)?;
        nl.set_mac(HOST_BRIDGE, host.parent_mac)?;
        nl.set_master(&host.parent_ifname, HOST_BRIDGE)?;
        nl.del_address(&host.parent_ifname, IpAddr::V4(host.ip), LAB_PREFIX_LEN)?;
        nl.add_address(HOST_BRIDGE, IpAddr::V4(host.ip), LAB_PREFIX_LEN)?;
        nl.set_up(HOST_BRIDGE)?;
        self.hosts[0].bridge = Some(HOST_BRIDGE.to_string());
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            let spec = ContainerVeth {
                host_ifname: c.host_ifname.clone(),
                container_ifname: c.ifname.clone(),
                mac: Some(c.mac),
                ip: Some((c.ip, LAB_PREFIX_LEN)),
                mtu: c.mtu,
            };
            self.add_container_veth(1, c.n, &spec)?;
            nl.set_master(&spec.host_ifname, HOST_BRIDGE)?;
            self.containers[i].link = ContainerLink::Veth;
        }
        Ok(())
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

// ---- the lab ---------------------------------------------------------------------------------------------

/// A host namespace holding a parent NIC.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// 1-based host number.
    pub n: u32,
    pub ns: NetNs,
    pub parent_ifname: String,
    pub parent_mac: MacAddr,
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
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub mtu: Option<u32>,
    pub veth: bool,
    pub link: ContainerLink,
}

/// A veth between a host namespace and a container namespace (see [`Lab::add_container_veth`]).
#[derive(Debug, Clone)]
pub struct ContainerVeth {
    pub host_ifname: String,
    pub container_ifname: String,
    pub mac: Option<MacAddr>,
    pub ip: Option<(Ipv4Addr, u8)>,
    pub mtu: Option<u32>,
}

/// A built lab. Dropping it removes every namespace it created (their interfaces die with them).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    hairpin: bool,
    backend: Backend,
    wire: NetNs,
    ext: NetNs,
    hosts: Vec<LabHost>,
    containers: Vec<LabContainer>,
    created: Created,
}

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabDaemon {
    pub pid: u32,
    /// Its directory: control socket, state and log. Removed by `lab down`.
    pub dir: std::path::PathBuf,
    pub socket: std::path::PathBuf,
}

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
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub wire_port: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostDescription {
    pub netns: String,
    pub parent: String,
    pub mac: MacAddr,
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
    pub mac: MacAddr,
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
    pub fn ext_mac(&self) -> MacAddr {
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
    pub fn parent_mac(&self) -> MacAddr {
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

    /// Leaves the lab up (for `mvdp lab up`): its namespaces are no longer removed on drop or Ctrl-C.
    /// Returns its description. Remove it later with [`Lab::destroy_by_name`].
    pub fn keep(self) -> Result<LabDescription> {
        let backend = self.backend;
        self.keep_with(backend, None)
    }

    /// [`Lab::keep`] for a lab whose containers something else attached (the mvdp daemon, built
    /// as [`Backend::None`]): records `backend` and the daemon, which [`Lab::destroy_by_name`]
    /// stops before it removes the namespaces. The containers are described as mvdp ports.
    pub fn keep_with(
        mut self,
        backend: Backend,
        daemon: Option<LabDaemon>,
    ) -> Result<LabDescription> {
        let mut d = self.description();
        d.backend = backend;
        if let Backend::Mvdp(_) = backend {
            for c in &mut d.containers {
                c.link = ContainerLink::Mvdp;
            }
        }
        d.daemon = daemon;
        // `lab down` removes only what such a record names: namespaces that merely look like a
        // lab's (someone's own `docker-host`) are never touched. On failure the lab is dropped.
        write_record(&self.prefix, &d.namespaces, backend, d.daemon.as_ref())?;
        self.created.keep = true;
        Ok(d)
    }

    /// Removes the lab now, reporting cleanup errors (dropping does the same silently).
    pub fn destroy(mut self) -> Result<()> {
        self.created.destroy()
    }

    /// The existing namespaces of lab `prefix` (`{prefix}-<known role>`), sorted.
    pub fn namespaces_of(prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        Ok(NetNs::list()?
            .into_iter()
            .filter(|n| parse_lab_netns(n).is_some_and(|(p, _)| p == prefix))
            .collect())
    }

    /// Removes lab `prefix` found on the system by name (`mvdp lab down`): only namespaces named
    /// `{prefix}-<wire|ext|host|hostN|cN>`. [`Error::NoSuchLab`] when there is none; nothing else touched.
    /// Returns the names removed.
    pub fn destroy_by_name(prefix: &str) -> Result<Vec<String>> {
        if !is_root() {
            return Err(Error::NotRoot(format!("removing lab {prefix}")));
        }
        let existing = Self::namespaces_of(prefix)?;
        let Some(Record {
            namespaces: recorded,
            daemon,
            ..
        }) = read_record(prefix)?
        else {
            return Err(if existing.is_empty() {
                Error::NoSuchLab(prefix.to_string())
            } else {
                Error::NotOurLab {
                    prefix: prefix.to_string(),
                    namespaces: existing,
                }
            });
        };
        // The daemon first: it lets go of the parent and its ports while they still exist.
        if let Some(d) = &daemon {
            stop_lab_daemon(d);
        }
        let names: Vec<String> = existing
            .into_iter()
            .filter(|n| recorded.contains(n))
            .collect();
        if names.is_empty() {
            // Removed by hand since: forget the stale record.
            remove_record(prefix)?;
            return Err(Error::NoSuchLab(prefix.to_string()));
        }
        let mut removed = Vec::new();
        let mut first_err = None;
        // Containers and hosts before the wire, like Drop.
        let mut ordered = names;
        ordered.sort_by_key(|n| match parse_lab_netns(n).map(|(_, r)| r) {
            Some(Role::Container(_)) => 0,
            Some(Role::Host(_)) => 1,
            Some(Role::Ext) => 2,
            _ => 3,
        });
        for name in ordered {
            match NetNs::delete_by_name(&name) {
                Ok(()) => removed.push(name),
                Err(Error::NetnsNotFound(_)) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_none() {
            remove_record(prefix)?;
        }
        first_err.map_or(Ok(removed), Err)
    }

    /// Labs found on the system, grouped by prefix from their namespace names.
    pub fn list() -> Result<Vec<LabSummary>> {
        let mut labs = group_labs(&NetNs::list()?);
        for l in &mut labs {
            // A lab we cannot read the record of is still listed, without its backend.
            l.backend = read_record(&l.name).ok().flatten().and_then(|r| r.backend);
        }
        Ok(labs)
    }
}

/// Where `Lab::keep` records the namespaces of labs left up (tmpfs, like /run/netns: both are
/// gone after a reboot).
const RECORD_DIR: &str = "/run/mvdp/labs";

fn record_path(prefix: &str) -> std::path::PathBuf {
    std::path::Path::new(RECORD_DIR).join(prefix)
}

/// A lab record: its namespaces one per line, then `backend KIND[:MODE]` (records written before
/// backends existed have no such line), then `daemon PID DIR SOCKET` for a lab with a daemon.
struct Record {
    namespaces: Vec<String>,
    backend: Option<Backend>,
    daemon: Option<LabDaemon>,
}

const BACKEND_LINE: &str = "backend ";
const DAEMON_LINE: &str = "daemon ";

fn write_record(
    prefix: &str,
    namespaces: &[String],
    backend: Backend,
    daemon: Option<&LabDaemon>,
) -> Result<()> {
    let path = record_path(prefix);
    let mut text = format!("{}\n{BACKEND_LINE}{backend}\n", namespaces.join("\n"));
    if let Some(d) = daemon {
        text.push_str(&format!(
            "{DAEMON_LINE}{} {} {}\n",
            d.pid,
            d.dir.display(),
            d.socket.display()
        ));
    }
    std::fs::create_dir_all(RECORD_DIR)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| Error::io(format!("recording lab {prefix} in {}", path.display()), e))
}

fn parse_record(text: &str) -> Record {
    let mut r = Record {
        namespaces: Vec::new(),
        backend: None,
        daemon: None,
    };
    for line in text.lines() {
        if let Some(b) = line.strip_prefix(BACKEND_LINE) {
            r.backend = b.parse().ok();
        } else if let Some(d) = line.strip_prefix(DAEMON_LINE) {
            let mut f = d.split(' ');
            if let (Some(Ok(pid)), Some(dir), Some(socket)) =
                (f.next().map(str::parse), f.next(), f.next())
            {
                r.daemon = Some(LabDaemon {
                    pid,
                    dir: dir.into(),
                    socket: socket.into(),
                });
            }
        } else {
            r.namespaces.push(line.to_string());
        }
    }
    r
}

/// How long a lab's daemon gets to let go of the parent after SIGTERM before SIGKILL.
const DAEMON_STOP: std::time::Duration = std::time::Duration::from_secs(10);

/// Stops a lab's daemon, if the process with its PID still is that daemon (its command line names
/// the daemon's socket: a PID reused by anything else is left alone), and removes its directory.
fn stop_lab_daemon(d: &LabDaemon) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let ours = || {
        std::fs::read(format!("/proc/{}/cmdline", d.pid)).is_ok_and(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.contains(&b"daemon".as_slice())
                && args.contains(&d.socket.as_os_str().as_encoded_bytes())
        })
    };
    let pid = Pid::from_raw(d.pid as i32);
    if ours() && kill(pid, Signal::SIGTERM).is_ok() {
        let end = std::time::Instant::now() + DAEMON_STOP;
        while ours() {
            if std::time::Instant::now() > end {
                tracing::warn!(pid = d.pid, "lab daemon ignored SIGTERM; killing it");
                let _ = kill(pid, Signal::SIGKILL);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&d.dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", d.dir.display());
        }
    }
}

/// Where `mvdp lab up --backend mvdp` puts lab `prefix`'s daemon: socket, state and log.
pub fn daemon_dir(prefix: &str) -> std::path::PathBuf {
    std::path::Path::new(RECORD_DIR).join(format!("{prefix}.mvdp"))
}

fn read_record(prefix: &str) -> Result<Option<Record>> {
    let path = record_path(prefix);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_record(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn remove_record(prefix: &str) -> Result<()> {
    let path = record_path(prefix);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Groups namespace names into labs by prefix (names that are not `{prefix}-<role>` are ignored).
pub fn group_labs(names: &[String]) -> Vec<LabSummary> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in names {
        if let Some((p, _)) = parse_lab_netns(n) {
            by.entry(p.to_string()).or_default().push(n.clone());
        }
    }
    by.into_iter()
        .map(|(name, namespaces)| LabSummary {
            name,
            namespaces,
            backend: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_addressing_stays_in_the_benchmark_range() {
        for n in 1..=MAX_CONTAINERS {
            assert!(is_lab_ip(container_ip(n)));
            assert!(container_mac(n).is_valid_unicast());
        }
        for n in 1..=MAX_HOSTS {
            assert!(is_lab_ip(host_ip(n)));
        }
        assert!(is_lab_ip(EXT_IP));
        assert!(!is_lab_ip(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!is_lab_ip(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(!is_lab_ip(Ipv4Addr::new(198, 18, 0, 255)));
    }

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
        let addr = |mac: MacAddr, ip: [u8; 4]| ContainerAddr {
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
            .container_addr(2, addr(MacAddr([1, 0, 0x5e, 0, 0, 1]), [198, 18, 0, 50]))
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
            .container_addr(2, addr(MacAddr::lab(9, 9, 9), [198, 18, 0, 50]))
            .validate()
            .is_ok());
    }

    #[test]
    fn records_keep_the_backend_and_old_records_still_read() {
        let names = ["a-wire".to_string(), "a-host".to_string()];
        let text = format!(
            "{}\n{BACKEND_LINE}{}\n",
            names.join("\n"),
            Backend::Macvlan(MacvlanMode::Vepa)
        );
        let r = parse_record(&text);
        assert_eq!(r.namespaces, names);
        assert_eq!(r.backend, Some(Backend::Macvlan(MacvlanMode::Vepa)));
        assert_eq!(r.daemon, None);
        let d = LabDaemon {
            pid: 42,
            dir: "/run/mvdp/labs/a.mvdp".into(),
            socket: "/run/mvdp/labs/a.mvdp/mvdp.sock".into(),
        };
        let with = format!(
            "{}\n{BACKEND_LINE}mvdp:private\n{DAEMON_LINE}42 {} {}\n",
            names.join("\n"),
            d.dir.display(),
            d.socket.display()
        );
        let r = parse_record(&with);
        assert_eq!(r.namespaces, names);
        assert_eq!(r.backend, Some(Backend::Mvdp(MacvlanMode::Private)));
        assert_eq!(r.daemon, Some(d));
        let old = parse_record("a-wire\na-host\n");
        assert_eq!((old.namespaces, old.backend), (names.to_vec(), None));
    }

    #[test]
    fn backend_validation() {
        let b = Lab::builder("ok").containers(2);
        assert!(b
            .clone()
            .backend(Backend::Macvlan(MacvlanMode::Passthru))
            .validate()
            .is_err());
        assert!(b
            .clone()
            .containers(1)
            .backend(Backend::Macvlan(MacvlanMode::Passthru))
            .validate()
            .is_ok());
        let e = b
            .clone()
            .backend(Backend::Mvdp(MacvlanMode::Bridge))
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

    #[test]
    fn grouping() {
        let names: Vec<String> = [
            "a-wire",
            "a-ext",
            "a-c1",
            "b-x-host1",
            "b-x-wire",
            "unrelated",
            "c-other",
        ]
        .map(String::from)
        .to_vec();
        let labs = group_labs(&names);
        assert_eq!(labs.len(), 2);
        assert_eq!(labs[0].name, "a");
        assert_eq!(labs[0].namespaces, vec!["a-wire", "a-ext", "a-c1"]);
        assert_eq!(labs[1].name, "b-x");
    }

    #[test]
    fn error_messages_name_the_lab() {
        let e = Error::LabExists {
            prefix: "lab".into(),
            namespaces: vec!["lab-wire".into(), "lab-ext".into()],
        };
        assert_eq!(
            e.to_string(),
            "lab lab already exists (namespaces: lab-wire, lab-ext); run `mvdp lab down --name lab`"
        );
        assert!(Error::NoSuchLab("zz".into())
            .to_string()
            .contains("no lab named zz"));
    }
}
