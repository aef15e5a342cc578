//! The control socket's protocol: one JSON request object per line, one JSON reply object per line.
//!
//! ```text
//! {"op":"network_create","name":"net1","parent":"eth1","vlan":100,"mode":"bridge","subnet":"198.18.0.0/24"}
//! {"ok":true,"result":{...}}
//! {"ok":false,"error":"network net1 already exists"}
//! ```
//!
//! Requests carry what the user typed (strings): the daemon parses and validates, so every client gets
//! the same checks and the same messages.

use std::collections::BTreeMap;

use mvdp_switch::plane::{Capacity, UmemBooks, XskCounters};
use mvdp_switch::PortCounters;
use serde::{Deserialize, Serialize};

/// Largest request line the daemon reads; longer ones get an error reply and the connection is closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    // Requests without arguments are empty struct variants, not unit ones: serde ignores extra
    // fields after a unit variant's tag, and a request with fields it does not know is refused.
    Ping {},
    NetworkCreate(NetworkCreate),
    NetworkLs {},
    NetworkInspect {
        name: String,
    },
    NetworkRm {
        name: String,
        #[serde(default)]
        force: bool,
    },
    PortAdd(PortAdd),
    PortLs {},
    /// `port` is a port id (`3`), its host interface (`mvp3`) or the netns it was added to.
    PortRm {
        network: String,
        port: String,
    },
    Stats {},
    /// Creates the network unless it exists; when it exists, it must have this parent, VLAN and
    /// mode. The CNI plugin's way in (a CNI network is made on first use).
    NetworkEnsure(NetworkEnsure),
    /// Removes the port a CNI runtime attached as (`container_id`, `ifname`) to `network`, if any.
    AttachmentRm {
        network: String,
        container_id: String,
        ifname: String,
    },
    /// Removes every CNI port of `network` whose (container id, ifname) is not in `valid` (CNI GC).
    /// Ports added by hand (no container id) are left alone.
    AttachmentGc {
        network: String,
        #[serde(default)]
        valid: Vec<Attachment>,
    },
}

/// A CNI attachment: the runtime's container id and the interface name in the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkEnsure {
    pub name: String,
    /// `eth1`, or `eth1.100` (parent eth1, VLAN 100).
    pub parent: String,
    #[serde(default)]
    pub vlan: Option<u32>,
    /// bridge (default), private, vepa or passthru.
    #[serde(default)]
    pub mode: Option<String>,
    /// Only check: would the network be made (or does it match), and is its parent there and up.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `network_ensure` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsureReply {
    /// The network existed already (with the same parent, VLAN and mode).
    pub existed: bool,
    /// The network was made by this request (never on a dry run).
    pub created: bool,
    pub parent: String,
    /// Whether the parent exists in the daemon's netns and has carrier.
    pub parent_up: bool,
}

/// A route to install in the container with the port, `dst` a CIDR; without `gw` it is on-link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRoute {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// `eth1`, or Docker's `eth1.100` (parent eth1, VLAN 100).
    pub parent: String,
    #[serde(default)]
    pub vlan: Option<u32>,
    /// bridge (default), private, vepa or passthru.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub ip_range: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortAdd {
    pub network: String,
    /// A name under /run/netns or a path such as /proc/PID/ns/net. Required unless `host`.
    #[serde(default)]
    pub netns: Option<String>,
    /// The host shim port (its interface stays in the daemon's netns).
    #[serde(default)]
    pub host: bool,
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// `198.18.0.20` or `198.18.0.20/24`.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// A port for Docker's remote driver: the container end is made in the daemon's netns as
    /// `mvc<id>`, down and without address, for Docker to move into the sandbox (`cni` then
    /// carries Docker's endpoint id).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub docker: bool,
    /// What a port a CNI runtime attached carries besides (boxed: most ports have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<Box<CniPort>>,
}

/// The CNI side of a port request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CniPort {
    /// The runtime's container id; with the port's `ifname` it keys the attachment for CNI DEL
    /// and GC.
    pub container_id: String,
    /// Where the daemon opens the netns instead of `netns` (which is then only the name shown): the
    /// CNI plugin's `/proc/PID/fd/N` of a netns file that only its own mount namespace can see (a
    /// runtime's `/run/netns/…` bind mount). When it cannot be opened, `netns` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_via: Option<String>,
    /// Routes for the container besides the network's default route (the IPAM plugin's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<PortRoute>,
}

/// Every reply: `ok` with a `result`, or not `ok` with an `error` for the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of refusal `error` is: "invalid" (the request; nothing changed), "netns" (the
    /// port's netns cannot be used), "system" (netlink, ethtool), "dataplane", "state".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Reply {
    pub fn ok(result: impl Serialize) -> Reply {
        match serde_json::to_value(result) {
            Ok(v) => Reply {
                ok: true,
                result: Some(v),
                error: None,
                kind: None,
            },
            Err(e) => Reply::error(format!("encoding the reply: {e}")),
        }
    }
    pub fn error(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            result: None,
            error: Some(msg.into()),
            kind: None,
        }
    }

    /// An error reply saying what kind of refusal it is (see [`Reply::kind`]).
    pub fn error_of_kind(msg: impl Into<String>, kind: &str) -> Reply {
        Reply {
            kind: Some(kind.to_string()),
            ..Reply::error(msg)
        }
    }
}

/// One line of `network ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSummary {
    pub name: String,
    pub id: String,
    pub parent: String,
    pub vlan: u16,
    pub mode: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub ports: usize,
    /// Whether the parent has carrier (ports follow it).
    pub parent_up: bool,
}

/// One line of `port ls` (also the `port add` reply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSummary {
    pub id: u32,
    pub network: String,
    /// The netns given to `port add`; `None` for the host shim port.
    pub netns: Option<String>,
    /// The interface holding the port's MAC/IP (in `netns`, or in the daemon's netns for the host port).
    pub ifname: String,
    /// The veth end in the daemon's netns that the dataplane drives.
    pub host_ifname: String,
    pub mac: String,
    /// CIDR, when the port has an address.
    pub ip: Option<String>,
    pub mtu: u32,
    pub host: bool,
    /// "up", "no-carrier" (the parent is down) or "detached" (not in the dataplane).
    pub state: String,
    /// The CNI container id, for ports a CNI runtime attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The multicast groups (Ethernet addresses) the port's container end listens to, which it
    /// receives besides broadcasts; `None`: every group (the end is promiscuous or ALLMULTI, or
    /// its groups are not read yet or cannot be).
    #[serde(default)]
    pub multicast: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsRow {
    pub id: u32,
    pub network: String,
    pub netns: Option<String>,
    pub ifname: String,
    pub host_ifname: String,
    #[serde(flatten)]
    pub traffic: PortCounters,
    /// The kernel's counters for the port's AF_XDP socket.
    #[serde(default)]
    pub xsk: XskCounters,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatsRow {
    pub name: String,
    pub ports: usize,
    #[serde(flatten)]
    pub traffic: PortCounters,
}

/// Where every UMEM frame is, plus whether the books balance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UmemRow {
    #[serde(flatten)]
    pub books: UmemBooks,
    pub balanced: bool,
}

/// The `stats` reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatsReply {
    pub ports: Vec<PortStatsRow>,
    pub networks: Vec<NetworkStatsRow>,
    /// Switch drops by reason, summed over workers.
    pub drops: BTreeMap<String, u64>,
    pub umem: UmemRow,
    /// Ports served and the most the dataplane can serve.
    #[serde(default)]
    pub capacity: Capacity,
    /// Removed ports whose veth is still being deleted (behind the `port rm` reply).
    #[serde(default)]
    pub veths_deleting: usize,
    pub workers: usize,
    pub poll_mode: String,
    /// Each port's flood rate cap (null: the dataplane has none).
    #[serde(default)]
    pub flood_rate: Option<mvdp_switch::FloodRate>,
    /// Per parent: XDP mode, queues, the demux program's counters (as the dataplane reports them).
    pub parents: serde_json::Value,
    /// `mvdp daemon --trace-hops`: where sampled frames spent their time in the switch.
    #[serde(default)]
    pub hops: mvdp_switch::hops::HopStats,
    /// Worker turns of 1 ms or more (the worker off the CPU while ports' fill rings drain), and
    /// the longest, in µs.
    #[serde(default)]
    pub late_turns: u64,
    #[serde(default)]
    pub longest_turn_us: u64,
    /// Times a hot port's socket left its worker's epoll set (its ring is read every turn then;
    /// it is watched again before the port goes cold or the worker sleeps).
    #[serde(default)]
    pub unwatched: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let r = Request::NetworkCreate(NetworkCreate {
            name: "n".into(),
            parent: "eth1.100".into(),
            ..Default::default()
        });
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains("\"op\":\"network_create\""), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let rm: Request = serde_json::from_str(r#"{"op":"network_rm","name":"n"}"#).unwrap();
        assert_eq!(
            rm,
            Request::NetworkRm {
                name: "n".into(),
                force: false
            }
        );
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"network_rm","name":"n","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        // The CNI requests; a port request without "cni" is the old one, with it the new one.
        for line in [
            r#"{"op":"network_ensure","name":"n","parent":"eth1.100","dry_run":true}"#,
            r#"{"op":"attachment_rm","network":"n","container_id":"c","ifname":"eth0"}"#,
            r#"{"op":"attachment_gc","network":"n","valid":[{"container_id":"c","ifname":"eth0"}]}"#,
            r#"{"op":"port_add","network":"n","netns":"c1"}"#,
            r#"{"op":"port_add","network":"n","netns":"c1","cni":{"container_id":"c","routes":[{"dst":"0.0.0.0/0"}]}}"#,
        ] {
            let r: Request = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let again: Request = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        let plain = PortAdd {
            network: "n".into(),
            ..Default::default()
        };
        assert!(!serde_json::to_string(&plain).unwrap().contains("cni"));
        assert!(serde_json::from_str::<Request>(
            r#"{"op":"port_add","network":"n","cni":{"container_id":"c","x":1}}"#
        )
        .is_err());
        let e = Reply::error_of_kind("bad", "invalid");
        assert_eq!(serde_json::to_value(&e).unwrap()["kind"], "invalid");
        assert!(serde_json::to_value(Reply::error("bad"))
            .unwrap()
            .get("kind")
            .is_none());
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"port_add","network":"n","nets":"c1"}"#)
                .is_err()
        );
    }
}
