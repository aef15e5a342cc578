//! Typed netlink operations and named namespaces on a real kernel (root; skips with a reason otherwise).
//! Results are checked with `ip` so the check does not share code with what it checks.

use std::net::{IpAddr, Ipv4Addr};

use mvdp_control::{Error, Mac, MacvlanOptions, Mode, NetNs, Netlink, SourceMacOp, VethEnd};
use mvdp_lab::lab::Lab;
use mvdp_lab::require_root;
use mvdp_lab::testing::{ip_n, unique_prefix};

/// Removes a namespace's name when the test ends, passed or not.
struct Gone(NetNs);
impl Drop for Gone {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

#[test]
fn netns_create_open_list_run_command_delete() {
    require_root!("netns_lifecycle");
    let name = format!("{}-solo", unique_prefix("ns"));
    let ns = NetNs::create(&name).expect("create");
    let _g = Gone(ns.clone());
    assert!(NetNs::exists(&name));
    assert_eq!(NetNs::list_prefix(&name).unwrap(), vec![name.clone()]);
    // Taken names are refused.
    let e = NetNs::create(&name).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    // iproute2 sees it, and a fresh namespace has only lo.
    assert!(ip_n(&name, &["-br", "link"]).starts_with("lo"));
    // run() is inside; the calling thread is not.
    let inside = ns
        .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
        .unwrap();
    let outside = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    assert_ne!(inside, outside);
    let opened = NetNs::open(&name).unwrap();
    assert_eq!(
        opened
            .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
            .unwrap(),
        inside
    );
    // command() runs the program inside, with /sys showing this namespace's devices.
    let o = ns.command("ls").arg("/sys/class/net").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["lo"]
    );
    ns.delete().unwrap();
    assert!(!NetNs::exists(&name));
    assert!(matches!(NetNs::open(&name), Err(Error::NetnsNotFound(_))));
    assert!(matches!(
        NetNs::delete_by_name(&name),
        Err(Error::NetnsNotFound(_))
    ));
    assert!(NetNs::create("bad/name").is_err());
}

#[test]
fn link_operations() {
    require_root!("link_operations");
    let p = unique_prefix("link");
    let a = NetNs::create(&format!("{p}-a")).unwrap();
    let _ga = Gone(a.clone());
    let b = NetNs::create(&format!("{p}-b")).unwrap();
    let _gb = Gone(b.clone());
    let nl = Netlink::in_netns(&a).unwrap();
    let nb = Netlink::in_netns(&b).unwrap();

    // Peer created straight into b.
    nl.add_veth(
        VethEnd::new("va").mac(Mac::lab(9, 0, 1)).mtu(1400),
        VethEnd::new("vb").netns(&b).mtu(1400),
    )
    .unwrap();
    let va = nl.link("va").unwrap();
    assert_eq!(
        (va.mac, va.mtu, va.up, va.kind.as_deref()),
        (Some(Mac::lab(9, 0, 1)), 1400, false, Some("veth"))
    );
    assert_eq!(nb.link("vb").unwrap().mtu, 1400);
    assert!(nl.try_link("vb").unwrap().is_none());

    // Duplicate: the error names the operation, the interfaces and the namespace.
    let e = nl
        .add_veth(VethEnd::new("va"), VethEnd::new("vb2").netns(&b))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "creating veth va/vb2 (in {p}-b) in netns {p}-a: File exists"
        )),
        "{msg}"
    );
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(matches!(nl.link("nope"), Err(Error::LinkNotFound { .. })));
    assert!(nl
        .set_up("nope")
        .unwrap_err()
        .to_string()
        .contains("link nope not found in netns"));

    nl.set_mtu("va", 1300).unwrap();
    nl.set_mac("va", Mac::lab(9, 0, 2)).unwrap();
    nl.rename("va", "va2").unwrap();
    nl.set_up("va2").unwrap();
    nb.set_up("vb").unwrap();
    let l = nl.link("va2").unwrap();
    assert_eq!((l.mtu, l.mac, l.up), (1300, Some(Mac::lab(9, 0, 2)), true));
    assert!(ip_n(a.name(), &["link", "show", "va2"]).contains("mtu 1300"));
    assert!(
        l.carrier && l.lower_up,
        "both ends up: a veth has carrier at once"
    );
    nb.set_down("vb").unwrap();
    assert!(!nl.link("va2").unwrap().carrier, "peer down: no carrier");
    nb.set_up("vb").unwrap();
    nl.set_promisc("va2", true).unwrap();
    assert!(nl.link("va2").unwrap().promisc);
    nl.set_down("va2").unwrap();
    assert!(!nl.link("va2").unwrap().up);
    nl.set_up("va2").unwrap();

    // Addresses and routes.
    let ip: IpAddr = "198.18.0.1".parse().unwrap();
    nl.add_address("va2", ip, 24).unwrap();
    let v4 = |nl: &Netlink| {
        nl.addresses("va2")
            .unwrap()
            .into_iter()
            .filter(|(a, _)| a.is_ipv4())
            .collect::<Vec<_>>()
    };
    assert_eq!(v4(&nl), vec![(ip, 24)]);
    assert!(ip_n(a.name(), &["-4", "addr", "show", "va2"]).contains("198.18.0.1/24"));
    nl.add_default_route(Ipv4Addr::new(198, 18, 0, 254), None)
        .unwrap();
    assert!(ip_n(a.name(), &["route", "show", "default"]).contains("via 198.18.0.254 dev va2"));
    nl.add_route(Ipv4Addr::new(198, 18, 0, 128), 25, None, Some("va2"))
        .unwrap();
    assert!(ip_n(a.name(), &["route"]).contains("198.18.0.128/25 dev va2"));
    nl.del_address("va2", ip, 24).unwrap();
    assert!(v4(&nl).is_empty());
    assert!(nl.add_route(Ipv4Addr::UNSPECIFIED, 0, None, None).is_err());

    // Move to another namespace.
    nl.set_netns("va2", &b).unwrap();
    assert!(nl.try_link("va2").unwrap().is_none());
    assert!(nb.try_link("va2").unwrap().is_some());
    nb.del_link("va2").unwrap();
    assert!(
        nb.try_link("vb").unwrap().is_none(),
        "deleting one end removes the pair"
    );

    // Bridge, enslaving and the hairpin flag.
    nl.add_bridge("br9").unwrap();
    nl.add_veth(VethEnd::new("p1"), VethEnd::new("q1").netns(&b))
        .unwrap();
    nl.set_master("p1", "br9").unwrap();
    nl.set_hairpin("p1", true).unwrap();
    let p1 = nl.link("p1").unwrap();
    assert_eq!(p1.master, Some(nl.link("br9").unwrap().index));
    assert_eq!(p1.hairpin, Some(true));
    assert!(ip_n(a.name(), &["-d", "link", "show", "p1"]).contains("hairpin on"));
    nl.set_hairpin("p1", false).unwrap();
    assert_eq!(nl.link("p1").unwrap().hairpin, Some(false));
    nl.set_nomaster("p1").unwrap();
    assert_eq!(nl.link("p1").unwrap().master, None);
    nl.del_link("br9").unwrap();
}

#[test]
fn kernel_macvlan_in_every_mode() {
    require_root!("macvlan_modes");
    let p = unique_prefix("mv");
    let lab = Lab::builder(&p).containers(1).build().unwrap();
    let host = Netlink::in_netns(lab.host()).unwrap();
    let c1 = &lab.container(1).ns;
    let cn = Netlink::in_netns(c1).unwrap();
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        if mode == Mode::Passthru {
            continue; // one passthru per parent and no other modes beside it: tested below
        }
        let name = format!("mv{mode}");
        let name = &name[..name.len().min(15)];
        let mut o = MacvlanOptions::new(mode);
        o.mac = Some(Mac::lab(8, 0, i as u8 + 1));
        o.bcqueuelen = Some(500 + i as u32);
        o.mtu = Some(1400);
        host.add_macvlan(name, "eth1", &o).unwrap();
        let l = host.link(name).unwrap();
        assert_eq!(l.kind.as_deref(), Some("macvlan"));
        assert_eq!(l.macvlan_mode, Some(mode));
        assert_eq!((l.mac, l.mtu), (o.mac, 1400));
        assert_eq!(l.link, Some(host.link("eth1").unwrap().index));
        let d = ip_n(lab.host().name(), &["-d", "link", "show", name]);
        assert!(d.contains(&format!("macvlan mode {mode}")), "{d}");
        assert!(d.contains(&format!("bcqueuelen {}", 500 + i)), "{d}");
    }
    // Source-mode allowed MAC list.
    let src = "mvsource";
    host.macvlan_source_macs(src, &SourceMacOp::Add(Mac::lab(1, 1, 1)))
        .unwrap();
    host.macvlan_source_macs(src, &SourceMacOp::Add(Mac::lab(1, 1, 2)))
        .unwrap();
    assert_eq!(host.link(src).unwrap().macvlan_macaddr_count, Some(2));
    host.macvlan_source_macs(src, &SourceMacOp::Del(Mac::lab(1, 1, 1)))
        .unwrap();
    assert_eq!(host.link(src).unwrap().macvlan_macaddr_count, Some(1));
    host.macvlan_source_macs(
        src,
        &SourceMacOp::Set(vec![
            Mac::lab(2, 0, 1),
            Mac::lab(2, 0, 2),
            Mac::lab(2, 0, 3),
        ]),
    )
    .unwrap();
    assert_eq!(host.link(src).unwrap().macvlan_macaddr_count, Some(3));
    let d = ip_n(lab.host().name(), &["-d", "link", "show", src]);
    assert!(d.contains("02:6d:76:02:00:03"), "{d}");
    host.macvlan_source_macs(src, &SourceMacOp::Flush).unwrap();
    assert_eq!(
        host.link(src).unwrap().macvlan_macaddr_count.unwrap_or(0),
        0
    );

    // Created straight into a container namespace (parent looked up in the host namespace).
    let mut o = MacvlanOptions::new(Mode::Bridge);
    o.netns = Some(c1);
    host.add_macvlan("eth0", "eth1", &o).unwrap();
    assert!(host.try_link("eth0").unwrap().is_none());
    assert_eq!(cn.link("eth0").unwrap().macvlan_mode, Some(Mode::Bridge));

    // Passthru (with nopromisc) only on a parent with no other macvlans.
    for m in ["mvbridge", "mvprivate", "mvvepa", "mvsource"] {
        host.del_link(m).unwrap();
    }
    cn.del_link("eth0").unwrap();
    let mut o = MacvlanOptions::new(Mode::Passthru);
    o.nopromisc = true;
    host.add_macvlan("mvpass", "eth1", &o).unwrap();
    let l = host.link("mvpass").unwrap();
    assert_eq!(
        (l.macvlan_mode, l.macvlan_nopromisc),
        (Some(Mode::Passthru), Some(true))
    );
    assert!(ip_n(lab.host().name(), &["-d", "link", "show", "mvpass"]).contains("nopromisc"));
    let e = host
        .add_macvlan("mvbridge2", "eth1", &MacvlanOptions::new(Mode::Bridge))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("creating macvlan mvbridge2 mode bridge on eth1"),
        "{e}"
    );
    assert!(host
        .add_macvlan("x", "nope", &MacvlanOptions::new(Mode::Bridge))
        .is_err());
    drop(lab);
}
