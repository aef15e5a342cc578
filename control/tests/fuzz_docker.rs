//! Hostile Docker remote-driver calls at scale: random and mutated bodies (bytes flipped, cut
//! short, fields added, values of the wrong type) for every call dockerd makes, on a small pool of
//! network and endpoint ids so that creates, joins and deletes meet each other, answered by the
//! driver's handler in-process on a real daemon with a recording fake dataplane, acting in a lab's
//! host netns (root; skips otherwise). Nothing may panic; every reply must be a well-formed
//! success for its call or Docker's `{"Err": "mvdp: ..."}`; and nothing is half-made: every veth
//! in the netns belongs to a port the daemon lists, the dataplane holds exactly those ports, and
//! after every network is deleted, nothing of them is left.
//!
//! Deterministic (a fixed-seed xorshift). `MVDP_FUZZ_REQUESTS` sets how many (default 3,000; the
//! long run is 100,000); a failing call is printed.

use std::collections::BTreeSet;

use mvdp_control::daemon::{serve, DaemonConfig, Request, Requester};
use mvdp_control::docker::handlers::handle;
use mvdp_lab::require_root;
use mvdp_lab::testing::{eventually, links, temp_dir, unique_prefix, Call, FakeDataplane};
use mvdp_lab::Lab;
use serde_json::Value;

mod fuzzing;

use fuzzing::Rng;

fn count() -> u64 {
    std::env::var("MVDP_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

const NETWORK_IDS: &[&str] = &[
    "\"0a1b2c3d4e5f60718293a4b5c6d7e8f9\"",
    "\"1b2c3d4e5f60718293a4b5c6d7e8f90a\"",
    "\"2c3d4e5f60718293a4b5c6d7e8f90a1b\"",
];
const ENDPOINT_IDS: &[&str] = &[
    "\"e0000000000000000000000000000001\"",
    "\"e0000000000000000000000000000002\"",
    "\"e0000000000000000000000000000003\"",
    "\"e0000000000000000000000000000004\"",
];
const CALLS: &[&str] = &[
    "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.DeleteNetwork",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.Join",
    "/NetworkDriver.DeleteEndpoint",
    "/NetworkDriver.DeleteEndpoint",
    "/NetworkDriver.Join",
    "/NetworkDriver.Leave",
    "/NetworkDriver.EndpointOperInfo",
    "/NetworkDriver.GetCapabilities",
    "/NetworkDriver.DiscoverNew",
    "/NetworkDriver.ProgramExternalConnectivity",
    "/Plugin.Activate",
];

/// Values that tend to break parsers and checks.
const NASTY: &[&str] = &[
    "\"\"",
    "\"eth1.0\"",
    "\"eth1.4095\"",
    "\"eth1.-1\"",
    "\"a/b\"",
    "\"..\"",
    "\"x\\u0000y\"",
    "\"\\ud800\"",
    "\"198.18.0.0/33\"",
    "\"0.0.0.0/0\"",
    "\"::1/128\"",
    "\"ff:ff:ff:ff:ff:ff\"",
    "\"00:00:00:00:00:00\"",
    "\"zz\"",
    "0",
    "-1",
    "65536",
    "1e309",
    "true",
    "null",
    "[]",
    "{}",
    "\"🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀\"",
];

/// Mostly a sensible value (`good`), 7 % of the time a nasty one.
fn field(r: &mut Rng, good: &[&str]) -> String {
    fuzzing::field(r, good, NASTY, 7)
}

/// A body spoiled one way in eight.
fn mutate(r: &mut Rng, s: &str) -> String {
    fuzzing::mutate(r, s, 8, &["Evil", "NetworkID", "Options", "x"], NASTY)
}

fn create_network(r: &mut Rng) -> String {
    let parent = field(
        r,
        &[
            "\"eth1\"",
            "\"eth1\"",
            "\"eth1\"",
            "\"eth1.100\"",
            "\"eth9\"",
        ],
    );
    let mut generic = format!("\"parent\":{parent}");
    for (k, good) in [
        (
            "macvlan_mode",
            &["\"bridge\"", "\"vepa\"", "\"private\"", "\"passthru\""][..],
        ),
        ("mvdp.vlan", &["\"100\"", "\"0\"", "\"4095\""][..]),
        ("mvdp.host", &["\"true\"", "\"false\"", "\"yes\""][..]),
        ("mvdp.parent", &["\"eth1\"", "\"eth2\""][..]),
        ("colour", &["\"red\""][..]),
    ] {
        if r.below(8) == 0 {
            generic.push_str(&format!(",\"{k}\":{}", field(r, good)));
        }
    }
    let pool = field(
        r,
        &[
            "\"198.18.0.0/24\"",
            "\"198.18.1.0/24\"",
            "\"198.18.0.0/16\"",
            "\"10.9.0.0/30\"",
        ],
    );
    let gw = field(r, &["\"198.18.0.1/24\"", "\"198.18.1.1/24\"", "\"\""]);
    let v4 = match r.below(20) {
        0 => "[]".to_string(),
        1 => format!("[{{\"Pool\":{pool}}},{{\"Pool\":{pool}}}]"),
        _ => format!("[{{\"AddressSpace\":\"LocalDefault\",\"Pool\":{pool},\"Gateway\":{gw}}}]"),
    };
    format!(
        r#"{{"NetworkID":{},"Options":{{"com.docker.network.enable_ipv6":{},"com.docker.network.internal":{},"com.docker.network.generic":{{{generic}}}}},"IPv4Data":{v4},"IPv6Data":{}}}"#,
        field(r, NETWORK_IDS),
        r.pick(&["false", "false", "false", "false", "false", "false", "false", "true"]),
        r.pick(&["false", "false", "false", "false", "false", "false", "false", "true"]),
        r.pick(&[
            "[]",
            "[]",
            "[]",
            "[]",
            "[]",
            "[]",
            "[]",
            "[]",
            "null",
            "[{\"Pool\":\"fd00::/64\"}]"
        ]),
    )
}

fn body(r: &mut Rng, call: &str) -> String {
    let b = match call {
        "/NetworkDriver.CreateNetwork" => create_network(r),
        "/NetworkDriver.DeleteNetwork" => format!("{{\"NetworkID\":{}}}", field(r, NETWORK_IDS)),
        "/NetworkDriver.CreateEndpoint" => format!(
            r#"{{"NetworkID":{},"EndpointID":{},"Interface":{{"Address":{},"MacAddress":{}}},"Options":{{}}}}"#,
            field(r, NETWORK_IDS),
            field(r, ENDPOINT_IDS),
            field(
                r,
                &[
                    "\"198.18.0.7/24\"",
                    "\"198.18.0.8/24\"",
                    "\"198.18.1.9/24\"",
                    "\"\"",
                    "\"198.18.0.7\""
                ]
            ),
            field(
                r,
                &["\"\"", "\"02:42:c6:12:00:07\"", "\"02:42:c6:12:00:08\""]
            ),
        ),
        _ => format!(
            r#"{{"NetworkID":{},"EndpointID":{},"SandboxKey":"/var/run/docker/netns/x","Options":{{}}}}"#,
            field(r, NETWORK_IDS),
            field(r, ENDPOINT_IDS),
        ),
    };
    if r.below(10) == 0 {
        return (0..r.below(64)).map(|_| r.next() as u8 as char).collect();
    }
    mutate(r, &b)
}

/// Whether `v` is what Docker may be answered to `call`: its success shape or `{"Err": "mvdp: …"}`.
fn well_formed(call: &str, v: &Value) -> Result<bool, String> {
    let o = v.as_object().ok_or("not a JSON object")?;
    if let Some(e) = o.get("Err") {
        let e = e.as_str().ok_or("Err is not a string")?;
        if !e.starts_with("mvdp: ") || e.len() < 8 || o.len() != 1 {
            return Err(format!("a bad refusal: {v}"));
        }
        return Ok(false);
    }
    // The handler takes the path with or without its leading slash, as dockerd may send either.
    let call = format!("/{}", call.trim_start_matches('/'));
    let ok = match call.as_str() {
        "/Plugin.Activate" => v["Implements"][0] == "NetworkDriver",
        "/NetworkDriver.GetCapabilities" => v["Scope"] == "local",
        "/NetworkDriver.EndpointOperInfo" => v["Value"].is_object(),
        "/NetworkDriver.CreateEndpoint" => {
            o.is_empty()
                || v["Interface"]["MacAddress"]
                    .as_str()
                    .is_some_and(|m| m.len() == 17)
        }
        "/NetworkDriver.Join" => {
            v["InterfaceName"]["SrcName"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
                && v["InterfaceName"]["DstPrefix"] == "eth"
        }
        _ => o.is_empty(),
    };
    if ok {
        Ok(true)
    } else {
        Err(format!("not a success for {call}: {v}"))
    }
}

fn daemon_list(d: &Requester, req: Request) -> Vec<Value> {
    let r = d.call(req);
    assert!(r.ok, "{:?}", r.error);
    r.result
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Nothing half-made: the netns has a veth end only for ports the daemon lists (both ends, as
/// Docker has not moved them), and the dataplane holds exactly the daemon's ports.
fn check_whole(d: &Requester, fake: &FakeDataplane, host: &str, at: &str) {
    // Removed ports' veths are deleted behind the replies: wait for those first.
    let settled = eventually(10, || {
        let r = d.call(Request::Stats {});
        r.ok && r.result.is_some_and(|v| v["veths_deleting"] == 0)
    });
    assert!(settled, "{at}: removed ports' veths still being deleted");
    let ports = daemon_list(d, Request::PortLs {});
    let mut named = BTreeSet::new();
    for p in &ports {
        for k in ["host_ifname", "ifname"] {
            if let Some(n) = p[k].as_str() {
                named.insert(n.to_string());
            }
        }
    }
    for l in links(host) {
        assert!(
            l == "lo" || l == "eth1" || named.contains(&l),
            "{at}: link {l} in {host} belongs to no port: {ports:?}"
        );
    }
    for p in &ports {
        let h = p["host_ifname"].as_str().unwrap_or_default();
        assert!(
            links(host).iter().any(|l| l == h),
            "{at}: port {p} has no veth"
        );
    }
    let calls = fake.calls();
    let added = calls
        .iter()
        .filter(|c| matches!(c, Call::AddPort(_)))
        .count();
    let removed = calls
        .iter()
        .filter(|c| matches!(c, Call::RemovePort(_)))
        .count();
    assert_eq!(
        added - removed,
        ports.len(),
        "{at}: the dataplane holds {} ports, the daemon lists {}",
        added - removed,
        ports.len()
    );
}

#[test]
fn docker_driver_calls_never_panic_and_leave_nothing_half_made() {
    require_root!("docker_driver_calls_never_panic_and_leave_nothing_half_made");
    let lab = Lab::builder(&unique_prefix("fzd"))
        .containers(0)
        .build()
        .expect("lab");
    let host = lab.host().name().to_string();
    let dir = temp_dir("fuzz-docker");
    let fake = FakeDataplane::default();
    let server = serve(
        fake.clone(),
        DaemonConfig {
            state_dir: None,
            max_mtu: 3500,
            netns: Some(lab.host().clone()),
        },
        &dir.join("mvdp.sock"),
    )
    .expect("daemon");
    let d = server.requester();
    let mut r = Rng(0x6d76_6470_646f_636b);
    let (mut ok, mut refused) = (0u64, 0u64);
    let mut succeeded = std::collections::BTreeMap::new();
    for i in 0..count() {
        let call = if r.below(40) == 0 {
            r.pick(&[
                "/NetworkDriver.Reboot",
                "",
                "/",
                "/Plugin.Activate/x",
                "NetworkDriver.Join",
            ])
        } else {
            r.pick(CALLS)
        };
        let b = body(&mut r, call);
        let v = std::panic::catch_unwind(|| handle(&d, call, b.as_bytes()))
            .unwrap_or_else(|_| panic!("call {i} panicked: {call} {b}"));
        match well_formed(call, &v) {
            Ok(true) => {
                ok += 1;
                *succeeded
                    .entry(format!("/{}", call.trim_start_matches('/')))
                    .or_insert(0u64) += 1;
            }
            Ok(false) => refused += 1,
            Err(e) => panic!("call {i}: {call} {b}: {e}"),
        }
        if i % 1000 == 999 {
            check_whole(&d, &fake, &host, &format!("after call {i}"));
        }
    }
    check_whole(&d, &fake, &host, "at the end");
    eprintln!(
        "{} calls: {ok} answered, {refused} refused; successes {succeeded:?}",
        count()
    );
    // The generator must reach the daemon, not only the JSON parser.
    for call in [
        "/NetworkDriver.CreateNetwork",
        "/NetworkDriver.CreateEndpoint",
        "/NetworkDriver.Join",
    ] {
        assert!(
            succeeded.contains_key(call),
            "no fuzzed {call} ever succeeded"
        );
    }

    // Docker's way out: endpoints, then networks. Nothing of them is left.
    for n in NETWORK_IDS {
        for e in ENDPOINT_IDS {
            let v = handle(
                &d,
                "/NetworkDriver.DeleteEndpoint",
                format!("{{\"NetworkID\":{n},\"EndpointID\":{e}}}").as_bytes(),
            );
            assert_eq!(v, serde_json::json!({}), "DeleteEndpoint {n} {e}");
        }
        let v = handle(
            &d,
            "/NetworkDriver.DeleteNetwork",
            format!("{{\"NetworkID\":{n}}}").as_bytes(),
        );
        assert_eq!(v, serde_json::json!({}), "DeleteNetwork {n}");
    }
    // Mutated ids made networks of their own: Docker deletes those by their ids too.
    for n in daemon_list(&d, Request::NetworkLs {}) {
        let id = n["name"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("docker-");
        let body = serde_json::json!({ "NetworkID": id }).to_string();
        let v = handle(&d, "/NetworkDriver.DeleteNetwork", body.as_bytes());
        assert_eq!(v, serde_json::json!({}), "DeleteNetwork {id}");
    }
    let nets = daemon_list(&d, Request::NetworkLs {});
    assert!(
        nets.iter()
            .all(|n| !n["name"].as_str().unwrap_or("").starts_with("docker-")),
        "networks left: {nets:?}"
    );
    assert_eq!(daemon_list(&d, Request::PortLs {}), Vec::<Value>::new());
    check_whole(&d, &fake, &host, "after deleting everything");
    assert_eq!(links(&host), vec!["lo".to_string(), "eth1".to_string()]);
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
