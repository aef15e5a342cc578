//! `mvdp` as a CNI plugin, run the way a runtime runs a plugin (CNI_* environment, configuration on
//! stdin, in the host's netns) against `mvdp daemon` in a lab: the reference macvlan plugin's own
//! test cases for every CNI version, a side-by-side with `/usr/lib/cni/macvlan`, state across a
//! daemon restart, GC, parallel ADD/DEL, and bad input with exact codes and nothing left behind.

mod cni_support;
mod common;
mod daemon_support;

use cni_support::*;
use common::*;
use daemon_support::{ping, DaemonLab};
use serde_json::json;

fn lab(test: &str, containers: u32) -> Option<DaemonLab> {
    if !is_root(test) {
        return None;
    }
    assert!(
        std::path::Path::new(&format!("{CNI_PATH}/host-local")).exists(),
        "{CNI_PATH}/host-local missing: scripts/deps.sh installs containernetworking-plugins"
    );
    Some(DaemonLab::start(&unique_prefix("cni"), containers, false))
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

        // DEL of a container that was never added, with and without its netns.
        mvdp_ok(&d, &Inv::new("DEL", "never-added", &c2), &cfg);
        mvdp_ok(&d, &Inv::new("DEL", "never-added", ""), &cfg);

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
