//! The daemon's model (networks and their ports, what is persisted) and the checks that need no
//! system call: names, VLANs, modes, subnets, MAC/IP uniqueness, passthru exclusivity, MTU limits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::api::{Attachment, NetworkCreate, NetworkEnsure, PortAdd};
use super::ipam::{next_free, parse_cidr, Ipv4Net};
use crate::names::validate_ifname;
use mvdp_switch::{Mac, Mode};

/// A refusal for the user; nothing was changed. When it was made from another error (a bad address,
/// a bad name), that error is its `source`, and its text is already part of the message.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Invalid {
    msg: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Invalid {
        Invalid {
            msg: msg.into(),
            cause: None,
        }
    }

    /// `msg`, which tells what `cause` says, kept with `cause` as the source.
    pub fn because(
        msg: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Invalid {
        Invalid {
            msg: msg.into(),
            cause: Some(Box::new(cause)),
        }
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid::new(msg))
}

/// A network's mode: macvlan's four; `source` is a per-port kernel feature no network uses.
fn network_mode(s: &str) -> Result<Mode, Invalid> {
    match s.parse::<Mode>() {
        Ok(Mode::Source) | Err(_) => bad(format!(
            "unknown mode {s:?}: expected bridge, private, vepa or passthru"
        )),
        Ok(mode) => Ok(mode),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// 12 hex digits, random (shown like Docker's short ids).
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub parent: String,
    /// 0 = untagged.
    pub vlan: u16,
    pub mode: Mode,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub ports: BTreeMap<u32, Port>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: u32,
    /// As given to `port add` (name or path); `None` for the host shim.
    pub netns: Option<String>,
    /// The interface with the port's MAC and IP: in `netns`, or the shim end in the daemon's netns.
    pub ifname: String,
    /// The veth end in the daemon's netns the dataplane drives.
    pub host_ifname: String,
    pub mac: Mac,
    pub ip: Option<Ipv4Addr>,
    pub prefix_len: u8,
    pub mtu: u32,
    pub host: bool,
    /// The CNI container id, for a port a CNI runtime attached; (`container_id`, `ifname`) is
    /// the attachment CNI DEL and GC name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Made for Docker's remote driver: `container_id` is Docker's endpoint id and `ifname` the
    /// container end Docker moves into the sandbox.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub docker: bool,
}

impl Port {
    pub fn cidr(&self) -> Option<String> {
        self.ip.map(|ip| format!("{ip}/{}", self.prefix_len))
    }

    /// The netns as shown: the one given, `docker:<endpoint>` for a Docker port (Docker moves
    /// its end), `None` for the host port.
    pub fn shown_netns(&self) -> Option<String> {
        match (&self.netns, &self.container_id) {
            (None, Some(id)) if self.docker => Some(format!(
                "docker:{}",
                id.chars().take(12).collect::<String>()
            )),
            (n, _) => n.clone(),
        }
    }

    /// Whether this is the CNI attachment (`container_id`, `ifname`).
    pub fn is_attachment(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id.as_deref() == Some(container_id) && self.ifname == ifname
    }
}

/// A CNI container id: not empty, starting with a letter or digit, then letters, digits, `_.-`
/// (the CNI spec's rule).
pub fn validate_container_id(id: &str) -> Result<(), Invalid> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        bad(format!(
            "invalid container id {id:?}: letters, digits, '_', '.', '-', starting with a letter or digit"
        ))
    }
}

/// A checked route for a container: destination network and optional gateway (on-link without).
pub type RoutePlan = (Ipv4Net, Option<Ipv4Addr>);

fn plan_routes(req: &PortAdd) -> Result<Vec<RoutePlan>, Invalid> {
    let Some(cni) = &req.cni else {
        return Ok(vec![]);
    };
    cni.routes
        .iter()
        .map(|r| {
            let (addr, len) = parse_cidr(&r.dst)
                .map_err(|e| Invalid::because(format!("invalid route {}: {e}", r.dst), e))?;
            let len = len.unwrap_or(32);
            // Routes name networks; a destination with host bits (10.1.2.3/8) means its network.
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let dst = Ipv4Net::new(Ipv4Addr::from(u32::from(addr) & mask), len)
                .map_err(|e| Invalid::because(format!("invalid route {}: {e}", r.dst), e))?;
            let gw =
                r.gw.as_deref()
                    .map(|g| {
                        g.parse::<Ipv4Addr>().map_err(|e| {
                            Invalid::because(
                                format!("invalid route gateway {g:?}: not an IPv4 address"),
                                e,
                            )
                        })
                    })
                    .transpose()?;
            Ok((dst, gw))
        })
        .collect()
}

/// The checks and choices of a port request that concern only its network.
impl Network {
    /// Whether this network takes the requested kind of port at all: a container port (`--netns`) or
    /// the one host shim (`--host`, which has no `--ifname`); a passthru network takes one port.
    fn check_port_fits(&self, req: &PortAdd) -> Result<(), Invalid> {
        match (&req.netns, req.host) {
            (Some(_), true) => return bad("give either --netns or --host, not both"),
            (Some(_), _) if req.docker => return bad("a Docker port takes no --netns"),
            (None, false) if !req.docker => {
                return bad("a port needs --netns NAME|PATH (or --host)")
            }
            _ => {}
        }
        if req.host && req.ifname.is_some() {
            return bad("--ifname does not apply to a --host port (its interface is mvh-NETWORK)");
        }
        if let Some(id) = req.cni.as_ref().map(|c| &c.container_id) {
            if req.host {
                return bad("a CNI container id does not apply to a --host port");
            }
            validate_container_id(id)?;
            let ifname = req.ifname.as_deref().unwrap_or("eth0");
            if let Some(p) = self.ports.values().find(|p| p.is_attachment(id, ifname)) {
                return bad(format!(
                    "container {id} already has port {} ({ifname}) in network {}",
                    p.id, self.name
                ));
            }
        }
        if self.mode == Mode::Passthru && !self.ports.is_empty() {
            return bad(format!(
                "network {} is passthru and already has its one port",
                self.name
            ));
        }
        if req.host && self.ports.values().any(|p| p.host) {
            return bad(format!("network {} already has a host port", self.name));
        }
        Ok(())
    }

    /// The port's MAC: `--mac` when it is a unicast MAC no port of the network has, else the first
    /// such MAC `random_mac` draws.
    fn choose_mac(
        &self,
        given: Option<&str>,
        mut random_mac: impl FnMut() -> Mac,
    ) -> Result<Mac, Invalid> {
        let Some(m) = given else {
            return Ok(loop {
                let m = random_mac();
                if m.is_valid_unicast() && !self.ports.values().any(|p| p.mac == m) {
                    break m;
                }
            });
        };
        let mac: Mac = m.parse().map_err(|e| Invalid::because(format!("{e}"), e))?;
        if !mac.is_valid_unicast() {
            return bad(format!("MAC {mac} is not a unicast address"));
        }
        if let Some(p) = self.ports.values().find(|p| p.mac == mac) {
            return bad(format!(
                "MAC {mac} is already used by port {} in network {}",
                p.id, self.name
            ));
        }
        Ok(mac)
    }

    /// The port's address and prefix length: `--ip` (checked by [`Self::check_given_ip`]), else the
    /// next free address of the subnet, else none (`(None, 0)`); a host port must have one.
    fn choose_ip(&self, req: &PortAdd) -> Result<(Option<Ipv4Addr>, u8), Invalid> {
        let (ip, prefix_len) = match (&req.ip, self.subnet) {
            (Some(s), _) => {
                let (ip, len) = self.check_given_ip(s, req.host)?;
                (Some(ip), len)
            }
            (None, Some(sn)) => {
                let used: BTreeSet<Ipv4Addr> = self.ports.values().filter_map(|p| p.ip).collect();
                let ip = next_free(&sn, self.ip_range.as_ref(), self.gateway, &used).ok_or_else(
                    || Invalid::new(format!("network {} has no free address left", self.name)),
                )?;
                (Some(ip), sn.len())
            }
            (None, None) => (None, 0),
        };
        if req.host && ip.is_none() {
            return bad(format!(
                "a host port needs an address: network {} has no subnet, give --ip",
                self.name
            ));
        }
        Ok((ip, prefix_len))
    }

    /// `--ip` as (address, prefix length), when it is a host address of the subnet other than the
    /// gateway, with the subnet's prefix, and no port has it. Without a subnet a container port's
    /// `--ip` needs its prefix; a `--host` port's defaults to /32.
    fn check_given_ip(&self, s: &str, host: bool) -> Result<(Ipv4Addr, u8), Invalid> {
        let (ip, len) =
            parse_cidr(s).map_err(|e| Invalid::because(format!("invalid --ip: {e}"), e))?;
        if let Some(sn) = self.subnet {
            if !sn.is_host(ip) {
                return bad(format!(
                    "IP {ip} is outside subnet {sn} of network {} (or is its network/broadcast address)",
                    self.name
                ));
            }
            if Some(ip) == self.gateway {
                return bad(format!("IP {ip} is the gateway of network {}", self.name));
            }
            if let Some(l) = len.filter(|l| *l != sn.len()) {
                return bad(format!(
                    "--ip {s}: prefix /{l} differs from the subnet's /{}",
                    sn.len()
                ));
            }
        } else if len.is_none() && !host {
            return bad(format!(
                "network {} has no subnet: give --ip with a prefix length",
                self.name
            ));
        }
        if let Some(p) = self.ports.values().find(|p| p.ip == Some(ip)) {
            return bad(format!(
                "IP {ip} is already used by port {} in network {}",
                p.id, self.name
            ));
        }
        Ok((ip, len.or(self.subnet.map(|s| s.len())).unwrap_or(32)))
    }

    /// The port's MTU: `--mtu` when the parent and the dataplane can carry it (and IPv4 can use it),
    /// else the lower of the two limits.
    fn choose_mtu(
        &self,
        given: Option<u32>,
        parent_mtu: u32,
        max_mtu: u32,
    ) -> Result<u32, Invalid> {
        match given {
            Some(m) if m > parent_mtu => bad(format!(
                "MTU {m} is above the MTU of parent {} ({parent_mtu})",
                self.parent
            )),
            Some(m) if m > max_mtu => bad(format!(
                "MTU {m} is above mvdp's limit of {max_mtu} (one UMEM frame per packet; `mvdp daemon --frame-size 4096` raises it)"
            )),
            Some(m) if m < 68 => bad(format!("MTU {m} is below the IPv4 minimum of 68")),
            Some(m) => Ok(m),
            None => Ok(parent_mtu.min(max_mtu)),
        }
    }
}

/// Everything the daemon persists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    /// Port ids are never reused while the state lives, so `mvp<id>` names never collide.
    pub next_port_id: u32,
}

/// Host interface of port `id`.
pub fn host_ifname(id: u32) -> String {
    format!("mvp{id}")
}

/// The shim interface of a network's host port: `mvh-NAME` when it fits IFNAMSIZ, else `mvh<id>`.
pub fn shim_ifname(network: &str, id: u32) -> String {
    let n = format!("mvh-{network}");
    if validate_ifname(&n).is_ok() {
        n
    } else {
        format!("mvh{id}")
    }
}

/// Splits Docker's `eth1.100` into (eth1, Some(100)); anything else is (parent, None).
pub fn split_parent(parent: &str) -> (&str, Option<&str>) {
    match parent.rsplit_once('.') {
        Some((p, v)) if !p.is_empty() && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            (p, Some(v))
        }
        _ => (parent, None),
    }
}

fn validate_network_name(name: &str) -> Result<(), Invalid> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_first
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return bad(format!(
            "invalid network name {name:?}: use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

fn parse_vlan(v: u64) -> Result<u16, Invalid> {
    if (1..=4094).contains(&v) {
        Ok(v as u16)
    } else {
        bad(format!("VLAN {v} is outside 1-4094"))
    }
}

/// The parent and VLAN a network create asks for: `--parent eth1.100` (Docker's spelling) and/or
/// `--vlan 100`, which must agree; 0 is untagged.
fn parent_and_vlan(req: &NetworkCreate) -> Result<(&str, u16), Invalid> {
    let (parent, dotted) = split_parent(&req.parent);
    if let Err(e) = validate_ifname(parent) {
        return Err(Invalid::because(format!("invalid parent: {e}"), e));
    }
    let dotted = match dotted {
        Some(v) => Some(
            parse_vlan(v.parse::<u64>().unwrap_or(u64::MAX))
                .map_err(|e| Invalid::new(format!("parent {}: {e}", req.parent)))?,
        ),
        None => None,
    };
    let flag = req.vlan.map(|v| parse_vlan(v.into())).transpose()?;
    let vlan = match (dotted, flag) {
        (Some(a), Some(b)) if a != b => {
            return bad(format!(
                "--parent {} says VLAN {a} but --vlan says {b}",
                req.parent
            ))
        }
        (a, b) => a.or(b).unwrap_or(0),
    };
    Ok((parent, vlan))
}

/// The network's gateway: `--gateway`, a host address of the subnet, or the subnet's first host.
fn gateway(req: &NetworkCreate, subnet: Option<Ipv4Net>) -> Result<Option<Ipv4Addr>, Invalid> {
    match (&req.gateway, subnet) {
        (Some(_), None) => bad("--gateway needs --subnet"),
        (Some(g), Some(sn)) => {
            let g: Ipv4Addr = g.parse().map_err(|e| {
                Invalid::because(format!("invalid gateway {g:?}: not an IPv4 address"), e)
            })?;
            if !sn.is_host(g) {
                return bad(format!("gateway {g} is not a host address of subnet {sn}"));
            }
            Ok(Some(g))
        }
        (None, Some(sn)) => Ok(sn.first_host()),
        (None, None) => Ok(None),
    }
}

/// The part of the subnet ports get addresses from (`--ip-range`), when it is inside the subnet.
fn ip_range(req: &NetworkCreate, subnet: Option<Ipv4Net>) -> Result<Option<Ipv4Net>, Invalid> {
    match (&req.ip_range, subnet) {
        (Some(_), None) => bad("--ip-range needs --subnet"),
        (Some(r), Some(sn)) => {
            let r: Ipv4Net = r
                .parse()
                .map_err(|e| Invalid::because(format!("invalid ip-range: {e}"), e))?;
            if !sn.covers(&r) {
                return bad(format!("ip-range {r} is not inside subnet {sn}"));
            }
            Ok(Some(r))
        }
        _ => Ok(None),
    }
}

/// A network create request, checked against the state (not against the system).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPlan {
    pub name: String,
    pub parent: String,
    pub vlan: u16,
    pub mode: Mode,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
}

impl NetworkPlan {
    /// The network this plan makes, with no ports yet.
    pub fn into_network(self, id: String, created: u64) -> Network {
        Network {
            name: self.name,
            id,
            created,
            parent: self.parent,
            vlan: self.vlan,
            mode: self.mode,
            subnet: self.subnet,
            gateway: self.gateway,
            ip_range: self.ip_range,
            ports: BTreeMap::new(),
        }
    }
}

impl State {
    pub fn plan_network(&self, req: &NetworkCreate) -> Result<NetworkPlan, Invalid> {
        validate_network_name(&req.name)?;
        if self.networks.contains_key(&req.name) {
            return bad(format!("network {} already exists", req.name));
        }
        let (parent, vlan) = parent_and_vlan(req)?;
        let mode = network_mode(req.mode.as_deref().unwrap_or("bridge"))?;
        let subnet = req
            .subnet
            .as_deref()
            .map(|s| {
                s.parse::<Ipv4Net>()
                    .map_err(|e| Invalid::because(format!("invalid subnet: {e}"), e))
            })
            .transpose()?;
        let gateway = gateway(req, subnet)?;
        let ip_range = ip_range(req, subnet)?;
        self.check_parent_is_free(parent, vlan, mode)?;
        Ok(NetworkPlan {
            name: req.name.clone(),
            parent: parent.to_string(),
            vlan,
            mode,
            subnet,
            gateway,
            ip_range,
        })
    }

    /// Whether a `mode` network on `parent`, `vlan` leaves the networks already there intact: a
    /// passthru network owns its parent alone, and a parent carries one network per VLAN.
    fn check_parent_is_free(&self, parent: &str, vlan: u16, mode: Mode) -> Result<(), Invalid> {
        for n in self.on_parent(parent) {
            if n.mode == Mode::Passthru {
                return bad(format!(
                    "parent {parent} is used by passthru network {}, which owns it alone",
                    n.name
                ));
            }
            if mode == Mode::Passthru {
                return bad(format!(
                    "a passthru network owns its parent alone, and {parent} already has network {}",
                    n.name
                ));
            }
            if n.vlan == vlan {
                return bad(format!(
                    "network {} already uses parent {parent} {}: one network per parent and VLAN",
                    n.name,
                    vlan_text(vlan)
                ));
            }
        }
        Ok(())
    }

    pub fn network(&self, name: &str) -> Result<&Network, Invalid> {
        self.networks
            .get(name)
            .ok_or_else(|| Invalid::new(format!("no network named {name}")))
    }

    /// Checks a port request against its network. `parent_mtu` is the parent's current MTU, `max_mtu`
    /// the dataplane's frame limit; `random_mac` is drawn until it is unique in the network.
    pub fn plan_port(
        &self,
        req: &PortAdd,
        parent_mtu: u32,
        max_mtu: u32,
        random_mac: impl FnMut() -> Mac,
    ) -> Result<PortPlan, Invalid> {
        let net = self.network(&req.network)?;
        net.check_port_fits(req)?;
        let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
        if let Err(e) = validate_ifname(&ifname) {
            return Err(Invalid::because(e.to_string(), e));
        }
        let mac = net.choose_mac(req.mac.as_deref(), random_mac)?;
        let (ip, prefix_len) = net.choose_ip(req)?;
        let mtu = net.choose_mtu(req.mtu, parent_mtu, max_mtu)?;
        let routes = plan_routes(req)?;
        let id = self.next_port_id;
        Ok(PortPlan {
            port: Port {
                id,
                netns: req.netns.clone(),
                ifname: if req.host {
                    shim_ifname(&net.name, id)
                } else if req.docker {
                    format!("mvc{id}")
                } else {
                    ifname
                },
                host_ifname: host_ifname(id),
                mac,
                ip,
                // A host port's address is a /32: the host keeps its parent's route to the subnet.
                prefix_len: if req.host { 32 } else { prefix_len },
                mtu,
                host: req.host,
                container_id: req.cni.as_ref().map(|c| c.container_id.clone()),
                docker: req.docker,
            },
            network: net.name.clone(),
            gateway: net
                .gateway
                .filter(|_| !req.host && !req.docker && ip.is_some()),
            routes,
        })
    }

    /// Checks a `network_ensure` request: `Ok(None)` when the network exists with the same parent,
    /// VLAN and mode, `Ok(Some(plan))` when it is to be made, an error on any clash.
    pub fn plan_ensure(&self, req: &NetworkEnsure) -> Result<Option<NetworkPlan>, Invalid> {
        let create = NetworkCreate {
            name: req.name.clone(),
            parent: req.parent.clone(),
            vlan: req.vlan,
            mode: req.mode.clone(),
            ..Default::default()
        };
        let Some(have) = self.networks.get(&req.name) else {
            return self.plan_network(&create).map(Some);
        };
        let (parent, vlan) = parent_and_vlan(&create)?;
        let mode = network_mode(req.mode.as_deref().unwrap_or("bridge"))?;
        if (have.parent.as_str(), have.vlan, have.mode) != (parent, vlan, mode) {
            return bad(format!(
                "network {} exists with parent {} {} mode {}, not parent {parent} {} mode {mode}",
                have.name,
                have.parent,
                vlan_text(have.vlan),
                have.mode,
                vlan_text(vlan)
            ));
        }
        Ok(None)
    }

    /// The ports of `network` a CNI runtime attached whose attachment is not in `valid`.
    pub fn stale_attachments(
        &self,
        network: &str,
        valid: &[Attachment],
    ) -> Result<Vec<u32>, Invalid> {
        let net = self.network(network)?;
        Ok(net
            .ports
            .values()
            .filter(|p| {
                p.container_id.as_ref().is_some_and(|c| {
                    !valid
                        .iter()
                        .any(|a| &a.container_id == c && a.ifname == p.ifname)
                })
            })
            .map(|p| p.id)
            .collect())
    }

    /// Finds a port of `network` by id (`3`), host interface (`mvp3`) or netns.
    pub fn find_port(&self, network: &str, key: &str) -> Result<u32, Invalid> {
        let net = self.network(network)?;
        let hits: Vec<u32> = net
            .ports
            .values()
            .filter(|p| {
                p.id.to_string() == key
                    || p.host_ifname == key
                    || p.netns.as_deref() == Some(key)
                    || (p.host && (key == "host" || p.ifname == key))
            })
            .map(|p| p.id)
            .collect();
        match hits.as_slice() {
            [id] => Ok(*id),
            [] => bad(format!("network {network} has no port {key:?}")),
            _ => bad(format!(
                "{key:?} matches several ports of network {network}: give the port id"
            )),
        }
    }

    /// Networks on `parent`.
    pub fn on_parent<'a>(&'a self, parent: &'a str) -> impl Iterator<Item = &'a Network> + 'a {
        self.networks.values().filter(move |n| n.parent == parent)
    }
}

/// A checked port request: what will be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    pub port: Port,
    pub network: String,
    /// Default route for the container (none for the host port or an address-less port).
    pub gateway: Option<Ipv4Addr>,
    /// Further routes for the container (a CNI IPAM's).
    pub routes: Vec<RoutePlan>,
}

pub fn vlan_text(vlan: u16) -> String {
    if vlan == 0 {
        "untagged".to_string()
    } else {
        format!("VLAN {vlan}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, parent: &str) -> NetworkCreate {
        NetworkCreate {
            name: name.into(),
            parent: parent.into(),
            subnet: Some("198.18.0.0/24".into()),
            ..Default::default()
        }
    }

    fn add(state: &mut State, req: &NetworkCreate) {
        let n = state.plan_network(req).unwrap().into_network("0".into(), 0);
        state.networks.insert(n.name.clone(), n);
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// `v` changed by `f`: one request differing from a base one.
    fn with<T>(mut v: T, f: impl FnOnce(&mut T)) -> T {
        f(&mut v);
        v
    }

    fn port(net: &str, netns: &str) -> PortAdd {
        PortAdd {
            network: net.into(),
            netns: Some(netns.into()),
            ..Default::default()
        }
    }

    fn commit(state: &mut State, plan: PortPlan) -> Port {
        state.next_port_id += 1;
        let p = plan.port;
        state
            .networks
            .get_mut(&plan.network)
            .unwrap()
            .ports
            .insert(p.id, p.clone());
        p
    }

    fn seq_mac() -> impl FnMut() -> Mac {
        let mut n = 0u8;
        move || {
            n += 1;
            Mac([2, 0, 0, 0, 0, n])
        }
    }

    #[test]
    fn network_defaults_and_docker_parent_spelling() {
        let s = State::default();
        let p = s.plan_network(&create("n1", "eth1.100")).unwrap();
        assert_eq!(
            (p.parent.as_str(), p.vlan, p.mode),
            ("eth1", 100, Mode::Bridge)
        );
        assert_eq!(p.gateway, Some("198.18.0.1".parse().unwrap()));
        let mut r = create("n1", "eth1.100");
        r.vlan = Some(100);
        assert!(s.plan_network(&r).is_ok(), "same VLAN twice is fine");
        r.vlan = Some(200);
        let e = s.plan_network(&r).unwrap_err().to_string();
        assert!(e.contains("VLAN 100") && e.contains("200"), "{e}");
    }

    #[test]
    fn bad_networks_are_refused_with_reasons() {
        let mut s = State::default();
        add(&mut s, &create("n1", "eth1"));
        let n2 = |f: fn(&mut NetworkCreate)| with(create("n2", "eth1.5"), f);
        let cases: Vec<(NetworkCreate, &str)> = vec![
            (create("n1", "eth2"), "already exists"),
            (create("n2", "eth1"), "one network per parent and VLAN"),
            (create("bad name", "eth1"), "invalid network name"),
            (create("", "eth1"), "invalid network name"),
            (create("n2", "eth1.0"), "outside 1-4094"),
            (create("n2", "eth1.4095"), "outside 1-4094"),
            (create("n2", "eth1.99999999999999999999"), "outside 1-4094"),
            (create("n2", "a-very-long-interface-name"), "invalid parent"),
            (
                with(create("n2", "eth1"), |r| r.vlan = Some(5000)),
                "outside 1-4094",
            ),
            (n2(|r| r.mode = some("bogus")), "unknown mode"),
            (n2(|r| r.mode = some("passthru")), "owns its parent alone"),
            (n2(|r| r.subnet = some("198.18.0.1/24")), "host bits"),
            (n2(|r| r.gateway = some("198.18.1.1")), "not a host address"),
            (
                n2(|r| r.ip_range = some("198.18.1.0/28")),
                "not inside subnet",
            ),
            (
                n2(|r| (r.subnet, r.gateway) = (None, some("198.18.0.1"))),
                "needs --subnet",
            ),
        ];
        for (req, want) in cases {
            let e = s.plan_network(&req).unwrap_err().to_string();
            assert!(e.contains(want), "{req:?}: {e:?} lacks {want:?}");
        }
        // A refusal made from a parse error keeps it as its source.
        let e = s
            .plan_network(&n2(|r| r.subnet = some("198.18.0.0/40")))
            .unwrap_err();
        let source = std::error::Error::source(&e).expect("a source");
        assert!(e.to_string().ends_with(&source.to_string()), "{e}");
        // Same parent, other VLAN, overlapping subnet: fine (as in Docker).
        assert!(s.plan_network(&create("n2", "eth1.7")).is_ok());
    }

    #[test]
    fn passthru_owns_its_parent() {
        let mut s = State::default();
        add(
            &mut s,
            &NetworkCreate {
                mode: Some("passthru".into()),
                ..create("pt", "eth1")
            },
        );
        let e = s
            .plan_network(&create("n2", "eth1.100"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("passthru network pt"), "{e}");
        assert!(s.plan_network(&create("n2", "eth2")).is_ok());
        let p = s
            .plan_port(&port("pt", "c1"), 1500, 3500, seq_mac())
            .unwrap();
        commit(&mut s, p);
        let e = s
            .plan_port(&port("pt", "c2"), 1500, 3500, seq_mac())
            .unwrap_err()
            .to_string();
        assert!(e.contains("already has its one port"), "{e}");
    }

    #[test]
    fn ports_get_unique_addresses_and_macs() {
        let mut s = State::default();
        add(
            &mut s,
            &NetworkCreate {
                ip_range: Some("198.18.0.16/30".into()),
                ..create("n", "eth1")
            },
        );
        let mut mac = seq_mac();
        let a = {
            let p = s.plan_port(&port("n", "c1"), 1500, 3500, &mut mac).unwrap();
            commit(&mut s, p)
        };
        assert_eq!(a.cidr().as_deref(), Some("198.18.0.16/24"));
        assert_eq!(
            (a.host_ifname.as_str(), a.ifname.as_str(), a.mtu),
            ("mvp0", "eth0", 1500)
        );
        let plan = s.plan_port(&port("n", "c2"), 1500, 3500, &mut mac).unwrap();
        assert_eq!(plan.gateway, Some("198.18.0.1".parse().unwrap()));
        let b = commit(&mut s, plan);
        assert_eq!(b.ip, Some("198.18.0.17".parse().unwrap()));
        assert_ne!(a.mac, b.mac);
        // The random MAC source repeating an existing MAC is skipped.
        let mut repeat = vec![a.mac, b.mac, Mac([2, 0, 0, 0, 0, 9])].into_iter();
        let c = s
            .plan_port(&port("n", "c3"), 1500, 3500, move || repeat.next().unwrap())
            .unwrap();
        assert_eq!(c.port.mac, Mac([2, 0, 0, 0, 0, 9]));
        commit(&mut s, c);
        // .16/30's .16 and .19 are the range's edges, not the subnet's: both usable.
        let d = {
            let p = s.plan_port(&port("n", "c4"), 1500, 3500, &mut mac).unwrap();
            commit(&mut s, p)
        };
        assert_eq!(d.ip, Some("198.18.0.19".parse().unwrap()));
        let e = s
            .plan_port(&port("n", "c5"), 1500, 3500, &mut mac)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no free address"), "{e}");
    }

    #[test]
    fn bad_ports_are_refused_with_reasons() {
        let mut s = State::default();
        add(&mut s, &create("n", "eth1"));
        let first = PortAdd {
            mac: Some("02:00:00:00:00:aa".into()),
            ip: Some("198.18.0.20".into()),
            ..port("n", "c1")
        };
        {
            let p = s.plan_port(&first, 1500, 3500, seq_mac()).unwrap();
            commit(&mut s, p)
        };
        let c2 = |f: fn(&mut PortAdd)| with(port("n", "c2"), f);
        let cases: Vec<(PortAdd, &str)> = vec![
            (port("nope", "c2"), "no network named nope"),
            (
                c2(|r| r.mac = some("02:00:00:00:00:AA")),
                "already used by port 0",
            ),
            (c2(|r| r.mac = some("01:00:5e:00:00:01")), "not a unicast"),
            (c2(|r| r.mac = some("zz")), "MAC address"),
            (
                c2(|r| r.ip = some("198.18.0.20/24")),
                "IP 198.18.0.20 is already used",
            ),
            (c2(|r| r.ip = some("10.0.0.5")), "outside subnet"),
            (c2(|r| r.ip = some("198.18.0.255")), "outside subnet"),
            (c2(|r| r.ip = some("198.18.0.1")), "is the gateway"),
            (
                c2(|r| r.ip = some("198.18.0.30/16")),
                "differs from the subnet",
            ),
            (
                c2(|r| r.mtu = Some(9000)),
                "above the MTU of parent eth1 (1500)",
            ),
            (c2(|r| r.ifname = some("x/y")), "interface name"),
            (c2(|r| r.netns = None), "needs --netns"),
            (c2(|r| r.host = true), "not both"),
        ];
        for (req, want) in cases {
            let e = s
                .plan_port(&req, 1500, 3500, seq_mac())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{req:?}: {e:?} lacks {want:?}");
        }
        // MTU above the frame limit on a jumbo parent.
        let e = s
            .plan_port(
                &PortAdd {
                    mtu: Some(4000),
                    ..port("n", "c2")
                },
                9000,
                3500,
                seq_mac(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("mvdp's limit of 3500"), "{e}");
        // Default MTU on a jumbo parent: capped to the frame limit.
        let p = s
            .plan_port(&port("n", "c2"), 9000, 3500, seq_mac())
            .unwrap();
        assert_eq!(p.port.mtu, 3500);
    }

    #[test]
    fn host_port_is_a_slash_32_shim_and_unique() {
        let mut s = State::default();
        add(&mut s, &create("lan", "eth1"));
        let req = PortAdd {
            network: "lan".into(),
            host: true,
            ..Default::default()
        };
        let p = s.plan_port(&req, 1500, 3500, seq_mac()).unwrap();
        assert_eq!(p.port.ifname, "mvh-lan");
        assert_eq!((p.port.prefix_len, p.gateway), (32, None));
        commit(&mut s, p);
        let e = s
            .plan_port(&req, 1500, 3500, seq_mac())
            .unwrap_err()
            .to_string();
        assert!(e.contains("already has a host port"), "{e}");
        assert_eq!(shim_ifname("a-very-long-network", 7), "mvh7");
        assert_eq!(s.find_port("lan", "host").unwrap(), 0);
        assert_eq!(s.find_port("lan", "mvp0").unwrap(), 0);
        assert!(s.find_port("lan", "c9").is_err());
    }

    #[test]
    fn cni_networks_are_ensured_and_clashes_refused() {
        let mut s = State::default();
        let ensure = |parent: &str, mode: Option<&str>| NetworkEnsure {
            name: "cni".into(),
            parent: parent.into(),
            mode: mode.map(str::to_string),
            ..Default::default()
        };
        let plan = s.plan_ensure(&ensure("eth1.100", None)).unwrap().unwrap();
        assert_eq!((plan.vlan, plan.subnet), (100, None));
        let n = plan.into_network("0".into(), 0);
        s.networks.insert(n.name.clone(), n);
        assert!(s
            .plan_ensure(&ensure("eth1.100", Some("bridge")))
            .unwrap()
            .is_none());
        for (parent, mode, want) in [
            ("eth1", None, "untagged"),
            ("eth2.100", None, "parent eth2"),
            ("eth1.100", Some("vepa"), "mode vepa"),
            ("eth1.100", Some("bogus"), "unknown mode"),
        ] {
            let e = s
                .plan_ensure(&ensure(parent, mode))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{parent} {mode:?}: {e}");
        }
    }

    #[test]
    fn cni_ports_carry_their_attachment_and_routes() {
        let mut s = State::default();
        add(
            &mut s,
            &NetworkCreate {
                subnet: None,
                ..create("n", "eth1")
            },
        );
        let req = |cid: &str, ifname: &str| PortAdd {
            ifname: Some(ifname.into()),
            ip: Some("10.1.0.5/16".into()),
            cni: Some(Box::new(super::super::api::CniPort {
                container_id: cid.into(),
                netns_via: None,
                routes: vec![
                    super::super::api::PortRoute {
                        dst: "0.0.0.0/0".into(),
                        gw: Some("10.1.0.1".into()),
                    },
                    super::super::api::PortRoute {
                        dst: "10.9.3.4/16".into(),
                        gw: None,
                    },
                ],
            })),
            ..port("n", "/proc/1/ns/net")
        };
        let plan = s
            .plan_port(&req("c1", "eth0"), 1500, 3500, seq_mac())
            .unwrap();
        assert_eq!(plan.gateway, None);
        assert_eq!(
            plan.routes,
            vec![
                (
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.1.0.1".parse().unwrap())
                ),
                ("10.9.0.0/16".parse().unwrap(), None)
            ]
        );
        commit(&mut s, plan);
        let e = s
            .plan_port(&req("c1", "eth0"), 1500, 3500, seq_mac())
            .unwrap_err()
            .to_string();
        assert!(e.contains("already has port 0"), "{e}");
        let mut other = req("c1", "net1");
        other.ip = Some("10.1.0.6/16".into());
        let p = s.plan_port(&other, 1500, 3500, seq_mac()).unwrap();
        commit(&mut s, p);
        for (r, want) in [
            (
                with(req("-x", "eth2"), |r| r.ip = None),
                "invalid container id",
            ),
            (
                with(req("c2", "eth0"), |r| {
                    (r.ip, r.cni.as_mut().unwrap().routes[0].dst) = (None, "nonsense".into())
                }),
                "invalid route",
            ),
            (
                with(req("c2", "eth0"), |r| {
                    (r.ip, r.cni.as_mut().unwrap().routes[0].gw) = (None, some("fe80::1"))
                }),
                "invalid route gateway",
            ),
        ] {
            let e = s
                .plan_port(&r, 1500, 3500, seq_mac())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
        // GC: hand-made ports are never stale; CNI ports are unless listed.
        let p = s
            .plan_port(&port("n", "c9"), 1500, 3500, seq_mac())
            .unwrap();
        commit(&mut s, p);
        let keep = [Attachment {
            container_id: "c1".into(),
            ifname: "net1".into(),
        }];
        assert_eq!(s.stale_attachments("n", &keep).unwrap(), vec![0]);
        assert_eq!(s.stale_attachments("n", &[]).unwrap(), vec![0, 1]);
        // The old state format (no container_id) still loads; a CNI port's id round-trips.
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&j).unwrap(), s);
        let p2 = &s.networks["n"].ports[&2];
        assert!(!serde_json::to_string(p2).unwrap().contains("container_id"));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = State::default();
        add(&mut s, &create("n", "eth1.100"));
        {
            let p = s
                .plan_port(&port("n", "/proc/1/ns/net"), 1500, 3500, seq_mac())
                .unwrap();
            commit(&mut s, p)
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&j).unwrap(), s);
        // Ports that are not Docker's are saved as before (no "docker" key).
        assert!(!j.contains("docker"), "{j}");
    }

    #[test]
    fn a_docker_port_keeps_its_end_in_the_daemons_netns_and_round_trips() {
        let mut s = State::default();
        add(&mut s, &create("n", "eth1.100"));
        let req = PortAdd {
            network: "n".into(),
            docker: true,
            ip: Some("198.18.0.20/24".into()),
            cni: Some(Box::new(crate::daemon::api::CniPort {
                container_id: "0123456789abcdef0123".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let p = s.plan_port(&req, 1500, 3500, seq_mac()).unwrap();
        assert_eq!(p.port.ifname, format!("mvc{}", p.port.id));
        assert!(p.port.docker && p.port.netns.is_none() && !p.port.host);
        assert_eq!(p.gateway, None, "Docker sets the route itself");
        assert_eq!(p.port.shown_netns().as_deref(), Some("docker:0123456789ab"));
        commit(&mut s, p);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&j).unwrap(), s);
        let with_netns = PortAdd {
            netns: Some("c1".into()),
            ..req
        };
        assert!(s.plan_port(&with_netns, 1500, 3500, seq_mac()).is_err());
    }
}
