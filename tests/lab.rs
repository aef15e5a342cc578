//! The netns lab (mvdp_lab::lab) and `mvdp lab up|down|ls`, judged from outside with ip/ping/ethtool.
//! Needs root; without it each test says why and returns. Every test uses its own prefix.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use mvdp_control::{Error, Mac, Mode, NetNs, Netlink};
use mvdp_lab::lab::{ContainerAddr, ContainerVeth, Lab};
use mvdp_lab::Backend;

const LAB_LINK_NAMES: [&str; 6] = ["br0", "wext", "whost1", "whost2", "vc1", "vc2"];

fn assert_gone(prefix: &str) {
    assert!(
        eventually(2, || netns_with_prefix(prefix).is_empty()),
        "namespaces left behind: {:?}",
        netns_with_prefix(prefix)
    );
}

#[test]
fn lab_has_the_expected_shape_answers_ping_and_vanishes_on_drop() {
    require_root!("lab_shape");
    let p = unique_prefix("shape");
    let root_before = root_links();
    let lab = Lab::builder(&p)
        .containers(2)
        .hairpin(true)
        .build()
        .expect("build");

    let expect: Vec<String> = {
        let mut v: Vec<String> = ["wire", "ext", "host", "c1", "c2"]
            .iter()
            .map(|r| format!("{p}-{r}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(netns_with_prefix(&p), expect);
    let mut mine = lab.namespaces();
    mine.sort();
    assert_eq!(mine, expect);

    // Wire: bridge with the external host's port and the parent's port enslaved, hairpin on the parent's.
    let wire = format!("{p}-wire");
    let mut wire_links = links(&wire);
    wire_links.sort();
    assert_eq!(wire_links, ["br0", "lo", "wext", "whost1"]);
    for port in ["wext", "whost1"] {
        let show = ip_n(&wire, &["-d", "link", "show", port]);
        assert!(show.contains("master br0"), "{port} not on br0: {show}");
        assert!(show.contains("state UP"), "{port} not up: {show}");
        assert_eq!(
            ethtool_feature(&wire, port, "tx-vlan-offload"),
            "off",
            "{port}"
        );
    }
    assert!(ip_n(&wire, &["-d", "link", "show", "whost1"]).contains("hairpin on"));
    assert!(ip_n(&wire, &["-d", "link", "show", "wext"]).contains("hairpin off"));
    assert_eq!(lab.wire_port(1), "whost1");

    // Host: the parent eth1, up, with its IP and MAC; rxvlan off.
    let host = format!("{p}-host");
    assert_eq!(lab.host().name(), host);
    assert_eq!(lab.parent_ifname(), "eth1");
    let mut host_links = links(&host);
    host_links.sort();
    assert_eq!(host_links, ["eth1", "lo"]);
    let addr = ip_n(&host, &["-4", "-br", "addr", "show", "eth1"]);
    assert!(
        addr.contains("198.18.0.1/24") && addr.contains("UP"),
        "{addr}"
    );
    assert!(ip_n(&host, &["link", "show", "eth1"]).contains(&lab.parent_mac().to_string()));
    assert_eq!(ethtool_feature(&host, "eth1", "rx-vlan-offload"), "off");
    // IPv6 off in the lab (no RS/MLD/DAD noise in captures), untouched in the root namespace.
    assert!(!ip_n(&host, &["addr", "show", "eth1"]).contains("inet6"));

    // External host.
    let ext = format!("{p}-ext");
    let addr = ip_n(&ext, &["-4", "-br", "addr", "show", "eth0"]);
    assert!(
        addr.contains("198.18.0.254/24") && addr.contains("UP"),
        "{addr}"
    );
    assert_eq!(lab.ext_ip().to_string(), "198.18.0.254");

    // Containers: empty except lo (up).
    for c in lab.containers() {
        assert_eq!(links(c.ns.name()), ["lo"]);
        assert!(ip_n(c.ns.name(), &["link", "show", "lo"]).contains("UP"));
    }

    // Nothing appeared in the root namespace.
    let root_now = root_links();
    for n in LAB_LINK_NAMES.iter().chain(&["eth1"]) {
        assert!(
            !root_now.contains(&n.to_string()) || root_before.contains(&n.to_string()),
            "{n} in root"
        );
    }

    // Traffic: ext reaches the host's parent over the wire bridge (iproute2's way in and ours).
    assert!(
        ping(&ext, "198.18.0.1", 3),
        "ext cannot ping the host parent"
    );
    let ours = lab
        .ext()
        .command("ping")
        .args(["-c1", "-W1", "198.18.0.1"])
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "NetNs::command ping failed: {}",
        String::from_utf8_lossy(&ours.stdout)
    );

    // run(): a closure inside the host namespace sees the parent.
    let seen = lab
        .host()
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
        .unwrap();
    assert!(seen.contains("eth1:"), "{seen}");

    drop(lab);
    assert_gone(&p);
}

#[test]
fn two_hosts_share_the_wire_and_hairpin_is_off_by_default() {
    require_root!("lab_two_hosts");
    let p = unique_prefix("two");
    let lab = Lab::builder(&p)
        .containers(0)
        .hosts(2)
        .build()
        .expect("build");
    assert_eq!(
        netns_with_prefix(&p),
        [
            format!("{p}-ext"),
            format!("{p}-host1"),
            format!("{p}-host2"),
            format!("{p}-wire")
        ]
    );
    let wire = lab.wire().name().to_string();
    for n in 1..=2 {
        let h = lab.host_n(n);
        assert_eq!(h.wire_port, format!("whost{n}"));
        let show = ip_n(&wire, &["-d", "link", "show", &h.wire_port]);
        assert!(
            show.contains("hairpin off") && show.contains("master br0"),
            "{show}"
        );
        assert!(
            ping(lab.ext().name(), &h.ip.to_string(), 3),
            "ext cannot ping host{n}"
        );
    }
    assert!(
        ping(lab.host_n(1).ns.name(), "198.18.0.2", 3),
        "host1 cannot ping host2"
    );
    lab.destroy().expect("destroy");
    assert_gone(&p);
}

#[test]
fn container_veths_get_their_addresses_and_offloads() {
    require_root!("lab_container_veths");
    let p = unique_prefix("veth");
    let custom = ContainerAddr {
        mac: Mac::lab(7, 7, 7),
        ip: "198.18.0.77".parse().unwrap(),
        mtu: Some(1400),
    };
    let lab = Lab::builder(&p)
        .containers(2)
        .container_veths(true)
        .container_addr(2, custom)
        .build()
        .expect("build");

    let host = lab.host().name().to_string();
    let mut host_links = links(&host);
    host_links.sort();
    assert_eq!(host_links, ["eth1", "lo", "vc1", "vc2"]);
    let c1 = lab.container(1);
    let c2 = lab.container(2);
    assert!(c1.veth && c2.veth);
    let show = ip_n(c1.ns.name(), &["-4", "-br", "addr", "show", "eth0"]);
    assert!(
        show.contains("198.18.0.10/24") && show.contains("UP"),
        "{show}"
    );
    assert!(ip_n(c1.ns.name(), &["link", "show", "eth0"]).contains("02:6d:76:00:01:01"));
    let show = ip_n(c2.ns.name(), &["link", "show", "eth0"]);
    assert!(
        show.contains("02:6d:76:07:07:07") && show.contains("mtu 1400"),
        "{show}"
    );
    assert!(ip_n(&host, &["link", "show", "vc2"]).contains("mtu 1400"));
    assert!(ip_n(c2.ns.name(), &["-4", "addr", "show", "eth0"]).contains("198.18.0.77/24"));
    assert_eq!(
        ethtool_feature(c1.ns.name(), "eth0", "tx-checksumming"),
        "off"
    );
    // Typed lookup agrees with ip.
    let nl = Netlink::in_netns(&c2.ns).unwrap();
    let l = nl.link("eth0").unwrap();
    assert_eq!(
        (l.mac, l.mtu, l.up, l.kind.as_deref()),
        (Some(Mac::lab(7, 7, 7)), 1400, true, Some("veth"))
    );

    // The helper adds more pairs on demand; a failing one leaves no half pair.
    let spec = ContainerVeth {
        host_ifname: "vc1b".into(),
        container_ifname: "eth9".into(),
        mac: Some(Mac::lab(0, 2, 1)),
        ip: Some(("198.18.0.100".parse().unwrap(), 24)),
        mtu: None,
    };
    lab.add_container_veth(1, 1, &spec).expect("second veth");
    assert!(links(c1.ns.name()).contains(&"eth9".to_string()));
    let dup = lab.add_container_veth(1, 1, &spec).unwrap_err();
    assert!(dup.to_string().contains("creating veth vc1b"), "{dup}");
    assert!(dup.to_string().contains("File exists"), "{dup}");
    let bad_ip = ContainerVeth {
        host_ifname: "vcx".into(),
        ip: Some(("10.1.2.3".parse().unwrap(), 24)),
        ..spec
    };
    assert!(lab.add_container_veth(1, 1, &bad_ip).is_err());
    assert!(!links(&host).contains(&"vcx".to_string()));
    drop(lab);
    assert_gone(&p);
}

#[test]
fn a_second_build_with_the_same_prefix_fails_and_leaves_the_first_intact() {
    require_root!("lab_same_prefix");
    let p = unique_prefix("dup");
    let first = Lab::builder(&p).containers(1).build().expect("build");
    let before = netns_with_prefix(&p);
    let err = Lab::builder(&p).containers(1).build().unwrap_err();
    assert!(matches!(err, Error::LabExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("lab {p} already exists")) && msg.contains(&format!("{p}-wire")),
        "{msg}"
    );
    assert!(msg.contains(&format!("mvdp lab down --name {p}")), "{msg}");
    assert_eq!(netns_with_prefix(&p), before);
    assert!(
        ping(first.ext().name(), "198.18.0.1", 3),
        "first lab broken"
    );
    drop(first);
    assert_gone(&p);
}

#[test]
fn destroy_by_name_only_removes_the_labs_own_namespaces() {
    require_root!("lab_destroy_by_name");
    let p = unique_prefix("down");
    // Missing lab: error, nothing removed.
    let decoy = NetNs::create(&format!("{p}-notarole")).expect("decoy");
    let longer = NetNs::create(&format!("{p}-x-wire")).expect("decoy lab of a longer name");
    // (Other tests run in parallel: compare only this test's names.)
    let before = netns_with_prefix(&p);
    let err = Lab::destroy_by_name(&p).unwrap_err();
    assert!(matches!(err, Error::NoSuchLab(_)), "{err}");
    assert_eq!(netns_with_prefix(&p), before);
    assert_eq!(before.len(), 2);

    // Namespaces named exactly like a lab's, that mvdp did not record: refused, untouched.
    let lookalike = NetNs::create(&format!("{p}-host")).expect("look-alike");
    let err = Lab::destroy_by_name(&p).unwrap_err();
    assert!(matches!(err, Error::NotOurLab { .. }), "{err}");
    assert!(netns_with_prefix(&p).contains(&format!("{p}-host")));
    lookalike.delete().unwrap();

    // Existing lab: its namespaces go, the decoys stay.
    let lab = Lab::builder(&p).containers(1).build().expect("build");
    let names = lab.keep().expect("keep");
    let removed = Lab::destroy_by_name(&p).expect("down");
    let mut expect = names.namespaces.clone();
    expect.sort();
    let mut removed_sorted = removed.clone();
    removed_sorted.sort();
    assert_eq!(removed_sorted, expect);
    assert_eq!(
        netns_with_prefix(&p),
        [format!("{p}-notarole"), format!("{p}-x-wire")]
    );
    decoy.delete().unwrap();
    longer.delete().unwrap();
    assert_gone(&p);
}

#[test]
fn a_refused_or_failed_build_leaves_nothing() {
    require_root!("lab_failed_build");
    // Refused before anything is created: multicast MAC, address outside the lab range.
    let p = unique_prefix("bad");
    let mcast = ContainerAddr {
        mac: Mac([1, 0, 0x5e, 0, 0, 1]),
        ip: "198.18.0.10".parse().unwrap(),
        mtu: None,
    };
    let e = Lab::builder(&p)
        .containers(1)
        .container_veths(true)
        .container_addr(1, mcast)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("container MAC"), "{e}");
    let outside = ContainerAddr {
        mac: Mac::lab(0, 1, 1),
        ip: "192.0.2.1".parse().unwrap(),
        mtu: None,
    };
    let e = Lab::builder(&p)
        .containers(1)
        .container_addr(1, outside)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("198.18.0.0/24"), "{e}");
    assert!(netns_with_prefix(&p).is_empty());

    // Fails mid-way, in the kernel, after every namespace exists: an MTU no veth accepts.
    let p = unique_prefix("mid");
    let huge = ContainerAddr {
        mac: Mac::lab(0, 1, 2),
        ip: "198.18.0.11".parse().unwrap(),
        mtu: Some(70_000),
    };
    let e = Lab::builder(&p)
        .containers(2)
        .container_veths(true)
        .container_addr(2, huge)
        .build()
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("creating veth vc2") && msg.contains(&format!("netns {p}-host")),
        "{msg}"
    );
    assert_gone(&p);
}

#[test]
fn a_panic_with_a_live_lab_removes_it() {
    require_root!("lab_panic");
    let p = unique_prefix("panic");
    let p2 = p.clone();
    let r = std::panic::catch_unwind(move || {
        let _lab = Lab::builder(&p2).containers(1).build().expect("build");
        assert!(!netns_with_prefix(&p2).is_empty());
        panic!("test panic with a live lab");
    });
    assert!(r.is_err());
    assert_gone(&p);
}

/// Child half of `ctrl_c_removes_live_labs_and_exits_130`: does nothing unless run by it.
#[test]
fn ctrl_c_child() {
    let Ok(prefix) = std::env::var("MVDP_LAB_SIGNAL_CHILD") else {
        return;
    };
    mvdp_lab::install_signal_handler().expect("handler");
    let _lab = Lab::builder(&prefix).containers(1).build().expect("build");
    println!("READY");
    std::thread::sleep(std::time::Duration::from_secs(30));
    panic!("no signal came");
}

#[test]
fn ctrl_c_removes_live_labs_and_exits_130() {
    require_root!("lab_ctrl_c");
    let p = unique_prefix("sig");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ctrl_c_child", "--nocapture", "--test-threads=1"])
        .env("MVDP_LAB_SIGNAL_CHILD", &p)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.unwrap().contains("READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "child never built its lab");
    assert!(!netns_with_prefix(&p).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_gone(&p);
}

fn mvdp(args: &[&str]) -> std::process::Output {
    Command::new(common::BIN).args(args).output().unwrap()
}

#[test]
fn cli_lab_up_ls_down() {
    require_root!("lab_cli");
    let p = unique_prefix("cli");
    let up = mvdp(&[
        "lab",
        "up",
        "--name",
        &p,
        "--containers",
        "1",
        "--hairpin",
        "--json",
    ]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&up.stdout).expect("lab up --json is JSON");
    assert_eq!(d["name"], p.as_str());
    assert_eq!(d["hosts"][0]["ip"], "198.18.0.1");
    assert_eq!(d["hosts"][0]["parent"], "eth1");
    assert_eq!(d["ext"]["ip"], "198.18.0.254");
    assert_eq!(d["wire"]["hairpin"], true);
    assert_eq!(d["containers"][0]["netns"], format!("{p}-c1").as_str());
    let listed: Vec<String> = d["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    // The lab outlives the command.
    assert_eq!(netns_with_prefix(&p), listed_sorted);
    assert!(ping(&format!("{p}-ext"), "198.18.0.1", 3));

    // Same name again: refused, first intact.
    let again = mvdp(&["lab", "up", "--name", &p]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(netns_with_prefix(&p), listed_sorted);

    let ls = mvdp(&["lab", "ls", "--json"]);
    assert!(ls.status.success());
    let labs: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert!(
        labs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == p.as_str()),
        "{labs}"
    );

    let down = mvdp(&["lab", "down", "--name", &p]);
    assert!(
        down.status.success(),
        "lab down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_gone(&p);

    // Down of a lab that does not exist: non-zero, clear message, nothing removed.
    let keep = NetNs::create(&format!("{p}-notarole")).unwrap();
    let missing = mvdp(&["lab", "down", "--name", &p]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains(&format!("no lab named {p}")), "{err}");
    assert_eq!(netns_with_prefix(&p), [format!("{p}-notarole")]);
    keep.delete().unwrap();
}

#[test]
fn cli_refuses_bad_input_with_help() {
    // No root needed: argument errors come before any system change.
    let bad = mvdp(&["lab", "up", "--hosts", "3"]);
    assert!(!bad.status.success());
    let bad = mvdp(&["lab", "up", "--name", "Bad Name"]);
    assert!(!bad.status.success());
    for args in [
        &["lab", "--help"][..],
        &["lab", "up", "--help"],
        &["lab", "down", "--help"],
        &["lab", "ls", "--help"],
        &["lab", "soak", "--help"],
    ] {
        let h = mvdp(args);
        assert!(h.status.success() && !h.stdout.is_empty(), "{args:?}");
    }
    // The soak's durations are checked before any lab is built.
    for (args, needle) in [
        (&["lab", "soak", "--minutes", "0"][..], "--minutes"),
        (&["lab", "soak", "--restart-every=-1"], "--restart-every"),
        (&["lab", "soak", "--churn-every", "NaN"], "--churn-every"),
    ] {
        let bad = mvdp(args);
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(!bad.status.success(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

// ---- container backends -----------------------------------------------------------------------------

fn macvlan_lab(tag: &str, mode: Mode, containers: u32, hairpin: bool) -> Lab {
    Lab::builder(&unique_prefix(tag))
        .containers(containers)
        .hairpin(hairpin)
        .backend(Backend::Macvlan(mode))
        .build()
        .unwrap_or_else(|e| panic!("building a macvlan {mode} lab: {e}"))
}

/// Each container's eth0 is a macvlan of the given mode on the host's eth1, with its lab MAC and IP, up.
fn assert_macvlan_ports(lab: &Lab, mode: Mode) {
    let host = Netlink::in_netns(lab.host()).unwrap();
    let parent = host.link("eth1").unwrap();
    for c in lab.containers() {
        let ns = c.ns.name();
        let d = ip_n(ns, &["-d", "link", "show", "eth0"]);
        assert!(d.contains(&format!("macvlan mode {mode}")), "{d}");
        assert!(d.contains(&c.mac.to_string()), "{d}");
        assert!(d.contains("state UP") || d.contains(",UP"), "{d}");
        let link = Netlink::in_netns(&c.ns).unwrap().link("eth0").unwrap();
        assert_eq!(
            link.link,
            Some(parent.index),
            "eth0's parent is the host's eth1"
        );
        let addr = ip_n(ns, &["-4", "-br", "addr", "show", "eth0"]);
        assert!(addr.contains(&format!("{}/24", c.ip)), "{addr}");
    }
    assert!(links(lab.host().name())
        .iter()
        .all(|l| l == "lo" || l == "eth1"));
}

fn ping_from(lab: &Lab, n: u32, ip: &str, tries: u32) -> bool {
    ping(lab.container(n).ns.name(), ip, tries)
}

#[test]
fn macvlan_backend_bridge_mode_siblings_talk_the_parent_ip_does_not_answer() {
    require_root!("macvlan_bridge");
    let lab = macvlan_lab("mvbr", Mode::Bridge, 2, false);
    let p = lab.prefix().to_string();
    assert_eq!(lab.backend(), Backend::Macvlan(Mode::Bridge));
    assert_macvlan_ports(&lab, Mode::Bridge);
    assert!(ping_from(&lab, 1, "198.18.0.11", 3), "bridge-mode siblings");
    assert!(
        ping_from(&lab, 1, "198.18.0.254", 3),
        "container to external host"
    );
    // The well-known macvlan gap: a child's frames to the parent's own address go out to the wire,
    // and the wire switch does not send them back without hairpin.
    assert!(
        !ping_from(&lab, 1, "198.18.0.1", 1),
        "macvlan child reached its parent's IP"
    );
    drop(lab);
    assert_gone(&p);
}

#[test]
fn macvlan_backend_vepa_siblings_need_the_wire_hairpin() {
    require_root!("macvlan_vepa");
    let lab = macvlan_lab("mvvepa", Mode::Vepa, 2, false);
    let p = lab.prefix().to_string();
    assert_macvlan_ports(&lab, Mode::Vepa);
    assert!(ping_from(&lab, 1, "198.18.0.254", 3));
    assert!(
        !ping_from(&lab, 1, "198.18.0.11", 1),
        "vepa siblings without hairpin"
    );
    Netlink::in_netns(lab.wire())
        .unwrap()
        .set_hairpin(lab.wire_port(1), true)
        .unwrap();
    assert!(
        ping_from(&lab, 1, "198.18.0.11", 3),
        "vepa siblings with hairpin"
    );
    // With hairpin the parent's own IP answers too: its replies come back from the wire.
    assert!(ping_from(&lab, 1, "198.18.0.1", 3));
    drop(lab);
    assert_gone(&p);
}

#[test]
fn macvlan_backend_private_siblings_never_talk_even_with_hairpin() {
    require_root!("macvlan_private");
    let lab = macvlan_lab("mvpriv", Mode::Private, 2, true);
    let p = lab.prefix().to_string();
    assert_macvlan_ports(&lab, Mode::Private);
    assert!(ping_from(&lab, 2, "198.18.0.254", 3));
    // The reflected ARP request returns to its sender only, so c2 never learns of c1.
    assert!(
        !ping_from(&lab, 1, "198.18.0.11", 1),
        "private siblings talked"
    );
    drop(lab);
    assert_gone(&p);
}

#[test]
fn macvlan_backend_passthru_takes_one_container_and_gives_the_parent_its_mac() {
    require_root!("macvlan_passthru");
    // Two passthru containers: refused before anything is created.
    let p2 = unique_prefix("mvpt");
    let e = Lab::builder(&p2)
        .containers(2)
        .backend(Backend::Macvlan(Mode::Passthru))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("at most 1 container"), "{e}");
    assert!(netns_with_prefix(&p2).is_empty());

    let lab = macvlan_lab("mvpt", Mode::Passthru, 1, false);
    let p = lab.prefix().to_string();
    assert_macvlan_ports(&lab, Mode::Passthru);
    let c1 = lab.container(1).mac;
    assert_eq!(lab.parent_mac(), c1);
    assert!(ip_n(lab.host().name(), &["link", "show", "eth1"]).contains(&c1.to_string()));
    // The kernel's own promiscuity count (IFF_PROMISC in the flags shows only what a user asked for).
    assert!(
        ip_n(lab.host().name(), &["-d", "link", "show", "eth1"]).contains("promiscuity 1"),
        "passthru puts the parent in promiscuous mode"
    );
    assert_eq!(lab.description().hosts[0].mac, c1);
    assert!(ping_from(&lab, 1, "198.18.0.254", 3));
    drop(lab);
    assert_gone(&p);
}

#[test]
fn bridge_backend_puts_parent_and_containers_on_one_bridge_and_keeps_the_host_reachable() {
    require_root!("bridge_backend");
    let lab = Lab::builder(&unique_prefix("brb"))
        .containers(2)
        .backend(Backend::Bridge)
        .build()
        .expect("build");
    let p = lab.prefix().to_string();
    let host = lab.host().name().to_string();
    for port in ["eth1", "vc1", "vc2"] {
        let d = ip_n(&host, &["-d", "link", "show", port]);
        assert!(d.contains("master br0"), "{port}: {d}");
    }
    let br = ip_n(&host, &["-4", "-br", "addr", "show", "br0"]);
    assert!(br.contains("198.18.0.1/24") && br.contains("UP"), "{br}");
    assert!(!ip_n(&host, &["-4", "addr", "show", "eth1"]).contains("198.18.0.1"));
    assert!(ip_n(&host, &["link", "show", "br0"]).contains(&lab.parent_mac().to_string()));
    assert_eq!(lab.hosts()[0].ip_ifname(), "br0");
    for c in lab.containers() {
        let ns = c.ns.name();
        let addr = ip_n(ns, &["-4", "-br", "addr", "show", "eth0"]);
        assert!(
            addr.contains(&format!("{}/24", c.ip)) && addr.contains("UP"),
            "{addr}"
        );
        assert!(ip_n(ns, &["link", "show", "eth0"]).contains(&c.mac.to_string()));
        assert_eq!(ethtool_feature(ns, "eth0", "tx-checksumming"), "off");
    }
    assert!(ping_from(&lab, 1, "198.18.0.11", 3));
    assert!(ping_from(&lab, 1, "198.18.0.254", 3));
    assert!(
        ping_from(&lab, 2, "198.18.0.1", 3),
        "container to host via the bridge"
    );
    assert!(
        ping(lab.ext().name(), "198.18.0.1", 3),
        "external host to host"
    );
    drop(lab);
    assert_gone(&p);
}

#[test]
fn cli_lab_up_with_backends() {
    require_root!("lab_cli_backends");
    let p = unique_prefix("clib");
    let up = mvdp(&[
        "lab",
        "up",
        "--name",
        &p,
        "--backend",
        "macvlan",
        "--mode",
        "vepa",
        "--containers",
        "2",
        "--json",
    ]);
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(d["backend"], "macvlan:vepa");
    assert_eq!(d["containers"][1]["link"], "macvlan");
    assert!(ip_n(&format!("{p}-c2"), &["-d", "link", "show", "eth0"]).contains("macvlan mode vepa"));
    let ls = mvdp(&["lab", "ls", "--json"]);
    let labs: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let mine = labs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == p.as_str())
        .expect("lab listed");
    assert_eq!(mine["backend"], "macvlan:vepa");
    let human = String::from_utf8_lossy(&mvdp(&["lab", "ls"]).stdout).into_owned();
    assert!(human
        .lines()
        .any(|l| l.starts_with(p.as_str()) && l.contains("macvlan:vepa")));
    assert!(mvdp(&["lab", "down", "--name", &p]).status.success());
    assert_gone(&p);

    // Refused up front, nothing built: a mode on a modeless backend, two passthru containers (kernel
    // or mvdp).
    for (args, msg) in [
        (
            &[
                "--backend",
                "mvdp",
                "--mode",
                "passthru",
                "--containers",
                "2",
            ][..],
            "at most 1 container",
        ),
        (&["--backend", "bridge", "--mode", "vepa"], "no modes"),
        (
            &[
                "--backend",
                "macvlan",
                "--mode",
                "passthru",
                "--containers",
                "2",
            ],
            "at most 1 container",
        ),
    ] {
        let o = mvdp(&[&["lab", "up", "--name", &p][..], args].concat());
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(netns_with_prefix(&p).is_empty(), "{args:?} left namespaces");
    }
    let bad = mvdp(&["lab", "up", "--backend", "ovs"]);
    assert!(!bad.status.success());
}

/// Runs `mvdp lab down` for a lab left up by `mvdp lab up`, if a test fails before doing so.
struct LabDownOnDrop(String);

impl Drop for LabDownOnDrop {
    fn drop(&mut self) {
        if !netns_with_prefix(&self.0).is_empty() {
            let _ = mvdp(&["lab", "down", "--name", &self.0]);
        }
    }
}

#[test]
fn cli_lab_up_mvdp_backend_runs_a_daemon_that_lab_down_stops() {
    require_root!("lab_cli_mvdp");
    let p = unique_prefix("clim");
    let up = mvdp(&[
        "lab",
        "up",
        "--name",
        &p,
        "--backend",
        "mvdp",
        "--containers",
        "2",
        "--json",
    ]);
    let guard = LabDownOnDrop(p.clone());
    assert!(
        up.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(d["backend"], "mvdp:bridge");
    assert_eq!(d["containers"][1]["link"], "mvdp");
    let pid = d["daemon"]["pid"].as_u64().expect("daemon pid") as u32;
    let socket = d["daemon"]["socket"].as_str().unwrap().to_string();
    // A zombie (exited, not yet reaped by whoever inherited it) has an empty command line.
    let running = || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty());
    assert!(running(), "daemon {pid} not running");
    // The daemon serves the lab: both containers are ports of one bridge-mode network.
    let ports = Command::new(common::BIN)
        .args(["port", "ls", "--json"])
        .env("MVDP_SOCKET", &socket)
        .output()
        .unwrap();
    assert!(ports.status.success());
    let ports: serde_json::Value = serde_json::from_slice(&ports.stdout).unwrap();
    assert_eq!(ports.as_array().unwrap().len(), 2, "{ports}");
    // Bridge mode: the containers reach each other (locally) and the external host (the wire).
    let c1 = format!("{p}-c1");
    assert!(ping(&c1, "198.18.0.11", 3), "c1 -> c2");
    assert!(ping(&c1, "198.18.0.254", 3), "c1 -> ext");
    let ls = String::from_utf8_lossy(&mvdp(&["lab", "ls"]).stdout).into_owned();
    assert!(ls
        .lines()
        .any(|l| l.starts_with(p.as_str()) && l.contains("mvdp:bridge")));

    let down = mvdp(&["lab", "down", "--name", &p]);
    assert!(
        down.status.success(),
        "lab down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_gone(&p);
    assert!(
        eventually(5, || !running()),
        "daemon {pid} still running after lab down"
    );
    let dir = d["daemon"]["dir"].as_str().unwrap();
    assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
    drop(guard);
}
