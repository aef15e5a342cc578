//! The daemon's model (networks and their ports, what is persisted) and the checks that need no
//! system call: names, VLANs, modes, subnets, MAC/IP uniqueness, passthru exclusivity, MTU limits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::api::{NetworkCreate, PortAdd};
use super::ipam::{next_free, parse_cidr, Ipv4Net};
use crate::names::validate_ifname;
use mvdp_switch::{Mac, Mode};

/// A refusal for the user; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
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
}

impl Port {
    pub fn cidr(&self) -> Option<String> {
        self.ip.map(|ip| format!("{ip}/{}", self.prefix_len))
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

impl State {
    pub fn plan_network(&self, req: &NetworkCreate) -> Result<NetworkPlan, Invalid> {
        validate_network_name(&req.name)?;
        if self.networks.contains_key(&req.name) {
            return bad(format!("network {} already exists", req.name));
        }
        let (parent, dotted) = split_parent(&req.parent);
        if let Err(e) = validate_ifname(parent) {
            return bad(format!("invalid parent: {e}"));
        }
        let dotted = match dotted {
            Some(v) => Some(
                parse_vlan(v.parse::<u64>().unwrap_or(u64::MAX))
                    .map_err(|e| Invalid(format!("parent {}: {e}", req.parent)))?,
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
        let mode = network_mode(req.mode.as_deref().unwrap_or("bridge"))?;
        let subnet = req
            .subnet
            .as_deref()
            .map(|s| {
                s.parse::<Ipv4Net>()
                    .map_err(|e| Invalid(format!("invalid subnet: {e}")))
            })
            .transpose()?;
        let gateway = match (&req.gateway, &subnet) {
            (Some(_), None) => return bad("--gateway needs --subnet"),
            (Some(g), Some(sn)) => {
                let g: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Invalid(format!("invalid gateway {g:?}: not an IPv4 address")))?;
                if !sn.is_host(g) {
                    return bad(format!("gateway {g} is not a host address of subnet {sn}"));
                }
                Some(g)
            }
            (None, Some(sn)) => sn.first_host(),
            (None, None) => None,
        };
        let ip_range = match (&req.ip_range, &subnet) {
            (Some(_), None) => return bad("--ip-range needs --subnet"),
            (Some(r), Some(sn)) => {
                let r: Ipv4Net = r
                    .parse()
                    .map_err(|e| Invalid(format!("invalid ip-range: {e}")))?;
                if !sn.covers(&r) {
                    return bad(format!("ip-range {r} is not inside subnet {sn}"));
                }
                Some(r)
            }
            _ => None,
        };
        for n in self.networks.values().filter(|n| n.parent == parent) {
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

    pub fn network(&self, name: &str) -> Result<&Network, Invalid> {
        self.networks
            .get(name)
            .ok_or_else(|| Invalid(format!("no network named {name}")))
    }

    /// Checks a port request against its network. `parent_mtu` is the parent's current MTU, `max_mtu`
    /// the dataplane's frame limit; `random_mac` is drawn until it is unique in the network.
    pub fn plan_port(
        &self,
        req: &PortAdd,
        parent_mtu: u32,
        max_mtu: u32,
        mut random_mac: impl FnMut() -> Mac,
    ) -> Result<PortPlan, Invalid> {
        let net = self.network(&req.network)?;
        match (&req.netns, req.host) {
            (Some(_), true) => return bad("give either --netns or --host, not both"),
            (None, false) => return bad("a port needs --netns NAME|PATH (or --host)"),
            _ => {}
        }
        if req.host && req.ifname.is_some() {
            return bad("--ifname does not apply to a --host port (its interface is mvh-NETWORK)");
        }
        if net.mode == Mode::Passthru && !net.ports.is_empty() {
            return bad(format!(
                "network {} is passthru and already has its one port",
                net.name
            ));
        }
        if req.host && net.ports.values().any(|p| p.host) {
            return bad(format!("network {} already has a host port", net.name));
        }
        let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
        if let Err(e) = validate_ifname(&ifname) {
            return bad(e.to_string());
        }
        let mac = match &req.mac {
            Some(m) => {
                let mac: Mac = m
                    .parse()
                    .map_err(|e: mvdp_switch::ParseMacError| Invalid(e.to_string()))?;
                if !mac.is_valid_unicast() {
                    return bad(format!("MAC {mac} is not a unicast address"));
                }
                if let Some(p) = net.ports.values().find(|p| p.mac == mac) {
                    return bad(format!(
                        "MAC {mac} is already used by port {} in network {}",
                        p.id, net.name
                    ));
                }
                mac
            }
            None => loop {
                let m = random_mac();
                if m.is_valid_unicast() && !net.ports.values().any(|p| p.mac == m) {
                    break m;
                }
            },
        };
        let used: BTreeSet<Ipv4Addr> = net.ports.values().filter_map(|p| p.ip).collect();
        let (ip, prefix_len) = match (&req.ip, net.subnet) {
            (Some(s), subnet) => {
                let (ip, len) = parse_cidr(s).map_err(|e| Invalid(format!("invalid --ip: {e}")))?;
                if let Some(sn) = subnet {
                    if !sn.is_host(ip) {
                        return bad(format!(
                            "IP {ip} is outside subnet {sn} of network {} (or is its network/broadcast address)",
                            net.name
                        ));
                    }
                    if Some(ip) == net.gateway {
                        return bad(format!("IP {ip} is the gateway of network {}", net.name));
                    }
                    if let Some(l) = len.filter(|l| *l != sn.len()) {
                        return bad(format!(
                            "--ip {s}: prefix /{l} differs from the subnet's /{}",
                            sn.len()
                        ));
                    }
                } else if len.is_none() && !req.host {
                    return bad(format!(
                        "network {} has no subnet: give --ip with a prefix length",
                        net.name
                    ));
                }
                if let Some(p) = net.ports.values().find(|p| p.ip == Some(ip)) {
                    return bad(format!(
                        "IP {ip} is already used by port {} in network {}",
                        p.id, net.name
                    ));
                }
                (Some(ip), len.or(subnet.map(|s| s.len())).unwrap_or(32))
            }
            (None, Some(sn)) => {
                let ip =
                    next_free(&sn, net.ip_range.as_ref(), net.gateway, &used).ok_or_else(|| {
                        Invalid(format!("network {} has no free address left", net.name))
                    })?;
                (Some(ip), sn.len())
            }
            (None, None) => (None, 0),
        };
        if req.host && ip.is_none() {
            return bad(format!(
                "a host port needs an address: network {} has no subnet, give --ip",
                net.name
            ));
        }
        let limit = parent_mtu.min(max_mtu);
        let mtu = match req.mtu {
            Some(m) if m > parent_mtu => {
                return bad(format!(
                    "MTU {m} is above the MTU of parent {} ({parent_mtu})",
                    net.parent
                ))
            }
            Some(m) if m > max_mtu => {
                return bad(format!(
                    "MTU {m} is above mvdp's limit of {max_mtu} (one UMEM frame per packet)"
                ))
            }
            Some(m) if m < 68 => return bad(format!("MTU {m} is below the IPv4 minimum of 68")),
            Some(m) => m,
            None => limit,
        };
        let id = self.next_port_id;
        let (ifname, host_ifname) = if req.host {
            (shim_ifname(&net.name, id), host_ifname(id))
        } else {
            (ifname, host_ifname(id))
        };
        Ok(PortPlan {
            port: Port {
                id,
                netns: req.netns.clone(),
                ifname,
                host_ifname,
                mac,
                ip,
                // A host port's address is a /32: the host keeps its parent's route to the subnet.
                prefix_len: if req.host { 32 } else { prefix_len },
                mtu,
                host: req.host,
            },
            network: net.name.clone(),
            gateway: net.gateway.filter(|_| !req.host && ip.is_some()),
        })
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
        let p = state.plan_network(req).unwrap();
        state.networks.insert(
            p.name.clone(),
            Network {
                name: p.name,
                id: "0".into(),
                created: 0,
                parent: p.parent,
                vlan: p.vlan,
                mode: p.mode,
                subnet: p.subnet,
                gateway: p.gateway,
                ip_range: p.ip_range,
                ports: BTreeMap::new(),
            },
        );
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
        let e = s.plan_network(&r).unwrap_err().0;
        assert!(e.contains("VLAN 100") && e.contains("200"), "{e}");
    }

    #[test]
    fn bad_networks_are_refused_with_reasons() {
        let mut s = State::default();
        add(&mut s, &create("n1", "eth1"));
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
                NetworkCreate {
                    vlan: Some(5000),
                    ..create("n2", "eth1")
                },
                "outside 1-4094",
            ),
            (
                NetworkCreate {
                    mode: Some("bogus".into()),
                    ..create("n2", "eth1.5")
                },
                "unknown mode",
            ),
            (
                NetworkCreate {
                    mode: Some("passthru".into()),
                    ..create("n2", "eth1.5")
                },
                "owns its parent alone",
            ),
            (
                NetworkCreate {
                    subnet: Some("198.18.0.1/24".into()),
                    ..create("n2", "eth1.5")
                },
                "host bits",
            ),
            (
                NetworkCreate {
                    gateway: Some("198.18.1.1".into()),
                    ..create("n2", "eth1.5")
                },
                "not a host address",
            ),
            (
                NetworkCreate {
                    ip_range: Some("198.18.1.0/28".into()),
                    ..create("n2", "eth1.5")
                },
                "not inside subnet",
            ),
            (
                NetworkCreate {
                    subnet: None,
                    gateway: Some("198.18.0.1".into()),
                    ..create("n2", "eth1.5")
                },
                "needs --subnet",
            ),
        ];
        for (req, want) in cases {
            let e = s.plan_network(&req).unwrap_err().0;
            assert!(e.contains(want), "{req:?}: {e:?} lacks {want:?}");
        }
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
        let e = s.plan_network(&create("n2", "eth1.100")).unwrap_err().0;
        assert!(e.contains("passthru network pt"), "{e}");
        assert!(s.plan_network(&create("n2", "eth2")).is_ok());
        let p = s
            .plan_port(&port("pt", "c1"), 1500, 3500, seq_mac())
            .unwrap();
        commit(&mut s, p);
        let e = s
            .plan_port(&port("pt", "c2"), 1500, 3500, seq_mac())
            .unwrap_err()
            .0;
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
            .0;
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
        let cases: Vec<(PortAdd, &str)> = vec![
            (port("nope", "c2"), "no network named nope"),
            (
                PortAdd {
                    mac: Some("02:00:00:00:00:AA".into()),
                    ..port("n", "c2")
                },
                "already used by port 0",
            ),
            (
                PortAdd {
                    mac: Some("01:00:5e:00:00:01".into()),
                    ..port("n", "c2")
                },
                "not a unicast",
            ),
            (
                PortAdd {
                    mac: Some("zz".into()),
                    ..port("n", "c2")
                },
                "MAC address",
            ),
            (
                PortAdd {
                    ip: Some("198.18.0.20/24".into()),
                    ..port("n", "c2")
                },
                "IP 198.18.0.20 is already used",
            ),
            (
                PortAdd {
                    ip: Some("10.0.0.5".into()),
                    ..port("n", "c2")
                },
                "outside subnet",
            ),
            (
                PortAdd {
                    ip: Some("198.18.0.255".into()),
                    ..port("n", "c2")
                },
                "outside subnet",
            ),
            (
                PortAdd {
                    ip: Some("198.18.0.1".into()),
                    ..port("n", "c2")
                },
                "is the gateway",
            ),
            (
                PortAdd {
                    ip: Some("198.18.0.30/16".into()),
                    ..port("n", "c2")
                },
                "differs from the subnet",
            ),
            (
                PortAdd {
                    mtu: Some(9000),
                    ..port("n", "c2")
                },
                "above the MTU of parent eth1 (1500)",
            ),
            (
                PortAdd {
                    ifname: Some("x/y".into()),
                    ..port("n", "c2")
                },
                "interface name",
            ),
            (
                PortAdd {
                    netns: None,
                    ..port("n", "c2")
                },
                "needs --netns",
            ),
            (
                PortAdd {
                    host: true,
                    ..port("n", "c2")
                },
                "not both",
            ),
        ];
        for (req, want) in cases {
            let e = s.plan_port(&req, 1500, 3500, seq_mac()).unwrap_err().0;
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
            .0;
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
        let e = s.plan_port(&req, 1500, 3500, seq_mac()).unwrap_err().0;
        assert!(e.contains("already has a host port"), "{e}");
        assert_eq!(shim_ifname("a-very-long-network", 7), "mvh7");
        assert_eq!(s.find_port("lan", "host").unwrap(), 0);
        assert_eq!(s.find_port("lan", "mvp0").unwrap(), 0);
        assert!(s.find_port("lan", "c9").is_err());
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
    }
}
