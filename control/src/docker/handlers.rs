//! One function per remote-driver call, each mapped onto the daemon's requests (`network_create`,
//! `port_add` with `docker`, `port_rm`, `network_rm`), so Docker's calls get the daemon's checks,
//! its all-or-nothing application and its state.json.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::error::{DriverError, DriverResult};
use super::types::{
    CreateEndpoint, CreateNetwork, EndpointInterface, EndpointRef, InterfaceName, JoinResponse,
    NetworkOnly, GENERIC, INTERNAL,
};
use crate::daemon::api::{CniPort, NetworkCreate, NetworkSummary, PortAdd, PortSummary};
use crate::daemon::{Reply, Request, Requester};

/// The `-o` keys a network takes: Docker macvlan's spellings and mvdp's own.
pub const OPTIONS: &[&str] = &[
    "parent",
    "macvlan_mode",
    "mvdp.parent",
    "mvdp.mode",
    "mvdp.vlan",
    "mvdp.host",
];

/// The daemon's network for Docker network `id` (a prefix of the id, as `docker network ls`
/// shows it).
pub fn network_name(id: &str) -> String {
    let short: String = id.chars().take(12).collect();
    format!("docker-{short}")
}

/// Answers one call, `path` as dockerd POSTs it (`/NetworkDriver.Join`).
pub fn handle(daemon: &Requester, path: &str, body: &[u8]) -> Value {
    let r = match path.trim_start_matches('/') {
        "Plugin.Activate" => Ok(json!({"Implements": ["NetworkDriver"]})),
        "NetworkDriver.GetCapabilities" => {
            Ok(json!({"Scope": "local", "ConnectivityScope": "local"}))
        }
        "NetworkDriver.CreateNetwork" => parse(body).and_then(|r| create_network(daemon, &r)),
        "NetworkDriver.DeleteNetwork" => parse(body).and_then(|r| delete_network(daemon, &r)),
        "NetworkDriver.CreateEndpoint" => parse(body).and_then(|r| create_endpoint(daemon, &r)),
        "NetworkDriver.DeleteEndpoint" => parse(body).and_then(|r| delete_endpoint(daemon, &r)),
        "NetworkDriver.Join" => parse(body).and_then(|r| join(daemon, &r)),
        "NetworkDriver.EndpointOperInfo" => Ok(json!({"Value": {}})),
        "NetworkDriver.Leave"
        | "NetworkDriver.DiscoverNew"
        | "NetworkDriver.DiscoverDelete"
        | "NetworkDriver.ProgramExternalConnectivity"
        | "NetworkDriver.RevokeExternalConnectivity" => Ok(json!({})),
        other => Err(DriverError::new(format!(
            "mvdp: {other} is not a call the mvdp network driver serves"
        ))),
    };
    match r {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(call = path, "refused: {e}");
            json!({"Err": e.0})
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> DriverResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| DriverError::new(format!("mvdp: malformed request: {e}")))
}

fn call<T: DeserializeOwned>(daemon: &Requester, req: Request) -> DriverResult<T> {
    let reply: Reply = daemon.call(req);
    if !reply.ok {
        return Err(DriverError::from_reply(&reply));
    }
    serde_json::from_value(reply.result.unwrap_or_default())
        .map_err(|e| DriverError::new(format!("mvdp: unexpected reply from the daemon: {e}")))
}

/// The generic options as strings; an unknown key is refused, naming the ones there are.
fn generic_options(r: &CreateNetwork) -> DriverResult<Vec<(String, String)>> {
    let Some(g) = r.options.get(GENERIC).filter(|v| !v.is_null()) else {
        return Ok(vec![]);
    };
    let map = g
        .as_object()
        .ok_or_else(|| DriverError::new(format!("mvdp: {GENERIC} is not an object")))?;
    let mut out = vec![];
    for (k, v) in map {
        if !OPTIONS.contains(&k.as_str()) {
            return Err(DriverError::new(format!(
                "mvdp: unknown option -o {k} (mvdp takes {})",
                OPTIONS.join(", ")
            )));
        }
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push((k.clone(), v));
    }
    Ok(out)
}

/// What `docker network create -d mvdp` asks for, as a daemon request plus the host-port flag.
pub fn plan_network(r: &CreateNetwork) -> DriverResult<(NetworkCreate, bool)> {
    let opts = generic_options(r)?;
    let get = |a: &str, b: &str| -> DriverResult<Option<String>> {
        let va = opts.iter().find(|(k, _)| k == a).map(|(_, v)| v.clone());
        let vb = opts.iter().find(|(k, _)| k == b).map(|(_, v)| v.clone());
        match (va, vb) {
            (Some(x), Some(y)) if x != y => Err(DriverError::new(format!(
                "mvdp: -o {a}={x} and -o {b}={y} disagree"
            ))),
            (x, y) => Ok(x.or(y)),
        }
    };
    let parent = get("parent", "mvdp.parent")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            DriverError::new(
                "mvdp: a network needs -o parent=IFACE (or IFACE.VLAN); mvdp makes no dummy parent",
            )
        })?;
    let mode = get("macvlan_mode", "mvdp.mode")?;
    let vlan =
        match opts.iter().find(|(k, _)| k == "mvdp.vlan") {
            None => None,
            Some((_, v)) => Some(v.parse::<u32>().map_err(|_| {
                DriverError::new(format!("mvdp: -o mvdp.vlan={v} is not a VLAN id"))
            })?),
        };
    let host = match opts.iter().find(|(k, _)| k == "mvdp.host") {
        None => false,
        Some((_, v)) => v
            .parse::<bool>()
            .map_err(|_| DriverError::new(format!("mvdp: -o mvdp.host={v}: say true or false")))?,
    };
    if r.ipv6_data.as_ref().is_some_and(|d| !d.is_empty())
        || r.options
            .get("com.docker.network.enable_ipv6")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    {
        return Err(DriverError::new(
            "mvdp: IPv6 is not supported yet (mvdp ports are IPv4-only); drop --ipv6",
        ));
    }
    let v4 = r.ipv4_data.as_deref().unwrap_or_default();
    let pool = match v4 {
        [one] => one,
        [] => {
            return Err(DriverError::new(
                "mvdp: the network has no IPv4 subnet (IPv6-only networks are not supported)",
            ))
        }
        _ => {
            return Err(DriverError::new(
                "mvdp: a network takes one IPv4 subnet, not several",
            ))
        }
    };
    let internal = r
        .options
        .get(INTERNAL)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let gateway = pool.gateway.split('/').next().filter(|g| !g.is_empty());
    Ok((
        NetworkCreate {
            name: network_name(&r.network_id),
            parent,
            vlan,
            mode,
            // --internal: no subnet and so no gateway for the daemon; Join then gives Docker no
            // gateway and the containers get no default route.
            subnet: (!internal).then(|| pool.pool.clone()),
            gateway: gateway.filter(|_| !internal).map(str::to_string),
            ip_range: None,
        },
        host,
    ))
}

fn networks(daemon: &Requester) -> DriverResult<Vec<NetworkSummary>> {
    call(daemon, Request::NetworkLs {})
}

fn create_network(daemon: &Requester, r: &CreateNetwork) -> DriverResult<Value> {
    let (req, host) = plan_network(r)?;
    let name = req.name.clone();
    // dockerd re-sends CreateNetwork for networks it knows when it restarts: same ask, same answer.
    if let Some(have) = networks(daemon)?.into_iter().find(|n| n.name == name) {
        let (parent, vlan) = match crate::daemon::state::split_parent(&req.parent) {
            (p, Some(v)) => (p.to_string(), v.parse().ok()),
            (p, None) => (p.to_string(), req.vlan),
        };
        if have.parent == parent && u32::from(have.vlan) == vlan.unwrap_or(0) {
            return Ok(json!({}));
        }
        return Err(DriverError::new(format!(
            "mvdp: network {name} exists with parent {}.{}",
            have.parent, have.vlan
        )));
    }
    let _: Value = call(daemon, Request::NetworkCreate(req))?;
    if host {
        let r: DriverResult<Value> = call(
            daemon,
            Request::PortAdd(PortAdd {
                network: name.clone(),
                host: true,
                ..Default::default()
            }),
        );
        if let Err(e) = r {
            // Nothing half-made: the network goes again.
            let _: DriverResult<Value> = call(daemon, Request::NetworkRm { name, force: true });
            return Err(e);
        }
    }
    Ok(json!({}))
}

fn delete_network(daemon: &Requester, r: &NetworkOnly) -> DriverResult<Value> {
    let name = network_name(&r.network_id);
    if !networks(daemon)?.iter().any(|n| n.name == name) {
        return Ok(json!({})); // already gone (a retry, or a daemon that lost it)
    }
    // Docker removes its endpoints first; what is left is the host shim port.
    let _: Value = call(daemon, Request::NetworkRm { name, force: true })?;
    Ok(json!({}))
}

fn endpoint_port(
    daemon: &Requester,
    network: &str,
    endpoint: &str,
) -> DriverResult<Option<PortSummary>> {
    let ports: Vec<PortSummary> = call(daemon, Request::PortLs {})?;
    Ok(ports
        .into_iter()
        .find(|p| p.network == network && p.container_id.as_deref() == Some(endpoint)))
}

fn create_endpoint(daemon: &Requester, r: &CreateEndpoint) -> DriverResult<Value> {
    let network = network_name(&r.network_id);
    let empty = EndpointInterface::default();
    let ifc = r.interface.as_ref().unwrap_or(&empty);
    if ifc.address.is_empty() {
        return Err(DriverError::new(
            "mvdp: the endpoint has no IPv4 address (mvdp ports are IPv4-only)",
        ));
    }
    let port = match endpoint_port(daemon, &network, &r.endpoint_id)? {
        Some(p) => p, // a retry
        None => call(
            daemon,
            Request::PortAdd(PortAdd {
                network,
                docker: true,
                mac: Some(ifc.mac_address.clone()).filter(|m| !m.is_empty()),
                ip: Some(ifc.address.clone()),
                cni: Some(Box::new(CniPort {
                    container_id: r.endpoint_id.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        )?,
    };
    // Only what Docker left empty goes back.
    if ifc.mac_address.is_empty() {
        return Ok(json!({"Interface": {"MacAddress": port.mac}}));
    }
    Ok(json!({}))
}

fn delete_endpoint(daemon: &Requester, r: &EndpointRef) -> DriverResult<Value> {
    let network = network_name(&r.network_id);
    if let Some(p) = endpoint_port(daemon, &network, &r.endpoint_id)? {
        let _: Value = call(
            daemon,
            Request::PortRm {
                network,
                port: p.id.to_string(),
            },
        )?;
    }
    Ok(json!({}))
}

fn join(daemon: &Requester, r: &EndpointRef) -> DriverResult<Value> {
    let network = network_name(&r.network_id);
    let port = endpoint_port(daemon, &network, &r.endpoint_id)?.ok_or_else(|| {
        DriverError::new(format!(
            "mvdp: endpoint {} has no port in network {network}",
            r.endpoint_id
        ))
    })?;
    let gateway = networks(daemon)?
        .into_iter()
        .find(|n| n.name == network)
        .and_then(|n| n.gateway)
        .unwrap_or_default();
    let resp = JoinResponse {
        interface_name: InterfaceName {
            src_name: port.ifname,
            dst_prefix: "eth".into(),
        },
        gateway,
    };
    serde_json::to_value(resp).map_err(|e| DriverError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> CreateNetwork {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn docker_options_become_a_network_request() {
        let (n, host) = plan_network(&req(json!({
            "NetworkID": "0123456789abcdef",
            "Options": {"com.docker.network.enable_ipv6": false,
                        "com.docker.network.generic": {"parent": "eth1.100", "macvlan_mode": "private", "mvdp.host": "true"}},
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": "10.88.0.1/24", "Pool": "10.88.0.0/24"}],
            "IPv6Data": []
        })))
        .unwrap();
        assert!(host);
        assert_eq!(n.name, "docker-0123456789ab");
        assert_eq!(n.parent, "eth1.100");
        assert_eq!(n.mode.as_deref(), Some("private"));
        assert_eq!(n.subnet.as_deref(), Some("10.88.0.0/24"));
        assert_eq!(n.gateway.as_deref(), Some("10.88.0.1"));
        let bad = |v: Value, want: &str| {
            let e = plan_network(&req(v)).unwrap_err().0;
            assert!(e.contains(want), "{e}");
        };
        let v4 = json!([{"Gateway": "10.88.0.1/24", "Pool": "10.88.0.0/24"}]);
        bad(
            json!({"NetworkID": "a", "Options": {GENERIC: {"parent": "eth1", "vlan": "3"}}, "IPv4Data": v4}),
            "unknown option -o vlan",
        );
        bad(
            json!({"NetworkID": "a", "Options": {}, "IPv4Data": v4}),
            "needs -o parent",
        );
        bad(
            json!({"NetworkID": "a", "Options": {GENERIC: {"parent": "eth1"}}, "IPv4Data": []}),
            "no IPv4 subnet",
        );
        bad(
            json!({"NetworkID": "a", "Options": {GENERIC: {"parent": "eth1", "mvdp.parent": "eth2"}}, "IPv4Data": v4}),
            "disagree",
        );
        let (n, _) = plan_network(&req(json!({"NetworkID": "a", "Options": {GENERIC: {"parent": "eth1"}, INTERNAL: true}, "IPv4Data": v4}))).unwrap();
        assert_eq!((n.subnet, n.gateway), (None, None));
    }
}
