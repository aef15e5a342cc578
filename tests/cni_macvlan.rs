//! Cross-check of the lab's kernel macvlan backend against the reference CNI macvlan plugin
//! (Debian containernetworking-plugins, /usr/lib/cni/macvlan), invoked the way a container runtime
//! does: CNI_* environment, network config on stdin, run in the host's network namespace.
//!
//! For each mode, with and without an MTU, both make `eth0` in the same container namespace on the same
//! parent; the links must agree on mode, MTU, parent and broadcast queue, and each must hand out a
//! locally administered unicast MAC (the plugin: a kernel-random one; the lab: the container's planned
//! one; passthru: both end up with the parent's). DEL must remove the plugin's link.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use mvdp_control::{Link, Mac, Mode, Netlink};
use mvdp_lab::lab::ContainerAddr;
use mvdp_lab::{Backend, Lab};

const PLUGIN: &str = "/usr/lib/cni/macvlan";
const CNI_PATH: &str = "/usr/lib/cni";

fn plugin_present(test: &str) -> bool {
    let ok = std::path::Path::new(PLUGIN).exists()
        && std::path::Path::new(&format!("{CNI_PATH}/static")).exists();
    if !ok {
        eprintln!("{test}: skipped: {PLUGIN} missing (scripts/deps.sh installs containernetworking-plugins)");
    }
    ok
}

fn config(mode: Mode, mtu: Option<u32>, ip: &str) -> String {
    let mut c = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "mvdp-xcheck",
        "type": "macvlan",
        "master": "eth1",
        "mode": mode.to_string(),
        "ipam": { "type": "static", "addresses": [ { "address": format!("{ip}/24") } ] },
    });
    if let Some(m) = mtu {
        c["mtu"] = m.into();
    }
    c.to_string()
}

/// Runs the plugin in the lab's host namespace; returns its stdout (the CNI result for ADD).
fn cni(lab: &Lab, command: &str, netns: &str, conf: &str) -> String {
    let mut child = lab
        .host()
        .command(PLUGIN)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("{}-xcheck", lab.prefix()))
        .env("CNI_NETNS", format!("/run/netns/{netns}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the CNI plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "CNI {command}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn laa_unicast(m: Mac) -> bool {
    m.0[0] & 0x02 != 0 && m.0[0] & 0x01 == 0
}

/// The lab's backend and the plugin, one after the other in the same container namespace.
fn cross_check(mode: Mode, mtu: Option<u32>) {
    let ip = "198.18.0.10".parse().unwrap();
    let mac = mvdp_lab::lab::container_mac(1);
    let lab = Lab::builder(&unique_prefix("cni"))
        .containers(1)
        .container_addr(1, ContainerAddr { mac, ip, mtu })
        .backend(Backend::Macvlan(mode))
        .build()
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    let c1 = &lab.container(1).ns;
    let host = Netlink::in_netns(lab.host()).unwrap();
    let cnl = Netlink::in_netns(c1).unwrap();
    let parent = host.link("eth1").unwrap();
    let ours: Link = cnl.link("eth0").unwrap();
    // Only one passthru port fits on a parent, and the plugin wants the name: make room.
    cnl.del_link("eth0").unwrap();

    let result = cni(&lab, "ADD", c1.name(), &config(mode, mtu, "198.18.0.10"));
    let result: serde_json::Value = serde_json::from_str(&result).expect("CNI result is JSON");
    let theirs: Link = cnl.link("eth0").unwrap();
    let what = format!("{mode}, mtu {mtu:?}");

    assert_eq!(theirs.kind.as_deref(), Some("macvlan"), "{what}");
    assert_eq!(ours.macvlan_mode, Some(mode), "{what}: ours");
    assert_eq!(theirs.macvlan_mode, ours.macvlan_mode, "{what}: mode");
    assert_eq!(theirs.mtu, ours.mtu, "{what}: mtu");
    assert_eq!(
        ours.mtu,
        mtu.unwrap_or(parent.mtu),
        "{what}: ours follow the parent's MTU"
    );
    assert_eq!(theirs.link, Some(parent.index), "{what}: their parent");
    assert_eq!(ours.link, Some(parent.index), "{what}: our parent");
    assert_eq!(
        theirs.macvlan_bcqueuelen, ours.macvlan_bcqueuelen,
        "{what}: bcqueuelen"
    );
    assert_eq!(
        theirs.macvlan_nopromisc, ours.macvlan_nopromisc,
        "{what}: nopromisc"
    );
    let (ours_mac, theirs_mac) = (ours.mac.unwrap(), theirs.mac.unwrap());
    assert!(
        laa_unicast(ours_mac) && laa_unicast(theirs_mac),
        "{what}: {ours_mac} {theirs_mac}"
    );
    let parent_now = host.link("eth1").unwrap().mac.unwrap();
    if mode == Mode::Passthru {
        // Passthru ports carry the parent's MAC: ours was given the container's, which the kernel
        // set on the parent; the plugin's inherits the parent's.
        assert_eq!(ours_mac, mac, "{what}");
        assert_eq!(theirs_mac, parent_now, "{what}");
    } else {
        assert_eq!(ours_mac, mac, "{what}");
        assert_ne!(
            theirs_mac, ours_mac,
            "{what}: the plugin lets the kernel pick a random MAC"
        );
        assert_ne!(theirs_mac, parent_now, "{what}");
    }
    assert_eq!(
        result["interfaces"][0]["mac"].as_str(),
        Some(theirs_mac.to_string().as_str()),
        "{what}: the CNI result names the link's MAC"
    );
    let addr = ip_n(c1.name(), &["-4", "-br", "addr", "show", "eth0"]);
    assert!(addr.contains("198.18.0.10/24"), "{what}: {addr}");

    cni(&lab, "DEL", c1.name(), &config(mode, mtu, "198.18.0.10"));
    assert!(
        cnl.try_link("eth0").unwrap().is_none(),
        "{what}: DEL left eth0"
    );
    assert!(links(lab.host().name())
        .iter()
        .all(|l| l == "lo" || l == "eth1"));
}

fn run(test: &str, mode: Mode) {
    if !is_root(test) || !plugin_present(test) {
        return;
    }
    cross_check(mode, None);
    cross_check(mode, Some(1400));
}

#[test]
fn cni_bridge_mode_matches_the_lab_backend() {
    run("cni_bridge", Mode::Bridge);
}

#[test]
fn cni_private_mode_matches_the_lab_backend() {
    run("cni_private", Mode::Private);
}

#[test]
fn cni_vepa_mode_matches_the_lab_backend() {
    run("cni_vepa", Mode::Vepa);
}

#[test]
fn cni_passthru_mode_matches_the_lab_backend() {
    run("cni_passthru", Mode::Passthru);
}
