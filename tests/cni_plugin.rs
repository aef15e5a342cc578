//! `mvdp` as a CNI plugin, run the way a runtime runs a plugin (CNI_* environment, configuration on
//! stdin, in the host's netns) against `mvdp daemon` in a lab: the reference macvlan plugin's own
//! test cases for every CNI version, a side-by-side with `/usr/lib/cni/macvlan`, state across a
//! daemon restart, GC, parallel ADD/DEL, and bad input with exact codes and nothing left behind.

mod cni_support;
mod common;

use cni_support::*;
use common::*;
use serde_json::{json, Value};

fn lab(test: &str, containers: u32) -> Option<DaemonLab> {
    if !is_root(test) {
        return None;
    }
    assert!(
        std::path::Path::new(&format!("{CNI_PATH}/host-local")).exists(),
        "{CNI_PATH}/host-local missing: scripts/deps.sh installs containernetworking-plugins"
    );
    Some(DaemonLab::start(
        BIN,
        &unique_prefix("cni"),
        containers,
        false,
    ))
}

/// The reference plugin's cases (containernetworking/plugins macvlan_test.go), for every version.
#[test]
fn reference_cases_for_every_version() {
    let Some(d) = lab("reference_cases_for_every_version", 2) else {
        return;
    };
    let tmp = TempDir::new(d.lab.prefix());
    let ipam = host_local(tmp.path());
    let (c1, c2) = (d.c(1), d.c(2));
    for (n, v) in VERSIONS.iter().enumerate() {
        let what = format!("cniVersion {v}");
        let v1 = cni_support_version_at_least(v, "1.0.0");

        // VERSION, as podman sends it (dummy environment, the version on stdin).
        let ver = Inv::new("VERSION", "dummy", "dummy").ifname("dummy");
        let r = run_plugin(
            &d,
            BIN,
            &ver,
            json!({ "cniVersion": v }).to_string().as_bytes(),
        );
        assert!(r.ok, "{what}: {}", r.stdout);
        assert_eq!(r.out["cniVersion"], *v);
        assert_eq!(r.out["supportedVersions"], json!(VERSIONS), "{what}");

        // ADD/DEL with host-local (+STATUS at 1.1.0).
        let cid = format!("ctr{n}a");
        let inv = Inv::new("ADD", &cid, &c1);
        let cfg = conf(&d, v, json!({ "ipam": ipam }));
        let r = mvdp_ok(&d, &inv, &cfg);
        assert_eq!(r["cniVersion"], *v, "{what}: {r}");
        let i0 = &r["interfaces"][0];
        assert_eq!(i0["name"], "eth0", "{what}");
        assert_eq!(i0["sandbox"], format!("/run/netns/{c1}"), "{what}");
        let mac = i0["mac"].as_str().unwrap().to_string();
        let ip = &r["ips"][0];
        assert_eq!(ip["interface"], 0, "{what}");
        assert_eq!(ip["gateway"], "198.18.0.254", "{what}");
        assert_eq!(
            ip.get("version").is_none(),
            v1,
            "{what}: ips[].version only before 1.0.0"
        );
        assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0", "{what}");
        let addr = ip["address"].as_str().unwrap().to_string();
        let link = iface(&c1, "eth0").expect("eth0 in the container");
        assert_eq!(v4_addrs(&link), vec![addr.clone()], "{what}");
        assert_eq!(link["address"], mac, "{what}");
        assert!(
            routes(&c1).contains(&"default via 198.18.0.254 dev eth0".to_string()),
            "{what}: {:?}",
            routes(&c1)
        );
        assert!(
            ping(&c1, "198.18.0.254", 5),
            "{what}: container -> external host"
        );
        let p = ports(&d);
        assert_eq!(p.len(), 1, "{what}: {p:?}");
        assert_eq!(p[0]["container_id"], cid.as_str(), "{what}");
        assert_eq!(
            allocations(tmp.path(), "cninet"),
            vec![addr.split('/').next().unwrap()],
            "{what}"
        );
        if *v == "1.1.0" {
            mvdp_ok(&d, &inv.cmd("STATUS"), &cfg);
        } else {
            assert_eq!(
                mvdp(&d, &inv.cmd("STATUS"), &cfg).code(),
                1,
                "{what}: STATUS before 1.1.0"
            );
        }
        let mut del = cfg.clone();
        del["prevResult"] = r.clone();
        mvdp_ok(&d, &inv.cmd("DEL"), &del);
        assert!(iface(&c1, "eth0").is_none(), "{what}: eth0 gone");
        assert!(ports(&d).is_empty(), "{what}");
        assert!(
            allocations(tmp.path(), "cninet").is_empty(),
            "{what}: IPAM released"
        );
        mvdp_ok(&d, &inv.cmd("DEL"), &del); // idempotent

        // DEL of a container that was never added: with its netns, without, with one that is gone.
        mvdp_ok(&d, &Inv::new("DEL", "never-added", &c2), &cfg);
        mvdp_ok(&d, &Inv::new("DEL", "never-added", ""), &cfg);
        mvdp_ok(
            &d,
            &Inv::new("DEL", "never-added", "/run/netns/no-such-netns"),
            &cfg,
        );

        // L2 only (no IPAM).
        let l2 = conf(&d, v, json!({}));
        let inv = Inv::new("ADD", &format!("ctr{n}b"), &c1);
        let r = mvdp_ok(&d, &inv, &l2);
        assert!(
            r.get("ips").is_none() && r.get("routes").is_none(),
            "{what}: {r}"
        );
        assert!(v4_addrs(&iface(&c1, "eth0").unwrap()).is_empty(), "{what}");
        mvdp_ok(&d, &inv.cmd("DEL"), &l2);
        assert!(iface(&c1, "eth0").is_none(), "{what}");

        // ADD/CHECK/DEL.
        let inv = Inv::new("ADD", &format!("ctr{n}c"), &c2);
        let r = mvdp_ok(&d, &inv, &cfg);
        let mut chk = cfg.clone();
        chk["prevResult"] = r.clone();
        if cni_support_version_at_least(v, "0.4.0") {
            mvdp_ok(&d, &inv.cmd("CHECK"), &chk);
            // A changed address is found.
            let a = r["ips"][0]["address"].as_str().unwrap();
            ip_n(&c2, &["addr", "del", a, "dev", "eth0"]);
            let c = mvdp(&d, &inv.cmd("CHECK"), &chk);
            assert_eq!(c.code(), 100, "{what}: {}", c.stdout);
            assert!(
                c.out["msg"].as_str().unwrap().contains("lacks address"),
                "{what}"
            );
        } else {
            assert_eq!(
                mvdp(&d, &inv.cmd("CHECK"), &chk).code(),
                1,
                "{what}: CHECK before 0.4.0"
            );
        }
        mvdp_ok(&d, &inv.cmd("DEL"), &chk);
        assert!(
            ports(&d).is_empty() && allocations(tmp.path(), "cninet").is_empty(),
            "{what}"
        );

        // MAC from CNI_ARGS.
        let inv = Inv::new("ADD", &format!("ctr{n}d"), &c1)
            .args("IgnoreUnknown=1;K8S_POD_NAME=x;MAC=02:aa:00:00:00:01");
        let r = mvdp_ok(&d, &inv, &l2);
        assert_eq!(r["interfaces"][0]["mac"], "02:aa:00:00:00:01", "{what}");
        assert_eq!(
            iface(&c1, "eth0").unwrap()["address"],
            "02:aa:00:00:00:01",
            "{what}"
        );
        mvdp_ok(&d, &inv.cmd("DEL"), &l2);

        // MAC from runtimeConfig (it wins over CNI_ARGS and the configuration).
        let rc = conf(
            &d,
            v,
            json!({"mac": "02:aa:00:00:00:03", "capabilities": {"mac": true}, "runtimeConfig": {"mac": "02:aa:00:00:00:02"}}),
        );
        let r = mvdp_ok(&d, &inv, &rc);
        assert_eq!(r["interfaces"][0]["mac"], "02:aa:00:00:00:02", "{what}");
        assert_eq!(
            iface(&c1, "eth0").unwrap()["address"],
            "02:aa:00:00:00:02",
            "{what}"
        );
        mvdp_ok(&d, &inv.cmd("DEL"), &rc);
        assert!(ports(&d).is_empty(), "{what}");
    }

    // Default master: the interface of the default route.
    ip_n(
        &d.host(),
        &[
            "route",
            "add",
            "default",
            "via",
            "198.18.0.254",
            "dev",
            "eth1",
        ],
    );
    let cfg = conf(&d, "1.0.0", json!({"master": null, "ipam": ipam}));
    let inv = Inv::new("ADD", "ctr-default-master", &c1);
    let r = mvdp_ok(&d, &inv, &cfg);
    let nets = d.json(&["network", "ls", "--json"]);
    assert_eq!(nets[0]["parent"], "eth1", "{nets}");
    assert!(ping(&c1, "198.18.0.254", 5));
    let mut del = cfg.clone();
    del["prevResult"] = r;
    mvdp_ok(&d, &inv.cmd("DEL"), &del);
    ip_n(&d.host(), &["route", "del", "default"]);
    assert!(ports(&d).is_empty() && allocations(tmp.path(), "cninet").is_empty());
}

fn cni_support_version_at_least(v: &str, min: &str) -> bool {
    mvdp_control::cni::version::at_least(v, min)
}

/// The same configuration with `"type": "macvlan"` (the reference plugin) and `"type": "mvdp"`
/// gives the container the same address, routes and MTU, and results that agree.
#[test]
fn side_by_side_with_the_reference_macvlan_plugin() {
    let Some(d) = lab("side_by_side_with_the_reference_macvlan_plugin", 1) else {
        return;
    };
    let c1 = d.c(1);
    for (v, mtu) in [("1.0.0", json!(1400)), ("0.4.0", Value::Null)] {
        let cfg = conf(
            &d,
            v,
            json!({
                "mode": "bridge",
                "mtu": mtu,
                "ipam": {
                    "type": "static",
                    "addresses": [{"address": "198.18.0.60/24", "gateway": "198.18.0.254"}],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "203.0.113.0/24", "gw": "198.18.0.1"}],
                    "dns": {"nameservers": ["198.18.0.254"]},
                },
            }),
        );
        let mut reference = cfg.clone();
        reference["type"] = "macvlan".into();
        let inv = Inv::new("ADD", "side-by-side", &c1);
        let theirs = run_plugin(
            &d,
            "/usr/lib/cni/macvlan",
            &inv,
            reference.to_string().as_bytes(),
        );
        assert!(
            theirs.ok,
            "reference ADD: {} {}",
            theirs.stdout, theirs.stderr
        );
        let their_link = iface(&c1, "eth0").unwrap();
        let their_routes = routes(&c1);
        let mut del = reference.clone();
        del["prevResult"] = theirs.out.clone();
        let r = run_plugin(
            &d,
            "/usr/lib/cni/macvlan",
            &inv.cmd("DEL"),
            del.to_string().as_bytes(),
        );
        assert!(r.ok, "reference DEL: {}", r.stdout);

        let ours = mvdp_ok(&d, &inv, &cfg);
        let our_link = iface(&c1, "eth0").unwrap();
        let what = format!("{v}, mtu {mtu}");
        assert_eq!(v4_addrs(&our_link), v4_addrs(&their_link), "{what}");
        assert_eq!(v4_addrs(&our_link), vec!["198.18.0.60/24"], "{what}");
        assert_eq!(our_link["mtu"], their_link["mtu"], "{what}");
        assert_eq!(routes(&c1), their_routes, "{what}");
        for k in ["cniVersion", "ips", "routes"] {
            assert_eq!(ours[k], theirs.out[k], "{what}: {k}");
        }
        // A difference: the reference puts the configuration's `dns` in its result and drops the
        // IPAM plugin's; mvdp passes the IPAM plugin's through when the configuration has none.
        assert_eq!(theirs.out["dns"], json!({}), "{what}");
        assert_eq!(
            ours["dns"],
            json!({"nameservers": ["198.18.0.254"]}),
            "{what}"
        );
        let (oi, ti) = (&ours["interfaces"][0], &theirs.out["interfaces"][0]);
        assert_eq!(
            (&oi["name"], &oi["sandbox"]),
            (&ti["name"], &ti["sandbox"]),
            "{what}"
        );
        let mut del = cfg.clone();
        del["prevResult"] = ours;
        mvdp_ok(&d, &inv.cmd("DEL"), &del);
        assert!(iface(&c1, "eth0").is_none());
    }
}

/// A fake IPAM plugin speaking 1.1.0 that logs every call, to see what mvdp delegates.
fn fake_ipam(dir: &std::path::Path) -> std::path::PathBuf {
    let log = dir.join("fake-ipam.log");
    let script = format!(
        r#"#!/bin/sh
echo "$CNI_COMMAND $CNI_CONTAINERID" >> {log}
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}' ;;
ADD) echo '{{"cniVersion":"1.1.0","ips":[{{"address":"198.18.0.77/24","gateway":"198.18.0.254"}}]}}' ;;
esac
"#,
        log = log.display()
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join("fakeipam");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

fn calls(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("VERSION"))
        .map(str::to_string)
        .collect()
}

/// CNI ports survive a daemon restart (re-adopted with their container ids); GC removes those not
/// in `cni.dev/valid-attachments` and forwards GC and STATUS to an IPAM plugin that speaks 1.1.0.
#[test]
fn restart_readopts_and_gc_removes_stale_attachments() {
    let Some(mut d) = lab("restart_readopts_and_gc_removes_stale_attachments", 3) else {
        return;
    };
    let tmp = TempDir::new(d.lab.prefix());
    let cfg = conf(&d, "1.1.0", json!({ "ipam": host_local(tmp.path()) }));
    let (c1, c2, c3) = (d.c(1), d.c(2), d.c(3));
    mvdp_ok(&d, &Inv::new("ADD", "gc-one", &c1), &cfg);
    mvdp_ok(&d, &Inv::new("ADD", "gc-two", &c2), &cfg);
    // A second interface in the same container: no second default route.
    let mut no_routes = cfg.clone();
    no_routes["ipam"]["routes"] = json!([]);
    mvdp_ok(
        &d,
        &Inv::new("ADD", "gc-two", &c2).ifname("net1"),
        &no_routes,
    );
    d.stop(nix::sys::signal::Signal::SIGTERM);
    // Daemon down: ADD is "try again later" and leaves nothing; STATUS says not available.
    let down = mvdp(&d, &Inv::new("ADD", "gc-three", &c3), &cfg);
    assert_eq!(down.code(), 11, "{}", down.stdout);
    assert!(iface(&c3, "eth0").is_none());
    assert_eq!(allocations(tmp.path(), "cninet").len(), 3);
    assert_eq!(mvdp(&d, &Inv::new("STATUS", "", ""), &cfg).code(), 50);
    d.spawn();
    let p = ports(&d);
    let mut ids: Vec<(String, String)> = p
        .iter()
        .map(|p| {
            (
                p["container_id"].as_str().unwrap().to_string(),
                p["ifname"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [("gc-one", "eth0"), ("gc-two", "eth0"), ("gc-two", "net1")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(p.iter().all(|p| p["state"] == "up"), "{p:?}");
    assert!(ping(&c1, "198.18.0.254", 5), "re-adopted port forwards");
    mvdp_ok(&d, &Inv::new("STATUS", "", ""), &cfg);

    let mut gc = cfg.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-two", "ifname": "eth0"}]);
    mvdp_ok(&d, &Inv::new("GC", "", ""), &gc);
    let left: Vec<Value> = ports(&d);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(
        (left[0]["container_id"].as_str(), left[0]["ifname"].as_str()),
        (Some("gc-two"), Some("eth0"))
    );
    assert!(
        iface(&c1, "eth0").is_none()
            && iface(&c2, "net1").is_none()
            && iface(&c2, "eth0").is_some()
    );
    mvdp_ok(&d, &Inv::new("DEL", "gc-two", &c2), &cfg);
    assert!(ports(&d).is_empty());

    // GC and STATUS reach an IPAM plugin that speaks 1.1.0; a failed ADD after IPAM releases it.
    let log = fake_ipam(tmp.path());
    let path = format!("{}:{CNI_PATH}", tmp.path().join("bin").display());
    let fake = conf(&d, "1.1.0", json!({"ipam": {"type": "fakeipam"}}));
    let mut inv = Inv::new("ADD", "fake-one", &c3);
    inv.path = path.clone();
    let r = mvdp_ok(&d, &inv, &fake);
    assert_eq!(r["ips"][0]["address"], "198.18.0.77/24");
    let mut chk = fake.clone();
    chk["prevResult"] = r.clone();
    mvdp_ok(&d, &inv.cmd("CHECK"), &chk);
    // A MAC changed in the container is found by CHECK.
    ip_n(
        &c3,
        &["link", "set", "eth0", "address", "02:bb:00:00:00:09"],
    );
    let c = mvdp(&d, &inv.cmd("CHECK"), &chk);
    assert_eq!(c.code(), 100, "{}", c.stdout);
    assert!(
        c.out["msg"].as_str().unwrap().contains("MAC"),
        "{}",
        c.stdout
    );
    let mut over = fake.clone();
    over["mtu"] = 9000.into();
    let mut inv2 = Inv::new("ADD", "fake-two", &c1);
    inv2.path = path.clone();
    assert_eq!(mvdp(&d, &inv2, &over).code(), 7);
    for cmd in ["STATUS", "GC"] {
        let mut i = Inv::new(cmd, "", "");
        i.path = path.clone();
        mvdp_ok(&d, &i, &fake);
    }
    assert_eq!(
        calls(&log),
        [
            "ADD fake-one",
            "CHECK fake-one",
            "CHECK fake-one",
            "ADD fake-two",
            "DEL fake-two",
            "STATUS ",
            "GC "
        ]
    );
    assert!(
        iface(&c3, "eth0").is_none(),
        "GC with no valid attachments removed fake-one"
    );
}

/// ADDs and DELs of different containers at the same time are all served, with distinct addresses.
#[test]
fn parallel_add_and_del_of_different_containers() {
    let Some(d) = lab("parallel_add_and_del_of_different_containers", 4) else {
        return;
    };
    let tmp = TempDir::new(d.lab.prefix());
    let cfg = conf(&d, "1.0.0", json!({ "ipam": host_local(tmp.path()) }));
    let run_all = |cmd: &str| -> Vec<Value> {
        std::thread::scope(|s| {
            let hs: Vec<_> = (1..=4)
                .map(|n| {
                    let (d, cfg) = (&d, &cfg);
                    let inv = Inv::new(cmd, &format!("par{n}"), &d.c(n));
                    s.spawn(move || mvdp_ok(d, &inv, cfg))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let results = run_all("ADD");
    let mut addrs: Vec<&str> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().unwrap())
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 4, "{addrs:?}");
    assert_eq!(ports(&d).len(), 4);
    let ip2 = results[1]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(ping(&d.c(1), &ip2, 5), "container to container");
    run_all("DEL");
    assert!(ports(&d).is_empty());
    assert!(allocations(tmp.path(), "cninet").is_empty());
    assert!((1..=4).all(|n| iface(&d.c(n), "eth0").is_none()));
}

/// Links in a container other than `lo`.
fn container_links(ns: &str) -> Vec<String> {
    links(ns).into_iter().filter(|l| l != "lo").collect()
}

/// Bad input: each is refused with its CNI code, in the CNI error format, leaving no port, no
/// network made for it, no IPAM allocation and no interface in the container.
#[test]
fn bad_input_is_refused_with_exact_codes_and_nothing_left() {
    let Some(d) = lab("bad_input_is_refused_with_exact_codes_and_nothing_left", 2) else {
        return;
    };
    let tmp = TempDir::new(d.lab.prefix());
    let cfg = conf(&d, "1.0.0", json!({ "ipam": host_local(tmp.path()) }));
    let (c1, c2) = (d.c(1), d.c(2));
    let add = Inv::new("ADD", "bad", &c1);
    let nothing_left = |what: &str| {
        assert!(ports(&d).is_empty(), "{what}: ports {:?}", ports(&d));
        let nets = d.json(&["network", "ls", "--json"]);
        assert_eq!(nets, json!([]), "{what}: networks");
        assert!(allocations(tmp.path(), "cninet").is_empty(), "{what}: IPAM");
        assert!(
            container_links(&c1).is_empty(),
            "{what}: {:?}",
            container_links(&c1)
        );
    };
    let refused = |inv: &Inv, stdin: &[u8], code: u64, want: &str| {
        let c = run_plugin(&d, BIN, inv, stdin);
        assert_eq!(c.code(), code, "{want}: {} {}", c.stdout, c.stderr);
        let msg = format!("{} {}", c.out["msg"], c.out["details"]);
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        assert!(c.out["cniVersion"].is_string(), "{}", c.stdout);
        nothing_left(want);
    };
    let with = |extra: Value| {
        let mut c = cfg.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c.to_string().into_bytes()
    };
    let cfg_bytes = cfg.to_string().into_bytes();

    refused(
        &add,
        b"{\"cniVersion\": ",
        6,
        "decoding the network configuration",
    );
    refused(
        &add,
        br#"{"cniVersion":"1.0.0","name":"cninet","mtu":"big"}"#,
        6,
        "decoding",
    );
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        refused(&add.clone().without(var), &cfg_bytes, 4, var);
    }
    refused(&add.cmd("BOGUS"), &cfg_bytes, 4, "unknown CNI_COMMAND");
    refused(&add.clone().ifname("a/b"), &cfg_bytes, 4, "CNI_IFNAME");
    refused(
        &add.clone().args("K8S_POD_NAME=x"),
        &cfg_bytes,
        4,
        "K8S_POD_NAME",
    );
    refused(
        &add,
        &with(json!({"cniVersion": "0.2.0"})),
        1,
        "incompatible CNI version",
    );
    refused(&add, &with(json!({"mode": "turbo"})), 7, "unknown mode");
    let mut no_master = cfg.clone();
    no_master.as_object_mut().unwrap().remove("master");
    refused(&add, no_master.to_string().as_bytes(), 7, "no master");
    refused(
        &add,
        &with(json!({"master": "nosuch0"})),
        7,
        "does not exist",
    );
    refused(
        &add,
        &with(json!({"mtu": 9000})),
        7,
        "above the MTU of parent eth1",
    );
    refused(
        &add,
        &with(json!({"ipam": {"type": "nosuchipam"}})),
        7,
        "not found in CNI_PATH",
    );
    refused(
        &add,
        &with(json!({"mac": "01:00:5e:00:00:01"})),
        7,
        "not a unicast MAC",
    );
    refused(
        &Inv::new("ADD", "bad", "/run/netns/nosuch-ns"),
        &cfg_bytes,
        3,
        "does not exist",
    );
    let down = json!({"socket": tmp.path().join("nobody.sock")});
    refused(&add, &with(down.clone()), 11, "not reachable");
    let mut st = cfg.clone();
    st["cniVersion"] = "1.1.0".into();
    st["socket"] = down["socket"].clone();
    refused(
        &add.cmd("STATUS"),
        st.to_string().as_bytes(),
        50,
        "not reachable",
    );

    // An interface of that name already in the container: refused, the container's one kept.
    ip_n(
        &c1,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ],
    );
    let c = run_plugin(&d, BIN, &add, &cfg_bytes);
    assert_eq!(c.code(), 4, "{}", c.stdout);
    assert!(
        c.out["msg"].as_str().unwrap().contains("already exists"),
        "{}",
        c.stdout
    );
    assert!(ports(&d).is_empty() && allocations(tmp.path(), "cninet").is_empty());
    assert_eq!(container_links(&c1).len(), 2);
    // The runtime's DEL after that failed ADD, with the daemon down: the container's own eth0 (a
    // veth, but not a port's) stays.
    let down_cfg = with(down.clone());
    let c = run_plugin(&d, BIN, &add.cmd("DEL"), &down_cfg);
    assert!(c.ok, "{}", c.stdout);
    assert_eq!(
        container_links(&c1).len(),
        2,
        "DEL deleted a veth that was not a port's"
    );
    ip_n(&c1, &["link", "del", "eth0"]);
    nothing_left("eth0 in the container");

    // A clash with the existing network's mode: code 7, the IPAM allocation released.
    let ok = Inv::new("ADD", "good", &c2);
    mvdp_ok(&d, &ok, &cfg);
    let c = run_plugin(&d, BIN, &add, &with(json!({"mode": "vepa"})));
    assert_eq!(c.code(), 7, "{}", c.stdout);
    assert!(
        c.out["msg"]
            .as_str()
            .unwrap()
            .contains("exists with parent eth1"),
        "{}",
        c.stdout
    );
    assert_eq!(ports(&d).len(), 1);
    assert_eq!(allocations(tmp.path(), "cninet").len(), 1);
    assert!(container_links(&c1).is_empty());

    // DEL with the daemon down still succeeds: IPAM released, the container's veth end deleted,
    // and the daemon forgets the port whose veth went.
    mvdp_ok(&d, &ok.cmd("DEL"), &with_value(&cfg, &down));
    assert!(iface(&c2, "eth0").is_none());
    assert!(allocations(tmp.path(), "cninet").is_empty());
    assert!(eventually(5, || ports(&d).is_empty()), "{:?}", ports(&d));
}

fn with_value(base: &Value, extra: &Value) -> Value {
    let mut c = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Removes a netns on drop (a test's own, beside the lab's).
struct OwnNetns(String);

impl Drop for OwnNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// DEL after the container's netns is gone: success, IPAM released, the port gone.
#[test]
fn del_after_the_netns_is_gone() {
    let Some(d) = lab("del_after_the_netns_is_gone", 0) else {
        return;
    };
    let tmp = TempDir::new(d.lab.prefix());
    let cfg = conf(&d, "1.0.0", json!({ "ipam": host_local(tmp.path()) }));
    let ns = OwnNetns(format!("{}-gone", d.lab.prefix()));
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    let inv = Inv::new("ADD", "gone", &ns.0);
    mvdp_ok(&d, &inv, &cfg);
    assert_eq!(ports(&d).len(), 1);
    assert!(std::process::Command::new("ip")
        .args(["netns", "del", &ns.0])
        .status()
        .unwrap()
        .success());
    mvdp_ok(&d, &inv.cmd("DEL"), &cfg);
    assert!(allocations(tmp.path(), "cninet").is_empty());
    assert!(eventually(5, || ports(&d).is_empty()), "{:?}", ports(&d));
}

/// `master: eth1.100` and `vlan: 100` both make a VLAN 100 network; its containers reach each
/// other; a second configuration disagreeing on the VLAN is refused (code 7).
#[test]
fn vlan_from_dotted_master_or_vlan_key() {
    let Some(d) = lab("vlan_from_dotted_master_or_vlan_key", 2) else {
        return;
    };
    let (c1, c2) = (d.c(1), d.c(2));
    let static_ip = |ip: &str| json!({"type": "static", "addresses": [{"address": ip}]});
    let dotted = conf(
        &d,
        "1.0.0",
        json!({"name": "v100", "master": "eth1.100", "ipam": static_ip("10.100.0.1/24")}),
    );
    let keyed = conf(
        &d,
        "1.0.0",
        json!({"name": "v100", "vlan": 100, "ipam": static_ip("10.100.0.2/24")}),
    );
    mvdp_ok(&d, &Inv::new("ADD", "v1", &c1), &dotted);
    mvdp_ok(&d, &Inv::new("ADD", "v2", &c2), &keyed);
    let nets = d.json(&["network", "ls", "--json"]);
    assert_eq!(
        (nets[0]["name"].as_str(), nets[0]["vlan"].as_u64()),
        (Some("v100"), Some(100)),
        "{nets}"
    );
    assert!(
        ping(&c1, "10.100.0.2", 5),
        "VLAN 100 container to container"
    );
    let clash = conf(
        &d,
        "1.0.0",
        json!({"name": "v100", "master": "eth1.100", "vlan": 200}),
    );
    let c = mvdp(&d, &Inv::new("ADD", "v3", &c1).ifname("net1"), &clash);
    assert_eq!(c.code(), 7, "{}", c.stdout);
    let other = conf(&d, "1.0.0", json!({"name": "v100", "vlan": 200}));
    assert_eq!(
        mvdp(&d, &Inv::new("ADD", "v3", &c1).ifname("net1"), &other).code(),
        7
    );
    mvdp_ok(&d, &Inv::new("DEL", "v1", &c1), &dotted);
    mvdp_ok(&d, &Inv::new("DEL", "v2", &c2), &keyed);
    assert!(ports(&d).is_empty());
}
