//! The AF_XDP runtime on a real lab, driven directly (no daemon): containers on veths attached
//! to the switch reach each other and the external host the way kernel macvlan would let them,
//! and every UMEM frame is accounted for afterwards.

mod common;

use std::time::Duration;

use common::{eventually, in_netns, is_root, pings};
use mvdp::runtime::{Runtime, RuntimeOptions};
use mvdp_control::dataplane::{Dataplane, PortConfig};
use mvdp_control::lab::{container_ip, container_mac, ContainerVeth};
use mvdp_control::Lab;
use mvdp_dataplane::{Mac, Mode};

fn lab(tag: &str, containers: u32, hairpin: bool) -> Lab {
    let lab = Lab::builder(&common::unique_prefix(tag))
        .containers(containers)
        .hairpin(hairpin)
        .build()
        .expect("building the lab");
    for n in 1..=containers {
        lab.add_container_veth(
            1,
            n,
            &ContainerVeth {
                host_ifname: format!("mvp{n}"),
                container_ifname: "eth0".into(),
                mac: Some(container_mac(n)),
                ip: Some((container_ip(n), 24)),
                mtu: None,
            },
        )
        .expect("container veth");
    }
    lab
}

fn mac(n: u32) -> Mac {
    container_mac(n)
        .to_string()
        .parse()
        .expect("lab MACs parse")
}

/// Runs `f` with a runtime whose containers 1..=n are ports of one network in `mode`.
fn with_ports<T: Send>(
    lab: &Lab,
    mode: Mode,
    n: u32,
    f: impl FnOnce(&mut Runtime) -> T + Send,
) -> T {
    in_netns(lab.host().name(), || {
        let mut rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
        let parent = rt
            .attach_parent(lab.parent_ifname())
            .expect("attach parent");
        for i in 1..=n {
            rt.add_port(&PortConfig {
                parent,
                vlan: 0,
                mode,
                mac: mac(i),
                veth_ifname: format!("mvp{i}"),
            })
            .expect("add port");
        }
        f(&mut rt)
    })
}

fn c(lab: &Lab, n: u32) -> String {
    lab.container(n).ns.name().to_string()
}

fn idle_balanced(rt: &Runtime) -> bool {
    eventually(5, || {
        let u = rt.stats().umem;
        u.balanced() && u.tx_in_flight == 0
    })
}

#[test]
fn bridge_containers_reach_each_other_the_ext_host_and_frames_balance() {
    if !is_root("bridge_containers_reach_each_other_the_ext_host_and_frames_balance") {
        return;
    }
    let lab = lab("rtb", 2, false);
    let ext = lab.ext_ip().to_string();
    let c2 = container_ip(2).to_string();
    with_ports(&lab, Mode::Bridge, 2, |rt| {
        assert!(pings(&c(&lab, 1), &c2, 3), "c1 -> c2 (bridge, local)");
        assert!(pings(&c(&lab, 1), &ext, 3), "c1 -> external host");
        assert!(pings(&c(&lab, 2), &ext, 3), "c2 -> external host");
        assert!(
            pings(lab.host().name(), &ext, 3),
            "the host keeps its own connectivity over the parent"
        );
        let s = rt.stats();
        assert!(
            s.ports.values().all(|p| p.rx_frames > 0 && p.tx_frames > 0),
            "{s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            idle_balanced(rt),
            "UMEM frames unaccounted for: {:?}",
            rt.stats().umem
        );
    });
}

#[test]
fn private_containers_reach_each_other_only_through_a_hairpin() {
    if !is_root("private_containers_reach_each_other_only_through_a_hairpin") {
        return;
    }
    let c2 = container_ip(2).to_string();
    let flat = lab("rtp", 2, false);
    with_ports(&flat, Mode::Private, 2, |_| {
        assert!(!pings(&c(&flat, 1), &c2, 2), "private: no local delivery");
        assert!(pings(&c(&flat, 1), &flat.ext_ip().to_string(), 3));
    });
    drop(flat);
    let hp = lab("rth", 2, true);
    with_ports(&hp, Mode::Vepa, 2, |_| {
        assert!(
            pings(&c(&hp, 1), &c2, 3),
            "vepa through the hairpinned wire"
        );
    });
}
