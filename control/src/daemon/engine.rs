//! The daemon's state machine: requests in, system + dataplane changes out, all or nothing.
//! Runs on one control thread that owns the [`Dataplane`].

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::json;

use super::api::{
    Attachment, EnsureReply, NetworkCreate, NetworkEnsure, NetworkStatsRow, NetworkSummary,
    PortAdd, PortStatsRow, PortSummary, Reply, Request, StatsReply, UmemRow,
};
use super::multicast::{self, Groups, PortEnd};
use super::peers;
use super::persist;
use super::ports::{self, HostNs, TargetNs, TargetNsError};
use super::reaper::Reaper;
use super::state::{Invalid, Network, Port, PortPlan, State};
use crate::linkwatch::{LinkCache, LinkWatch};
use crate::netlink::Link;
use crate::netns::NetNs;
use crate::offload::Offload;
use mvdp_switch::plane::{Dataplane, DataplaneError, ParentHandle, PortConfig, PortHandle};
use mvdp_switch::{Mac, PortCounters};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    System(#[from] crate::Error),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// A port's `--netns` that cannot be opened.
    #[error(transparent)]
    TargetNs(#[from] TargetNsError),
    #[error("loading the daemon state: {0}")]
    LoadState(#[from] persist::LoadError),
}

impl DaemonError {
    /// The reply's `kind` for this error (see [`Reply::kind`]).
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonError::Invalid(_) => "invalid",
            DaemonError::System(_) => "system",
            DaemonError::Dataplane(_) => "dataplane",
            DaemonError::TargetNs(_) => "netns",
            DaemonError::LoadState(_) => "state",
        }
    }
}

type Result<T, E = DaemonError> = std::result::Result<T, E>;

fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(DaemonError::Invalid(Invalid::new(msg)))
}

pub struct DaemonConfig {
    /// Where state.json lives; `None`: nothing persisted (tests).
    pub state_dir: Option<PathBuf>,
    /// The dataplane's MTU limit (`mvdp_engine::runtime::max_mtu` of its frame size).
    pub max_mtu: u32,
    /// Act in this netns instead of the process's own (tests).
    pub netns: Option<NetNs>,
}

struct ParentRt {
    handle: ParentHandle,
    /// Last seen carrier.
    up: bool,
}

pub struct Daemon<D: Dataplane> {
    dp: D,
    cfg: DaemonConfig,
    host: HostNs,
    state: State,
    parents: BTreeMap<String, ParentRt>,
    /// Port id -> the dataplane's handle, for the ports that are forwarding.
    handles: BTreeMap<u32, PortHandle>,
    /// Port id -> whether its container end is up, as last seen (absent: up).
    peer_up: BTreeMap<u32, bool>,
    /// Port id -> a MAC its container end took that the dataplane refused (warned once).
    refused_mac: BTreeMap<u32, Mac>,
    /// Whose container-end MAC the next poll reads.
    mac_rota: peers::MacRota,
    /// The daemon netns's links, kept current from the kernel's notifications; `None` only
    /// while a poll uses it.
    links: Option<LinkCache>,
    /// Deletes removed ports' veths behind the replies.
    reaper: Reaper,
    /// Ports' multicast filters, following their container ends' groups.
    multicast: multicast::Follow,
}

impl<D: Dataplane> Daemon<D> {
    /// Starts from the saved state: networks whose parent exists are attached again, and ports whose
    /// veth still exists are re-adopted; the rest is dropped with a warning.
    pub fn new(dp: D, cfg: DaemonConfig) -> Result<Daemon<D>> {
        let host = HostNs::new(cfg.netns.clone())?;
        let reaper = Reaper::start(HostNs::new(cfg.netns.clone())?.nl)
            .map_err(|e| crate::Error::io("starting the veth reaper thread", e))?;
        let watch = host
            .run(LinkWatch::open)?
            .map_err(|e| crate::Error::io("subscribing to link notifications", e))?;
        let multicast = host.run(multicast::Follow::open)?;
        let saved = match &cfg.state_dir {
            Some(dir) => persist::load(dir)?,
            None => State::default(),
        };
        let mut d = Daemon {
            dp,
            cfg,
            host,
            state: State {
                networks: BTreeMap::new(),
                next_port_id: saved.next_port_id,
            },
            parents: BTreeMap::new(),
            handles: BTreeMap::new(),
            peer_up: BTreeMap::new(),
            refused_mac: BTreeMap::new(),
            mac_rota: peers::MacRota::default(),
            links: Some(LinkCache::new(watch)),
            reaper,
            multicast,
        };
        let dropped = d.adopt(saved);
        if let (true, Some(dir)) = (dropped > 0, &d.cfg.state_dir) {
            // Keep what could not be re-adopted (a parent that is only missing for now, say).
            let prev = dir.join(format!("{}.prev", persist::STATE_FILE));
            match std::fs::copy(persist::path(dir), &prev) {
                Ok(_) => tracing::warn!("{dropped} saved network(s)/port(s) not re-adopted; the old state is kept in {}", prev.display()),
                Err(e) => tracing::warn!("keeping the old state in {}: {e}", prev.display()),
            }
        }
        d.save();
        Ok(d)
    }

    /// Returns how many networks and ports of `saved` were dropped.
    fn adopt(&mut self, saved: State) -> usize {
        let mut dropped = 0;
        for (name, mut net) in saved.networks {
            let ports = std::mem::take(&mut net.ports);
            if let Err(e) = self.ensure_parent(&net.parent) {
                tracing::warn!(network = %name, "dropping network from the saved state: {e}");
                dropped += 1 + ports.len();
                continue;
            }
            self.state.networks.insert(name.clone(), net);
            for (id, port) in ports {
                match self.host.nl.try_link(&port.host_ifname) {
                    Ok(Some(_)) => {}
                    _ => {
                        tracing::warn!(network = %name, port = id, "dropping port: its veth {} is gone", port.host_ifname);
                        dropped += 1;
                        continue;
                    }
                }
                match self.start_port(&name, &port) {
                    Ok(()) => {
                        tracing::info!(network = %name, port = id, "re-adopted port {}", port.host_ifname);
                        self.net_mut(&name).ports.insert(id, port);
                    }
                    Err(e) => {
                        tracing::warn!(network = %name, port = id, "dropping port: {e}");
                        dropped += 1;
                    }
                }
            }
            // Routes of the host shim towards re-adopted ports may have survived; add any missing.
            self.sync_shim_routes(&name);
        }
        dropped
    }

    fn net_mut(&mut self, name: &str) -> &mut Network {
        self.state.networks.get_mut(name).expect("network exists")
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
    }

    fn save(&self) {
        if let Some(dir) = &self.cfg.state_dir {
            if let Err(e) = persist::save(dir, &self.state) {
                tracing::error!("saving state to {}: {e}", dir.display());
            }
        }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Reply {
        let res: Result<serde_json::Value> = match req {
            Request::Ping {} => Ok(json!({"pong": true})),
            Request::NetworkCreate(r) => self.network_create(&r).map(|n| json!(n)),
            Request::NetworkLs {} => Ok(json!(self.network_ls())),
            Request::NetworkInspect { name } => self.network_inspect(&name),
            Request::NetworkRm { name, force } => self
                .network_rm(&name, force)
                .map(|n| json!({"removed_ports": n})),
            Request::PortAdd(r) => self.port_add(&r).map(|p| json!(p)),
            Request::PortLs {} => Ok(json!(self.port_ls())),
            Request::PortRm { network, port } => self.port_rm(&network, &port).map(|p| json!(p)),
            Request::Stats {} => Ok(json!(self.stats())),
            Request::NetworkEnsure(r) => self.network_ensure(&r).map(|r| json!(r)),
            Request::AttachmentRm {
                network,
                container_id,
                ifname,
            } => self
                .attachment_rm(&network, &container_id, &ifname)
                .map(|p| json!({ "removed": p })),
            Request::AttachmentGc { network, valid } => self
                .attachment_gc(&network, &valid)
                .map(|p| json!({ "removed": p })),
        };
        match res {
            Ok(v) => Reply::ok(v),
            Err(e) => Reply::error_of_kind(e.to_string(), e.kind()),
        }
    }

    // ---- networks --------------------------------------------------------------------------------

    fn ensure_parent(&mut self, parent: &str) -> Result<()> {
        if self.parents.contains_key(parent) {
            return Ok(());
        }
        let link = self.host.nl.try_link(parent)?.ok_or_else(|| {
            Invalid::new(format!(
                "parent interface {parent} does not exist in the daemon's network namespace"
            ))
        })?;
        // A NIC that strips 802.1Q tags into metadata hides them from the XDP demux, which would
        // then take a VLAN's frames for untagged ones. Best effort: some drivers cannot change it.
        if let Err(e) = self
            .host
            .offloads_off(parent, &[Offload::RxVlan, Offload::RxVlanStag])
        {
            tracing::warn!(parent, "could not turn VLAN tag stripping off: {e}");
        }
        let handle = self.dp.attach_parent(parent)?;
        self.parents.insert(
            parent.to_string(),
            ParentRt {
                handle,
                up: link.up && link.lower_up,
            },
        );
        tracing::info!(parent, "attached");
        Ok(())
    }

    fn release_parent_if_unused(&mut self, parent: &str) {
        if self.state.on_parent(parent).next().is_some() {
            return;
        }
        if let Some(p) = self.parents.remove(parent) {
            match self.dp.detach_parent(p.handle) {
                Ok(()) => tracing::info!(parent, "detached"),
                Err(e) => tracing::warn!(parent, "detaching: {e}"),
            }
        }
    }

    pub fn network_create(&mut self, req: &NetworkCreate) -> Result<NetworkSummary> {
        let plan = self.state.plan_network(req)?;
        self.ensure_parent(&plan.parent)?;
        let mut id = [0u8; 6];
        ports::random_bytes(&mut id);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let net = plan.into_network(id.iter().map(|b| format!("{b:02x}")).collect(), created);
        tracing::info!(network = %net.name, parent = %net.parent, vlan = net.vlan, mode = %net.mode, "network created");
        let name = net.name.clone();
        self.state.networks.insert(name.clone(), net);
        self.save();
        Ok(self.summary(&name))
    }

    /// Makes the network unless it exists with the same parent, VLAN and mode (CNI's first use);
    /// `dry_run` only checks. Either way the reply says whether the parent is there with carrier.
    pub fn network_ensure(&mut self, req: &NetworkEnsure) -> Result<EnsureReply> {
        let plan = self.state.plan_ensure(req)?;
        let existed = plan.is_none();
        let parent = match &plan {
            Some(p) => p.parent.clone(),
            None => self.state.networks[&req.name].parent.clone(),
        };
        let created = match plan {
            Some(_) if req.dry_run => false,
            Some(_) => {
                let create = NetworkCreate {
                    name: req.name.clone(),
                    parent: req.parent.clone(),
                    vlan: req.vlan,
                    mode: req.mode.clone(),
                    ..Default::default()
                };
                self.network_create(&create)?;
                true
            }
            None => false,
        };
        let parent_up = match self.parents.get(&parent) {
            Some(p) => p.up,
            None => self
                .host
                .nl
                .try_link(&parent)?
                .is_some_and(|l| l.up && l.lower_up),
        };
        Ok(EnsureReply {
            existed,
            created,
            parent,
            parent_up,
        })
    }

    fn summary(&self, name: &str) -> NetworkSummary {
        let n = &self.state.networks[name];
        NetworkSummary {
            name: n.name.clone(),
            id: n.id.clone(),
            parent: n.parent.clone(),
            vlan: n.vlan,
            mode: n.mode.to_string(),
            subnet: n.subnet.map(|s| s.to_string()),
            gateway: n.gateway.map(|g| g.to_string()),
            ip_range: n.ip_range.map(|r| r.to_string()),
            ports: n.ports.len(),
            parent_up: self.parents.get(&n.parent).is_some_and(|p| p.up),
        }
    }

    pub fn network_ls(&self) -> Vec<NetworkSummary> {
        self.state
            .networks
            .keys()
            .map(|n| self.summary(n))
            .collect()
    }

    /// Shaped like `docker network inspect` (one-element array), with mvdp's own fields in Options.
    pub fn network_inspect(&self, name: &str) -> Result<serde_json::Value> {
        let n = self.state.network(name)?;
        let mut ipam = serde_json::Map::new();
        if let Some(s) = n.subnet {
            ipam.insert("Subnet".into(), json!(s.to_string()));
        }
        if let Some(g) = n.gateway {
            ipam.insert("Gateway".into(), json!(g.to_string()));
        }
        if let Some(r) = n.ip_range {
            ipam.insert("IPRange".into(), json!(r.to_string()));
        }
        let containers: serde_json::Map<String, serde_json::Value> = n
            .ports
            .values()
            .map(|p| {
                (
                    p.id.to_string(),
                    json!({
                        "Name": p.shown_netns().unwrap_or_else(|| "host".into()),
                        "Interface": p.ifname,
                        "HostInterface": p.host_ifname,
                        "MacAddress": p.mac.to_string(),
                        "IPv4Address": p.cidr().unwrap_or_default(),
                        "MTU": p.mtu,
                        "State": self.port_state(n, p),
                    }),
                )
            })
            .collect();
        Ok(json!([{
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": "mvdp",
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": if ipam.is_empty() { json!([]) } else { json!([ipam]) }},
            "Internal": false,
            "Containers": containers,
            "Options": {
                "parent": n.parent,
                "vlan": n.vlan.to_string(),
                "macvlan_mode": n.mode.to_string(),
            },
            "Labels": {},
        }]))
    }

    pub fn network_rm(&mut self, name: &str, force: bool) -> Result<usize> {
        let n = self.state.network(name)?;
        let ids: Vec<u32> = n.ports.keys().copied().collect();
        if !ids.is_empty() && !force {
            return invalid(format!(
                "network {name} still has {} port(s); remove them first or use --force",
                ids.len()
            ));
        }
        // The host shim last: its routes go with it.
        let mut ordered = ids.clone();
        ordered.sort_by_key(|id| n.ports[id].host);
        for id in &ordered {
            self.remove_port(name, *id);
        }
        let parent = self.state.networks.remove(name).expect("exists").parent;
        self.release_parent_if_unused(&parent);
        tracing::info!(network = name, "network removed");
        self.save();
        Ok(ids.len())
    }

    // ---- ports -----------------------------------------------------------------------------------

    fn parent_up(&self, net: &Network) -> bool {
        self.parents.get(&net.parent).is_some_and(|p| p.up)
    }

    fn peer_up(&self, id: u32) -> bool {
        self.peer_up.get(&id).copied().unwrap_or(true)
    }

    fn port_state(&self, net: &Network, p: &Port) -> &'static str {
        if !self.handles.contains_key(&p.id) {
            "detached"
        } else if !self.parent_up(net) {
            "no-carrier"
        } else if !self.peer_up(p.id) {
            "down"
        } else {
            "up"
        }
    }

    /// Hands an existing, configured veth to the dataplane and applies the parent's carrier to it.
    fn start_port(&mut self, network: &str, port: &Port) -> Result<()> {
        let net = &self.state.networks[network];
        let parent = self.parents.get(&net.parent).ok_or_else(|| {
            DaemonError::Invalid(Invalid::new(format!(
                "parent {} is not attached",
                net.parent
            )))
        })?;
        if parent.up {
            // A re-adopted port may have been left down by carrier follow before a restart.
            self.host.nl.set_up(&port.host_ifname)?;
        }
        let handle = self.dp.add_port(&PortConfig {
            parent: parent.handle,
            vlan: net.vlan,
            mode: net.mode,
            mac: mvdp_switch::Mac(port.mac.0),
            veth_ifname: port.host_ifname.clone(),
        })?;
        if !parent.up {
            let r = self
                .host
                .nl
                .set_down(&port.host_ifname)
                .map_err(DaemonError::from)
                .and_then(|()| Ok(self.dp.set_port_up(handle, false)?));
            if let Err(e) = r {
                let _ = self.dp.remove_port(handle);
                return Err(e);
            }
        }
        self.handles.insert(port.id, handle);
        self.multicast.added(port.id);
        Ok(())
    }

    pub fn port_add(&mut self, req: &PortAdd) -> Result<PortSummary> {
        let parent = self.state.network(&req.network)?.parent.clone();
        let parent_link = self.host.nl.link(&parent)?;
        let parent_mtu = parent_link.mtu;
        // Skip ids whose interface name someone else took (a leftover, a hand-made link).
        while self
            .host
            .nl
            .try_link(&super::state::host_ifname(self.state.next_port_id))?
            .is_some()
        {
            self.state.next_port_id += 1;
        }
        let plan = self
            .state
            .plan_port(req, parent_mtu, self.cfg.max_mtu, ports::random_mac)?;
        self.check_port_keeps_the_host(&plan, &parent_link)?;
        let via = req.cni.as_ref().and_then(|c| c.netns_via.as_ref());
        let target = match (&req.netns, via) {
            (Some(spec), Some(via)) => Some(TargetNs::open(via).or_else(|_| TargetNs::open(spec))?),
            (Some(spec), None) => Some(TargetNs::open(spec)?),
            (None, _) => None,
        };
        if let Some(t) = target.as_ref().filter(|t| self.host.is(t)) {
            return invalid(format!(
                "netns {} is the daemon's own network namespace; a port's container end must be in another one",
                t.display
            ));
        }
        let port = plan.port;
        let ours = [&port.host_ifname]
            .into_iter()
            .chain((port.host || port.docker).then_some(&port.ifname));
        for name in ours {
            if self.host.nl.try_link(name)?.is_some() {
                return invalid(format!(
                    "interface {name} already exists in the daemon's netns"
                ));
            }
        }
        ports::create(&self.host, &port, target.as_ref(), plan.gateway)?;
        if let (Some(t), false) = (&target, plan.routes.is_empty()) {
            let r = t.netlink().and_then(|nl| {
                plan.routes.iter().try_for_each(|(dst, gw)| {
                    nl.add_route(dst.addr(), dst.len(), *gw, Some(&port.ifname))
                })
            });
            if let Err(e) = r {
                ports::remove(&self.host, &port);
                return Err(e.into());
            }
        }
        if let Err(e) = self.start_port(&plan.network, &port) {
            ports::remove(&self.host, &port);
            return Err(e);
        }
        self.state.next_port_id = port.id + 1;
        self.net_mut(&plan.network)
            .ports
            .insert(port.id, port.clone());
        self.sync_shim_routes(&plan.network);
        tracing::info!(network = %plan.network, port = port.id, netns = ?port.netns, ip = ?port.ip, mac = %port.mac, "port added");
        self.save();
        Ok(self.port_summary(&plan.network, port.id))
    }

    /// A port must not take what the host needs to keep its NIC: the parent's own MAC (frames
    /// for the host would go to the port instead: the host loses the wire) or the host's address
    /// on the parent (except the host port, which is the host's own stack). A passthru port owns
    /// the parent, MAC included, as in the kernel.
    fn check_port_keeps_the_host(&self, plan: &PortPlan, parent: &Link) -> Result<()> {
        let port = &plan.port;
        let passthru = self
            .state
            .networks
            .get(&plan.network)
            .is_some_and(|n| n.mode == mvdp_switch::Mode::Passthru);
        if !passthru && parent.mac == Some(port.mac) {
            return invalid(format!(
                "MAC {} is the parent {}'s own address: frames for the host would reach the port instead",
                port.mac, parent.name
            ));
        }
        // The host port (shim) is the host's own stack, and may use the host's address.
        if let Some(ip) = port.ip.filter(|_| !port.host) {
            let host_addrs = self.host.nl.addresses(&parent.name)?;
            if host_addrs
                .iter()
                .any(|(a, _)| *a == std::net::IpAddr::V4(ip))
            {
                return invalid(format!(
                    "IP {ip} is the host's own address on the parent {}",
                    parent.name
                ));
            }
        }
        Ok(())
    }

    fn port_summary(&self, network: &str, id: u32) -> PortSummary {
        let n = &self.state.networks[network];
        let p = &n.ports[&id];
        PortSummary {
            id,
            network: network.to_string(),
            netns: p.shown_netns(),
            ifname: p.ifname.clone(),
            host_ifname: p.host_ifname.clone(),
            mac: p.mac.to_string(),
            ip: p.cidr(),
            mtu: p.mtu,
            host: p.host,
            state: self.port_state(n, p).to_string(),
            container_id: p.container_id.clone(),
            multicast: match self.multicast.groups(id) {
                Some(Groups::Only(g)) => Some(g.iter().map(|m| m.to_string()).collect()),
                Some(Groups::All) | None => None,
            },
        }
    }

    pub fn port_ls(&self) -> Vec<PortSummary> {
        self.state
            .networks
            .values()
            .flat_map(|n| n.ports.keys().map(|id| self.port_summary(&n.name, *id)))
            .collect()
    }

    pub fn port_rm(&mut self, network: &str, key: &str) -> Result<PortSummary> {
        let id = self.state.find_port(network, key)?;
        let summary = self.port_summary(network, id);
        self.remove_port(network, id);
        self.save();
        Ok(summary)
    }

    /// Removes the port of CNI attachment (`container_id`, `ifname`); none is fine (CNI DEL is
    /// idempotent), and so is a network that does not exist.
    pub fn attachment_rm(
        &mut self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<PortSummary>> {
        let Some(net) = self.state.networks.get(network) else {
            return Ok(None);
        };
        let Some(id) = net
            .ports
            .values()
            .find(|p| p.is_attachment(container_id, ifname))
            .map(|p| p.id)
        else {
            return Ok(None);
        };
        let summary = self.port_summary(network, id);
        self.remove_port(network, id);
        self.save();
        Ok(Some(summary))
    }

    /// Removes the CNI ports of `network` whose attachment is not in `valid` (CNI GC).
    pub fn attachment_gc(
        &mut self,
        network: &str,
        valid: &[Attachment],
    ) -> Result<Vec<PortSummary>> {
        if !self.state.networks.contains_key(network) {
            return Ok(vec![]);
        }
        let stale = self.state.stale_attachments(network, valid)?;
        let mut removed = vec![];
        for id in stale {
            removed.push(self.port_summary(network, id));
            self.remove_port(network, id);
        }
        if !removed.is_empty() {
            self.save();
        }
        Ok(removed)
    }

    fn remove_port(&mut self, network: &str, id: u32) {
        self.peer_up.remove(&id);
        self.refused_mac.remove(&id);
        self.multicast.removed(id);
        if let Some(h) = self.handles.remove(&id) {
            if let Err(e) = self.dp.remove_port(h) {
                tracing::warn!(network, port = id, "dataplane remove_port: {e}");
            }
        }
        let port = self
            .net_mut(network)
            .ports
            .remove(&id)
            .expect("port exists");
        self.delete_veth(&port);
        if let (Some(ip), Some(shim)) = (port.ip, self.shim_of(network)) {
            self.host.del_host_route(ip, &shim);
        }
        tracing::info!(network, port = id, "port removed");
    }

    /// Deletes a removed port's veth, behind the reply where that is safe: deleting a link waits
    /// for the kernel (see `reaper`), and all that must be done before answering is to free the
    /// names a client may use again at once. The host end's name (`mvp<id>`, `mvc<id>`) is never
    /// reused; the container end's (`eth0`) is, by the next port added to the same netns, so it
    /// is renamed out of the way and set down (its routes go) in its netns first. When that netns
    /// cannot be entered (gone, or a runtime's path the daemon cannot see), and for the host
    /// port, whose shim name is the network's, the veth is deleted before answering, as before.
    fn delete_veth(&self, port: &Port) {
        let freed = if port.host {
            false
        } else if port.docker {
            true
        } else {
            port.netns
                .as_deref()
                .is_some_and(|spec| match ports::set_aside(spec, port) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::debug!(port = port.id, "container end not set aside: {e}");
                        false
                    }
                })
        };
        if freed {
            self.reaper.delete(port.host_ifname.clone());
        } else {
            ports::remove(&self.host, port);
        }
    }

    /// Waits until the veths of removed ports are deleted (tests; a daemon that stops waits for
    /// them anyway, when its reaper is dropped).
    pub fn settle(&self) {
        self.reaper.flush();
    }

    fn shim_of(&self, network: &str) -> Option<String> {
        self.state.networks[network]
            .ports
            .values()
            .find(|p| p.host)
            .map(|p| p.ifname.clone())
    }

    /// Makes the host shim's /32 routes match the network's ports (adds the missing ones).
    fn sync_shim_routes(&mut self, network: &str) {
        let Some(shim) = self.shim_of(network) else {
            return;
        };
        let have: Vec<Ipv4Addr> = match self.host.host_routes(&shim) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(network, "listing routes of {shim}: {e}");
                return;
            }
        };
        let want: Vec<Ipv4Addr> = self.state.networks[network]
            .ports
            .values()
            .filter(|p| !p.host)
            .filter_map(|p| p.ip)
            .collect();
        for ip in want.into_iter().filter(|ip| !have.contains(ip)) {
            if let Err(e) = self.host.nl.add_route(ip, 32, None, Some(&shim)) {
                tracing::warn!(network, "adding host route to {ip} via {shim}: {e}");
            }
        }
    }

    // ---- watching the system ---------------------------------------------------------------------

    /// What the control thread runs between requests: ports whose veth vanished are dropped, the
    /// parents' carrier is applied to their ports, and ports follow their container ends. The
    /// links come from the kernel's notifications ([`LinkCache`]): when none arrived, only the
    /// rota of container-end MACs is read, so an idle poll costs the same at any port count.
    pub fn poll(&mut self) {
        let Some(mut cache) = self.links.take() else {
            return;
        };
        match cache.refresh(&self.host.nl) {
            Ok(changed) => {
                let links = cache.links();
                if changed {
                    self.reap_vanished_ports(links);
                    self.follow_carrier(links);
                }
                self.follow_peers(links, changed);
                self.follow_multicast(links);
            }
            Err(e) => tracing::warn!("watching links: {e}"),
        }
        self.links = Some(cache);
    }

    /// The daemon's links by name; `None`, with a warning, when they cannot be listed (a poll
    /// then does nothing rather than take every link for gone).
    fn links(&self) -> Option<HashMap<String, Link>> {
        match self.host.nl.links() {
            Ok(l) => Some(l.into_iter().map(|l| (l.name.clone(), l)).collect()),
            Err(e) => {
                tracing::warn!("listing links: {e}");
                None
            }
        }
    }

    /// [`Self::follow_peers`] on a fresh link dump.
    pub fn poll_peers(&mut self) {
        if let Some(links) = self.links() {
            self.follow_peers(&links, true);
        }
    }

    /// [`Self::follow_carrier`] on a fresh link dump.
    pub fn poll_carrier(&mut self) {
        if let Some(links) = self.links() {
            self.follow_carrier(&links);
        }
    }

    /// Ports follow their container end, as a kernel macvlan follows its own state: taken down, the
    /// port receives nothing and its MAC is nobody's (the dataplane unhashes down ports); a new MAC
    /// becomes the port's MAC (what it receives for, and the only source it may send with).
    /// The state is read off the host ends in `links` (every port when `states_changed`, else
    /// only the ports whose MAC is due); MACs a slice of ports per poll (see [`peers`]).
    fn follow_peers(&mut self, links: &HashMap<String, Link>, states_changed: bool) {
        if self.handles.is_empty() {
            return;
        }
        // Handles are keyed by port id, so these come sorted.
        let ids: Vec<u32> = self.handles.keys().copied().collect();
        let due = self.mac_rota.take(&ids, peers::MAC_READS_PER_POLL);
        let ports: Vec<(String, u32, String, Mac, bool)> = self
            .state
            .networks
            .values()
            .flat_map(|n| {
                let parent_up = self.parent_up(n);
                n.ports
                    .values()
                    .filter(|p| states_changed || due.binary_search(&p.id).is_ok())
                    .map(move |p| {
                        (
                            n.name.clone(),
                            p.id,
                            p.host_ifname.clone(),
                            p.mac,
                            parent_up,
                        )
                    })
            })
            .collect();
        let host_ends: Vec<&Link> = ports
            .iter()
            .filter(|p| due.binary_search(&p.1).is_ok())
            .filter_map(|p| links.get(&p.2))
            .collect();
        let macs = peers::peer_macs(&self.host.nl, &host_ends);
        let mut changed = false;
        for (network, id, ifname, mac, parent_up) in ports {
            let (Some(host_end), Some(&h)) = (links.get(&ifname), self.handles.get(&id)) else {
                continue;
            };
            if let Some(up) = peers::peer_up(host_end) {
                self.follow_peer_state(&network, id, h, up, parent_up);
            }
            if let Some(&peer_mac) = macs.get(&ifname) {
                if self.takes_the_parents_mac(&network, peer_mac, links) {
                    if self.refused_mac.insert(id, peer_mac) != Some(peer_mac) {
                        tracing::warn!(network, port = id, "not following the container's new MAC {peer_mac}: it is the parent's own address");
                    }
                    continue;
                }
                changed |= self.follow_peer_mac(&network, id, h, mac, Some(peer_mac));
            }
        }
        if changed {
            self.save();
        }
    }

    /// Ports' multicast filters follow the groups their container ends listen to (see
    /// [`multicast`]), all changes of a poll in one update of the dataplane.
    fn follow_multicast(&mut self, links: &HashMap<String, Link>) {
        let mut ends: Vec<PortEnd<'_>> = self
            .state
            .networks
            .values()
            .flat_map(|n| n.ports.values())
            .filter(|p| self.handles.contains_key(&p.id))
            .filter_map(|p| {
                Some(PortEnd {
                    id: p.id,
                    host_end: links.get(&p.host_ifname)?,
                })
            })
            .collect();
        // Port ids across networks, in the order the follower's rota and `due` set expect.
        ends.sort_by_key(|e| e.id);
        let read = self.multicast.poll(&self.host.nl, &ends);
        let changes: Vec<_> = read
            .iter()
            .filter_map(|&(id, f)| Some((*self.handles.get(&id)?, f)))
            .collect();
        if !changes.is_empty() {
            if let Err(e) = self.dp.set_ports_multicast(&changes) {
                tracing::warn!("dataplane set_ports_multicast: {e}");
                self.multicast.refused(read.iter().map(|&(id, _)| id));
            }
        }
    }

    /// Whether `mac` is the MAC of `network`'s parent (in `links`), outside passthru: a port that
    /// took it would take the host's frames.
    fn takes_the_parents_mac(
        &self,
        network: &str,
        mac: Mac,
        links: &HashMap<String, Link>,
    ) -> bool {
        self.state.networks.get(network).is_some_and(|n| {
            n.mode != mvdp_switch::Mode::Passthru
                && links.get(&n.parent).and_then(|l| l.mac) == Some(mac)
        })
    }

    /// Port `id` (handle `h`) delivers while its container end is `up` and its parent has carrier.
    fn follow_peer_state(
        &mut self,
        network: &str,
        id: u32,
        h: PortHandle,
        up: bool,
        parent_up: bool,
    ) {
        if up == self.peer_up(id) {
            return;
        }
        self.peer_up.insert(id, up);
        tracing::info!(
            network,
            port = id,
            up,
            "container end changed state; the port follows"
        );
        if let Err(e) = self.dp.set_port_up(h, parent_up && up) {
            tracing::warn!(port = id, "dataplane set_port_up({up}): {e}");
        }
    }

    /// Port `id` (handle `h`, MAC `mac`) takes the MAC its container end now has, when the dataplane
    /// accepts it (a refused MAC is not asked again until the container changes it). True when the
    /// port's MAC changed.
    fn follow_peer_mac(
        &mut self,
        network: &str,
        id: u32,
        h: PortHandle,
        mac: Mac,
        peer_mac: Option<Mac>,
    ) -> bool {
        let Some(new) = peer_mac.filter(|m| *m != mac) else {
            self.refused_mac.remove(&id);
            return false;
        };
        if self.refused_mac.get(&id) == Some(&new) {
            return false;
        }
        match self.dp.set_port_mac(h, mvdp_switch::Mac(new.0)) {
            Ok(()) => {
                tracing::info!(network, port = id, old = %mac, new = %new, "container end changed its MAC; the port follows");
                self.refused_mac.remove(&id);
                if let Some(p) = self.net_mut(network).ports.get_mut(&id) {
                    p.mac = new;
                }
                true
            }
            Err(e) => {
                tracing::warn!(
                    network,
                    port = id,
                    "not following the container's new MAC {new}: {e}"
                );
                self.refused_mac.insert(id, new);
                false
            }
        }
    }

    /// A container's netns going away takes both veth ends with it: forget such ports, as Docker
    /// forgets the endpoints of a removed container.
    fn reap_vanished_ports(&mut self, links: &HashMap<String, Link>) {
        if self.handles.is_empty() {
            return;
        }
        let gone: Vec<(String, u32)> = self
            .state
            .networks
            .values()
            .flat_map(|n| n.ports.values().map(move |p| (n, p)))
            .filter(|(_, p)| !links.contains_key(&p.host_ifname))
            .map(|(n, p)| (n.name.clone(), p.id))
            .collect();
        for (network, id) in &gone {
            tracing::info!(
                network,
                port = id,
                "the port's veth is gone (its netns went away?); removing the port"
            );
            self.remove_port(network, *id);
        }
        if !gone.is_empty() {
            self.save();
        }
    }

    /// Polls every attached parent's carrier; on a change, every port on that parent follows: its host
    /// veth end goes down (the container's end shows NO-CARRIER, as under kernel macvlan) and the
    /// dataplane stops delivering to it; back up when the parent is.
    fn follow_carrier(&mut self, links: &HashMap<String, Link>) {
        let names: Vec<String> = self.parents.keys().cloned().collect();
        for parent in names {
            let up = links.get(&parent).is_some_and(|l| l.up && l.lower_up);
            let rt = self.parents.get_mut(&parent).expect("listed");
            if rt.up == up {
                continue;
            }
            rt.up = up;
            tracing::info!(parent, up, "parent carrier changed; ports follow");
            let ports: Vec<(u32, String)> = self
                .state
                .on_parent(&parent)
                .flat_map(|n| n.ports.values().map(|p| (p.id, p.host_ifname.clone())))
                .collect();
            for (id, ifname) in ports {
                let r = if up {
                    self.host.nl.set_up(&ifname)
                } else {
                    self.host.nl.set_down(&ifname)
                };
                if let Err(e) = r {
                    tracing::warn!(port = id, "carrier follow on {ifname}: {e}");
                }
                if let Some(h) = self.handles.get(&id) {
                    if let Err(e) = self.dp.set_port_up(*h, up && self.peer_up(id)) {
                        tracing::warn!(port = id, "dataplane set_port_up({up}): {e}");
                    }
                }
            }
        }
    }

    // ---- stats -----------------------------------------------------------------------------------

    pub fn stats(&self) -> StatsReply {
        let s = self.dp.stats();
        let mut ports = vec![];
        let mut networks = vec![];
        for n in self.state.networks.values() {
            let mut sum = PortCounters::default();
            for p in n.ports.values() {
                let t = self
                    .handles
                    .get(&p.id)
                    .and_then(|h| s.ports.get(&h.0))
                    .map(|c| c.traffic)
                    .unwrap_or_default();
                sum.add(&t);
                let xsk = self
                    .handles
                    .get(&p.id)
                    .and_then(|h| s.ports.get(&h.0))
                    .map(|c| c.xsk)
                    .unwrap_or_default();
                ports.push(PortStatsRow {
                    xsk,
                    id: p.id,
                    network: n.name.clone(),
                    netns: p.shown_netns(),
                    ifname: p.ifname.clone(),
                    host_ifname: p.host_ifname.clone(),
                    traffic: t,
                });
            }
            networks.push(NetworkStatsRow {
                name: n.name.clone(),
                ports: n.ports.len(),
                traffic: sum,
            });
        }
        let u = s.umem;
        StatsReply {
            ports,
            networks,
            drops: s.drops.clone(),
            umem: UmemRow {
                books: u,
                balanced: u.balanced(),
            },
            capacity: s.capacity.clone(),
            veths_deleting: self.reaper.pending(),
            workers: s.workers,
            poll_mode: s.poll_mode.clone(),
            flood_rate: s.flood_rate,
            parents: serde_json::to_value(&s.parents).unwrap_or_default(),
            hops: s.hops.clone(),
            late_turns: s.late_turns,
            longest_turn_us: s.longest_turn_us,
            unwatched: s.unwatched,
        }
    }

    // ---- shutdown --------------------------------------------------------------------------------

    /// Stops forwarding: ports out of the dataplane, parents detached, state saved. The veths and the
    /// containers' configuration stay (they are the containers'); a restarted daemon re-adopts them.
    pub fn shutdown(mut self) -> D {
        for (id, h) in std::mem::take(&mut self.handles) {
            if let Err(e) = self.dp.remove_port(h) {
                tracing::warn!(port = id, "dataplane remove_port: {e}");
            }
        }
        for (name, p) in std::mem::take(&mut self.parents) {
            if let Err(e) = self.dp.detach_parent(p.handle) {
                tracing::warn!(parent = %name, "detaching: {e}");
            }
        }
        self.save();
        tracing::info!("dataplane released, state saved");
        self.dp
    }
}
