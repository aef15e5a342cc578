//! A port may not take what the host needs to keep its NIC: the parent's own MAC (the host would
//! lose the wire), the host's address on the parent, or the daemon's own netns as the container's.
//! Each is refused before anything is made, and a container that later takes the parent's MAC is
//! not followed. The host keeps talking to the external host throughout.

mod common;

use common::{eventually, links, ns_exec, ping, require_root, unique_prefix, DaemonLab, BIN};
use mvdp_lab::lab::{host_ip, host_mac, EXT_IP};

fn nothing_made(d: &DaemonLab) {
    assert!(
        !links(&d.c(1)).iter().any(|l| l == "eth0"),
        "eth0 in the container"
    );
    assert!(
        !links(&d.host()).iter().any(|l| l.starts_with("mvp")),
        "a veth in the host"
    );
    assert!(d
        .json(&["port", "ls", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn ports_that_would_take_the_hosts_nic_are_refused() {
    require_root!("ports_that_would_take_the_hosts_nic_are_refused");
    let d = DaemonLab::start(BIN, &unique_prefix("refuse"), 1, false);
    // The external host is the gateway, so the host's own address is an ordinary one of the subnet.
    d.ok(&[
        "network",
        "create",
        "lan",
        "--parent",
        "eth1",
        "--subnet",
        "198.18.0.0/24",
        "--gateway",
        "198.18.0.254",
        "--ip-range",
        "198.18.0.32/28",
    ]);
    let parent_mac = host_mac(1).to_string();
    let c1 = d.c(1);
    let host = d.host();
    let ext = EXT_IP.to_string();

    d.refused(
        &["port", "add", "lan", "--netns", &c1, "--mac", &parent_mac],
        "is the parent eth1's own address",
    );
    nothing_made(&d);
    d.refused(
        &[
            "port",
            "add",
            "lan",
            "--netns",
            &c1,
            "--ip",
            &host_ip(1).to_string(),
        ],
        "is the host's own address on the parent eth1",
    );
    nothing_made(&d);
    d.refused(
        &["port", "add", "lan", "--netns", &host],
        "is the daemon's own network namespace",
    );
    nothing_made(&d);
    assert!(ping(&host, &ext, 3), "the host keeps its NIC");

    // A port that is fine, whose container then takes the parent's MAC: not followed.
    d.ok(&["port", "add", "lan", "--netns", &c1]);
    let mac_of_port = || d.json(&["port", "ls", "--json"])[0]["mac"].clone();
    let before = mac_of_port();
    let set = ns_exec(&c1, &["ip", "link", "set", "eth0", "address", &parent_mac]);
    assert!(set.status.success(), "{set:?}");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(mac_of_port(), before, "the port took the parent's MAC");
    assert!(ping(&host, &ext, 3), "the host keeps its NIC");
    // Another MAC is followed again.
    let set = ns_exec(
        &c1,
        &["ip", "link", "set", "eth0", "address", "02:00:00:00:aa:01"],
    );
    assert!(set.status.success(), "{set:?}");
    assert!(
        eventually(5, || mac_of_port() == "02:00:00:00:aa:01"),
        "{}",
        mac_of_port()
    );
}

#[test]
fn requests_with_unknown_fields_are_refused() {
    require_root!("requests_with_unknown_fields_are_refused");
    let d = DaemonLab::start(BIN, &unique_prefix("unk"), 0, false);
    let ask = |line: &str| -> serde_json::Value {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).expect("a JSON reply")
    };
    for bad in [
        r#"{"op":"ping","evil":1}"#,
        r#"{"op":"stats","x":true}"#,
        r#"{"op":"network_ls","all":1}"#,
        r#"{"op":"port_ls","filter":"a"}"#,
    ] {
        let r = ask(bad);
        assert_eq!(r["ok"], false, "{bad} -> {r}");
        assert!(
            r["error"].as_str().unwrap().contains("unknown field"),
            "{bad} -> {r}"
        );
    }
    assert_eq!(
        ask(r#"{"op":"ping"}"#)["ok"],
        true,
        "the daemon still answers"
    );
}
