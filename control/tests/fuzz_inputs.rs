//! Hostile input at scale, without a kernel: control-socket request lines and CNI stdin/env, each
//! random or a well-formed one mutated (bytes flipped, cut short, fields added, values of the
//! wrong type or out of range). Nothing may panic; whatever parses goes on through the checks that
//! follow it in the daemon (`State::plan_network` / `plan_port`) and the plugin
//! (`Config::validate`, the MAC's sources, the environment).
//!
//! Deterministic (a fixed-seed xorshift). `MVDP_FUZZ_INPUTS` sets how many of each (default
//! 100,000); a failing input is printed.

use mvdp_control::cni::{config, env};
use mvdp_control::daemon::api::{NetworkCreate, Request};
use mvdp_control::daemon::state::State;
use mvdp_switch::Mac;

mod fuzzing;

use fuzzing::Rng;

fn count() -> u64 {
    std::env::var("MVDP_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Values that tend to break parsers and checks.
const NASTY: &[&str] = &[
    "\"\"",
    "\"eth1\"",
    "\"eth1.100\"",
    "\"eth1.0\"",
    "\"eth1.4095\"",
    "\"eth1.-1\"",
    "\"a/b\"",
    "\"..\"",
    "\"x\\u0000y\"",
    "\"\\ud800\"",
    "\"198.18.0.0/24\"",
    "\"198.18.0.0/33\"",
    "\"0.0.0.0/0\"",
    "\"255.255.255.255/32\"",
    "\"::1/128\"",
    "\"02:00:00:00:00:01\"",
    "\"ff:ff:ff:ff:ff:ff\"",
    "\"00:00:00:00:00:00\"",
    "\"zz\"",
    "0",
    "-1",
    "4095",
    "65536",
    "4294967296",
    "1e309",
    "true",
    "null",
    "[]",
    "{}",
    "[1,2]",
    "\"bridge\"",
    "\"source\"",
    "\"passthru\"",
    "\"🦀\"",
];

/// Mostly a sensible value for the field (`good`), 30 % of the time a nasty one.
fn field(r: &mut Rng, good: &[&str]) -> String {
    fuzzing::field(r, good, NASTY, 30)
}

/// A request spoiled one way in five.
fn mutate(r: &mut Rng, s: &str) -> String {
    fuzzing::mutate(r, s, 5, &["evil", "op", "x", "name"], NASTY)
}

fn request_line(r: &mut Rng) -> String {
    if r.below(8) == 0 {
        return (0..r.below(64)).map(|_| r.next() as u8 as char).collect();
    }
    let name = |r: &mut Rng| field(r, &["\"lan\"", "\"n2\"", "\"a-b\""]);
    let parent = |r: &mut Rng| field(r, &["\"eth1\"", "\"eth1.100\"", "\"eth2\""]);
    let cidr = |r: &mut Rng| field(r, &["\"198.18.0.0/24\"", "\"198.18.16.0/20\"", "null"]);
    let ip = |r: &mut Rng| field(r, &["\"198.18.0.7\"", "\"198.18.0.1\"", "null"]);
    let mac = |r: &mut Rng| field(r, &["\"02:00:00:00:00:07\"", "null"]);
    let mode = |r: &mut Rng| {
        field(
            r,
            &[
                "\"bridge\"",
                "\"vepa\"",
                "\"private\"",
                "\"passthru\"",
                "null",
            ],
        )
    };
    let num = |r: &mut Rng| field(r, &["1500", "100", "null"]);
    let line = match r.below(6) {
        0 => format!(
            r#"{{"op":"network_create","name":{},"parent":{},"subnet":{},"gateway":{},"ip_range":{},"mode":{},"vlan":{}}}"#,
            name(r),
            parent(r),
            cidr(r),
            ip(r),
            cidr(r),
            mode(r),
            num(r)
        ),
        1 => format!(
            r#"{{"op":"port_add","network":{},"netns":{},"ip":{},"mac":{},"mtu":{},"ifname":{}}}"#,
            name(r),
            field(r, &["\"c1\"", "null"]),
            ip(r),
            mac(r),
            num(r),
            field(r, &["\"eth0\"", "null"])
        ),
        2 => format!(
            r#"{{"op":"port_rm","network":{},"port":{}}}"#,
            name(r),
            field(r, &["\"1\"", "\"mvp1\""])
        ),
        3 => format!(
            r#"{{"op":"network_rm","name":{},"force":{}}}"#,
            name(r),
            field(r, &["true", "false"])
        ),
        4 => format!(
            r#"{{"op":{}}}"#,
            r.pick(&["\"ping\"", "\"stats\"", "\"port_ls\"", "\"reboot\"", "1"])
        ),
        _ => format!(
            r#"{{"op":"network_ensure","name":{},"parent":{},"mode":{}}}"#,
            name(r),
            parent(r),
            mode(r)
        ),
    };
    mutate(r, &line)
}

/// A state with one network the fuzzed ports can land on.
fn state_with_a_network() -> State {
    let mut s = State::default();
    let plan = s
        .plan_network(&NetworkCreate {
            name: "lan".into(),
            parent: "eth1".into(),
            subnet: Some("198.18.0.0/24".into()),
            ..Default::default()
        })
        .expect("a valid network");
    s.networks
        .insert("lan".into(), plan.into_network("0123456789ab".into(), 0));
    s
}

#[test]
fn control_requests_never_panic() {
    let mut r = Rng(0x6d76_6470_7265_7173);
    let state = state_with_a_network();
    let (mut parsed, mut planned) = (0u64, 0u64);
    for _ in 0..count() {
        let line = request_line(&mut r);
        let Ok(req) = serde_json::from_str::<Request>(&line) else {
            continue;
        };
        parsed += 1;
        let outcome = std::panic::catch_unwind(|| match &req {
            Request::NetworkCreate(n) => state.plan_network(n).is_ok(),
            Request::PortAdd(p) => {
                let mut n = 0u8;
                state
                    .plan_port(p, 1500, 3500, || {
                        n = n.wrapping_add(1);
                        Mac([2, 0, 0, 0, 1, n])
                    })
                    .is_ok()
            }
            _ => false,
        });
        match outcome {
            Ok(ok) => planned += u64::from(ok),
            Err(_) => panic!("a request panicked the daemon's checks: {line}"),
        }
    }
    // The generator must reach the checks, not only the JSON parser.
    assert!(parsed > count() / 20, "only {parsed} requests parsed");
    assert!(planned > 0, "no fuzzed request ever passed the checks");
}

fn cni_config(r: &mut Rng) -> String {
    if r.below(8) == 0 {
        return (0..r.below(64)).map(|_| r.next() as u8 as char).collect();
    }
    let conf = format!(
        r#"{{"cniVersion":{},"name":{},"type":"mvdp","master":{},"mode":{},"mtu":{},"mac":{},"vlan":{},"ipam":{{"type":{}}},"runtimeConfig":{{"mac":{}}},"prevResult":{}}}"#,
        r.pick(&["\"1.0.0\"", "\"0.3.1\"", "\"1.1.0\"", "\"9.9\"", "1"]),
        field(r, &["\"lan\"", "\"n2\""]),
        field(r, &["\"eth1\"", "\"eth1.100\""]),
        field(
            r,
            &["\"bridge\"", "\"vepa\"", "\"private\"", "\"passthru\""]
        ),
        field(r, &["1500", "9000"]),
        field(r, &["\"02:00:00:00:00:07\"", "null"]),
        field(r, &["0", "100", "null"]),
        field(r, &["\"host-local\"", "\"static\""]),
        field(r, &["\"02:00:00:00:00:08\"", "null"]),
        r.pick(&["null", "{}", "{\"interfaces\":[]}", "[]"])
    );
    mutate(r, &conf)
}

#[test]
fn cni_stdin_and_env_never_panic() {
    let mut r = Rng(0x6d76_6470_636e_6921);
    let (mut decoded, mut valid) = (0u64, 0u64);
    for _ in 0..count() {
        let stdin = cni_config(&mut r);
        let mut vars: Vec<(&str, String)> = Vec::new();
        for k in [
            "CNI_CONTAINERID",
            "CNI_NETNS",
            "CNI_IFNAME",
            "CNI_ARGS",
            "CNI_PATH",
        ] {
            if r.below(5) == 0 {
                continue;
            }
            let val = match r.below(4) {
                0 => String::new(),
                1 => "IgnoreUnknown=1;MAC=02:00:00:00:00:09;K8S_POD_NAME=x".into(),
                2 => mutate(
                    &mut r,
                    "IgnoreUnknown=true;MAC=02:00:00:00:00:0a;IP=198.18.0.9",
                ),
                _ => (0..r.below(24))
                    .map(|_| (b'!' + r.below(90) as u8) as char)
                    .collect(),
            };
            vars.push((k, val));
        }
        let var = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let cmd = env::Command::parse(
            r.pick(&["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "add", ""]),
        );
        let outcome = std::panic::catch_unwind(|| {
            let env = cmd.ok().map(|c| env::read(c, &var));
            let _ = env::parse_args(&var("CNI_ARGS").unwrap_or_default());
            let conf = config::decode(stdin.as_bytes());
            let mut ok = false;
            if let Ok(c) = &conf {
                ok = c.conf.validate().is_ok();
                if let Some(Ok(e)) = &env {
                    let _ = c.conf.mac(e);
                }
            }
            (conf.is_ok(), ok)
        });
        match outcome {
            Ok((d, v)) => {
                decoded += u64::from(d);
                valid += u64::from(v);
            }
            Err(_) => panic!("CNI input panicked the plugin: stdin {stdin:?}, env {vars:?}"),
        }
    }
    assert!(decoded > count() / 20, "only {decoded} configs decoded");
    assert!(valid > 0, "no fuzzed config ever validated");
}
