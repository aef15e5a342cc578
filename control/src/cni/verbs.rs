//! ADD, DEL, CHECK, STATUS and GC against the mvdp daemon, IPAM delegated.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::config::{default_route_interface, Config, NetConf};
use super::daemon::{Daemon, Failure};
use super::env::Env;
use super::error::{code, invalid_config, CniError, CniResult};
use super::ipam::Ipam;
use super::result::{CniResultBody, Interface, IpConfig};
use super::version::at_least;
use crate::daemon::api::{
    CniPort, EnsureReply, NetworkEnsure, PortAdd, PortRoute, PortSummary, Request,
};
use crate::daemon::client::DEFAULT_SOCKET;
use crate::daemon::ports::{TargetNs, TargetNsError};

/// The daemon's socket: the configuration's `socket`, else `MVDP_SOCKET`, else the default.
fn socket(c: &NetConf, var: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    c.socket
        .clone()
        .or_else(|| var("MVDP_SOCKET").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
        .into()
}

/// `master`, else the interface of the default route.
fn master(c: &NetConf) -> CniResult<String> {
    match &c.master {
        Some(m) if !m.is_empty() => Ok(m.clone()),
        _ => default_route_interface().ok_or_else(|| {
            invalid_config("no master given, and no IPv4 default route to take it from")
        }),
    }
}

fn ensure_request(c: &NetConf, master: &str, dry_run: bool) -> Request {
    Request::NetworkEnsure(NetworkEnsure {
        name: c.name.clone(),
        parent: master.to_string(),
        vlan: c.vlan,
        mode: c.mode.clone(),
        dry_run,
    })
}

/// Opens the container's netns: missing is code 3 (the container is gone), not a netns code 4.
fn open_netns(netns: &str) -> CniResult<TargetNs> {
    TargetNs::open(netns).map_err(|e| match e {
        TargetNsError::Missing { .. } | TargetNsError::Open { .. } => {
            CniError::new(code::UNKNOWN_CONTAINER, e.to_string())
        }
        _ => CniError::new(code::INVALID_ENV, format!("CNI_NETNS: {e}")),
    })
}

fn io(e: crate::Error) -> CniError {
    CniError::new(code::IO, e.to_string())
}

pub struct Ctx<'a> {
    pub env: &'a Env,
    pub cfg: &'a Config,
    pub var: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    fn conf(&self) -> &NetConf {
        &self.cfg.conf
    }
    fn version(&self) -> &str {
        &self.cfg.conf.cni_version
    }
    fn daemon(&self) -> Daemon {
        Daemon::new(&socket(self.conf(), self.var))
    }
    fn ipam(&self) -> CniResult<Option<Ipam>> {
        self.conf()
            .ipam_type()
            .map(|t| Ipam::new(t, &self.env.path, &self.cfg.raw))
            .transpose()
    }

    // ---- ADD -------------------------------------------------------------------------------------

    pub fn add(&self) -> CniResult<Value> {
        let c = self.conf();
        c.validate()?;
        let mac = c.mac(self.env)?;
        let master = master(c)?;
        {
            let ns = open_netns(&self.env.netns)?;
            if ns
                .netlink()
                .map_err(io)?
                .try_link(&self.env.ifname)
                .map_err(io)?
                .is_some()
            {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!(
                        "CNI_IFNAME: interface {} already exists in {}",
                        self.env.ifname, self.env.netns
                    ),
                ));
            }
        }
        let ipam = self.ipam()?;
        let daemon = self.daemon();
        // A parallel ADD that made the network removes it again when its own port fails; if that
        // happens between our ensure and our port, ensure again (a few tries).
        let mut tries = 0;
        loop {
            tries += 1;
            let ensured: EnsureReply = daemon
                .call(&ensure_request(c, &master, false))
                .map_err(|f| f.to_cni(code::TRY_AGAIN_LATER))?;
            match self.add_port(&daemon, ipam.as_ref(), mac.clone()) {
                Ok(v) => return Ok(v),
                Err((e, retry)) => {
                    if ensured.created {
                        // Nothing half-made: the network this ADD made goes again (refused,
                        // harmlessly, once another container has a port on it).
                        let _: Result<Value, _> = daemon.call(&Request::NetworkRm {
                            name: c.name.clone(),
                            force: false,
                        });
                    }
                    if !retry || tries >= 3 {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// IPAM, then the daemon's port; on failure IPAM is released. The bool: worth another try.
    fn add_port(
        &self,
        daemon: &Daemon,
        ipam: Option<&Ipam>,
        mac: Option<String>,
    ) -> Result<Value, (CniError, bool)> {
        let c = self.conf();
        let addrs = match ipam {
            Some(i) => i.add(self.version()).map_err(|e| (e, false))?,
            None => CniResultBody::default(),
        };
        let undo_ipam = |e: CniError| {
            if let Some(i) = ipam {
                if let Err(d) = i.del(self.version()) {
                    eprintln!("mvdp: releasing the IPAM allocation after a failed ADD: {d}");
                }
            }
            e
        };
        let (ip, routes) = port_addressing(&addrs).map_err(|e| (undo_ipam(e), false))?;
        // Held open while the daemon works: it opens the netns through this process's fd, which
        // reaches the namespace even when the daemon's mount namespace lacks the runtime's
        // /run/netns bind mount.
        let ns_file = std::fs::File::open(&self.env.netns).ok();
        let via = ns_file
            .as_ref()
            .map(|f| format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd()));
        let req = Request::PortAdd(PortAdd {
            network: c.name.clone(),
            netns: Some(self.env.netns.clone()),
            cni: Some(Box::new(CniPort {
                container_id: self.env.container_id.clone(),
                netns_via: via,
                routes,
            })),
            ifname: Some(self.env.ifname.clone()),
            mac,
            ip,
            mtu: c.mtu(),
            ..Default::default()
        });
        let port: PortSummary = daemon.call(&req).map_err(|f| {
            let retry =
                matches!(&f, Failure::Refused { msg, .. } if msg.starts_with("no network named"));
            (undo_ipam(f.to_cni(code::TRY_AGAIN_LATER)), retry)
        })?;
        drop(ns_file);
        let mut result = addrs;
        result.interfaces = vec![Interface {
            name: self.env.ifname.clone(),
            mac: Some(port.mac),
            mtu: Some(port.mtu),
            sandbox: Some(self.env.netns.clone()),
        }];
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        if let Some(d) = c
            .dns
            .as_ref()
            .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
        {
            result.dns = Some(d.clone());
        }
        Ok(result.to_value(self.version()))
    }

    // ---- DEL -------------------------------------------------------------------------------------

    /// Removes the port and releases IPAM, whatever is already gone; a daemon that is down is no
    /// failure (the container's end of the veth is deleted here, the daemon forgets the port).
    pub fn del(&self) -> CniResult<()> {
        let c = self.conf();
        if c.name.is_empty() {
            return Err(invalid_config("the network configuration has no name"));
        }
        let mut first: Option<CniError> = None;
        let req = Request::AttachmentRm {
            network: c.name.clone(),
            container_id: self.env.container_id.clone(),
            ifname: self.env.ifname.clone(),
        };
        match self.daemon().call::<Value>(&req) {
            Ok(_) => {}
            Err(Failure::Unreachable(why)) => {
                eprintln!(
                    "mvdp: daemon not reachable ({why}); deleting {} in the container",
                    self.env.ifname
                );
                if let Err(e) = self.del_container_end() {
                    first = Some(e);
                }
            }
            Err(f) => first = Some(f.to_cni(code::TRY_AGAIN_LATER)),
        }
        // The port is gone whatever IPAM says; then the IPAM release, whatever happened above.
        if let Err(e) = self
            .ipam()
            .and_then(|i| i.map_or(Ok(()), |i| i.del(self.version())))
        {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// The container's veth end, when the netns and a veth named CNI_IFNAME are there.
    fn del_container_end(&self) -> CniResult<()> {
        if self.env.netns.is_empty() {
            return Ok(());
        }
        let Ok(ns) = TargetNs::open(&self.env.netns) else {
            return Ok(()); // gone with its netns
        };
        let nl = ns.netlink().map_err(io)?;
        let Some(link) = nl.try_link(&self.env.ifname).map_err(io)? else {
            return Ok(());
        };
        // Only a port's veth: its peer is the daemon's `mvp<id>` (never another plugin's link
        // that happens to have this name).
        let peer = nl.peer_of(&link).map_err(io)?;
        let ours = link.kind.as_deref() == Some("veth")
            && peer.is_some_and(|p| {
                p.name
                    .strip_prefix("mvp")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
        if ours {
            nl.del_link(&self.env.ifname).map_err(io)?;
        }
        Ok(())
    }

    // ---- CHECK -----------------------------------------------------------------------------------

    pub fn check(&self) -> CniResult<()> {
        let c = self.conf();
        if !at_least(self.version(), "0.4.0") {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "CHECK needs CNI 0.4.0 or later, the configuration says {}",
                    self.version()
                ),
            ));
        }
        c.validate()?;
        let prev = c
            .prev_result
            .as_ref()
            .filter(|p| !p.is_null())
            .ok_or_else(|| invalid_config("CHECK needs prevResult"))?;
        let prev = CniResultBody::parse(prev)?;
        if let Some(i) = self.ipam()? {
            i.check(self.version())?;
        }
        let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
        let ports: Vec<PortSummary> = self
            .daemon()
            .call(&Request::PortLs {})
            .map_err(|f| f.to_cni(code::TRY_AGAIN_LATER))?;
        let port = ports
            .iter()
            .find(|p| {
                p.network == c.name
                    && p.container_id.as_deref() == Some(self.env.container_id.as_str())
                    && p.ifname == self.env.ifname
            })
            .ok_or_else(|| {
                failed(format!(
                    "network {} has no port for container {} {}",
                    c.name, self.env.container_id, self.env.ifname
                ))
            })?;
        if port.state == "detached" {
            return Err(failed(format!("port {} is not in the dataplane", port.id)));
        }
        self.check_container_end(&prev)
    }

    /// CHECK's second half: the container's interface has the MAC, addresses and routes that
    /// `prev` (the prevResult) says it got.
    fn check_container_end(&self, prev: &CniResultBody) -> CniResult<()> {
        let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
        let idx = prev
            .interfaces
            .iter()
            .position(|i| {
                i.name == self.env.ifname
                    && i.sandbox
                        .as_deref()
                        .is_none_or(|s| s.is_empty() || s == self.env.netns)
            })
            .ok_or_else(|| failed(format!("prevResult has no interface {}", self.env.ifname)))?;
        let nl = open_netns(&self.env.netns)?.netlink().map_err(io)?;
        let link = nl.try_link(&self.env.ifname).map_err(io)?.ok_or_else(|| {
            failed(format!(
                "{} is gone from {}",
                self.env.ifname, self.env.netns
            ))
        })?;
        let want_mac = prev.interfaces[idx]
            .mac
            .as_deref()
            .map(str::to_ascii_lowercase);
        let have_mac = link.mac.map(|m| m.to_string());
        if want_mac.is_some() && want_mac != have_mac {
            return Err(failed(format!(
                "{} has MAC {}, prevResult says {}",
                self.env.ifname,
                have_mac.unwrap_or_default(),
                want_mac.unwrap_or_default()
            )));
        }
        let addrs = nl.addresses(&self.env.ifname).map_err(io)?;
        for ip in prev
            .ips
            .iter()
            .filter(|i| i.interface.is_none_or(|n| n == idx))
        {
            let (a, len) = parse_cidr_any(&ip.address)?;
            if !addrs.contains(&(a, len)) {
                return Err(failed(format!(
                    "{} lacks address {}",
                    self.env.ifname, ip.address
                )));
            }
        }
        let routes = nl.routes(&self.env.ifname).map_err(io)?;
        for r in &prev.routes {
            let (IpAddr::V4(dst), len) = parse_cidr_any(&r.dst)? else {
                continue;
            };
            let net = Ipv4Addr::from(
                u32::from(dst) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0),
            );
            if !routes.contains(&(net, len)) {
                return Err(failed(format!("{} lacks route {}", self.env.ifname, r.dst)));
            }
        }
        Ok(())
    }

    // ---- STATUS and GC ---------------------------------------------------------------------------

    /// Ready when the daemon answers and the network's parent is there with carrier.
    pub fn status(&self) -> CniResult<()> {
        let c = self.conf();
        need_1_1(self.version(), "STATUS")?;
        c.validate()?;
        let master = master(c)?;
        let r: EnsureReply = self
            .daemon()
            .call(&ensure_request(c, &master, true))
            .map_err(|f| f.to_cni(code::NOT_AVAILABLE))?;
        if !r.parent_up {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                format!("parent {} is missing or has no carrier", r.parent),
            ));
        }
        if let Some(i) = self.ipam()? {
            i.status_or_gc("STATUS", self.version())?;
        }
        Ok(())
    }

    /// Removes the network's CNI ports that are not in `cni.dev/valid-attachments`.
    pub fn gc(&self) -> CniResult<()> {
        let c = self.conf();
        need_1_1(self.version(), "GC")?;
        if c.name.is_empty() {
            return Err(invalid_config("the network configuration has no name"));
        }
        let req = Request::AttachmentGc {
            network: c.name.clone(),
            valid: c.gc_keep(),
        };
        let _: Value = self
            .daemon()
            .call(&req)
            .map_err(|f| f.to_cni(code::TRY_AGAIN_LATER))?;
        if let Some(i) = self.ipam()? {
            i.status_or_gc("GC", self.version())?;
        }
        Ok(())
    }
}

fn need_1_1(version: &str, verb: &str) -> CniResult<()> {
    if at_least(version, "1.1.0") {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{verb} needs CNI 1.1.0 or later, the configuration says {version}"),
        ))
    }
}

fn parse_cidr_any(s: &str) -> CniResult<(IpAddr, u8)> {
    let bad = || {
        CniError::new(
            code::DECODE,
            format!("{s:?} is not an address with a prefix length"),
        )
    };
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let a: IpAddr = a.parse().map_err(|_| bad())?;
    let l: u8 = l.parse().map_err(|_| bad())?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    if l > max {
        return Err(bad());
    }
    Ok((a, l))
}

/// The port's address and routes from an IPAM result: at most one address, IPv4 (mvdp ports are
/// IPv4-only); a route without a gateway goes via the address's gateway, as the reference does.
fn port_addressing(r: &CniResultBody) -> CniResult<(Option<String>, Vec<PortRoute>)> {
    let mut v4: Vec<(&IpConfig, Ipv4Addr)> = vec![];
    for ip in &r.ips {
        match parse_cidr_any(&ip.address)? {
            (IpAddr::V4(a), _) => v4.push((ip, a)),
            (IpAddr::V6(_), _) => {
                return Err(invalid_config(format!(
                    "IPAM gave IPv6 address {}: mvdp ports are IPv4-only for now",
                    ip.address
                )))
            }
        }
    }
    if v4.len() > 1 {
        return Err(invalid_config(
            "IPAM gave more than one address: an mvdp port has one IPv4 address",
        ));
    }
    let gw = v4.first().and_then(|(ip, _)| ip.gateway.clone());
    let mut routes = vec![];
    for rt in &r.routes {
        if let (IpAddr::V6(_), _) = parse_cidr_any(&rt.dst)? {
            return Err(invalid_config(format!(
                "IPAM gave IPv6 route {}: mvdp ports are IPv4-only for now",
                rt.dst
            )));
        }
        routes.push(PortRoute {
            dst: rt.dst.clone(),
            gw: rt.gw.clone().or_else(|| gw.clone()),
        });
    }
    Ok((v4.first().map(|(ip, _)| ip.address.clone()), routes))
}

/// VERSION's answer, in the version the caller's stdin named (else the newest).
pub fn version_reply(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| super::version::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| super::version::LATEST.to_string());
    json!({"cniVersion": asked, "supportedVersions": super::version::SUPPORTED})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_results_become_one_ipv4_address_and_routes() {
        let r = CniResultBody::parse(&json!({
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.9"}]
        }))
        .unwrap();
        let (ip, routes) = port_addressing(&r).unwrap();
        assert_eq!(ip.as_deref(), Some("10.1.0.5/16"));
        assert_eq!(routes[0].gw.as_deref(), Some("10.1.0.1"));
        assert_eq!(routes[1].gw.as_deref(), Some("10.1.0.9"));
        let v6 = CniResultBody::parse(&json!({"ips": [{"address": "fd00::5/64"}]})).unwrap();
        assert_eq!(port_addressing(&v6).unwrap_err().code, 7);
        let two = CniResultBody::parse(
            &json!({"ips": [{"address": "10.0.0.1/8"}, {"address": "10.0.0.2/8"}]}),
        )
        .unwrap();
        assert_eq!(port_addressing(&two).unwrap_err().code, 7);
        assert_eq!(
            port_addressing(&CniResultBody::default()).unwrap(),
            (None, vec![])
        );
    }

    #[test]
    fn version_answers_in_the_asked_version() {
        assert_eq!(
            version_reply(br#"{"cniVersion":"0.4.0"}"#)["cniVersion"],
            "0.4.0"
        );
        assert_eq!(version_reply(b"")["cniVersion"], "1.1.0");
        assert_eq!(version_reply(b"")["supportedVersions"][0], "0.3.0");
    }
}
