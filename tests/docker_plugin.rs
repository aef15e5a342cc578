//! `docker network create -d mvdp` with a real dockerd (Debian's docker.io 20.10) in a lab host's
//! netns, against the same script with `-d macvlan` (Docker's own driver over kernel macvlan, the
//! reference). The mvdp daemon serves the remote driver protocol on a socket of its own that a
//! spec file in the runtime's private /etc/docker/plugins names.

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
        "-o",
        "parent=eth1",
        "-o",
        "macvlan_mode=bridge",
        "lan",
    ]);
    dk.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "lan",
        "bb",
        "sleep",
        "300",
    ]);
    let c1 = dk.ip("c1", "lan");
    assert!(c1.starts_with("198.18.0.16"), "{c1}");
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

    let dk = Dockerd::start(&d, 1, "mvdp", Some(&d.docker_plugin(1)));
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
}
