//! `docker network create -d mvdp` with a real dockerd (Debian's docker.io 20.10) in a lab host's
//! netns, against the same script with `-d macvlan` (Docker's own driver over kernel macvlan, the
//! reference). The mvdp daemon serves the remote driver protocol on a socket of its own, which
//! dockerd finds through a spec file in its private /etc/docker/plugins, or in its default plugin
//! directory /run/docker/plugins (the socket's directory mounted there, privately).

mod common;
mod docker_support;

use common::*;
use docker_support::*;

const SUBNET: &str = "198.18.0.0/24";
const EXT: &str = "198.18.0.254";
/// The host's own address on the parent.
const HOST_PARENT_IP: &str = "198.18.0.1";

/// What the common script saw, driver by driver.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    container_to_container: bool,
    container_to_external: bool,
    container_to_host_parent: bool,
    vlan_networks_made: bool,
}

/// The script both drivers run: a network on the lab's parent, one long-running container and
/// throwaway ones pinging it, the external host and the host's own parent address; then networks
/// on VLAN 100 and 200 of the parent.
fn common_script(dk: &Dockerd, driver: &str) -> Seen {
    dk.ok(&[
        "network",
        "create",
        "-d",
        driver,
        "--subnet",
        SUBNET,
        "--gateway",
        EXT,
        "--ip-range",
        "198.18.0.160/28",
        "--aux-address",
        "reserved=198.18.0.160",
        "-o",
        "parent=eth1",
        "-o",
        "macvlan_mode=bridge",
        "lan",
    ]);
    let run = |name: &str, ip: &[&str]| {
        let mut a = vec!["run", "-d", "--name", name, "--network", "lan"];
        a.extend_from_slice(ip);
        a.extend_from_slice(&["bb", "sleep", "300"]);
        dk.ok(&a);
    };
    run("c1", &["--ip", "198.18.0.170"]);
    let c1 = dk.ip("c1", "lan");
    assert_eq!(c1, "198.18.0.170", "docker run --ip");
    // Docker's IPAM keeps choosing: the next container skips the aux address.
    run("c2", &[]);
    assert_eq!(dk.ip("c2", "lan"), "198.18.0.161", "--aux-address");
    dk.ok(&["rm", "-f", "c2"]);
    let seen_c2c = dk.pings("lan", &c1);
    let seen_ext = dk.exec_pings("c1", EXT);
    let seen_host = dk.exec_pings("c1", HOST_PARENT_IP);
    dk.ok(&["rm", "-f", "c1"]);
    dk.ok(&["network", "rm", "lan"]);
    let v100 = dk.docker(&[
        "network",
        "create",
        "-d",
        driver,
        "--subnet",
        "10.100.0.0/24",
        "-o",
        "parent=eth1.100",
        "v100",
    ]);
    let v200 = dk.docker(&[
        "network",
        "create",
        "-d",
        driver,
        "--subnet",
        "10.200.0.0/24",
        "-o",
        "parent=eth1.200",
        "v200",
    ]);
    let made = v100.status.success() && v200.status.success();
    for n in ["v100", "v200"] {
        let _ = dk.docker(&["network", "rm", n]);
    }
    Seen {
        container_to_container: seen_c2c,
        container_to_external: seen_ext,
        container_to_host_parent: seen_host,
        vlan_networks_made: made,
    }
}

#[test]
fn mvdp_driver_matches_dockers_macvlan_driver() {
    if !is_root("mvdp_driver_matches_dockers_macvlan_driver") {
        return;
    }
    require(&["dockerd", "containerd", "docker", "runc", "busybox"]);
    let d = DaemonLab::start_with(BIN, &unique_prefix("dkr"), 0, false, 1, true);
    let host = d.host();

    // The reference: Docker's own macvlan driver over kernel macvlan.
    let reference = {
        let dk = Dockerd::start(&d, 1, "ref", None);
        common_script(&dk, "macvlan")
    };
    assert_eq!(
        reference,
        Seen {
            container_to_container: true,
            container_to_external: true,
            container_to_host_parent: false,
            // No 8021q module on this kernel: Docker's macvlan cannot make eth1.100.
            vlan_networks_made: false,
        },
        "the reference changed"
    );
    assert!(
        links_with(&host, "eth1.").is_empty(),
        "{:?}",
        links_with(&host, "")
    );

    let dk = Dockerd::start(&d, 1, "mvdp", Some((&d.docker_plugin(1), Via::Spec)));
    let mvdp = common_script(&dk, "mvdp");
    assert_eq!(
        mvdp,
        Seen {
            // The README's difference: mvdp makes no kernel eth1.100, so VLAN networks work here.
            vlan_networks_made: true,
            ..reference
        },
        "daemon log:\n{}\n{}",
        d.log(),
        dk.logs()
    );
    // Nothing left behind: no port, no veth, no network.
    assert_eq!(d.ok(&["port", "ls", "--json"]).trim(), "[]");
    assert_eq!(d.ok(&["network", "ls", "--json"]).trim(), "[]");
    assert!(links_with(&host, "mvp").is_empty() && links_with(&host, "mvc").is_empty());
    assert!(eventually(5, || !xdp_attached(&host, "eth1")));
}

/// The mvdp daemon's ports as (network, container id, ifname) JSON.
fn mvdp_ports(d: &DaemonLab, n: u32) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&d.ok_on(n, &["port", "ls", "--json"]))
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn mvdp_networks(d: &DaemonLab, n: u32) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(&d.ok_on(n, &["network", "ls", "--json"]))
        .unwrap()
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn mvdp_driver_survives_restarts_and_refuses_bad_input_cleanly() {
    if !is_root("mvdp_driver_survives_restarts_and_refuses_bad_input_cleanly") {
        return;
    }
    require(&["dockerd", "containerd", "docker", "runc", "busybox"]);
    let mut d = DaemonLab::start_with(BIN, &unique_prefix("dkl"), 0, false, 1, true);
    let host = d.host();
    let dk = Dockerd::start(&d, 1, "life", Some((&d.docker_plugin(1), Via::RunDir)));

    // Bad input: Docker shows our message; nothing is made on either side.
    let bad = |args: &[&str], want: &str| {
        let mut a = vec!["network", "create", "-d", "mvdp"];
        a.extend_from_slice(args);
        a.push("bad");
        let before = mvdp_networks(&d, 1);
        let err = dk.fails(&a);
        assert!(err.contains(want), "{args:?}: {err}");
        eprintln!("docker network create {args:?}: {}", err.trim());
        assert!(!dk
            .ok(&["network", "ls", "--format", "{{.Name}}"])
            .contains("bad"));
        assert_eq!(mvdp_networks(&d, 1), before, "{args:?}");
    };
    bad(
        &["-o", "parent=eth1", "-o", "vlan=5"],
        "unknown option -o vlan",
    );
    bad(&["--subnet", "10.9.0.0/24"], "needs -o parent");
    bad(&["-o", "parent=eth9"], "eth9");
    bad(
        &["--ipv6", "--subnet", "fd00:9::/64", "-o", "parent=eth1"],
        "IPv6",
    );
    dk.ok(&[
        "network",
        "create",
        "-d",
        "mvdp",
        "--subnet",
        "10.100.0.0/24",
        "-o",
        "parent=eth1.100",
        "v100",
    ]);
    bad(
        &["--subnet", "10.101.0.0/24", "-o", "parent=eth1.100"],
        "eth1",
    );
    assert_eq!(mvdp_networks(&d, 1).len(), 1);
    dk.ok(&["network", "rm", "v100"]);
    assert!(mvdp_networks(&d, 1).is_empty());

    // A network with the host shim port, and containers on it.
    dk.ok(&[
        "network",
        "create",
        "-d",
        "mvdp",
        "--subnet",
        SUBNET,
        "--gateway",
        EXT,
        "--ip-range",
        "198.18.0.160/28",
        "-o",
        "parent=eth1",
        "-o",
        "mvdp.host=true",
        "lan",
    ]);
    for c in ["c1", "c2"] {
        dk.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "lan",
            "bb",
            "sleep",
            "300",
        ]);
    }
    let c2 = dk.ip("c2", "lan");
    assert!(dk.exec_pings("c1", &c2), "{}", d.log());
    let ports = mvdp_ports(&d, 1);
    assert_eq!(
        ports.iter().filter(|p| p["host"] == false).count(),
        2,
        "{ports:?}"
    );
    let endpoint = ports.iter().find(|p| p["host"] == false).unwrap();
    assert_eq!(
        endpoint["container_id"].as_str().unwrap().len(),
        64,
        "Docker's endpoint id"
    );
    let eid = endpoint["container_id"].as_str().unwrap();
    assert_eq!(endpoint["netns"], format!("docker:{}", &eid[..12]));
    assert_eq!(endpoint["ifname"], format!("mvc{}", endpoint["id"]));
    let host_shim = ports.iter().any(|p| p["host"] == true);
    assert!(host_shim, "-o mvdp.host=true: {ports:?}");

    // The mvdp daemon dies hard and comes back: every endpoint is kept and forwards again.
    d.stop(nix::sys::signal::Signal::SIGKILL);
    d.spawn();
    assert_eq!(mvdp_ports(&d, 1).len(), ports.len(), "{}", d.log());
    assert!(
        eventually(10, || dk.exec_pings("c1", &c2)),
        "after the mvdp restart: {}",
        d.log()
    );

    // dockerd restarts (its containers stop with it): nothing is made twice.
    dk.restart();
    assert_eq!(mvdp_networks(&d, 1).len(), 1);
    dk.ok(&["start", "c1", "c2"]);
    assert_eq!(mvdp_ports(&d, 1).len(), ports.len(), "{}", d.log());
    let c2 = dk.ip("c2", "lan");
    assert!(
        eventually(10, || dk.exec_pings("c1", &c2)),
        "after the dockerd restart"
    );

    // --internal: no gateway, so no default route in the container.
    dk.ok(&[
        "network",
        "create",
        "-d",
        "mvdp",
        "--internal",
        "--subnet",
        "10.50.0.0/24",
        "-o",
        "parent=eth1.50",
        "int",
    ]);
    let routes = dk.ok(&["run", "--rm", "--network", "int", "bb", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    dk.ok(&["network", "rm", "int"]);

    // Teardown leaves nothing: no port, no veth, no network.
    dk.ok(&["rm", "-f", "c1", "c2"]);
    dk.ok(&["network", "rm", "lan"]);
    assert_eq!(mvdp_ports(&d, 1).len(), 0);
    assert!(mvdp_networks(&d, 1).is_empty());
    for p in ["mvp", "mvc", "mvh"] {
        assert!(links_with(&host, p).is_empty(), "{p}: {:?}", links(&host));
    }
    assert!(
        eventually(5, || !xdp_attached(&host, "eth1")),
        "the last network took the XDP program with it"
    );
}

/// Two hosts, a dockerd and an mvdp daemon each: VLAN 100 networks on both share the wire; a
/// container on VLAN 200 with an address in VLAN 100's subnet still cannot reach them. Docker's
/// macvlan cannot run this here (no 8021q module for eth1.100, see the first test).
#[test]
fn two_hosts_share_vlan_100_and_vlan_200_stays_apart() {
    if !is_root("two_hosts_share_vlan_100_and_vlan_200_stays_apart") {
        return;
    }
    require(&["dockerd", "containerd", "docker", "runc", "busybox"]);
    let mut d = DaemonLab::start_with(BIN, &unique_prefix("dk2"), 0, false, 2, true);
    d.start_on_host(2);
    let h1 = Dockerd::start(&d, 1, "h1", Some((&d.docker_plugin(1), Via::RunDir)));
    let h2 = Dockerd::start(&d, 2, "h2", Some((&d.docker_plugin(2), Via::Spec)));
    let net = |dk: &Dockerd, name: &str, parent: &str, subnet: &str, range: &str| {
        dk.ok(&[
            "network",
            "create",
            "-d",
            "mvdp",
            "--subnet",
            subnet,
            "--ip-range",
            range,
            "-o",
            &format!("parent={parent}"),
            name,
        ]);
    };
    net(&h1, "v100", "eth1.100", "10.100.0.0/24", "10.100.0.16/28");
    net(&h1, "v200", "eth1.200", "10.200.0.0/24", "10.200.0.16/28");
    net(&h2, "v100", "eth1.100", "10.100.0.0/24", "10.100.0.32/28");
    h2.ok(&[
        "run",
        "-d",
        "--name",
        "b1",
        "--network",
        "v100",
        "bb",
        "sleep",
        "300",
    ]);
    let b1 = h2.ip("b1", "v100");
    assert!(
        h1.pings("v100", &b1),
        "VLAN 100 across the wire: {}\n{}",
        d.log(),
        h1.logs()
    );
    let cross = h1.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "--network",
        "v200",
        "bb",
        "sh",
        "-c",
        &format!("ip addr add 10.100.0.99/24 dev eth0 || exit 7; ping -c 2 -W 2 {b1}"),
    ]);
    // ping's own failure (1), not the address setup's (7) nor success.
    assert_eq!(
        cross.status.code(),
        Some(1),
        "VLAN 200 reached VLAN 100: {}",
        String::from_utf8_lossy(&cross.stdout)
    );
    h2.ok(&["rm", "-f", "b1"]);
    for (dk, n) in [(&h1, "v100"), (&h1, "v200"), (&h2, "v100")] {
        dk.ok(&["network", "rm", n]);
    }
    assert!(mvdp_networks(&d, 1).is_empty() && mvdp_networks(&d, 2).is_empty());
}
