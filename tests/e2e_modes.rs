//! Containers on mvdp networks talk the way they do on kernel macvlan (issue 4's end-to-end tests):
//! bridge, private, VEPA (with and without the wire's hairpin), passthru, VLAN separation, the host
//! port, carrier follow, and a SIGKILLed daemon leaving the parent clean. The daemon runs inside the
//! lab's host netns; checks go through ping and `ip`.

mod common;

use std::process::{Child, Command, Stdio};

use common::{
    eventually, is_root, ping, require_root, unique_prefix, xdp_attached, DaemonLab, BIN,
};
use mvdp_lab::bench::udp::{measure_throughput, Load, Pace};

const EXT: &str = "198.18.0.254";
const HOST: &str = "198.18.0.1";

/// `ping -i 0.2 EXT` from the host netns for the whole test: the host keeps its NIC.
struct HostPing(Child);

impl HostPing {
    fn start(host: &str) -> HostPing {
        HostPing(
            Command::new("ip")
                .args([
                    "netns", "exec", host, "ping", "-n", "-i", "0.2", "-W", "1", EXT,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
    /// (transmitted, received).
    fn finish(mut self) -> (u32, u32) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let out = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary:\n{text}"));
        let num = |w: &str| -> u32 {
            line.split(", ")
                .find(|p| p.contains(w))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap()
        };
        (num("transmitted"), num("received"))
    }
}

impl Drop for HostPing {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn net(d: &DaemonLab, name: &str, parent: &str, mode: &str, range: &str) {
    d.ok(&[
        "network",
        "create",
        name,
        "--parent",
        parent,
        "--mode",
        mode,
        "--subnet",
        "198.18.0.0/24",
        "--ip-range",
        range,
    ]);
}

#[test]
fn bridge_containers_reach_each_other_and_the_wire_and_the_host_only_through_a_host_port() {
    require_root!(
        "bridge_containers_reach_each_other_and_the_wire_and_the_host_only_through_a_host_port"
    );
    let d = DaemonLab::start(BIN, &unique_prefix("ebr"), 2, false);
    let bg = HostPing::start(&d.host());
    net(&d, "lan", "eth1", "bridge", "198.18.0.32/28");
    d.add_port("lan", 1, "198.18.0.32");
    d.add_port("lan", 2, "198.18.0.33");
    let (c1, c2) = (d.c(1), d.c(2));
    assert!(ping(&c1, "198.18.0.33", 3), "c1 -> c2");
    assert!(ping(&c2, "198.18.0.32", 3), "c2 -> c1");
    assert!(ping(&c1, EXT, 3), "c1 -> external host");
    assert!(ping(&c2, EXT, 3), "c2 -> external host");
    assert!(
        ping(d.lab.ext().name(), "198.18.0.33", 3),
        "external host -> c2"
    );
    // As with kernel macvlan, the host's own parent address is out of reach...
    assert!(
        !ping(&c1, HOST, 1),
        "c1 reached the host's parent IP without a host port"
    );
    // ...until the host gets its own port.
    let shim = d.json(&["port", "add", "lan", "--host", "--json"]);
    assert_eq!(shim["ifname"], "mvh-lan");
    assert!(ping(&c1, HOST, 3), "c1 -> host with a host port");
    assert!(
        ping(&d.host(), "198.18.0.33", 3),
        "host -> c2 with a host port"
    );

    let (sent, got) = bg.finish();
    assert!(
        sent >= 5 && got + 1 >= sent,
        "host lost its NIC: {got}/{sent} pings answered"
    );
    // A UDP blast c1 -> c2: the sending port takes frames turn after turn, so its socket
    // leaves the worker's epoll set, and `mvdp stats` says so.
    assert_eq!(
        d.json(&["stats", "--json"])["unwatched"],
        0,
        "before a burst"
    );
    let (n1, n2) = (&d.lab.container(1).ns, &d.lab.container(2).ns);
    let t = measure_throughput(
        n1,
        "198.18.0.32".parse().unwrap(),
        n2,
        "198.18.0.33".parse().unwrap(),
        Load {
            flows: 1,
            payload: 64,
            duration: std::time::Duration::from_millis(300),
            pace: Pace::Flat,
        },
    )
    .expect("blast");
    assert!(
        t.recv_pkts > 1000,
        "the blast went through the switch: {t:?}"
    );
    let stats = d.json(&["stats", "--json"]);
    assert_eq!(stats["umem"]["balanced"], true, "{stats}");
    // The worker's stall count is reported (the bench's paced table reads it).
    assert!(
        stats["late_turns"].is_u64() && stats["longest_turn_us"].is_u64(),
        "{stats}"
    );
    assert!(stats["unwatched"].as_u64().unwrap() > 0, "{stats}");
    let text = d.ok(&["stats"]);
    assert!(
        text.contains("hot sockets taken off epoll ") && !text.contains("taken off epoll 0\n"),
        "{text}"
    );
    let lan = &stats["networks"][0];
    assert!(
        lan["rx_frames"].as_u64().unwrap() > 0 && lan["tx_frames"].as_u64().unwrap() > 0,
        "{stats}"
    );
    let sum: u64 = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rx_frames"].as_u64().unwrap())
        .sum();
    assert_eq!(
        sum,
        lan["rx_frames"].as_u64().unwrap(),
        "network total is the sum of its ports"
    );
}

/// Private and VEPA on one parent (VEPA on VLAN 100): siblings reach each other only through the
/// wire's reflective relay. Private gets static neighbours: the kernel hands a private port's
/// reflected broadcast back to the sender only, so ARP between private siblings never resolves.
fn private_and_vepa(hairpin: bool) {
    let d = DaemonLab::start(
        BIN,
        &unique_prefix(if hairpin { "ehp" } else { "enh" }),
        4,
        hairpin,
    );
    net(&d, "priv", "eth1", "private", "198.18.0.32/28");
    net(&d, "vepa", "eth1.100", "vepa", "198.18.0.48/28");
    let m1 = d.add_port("priv", 1, "198.18.0.32");
    let m2 = d.add_port("priv", 2, "198.18.0.33");
    d.add_port("vepa", 3, "198.18.0.48");
    d.add_port("vepa", 4, "198.18.0.49");
    for (c, ip, mac) in [(1, "198.18.0.33", &m2), (2, "198.18.0.32", &m1)] {
        let ok = Command::new("ip")
            .args([
                "-n",
                &d.c(c),
                "neigh",
                "replace",
                ip,
                "lladdr",
                mac,
                "dev",
                "eth0",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let tries = if hairpin { 3 } else { 1 };
    assert_eq!(
        ping(&d.c(1), "198.18.0.33", tries),
        hairpin,
        "private c1 -> c2, hairpin {hairpin}"
    );
    assert_eq!(
        ping(&d.c(3), "198.18.0.49", tries),
        hairpin,
        "vepa c3 -> c4, hairpin {hairpin}"
    );
    assert!(ping(&d.c(1), EXT, 3), "private c1 -> external host");
    assert!(ping(&d.host(), EXT, 2), "host -> external host");
}

#[test]
fn private_and_vepa_siblings_are_cut_off_without_the_wire_hairpin() {
    if is_root("private_and_vepa_siblings_are_cut_off_without_the_wire_hairpin") {
        private_and_vepa(false);
    }
}

#[test]
fn private_and_vepa_siblings_talk_through_the_wire_hairpin() {
    if is_root("private_and_vepa_siblings_talk_through_the_wire_hairpin") {
        private_and_vepa(true);
    }
}

#[test]
fn passthru_takes_one_port_which_reaches_the_wire() {
    require_root!("passthru_takes_one_port_which_reaches_the_wire");
    let d = DaemonLab::start(BIN, &unique_prefix("ept"), 2, false);
    net(&d, "pt", "eth1", "passthru", "198.18.0.32/28");
    d.add_port("pt", 1, "198.18.0.40");
    d.refused(
        &["port", "add", "pt", "--netns", &d.c(2)],
        "already has its one port",
    );
    assert!(ping(&d.c(1), EXT, 3), "passthru port -> external host");
    assert!(
        ping(d.lab.ext().name(), "198.18.0.40", 3),
        "external host -> passthru port"
    );
    // All wire unicast goes to the passthru port, whatever its destination MAC: the external host
    // sends to 198.18.0.77 at a MAC nobody owns, and the port receives it.
    let to_port = || -> u64 {
        d.json(&["stats", "--json"])["ports"][0]["tx_frames"]
            .as_u64()
            .unwrap()
    };
    let ext = d.lab.ext().name().to_string();
    let neigh = [
        "neigh",
        "replace",
        "198.18.0.77",
        "lladdr",
        "02:99:00:00:00:77",
        "dev",
        "eth0",
    ];
    assert!(Command::new("ip")
        .args(["-n", &ext])
        .args(neigh)
        .status()
        .unwrap()
        .success());
    let before = to_port();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &ext,
            "ping",
            "-c",
            "10",
            "-i",
            "0.02",
            "-W",
            "1",
            "198.18.0.77",
        ])
        .output()
        .unwrap();
    let got = to_port() - before;
    assert!(
        got >= 10,
        "the passthru port got {got} of 10 frames for an unknown MAC"
    );
}

#[test]
fn vlans_100_and_200_are_separate() {
    require_root!("vlans_100_and_200_are_separate");
    let d = DaemonLab::start(BIN, &unique_prefix("evl"), 3, false);
    // Overlapping subnets on two VLANs of one parent, as Docker allows.
    net(&d, "v100", "eth1.100", "bridge", "198.18.0.32/28");
    net(&d, "v200", "eth1.200", "bridge", "198.18.0.48/28");
    d.add_port("v100", 1, "198.18.0.32");
    d.add_port("v100", 2, "198.18.0.33");
    d.add_port("v200", 3, "198.18.0.48");
    assert!(ping(&d.c(1), "198.18.0.33", 3), "same VLAN");
    assert!(
        !ping(&d.c(1), "198.18.0.48", 1),
        "VLAN 100 reached VLAN 200"
    );
    // The untagged external host is on neither VLAN.
    assert!(!ping(&d.c(3), EXT, 1), "VLAN 200 reached the untagged wire");
    assert!(ping(&d.host(), EXT, 2), "host -> external host");
}

#[test]
fn ports_follow_carrier_and_a_killed_daemon_leaves_the_parent_clean() {
    require_root!("ports_follow_carrier_and_a_killed_daemon_leaves_the_parent_clean");
    let mut d = DaemonLab::start(BIN, &unique_prefix("ek9"), 1, false);
    let (host, c1) = (d.host(), d.c(1));
    net(&d, "lan", "eth1", "bridge", "198.18.0.32/28");
    d.add_port("lan", 1, "198.18.0.32");
    assert!(ping(&c1, EXT, 3));
    assert!(xdp_attached(&host, "eth1"));

    // Parent down: the container's end loses carrier, as under kernel macvlan; and back.
    let eth0 = || {
        String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-n", &c1, "link", "show", "dev", "eth0"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    Command::new("ip")
        .args(["-n", &host, "link", "set", "eth1", "down"])
        .status()
        .unwrap();
    assert!(
        eventually(3, || eth0().contains("NO-CARRIER")),
        "{}",
        eth0()
    );
    assert_eq!(d.json(&["port", "ls", "--json"])[0]["state"], "no-carrier");
    Command::new("ip")
        .args(["-n", &host, "link", "set", "eth1", "up"])
        .status()
        .unwrap();
    assert!(
        eventually(3, || !eth0().contains("NO-CARRIER")),
        "{}",
        eth0()
    );
    assert!(
        ping(&c1, EXT, 5),
        "no forwarding after the parent came back"
    );

    let st = d.stop(nix::sys::signal::Signal::SIGKILL);
    assert!(!st.success());
    assert!(
        eventually(5, || !xdp_attached(&host, "eth1")),
        "a SIGKILLed daemon left its XDP program on the parent"
    );
    assert!(
        ping(&host, EXT, 3),
        "host lost its NIC after the daemon died"
    );
}

#[test]
fn two_hosts_share_vlan_100_and_keep_vlan_200_apart() {
    require_root!("two_hosts_share_vlan_100_and_keep_vlan_200_apart");
    // Docker's two-node macvlan experiment: each host runs its own daemon, both parents on one wire.
    let mut d = DaemonLab::start_hosts(BIN, &unique_prefix("e2h"), 4, false, 2);
    d.start_on_host(2);
    for h in [1, 2] {
        for (name, parent, range) in [
            ("v100", "eth1.100", "198.18.0.32/28"),
            ("v200", "eth1.200", "198.18.0.48/28"),
        ] {
            d.ok_on(
                h,
                &[
                    "network",
                    "create",
                    name,
                    "--parent",
                    parent,
                    "--subnet",
                    "198.18.0.0/24",
                    "--ip-range",
                    range,
                ],
            );
        }
    }
    for (h, net, c, ip) in [
        (1, "v100", 1, "198.18.0.32"),
        (2, "v100", 2, "198.18.0.33"),
        (1, "v200", 3, "198.18.0.48"),
        (2, "v200", 4, "198.18.0.49"),
    ] {
        d.ok_on(h, &["port", "add", net, "--netns", &d.c(c), "--ip", ip]);
    }
    assert!(ping(&d.c(1), "198.18.0.33", 3), "VLAN 100 across hosts");
    assert!(ping(&d.c(4), "198.18.0.48", 3), "VLAN 200 across hosts");
    assert!(
        !ping(&d.c(1), "198.18.0.49", 1),
        "VLAN 100 reached VLAN 200 on the other host"
    );
    assert!(
        ping(d.lab.host_n(2).ns.name(), EXT, 2),
        "host 2 -> external host"
    );
}
