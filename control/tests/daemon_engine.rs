//! The daemon's state machine on a real kernel (root; skips with a reason otherwise), driving a
//! recording fake dataplane: veths, container netns configuration, rollback, carrier follow, the host
//! shim, persistence and the control socket. System state is checked with `ip`/`ethtool`, not with
//! the netlink code that made it.

use std::path::PathBuf;
use std::process::Command;

use mvdp_control::daemon::api::{NetworkCreate, PortAdd, Request};
use mvdp_control::daemon::{call, serve, ClientError, Daemon, DaemonConfig};
use mvdp_lab::require_root;
use mvdp_lab::testing::{
    eventually, has_link, in_netns, ip_n, links, temp_dir, unique_prefix, Call, FakeDataplane,
};
use mvdp_lab::Lab;
use mvdp_switch::McFilter;

// ---- helpers ---------------------------------------------------------------------------------------

fn lab(tag: &str) -> Lab {
    Lab::builder(&unique_prefix(tag))
        .containers(2)
        .build()
        .expect("lab")
}

fn daemon(lab: &Lab, fake: &FakeDataplane, state_dir: Option<PathBuf>) -> Daemon<FakeDataplane> {
    Daemon::new(
        fake.clone(),
        DaemonConfig {
            state_dir,
            max_mtu: 3500,
            netns: Some(lab.host().clone()),
        },
    )
    .expect("daemon")
}

fn net(name: &str, parent: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        parent: parent.into(),
        subnet: Some("198.18.0.0/24".into()),
        ip_range: Some("198.18.0.32/28".into()),
        ..Default::default()
    }
}

fn port(network: &str, netns: &str) -> PortAdd {
    PortAdd {
        network: network.into(),
        netns: Some(netns.into()),
        ..Default::default()
    }
}

// ---- tests -----------------------------------------------------------------------------------------

#[test]
fn port_add_builds_the_container_interface_and_port_rm_removes_it() {
    require_root!("port_add_builds_the_container_interface_and_port_rm_removes_it");
    let lab = lab("add");
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, None);
    let host = lab.host().name().to_string();
    let c1 = lab.container(1).ns.name().to_string();

    let rxvlan = || {
        let o = Command::new("ip")
            .args(["netns", "exec", &host, "ethtool", "-k", "eth1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("rx-vlan-offload: ")
                    .map(|v| v.starts_with("on"))
            })
            .expect("ethtool shows rx-vlan-offload")
    };
    Command::new("ip")
        .args([
            "netns", "exec", &host, "ethtool", "-K", "eth1", "rxvlan", "on",
        ])
        .status()
        .unwrap();
    assert!(rxvlan(), "could not turn rxvlan on for the test");
    d.network_create(&net("lan", "eth1.100")).unwrap();
    assert_eq!(fake.calls(), vec![Call::Attach("eth1".into())]);
    assert!(!rxvlan(), "the parent still strips VLAN tags");
    let p = d
        .port_add(&PortAdd {
            mac: Some("02:00:00:00:01:01".into()),
            mtu: Some(1400),
            ..port("lan", &c1)
        })
        .unwrap();
    assert_eq!(p.ip.as_deref(), Some("198.18.0.32/24"));
    assert_eq!(p.state, "up");
    let calls = fake.calls();
    let Call::AddPort(cfg) = &calls[1] else {
        panic!("{calls:?}")
    };
    assert_eq!(
        (cfg.vlan, cfg.mode, cfg.mac, cfg.veth_ifname.as_str()),
        (
            100,
            mvdp_switch::Mode::Bridge,
            "02:00:00:00:01:01".parse().unwrap(),
            "mvp0"
        )
    );

    // Container end: name, MAC, MTU, address, default route via the gateway, TX checksum off.
    let link = ip_n(&c1, &["-d", "link", "show", "dev", "eth0"]);
    assert!(
        link.contains("02:00:00:00:01:01") && link.contains("mtu 1400"),
        "{link}"
    );
    assert!(link.contains("state UP") || link.contains(",UP"), "{link}");
    assert!(ip_n(&c1, &["-4", "addr", "show", "dev", "eth0"]).contains("198.18.0.32/24"));
    assert!(ip_n(&c1, &["route"]).contains("default via 198.18.0.1 dev eth0"));
    let eth = Command::new("ip")
        .args(["netns", "exec", &c1, "ethtool", "-k", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&eth.stdout).contains("tx-checksumming: off"));
    // Host end: in the daemon's netns, up, same MTU, no IPv6.
    let h = ip_n(&host, &["link", "show", "dev", "mvp0"]);
    assert!(h.contains("mtu 1400") && h.contains("UP"), "{h}");
    assert!(!ip_n(&host, &["addr", "show", "dev", "mvp0"]).contains("inet6"));

    // A port given by netns path works the same way; a taken mvp1 name is skipped.
    ip_n(
        &host,
        &[
            "link", "add", "mvp1", "type", "veth", "peer", "name", "xmvp1",
        ],
    );
    let path = format!("/run/netns/{}", lab.container(2).ns.name());
    let p2 = d.port_add(&port("lan", &path)).unwrap();
    assert_eq!(p2.host_ifname, "mvp2");
    assert_eq!(p2.ip.as_deref(), Some("198.18.0.33/24"));
    assert!(has_link(lab.container(2).ns.name(), "eth0"));
    assert_eq!(d.port_ls().len(), 2);

    // port rm by netns: the veth goes, the dataplane is told.
    fake.clear();
    d.port_rm("lan", &c1).unwrap();
    assert!(eventually(3, || !has_link(&c1, "eth0") && !has_link(&host, "mvp0")));
    assert!(matches!(fake.calls().as_slice(), [Call::RemovePort(_)]));
    // network rm with a port left: refused, then --force.
    let e = d.network_rm("lan", false).unwrap_err().to_string();
    assert!(e.contains("still has 1 port"), "{e}");
    assert!(has_link(&host, "mvp2"));
    assert_eq!(d.network_rm("lan", true).unwrap(), 1);
    assert!(eventually(3, || !has_link(&host, "mvp2")));
    assert!(has_link(&host, "mvp1"), "someone else's link was removed");
    assert!(fake.calls().iter().any(|c| matches!(c, Call::Detach(_))));
    assert!(d.state().networks.is_empty());
}

#[test]
fn port_rm_frees_the_container_ends_name_at_once_and_deletes_the_veth_behind_the_reply() {
    require_root!(
        "port_rm_frees_the_container_ends_name_at_once_and_deletes_the_veth_behind_the_reply"
    );
    let lab = lab("aside");
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, None);
    let host = lab.host().name().to_string();
    let c1 = lab.container(1).ns.name().to_string();
    d.network_create(&net("lan", "eth1")).unwrap();
    for round in 0..5 {
        let p = d.port_add(&port("lan", &c1)).unwrap();
        assert!(has_link(&c1, "eth0"), "round {round}");
        d.port_rm("lan", &c1).unwrap();
        // The name is free when the reply comes; what is left of the pair is down and renamed.
        assert!(!has_link(&c1, "eth0"), "round {round}: eth0 still there");
        // One listing (the reaper may delete it any moment): if it is still there, it is down.
        let aside = format!(" mvdprm{}@", p.id);
        let links = ip_n(&c1, &["-o", "link", "show"]);
        if let Some(l) = links.lines().find(|l| l.contains(&aside)) {
            assert!(!l.contains(",UP"), "set-aside end still up: {l}");
        }
    }
    d.settle();
    assert_eq!(d.stats().veths_deleting, 0);
    let left = ip_n(&c1, &["link", "show"]);
    assert!(!left.contains("mvdprm"), "{left}");
    let left = ip_n(&host, &["link", "show"]);
    assert!(!left.contains("mvp"), "{left}");
}

#[test]
fn a_refused_port_leaves_nothing_behind() {
    require_root!("a_refused_port_leaves_nothing_behind");
    let lab = lab("rb");
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, None);
    let host = lab.host().name().to_string();
    let c1 = lab.container(1).ns.name().to_string();
    d.network_create(&net("lan", "eth1")).unwrap();
    let before = d.state().clone();

    fake.refuse_ports(true);
    let e = d.port_add(&port("lan", &c1)).unwrap_err().to_string();
    assert!(e.contains("the fake refuses ports"), "{e}");
    assert_eq!(d.state(), &before, "state changed by a refused port");
    assert!(eventually(3, || !has_link(&host, "mvp0") && !has_link(&c1, "eth0")));

    // A clash inside the container (its eth0 exists) also rolls back, after the move.
    fake.refuse_ports(false);
    Command::new("ip")
        .args([
            "-n", &c1, "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
        ])
        .status()
        .unwrap();
    let e = d.port_add(&port("lan", &c1)).unwrap_err().to_string();
    assert!(e.contains("eth0"), "{e}");
    assert_eq!(d.state(), &before);
    assert!(eventually(3, || !has_link(&host, "mvp0")
        && !links(&c1).iter().any(|l| l == "mvc0")));

    // Refusals before anything is made.
    let cases = [
        (port("lan", "no-such-netns-x"), "does not exist"),
        (port("nope", &c1), "no network named nope"),
        (
            PortAdd {
                mtu: Some(1600),
                ..port("lan", &c1)
            },
            "above the MTU of parent eth1 (1500)",
        ),
    ];
    for (req, want) in cases {
        let e = d.port_add(&req).unwrap_err().to_string();
        assert!(e.contains(want), "{req:?}: {e}");
    }
    let e = d.network_create(&net("x", "eth9")).unwrap_err().to_string();
    assert!(e.contains("eth9 does not exist"), "{e}");
    assert_eq!(d.state(), &before);
    assert_eq!(
        links(&host).iter().filter(|l| l.starts_with("mv")).count(),
        0
    );
}

#[test]
fn ports_follow_the_parent_carrier() {
    require_root!("ports_follow_the_parent_carrier");
    let lab = lab("car");
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, None);
    let host = lab.host().name().to_string();
    let c1 = lab.container(1).ns.name().to_string();
    d.network_create(&net("lan", "eth1")).unwrap();
    d.port_add(&port("lan", &c1)).unwrap();
    fake.clear();

    ip_n(&host, &["link", "set", "eth1", "down"]);
    d.poll_carrier();
    assert!(
        ip_n(&c1, &["link", "show", "dev", "eth0"]).contains("NO-CARRIER"),
        "container end still has carrier"
    );
    assert!(matches!(fake.calls().as_slice(), [Call::SetUp(_, false)]));
    assert_eq!(d.port_ls()[0].state, "no-carrier");
    // A port added while the parent is down starts without carrier.
    d.port_add(&port("lan", lab.container(2).ns.name()))
        .unwrap();
    assert!(
        ip_n(lab.container(2).ns.name(), &["link", "show", "dev", "eth0"]).contains("NO-CARRIER")
    );

    fake.clear();
    ip_n(&host, &["link", "set", "eth1", "up"]);
    assert!(eventually(3, || {
        d.poll_carrier();
        !ip_n(&c1, &["link", "show", "dev", "eth0"]).contains("NO-CARRIER")
    }));
    let ups = fake
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::SetUp(_, true)))
        .count();
    assert_eq!(ups, 2);

    // The container's netns going away takes the veth with it: the port is forgotten.
    fake.clear();
    ip_n(&host, &["link", "del", "mvp0"]);
    d.poll();
    let left: Vec<u32> = d.port_ls().iter().map(|p| p.id).collect();
    assert_eq!(left, vec![1]);
    // (A poll also reads the ports' multicast groups.)
    let calls: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| !matches!(c, Call::SetMulticast(..)))
        .collect();
    assert!(
        matches!(calls.as_slice(), [Call::RemovePort(_)]),
        "{:?}",
        fake.calls()
    );
}

/// A port's multicast filter follows the groups of its container end: read after the port is
/// added, again when the container joins a group or turns ALLMULTI on (the kernel's
/// notifications), and shown by `port ls`.
#[test]
fn ports_multicast_filters_follow_the_containers_groups() {
    require_root!("ports_multicast_filters_follow_the_containers_groups");
    let lab = lab("dmc");
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, None);
    let c1 = lab.container(1).ns.name().to_string();
    d.network_create(&net("lan", "eth1")).unwrap();
    d.port_add(&port("lan", &c1)).unwrap();
    assert_eq!(d.port_ls()[0].multicast, None, "not read before a poll");
    let filters = |fake: &FakeDataplane| -> Vec<McFilter> {
        fake.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::SetMulticast(_, f) => Some(f),
                _ => None,
            })
            .collect()
    };
    let shown = |d: &Daemon<FakeDataplane>| d.port_ls()[0].multicast.clone();
    let joined =
        |d: &Daemon<FakeDataplane>, g: &str| shown(d).is_some_and(|gs| gs.iter().any(|m| m == g));
    assert!(
        eventually(5, || {
            d.poll();
            joined(&d, "01:00:5e:00:00:01")
        }),
        "{:?}",
        shown(&d)
    );
    assert!(filters(&fake).last().is_some_and(|f| !f.is_all()));

    // A socket joining an IPv4 group brings its address.
    let ip: std::net::Ipv4Addr = d.port_ls()[0]
        .ip
        .clone()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let member = in_netns(&c1, || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        s.join_multicast_v4(&"239.9.8.7".parse().unwrap(), &ip)
            .unwrap();
        s
    });
    assert!(
        eventually(5, || {
            d.poll();
            joined(&d, "01:00:5e:09:08:07")
        }),
        "{:?}",
        shown(&d)
    );
    drop(member);
    assert!(
        eventually(5, || {
            d.poll();
            !joined(&d, "01:00:5e:09:08:07")
        }),
        "left the group: {:?}",
        shown(&d)
    );
    fake.clear();
    ip_n(&c1, &["link", "set", "eth0", "allmulticast", "on"]);
    assert!(eventually(5, || {
        d.poll();
        shown(&d).is_none()
    }));
    assert_eq!(filters(&fake), vec![McFilter::ALL]);
}

#[test]
fn host_port_routes_follow_the_ports() {
    require_root!("host_port_routes_follow_the_ports");
    let lab = lab("shim");
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, None);
    let host = lab.host().name().to_string();
    let c1 = lab.container(1).ns.name().to_string();
    d.network_create(&net("lan", "eth1")).unwrap();
    d.port_add(&port("lan", &c1)).unwrap();
    let shim = d
        .port_add(&PortAdd {
            network: "lan".into(),
            host: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(shim.ifname, "mvh-lan");
    assert_eq!(shim.ip.as_deref(), Some("198.18.0.33/32"));
    assert!(ip_n(&host, &["-4", "addr", "show", "dev", "mvh-lan"]).contains("198.18.0.33/32"));
    assert!(ip_n(&host, &["route", "show", "dev", "mvh-lan"]).contains("198.18.0.32"));
    d.port_add(&port("lan", lab.container(2).ns.name()))
        .unwrap();
    assert!(ip_n(&host, &["route", "show", "dev", "mvh-lan"]).contains("198.18.0.34"));
    d.port_rm("lan", &c1).unwrap();
    let routes = ip_n(&host, &["route", "show", "dev", "mvh-lan"]);
    assert!(
        !routes.contains("198.18.0.32") && routes.contains("198.18.0.34"),
        "{routes}"
    );
    d.network_rm("lan", true).unwrap();
    assert!(eventually(3, || !has_link(&host, "mvh-lan")));
}

#[test]
fn a_restarted_daemon_readopts_networks_and_surviving_ports() {
    require_root!("a_restarted_daemon_readopts_networks_and_surviving_ports");
    let lab = lab("rst");
    let dir = temp_dir("rst");
    let host = lab.host().name().to_string();
    let fake = FakeDataplane::default();
    let mut d = daemon(&lab, &fake, Some(dir.clone()));
    d.network_create(&net("lan", "eth1.100")).unwrap();
    d.port_add(&port("lan", lab.container(1).ns.name()))
        .unwrap();
    d.port_add(&port("lan", lab.container(2).ns.name()))
        .unwrap();
    fake.clear();
    d.shutdown();
    let c = fake.calls();
    assert_eq!(
        c.iter()
            .filter(|c| matches!(c, Call::RemovePort(_)))
            .count(),
        2
    );
    assert!(matches!(c.last(), Some(Call::Detach(_))), "{c:?}");
    // The veths stay with the containers.
    assert!(has_link(&host, "mvp0") && has_link(&host, "mvp1"));
    // One container went away while the daemon was down, and carrier follow had left the other's
    // veth down.
    ip_n(&host, &["link", "del", "mvp1"]);
    ip_n(&host, &["link", "set", "mvp0", "down"]);

    let fake2 = FakeDataplane::default();
    let mut d2 = daemon(&lab, &fake2, Some(dir.clone()));
    let ports = d2.port_ls();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let prev = std::fs::read_to_string(dir.join("state.json.prev")).expect("old state kept");
    assert!(prev.contains("mvp1"), "{prev}");
    assert_eq!((ports[0].id, ports[0].state.as_str()), (0, "up"));
    assert!(ip_n(&host, &["link", "show", "dev", "mvp0"]).contains(",UP"));
    let c = fake2.calls();
    assert_eq!(c[0], Call::Attach("eth1".into()));
    assert!(matches!(&c[1], Call::AddPort(p) if p.veth_ifname == "mvp0" && p.vlan == 100));
    // Ids are not reused: the next port is mvp2.
    let p = d2
        .port_add(&port("lan", lab.container(2).ns.name()))
        .unwrap();
    assert_eq!(p.host_ifname, "mvp2");
    drop(d2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_socket_answers_garbage_with_errors_and_keeps_serving() {
    require_root!("the_socket_answers_garbage_with_errors_and_keeps_serving");
    use std::io::{BufRead, BufReader, Read, Write};
    let lab = lab("sock");
    let dir = temp_dir("sock");
    let sock = dir.join("run/mvdp.sock");
    let fake = FakeDataplane::default();
    let server = serve(
        fake.clone(),
        DaemonConfig {
            state_dir: Some(dir.join("state")),
            max_mtu: 3500,
            netns: Some(lab.host().clone()),
        },
        &sock,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    for garbage in [
        &b"\xff\xfe not json\n"[..],
        b"{\"op\":\"reboot\"}\n",
        b"[1,2]\n",
    ] {
        s.write_all(garbage).unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(
            line.contains("\"ok\":false") && line.contains("malformed request"),
            "{line}"
        );
    }
    // The same connection still works.
    s.write_all(b"{\"op\":\"ping\"}\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    // Oversized: an error, then the connection closes.
    let big = vec![b'x'; 70 * 1024];
    let _ = s.write_all(&big);
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("larger than 65536"), "{line}");
    let mut rest = vec![];
    let _ = r.read_to_end(&mut rest);

    // Typed client: refusals come back as such.
    let e = call(&sock, &Request::NetworkCreate(net("x", "eth9"))).unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(m) if m.contains("eth9 does not exist")),
        "{e}"
    );
    call(&sock, &Request::NetworkCreate(net("lan", "eth1"))).unwrap();
    let ls = call(&sock, &Request::NetworkLs {}).unwrap();
    assert_eq!(ls[0]["name"], "lan");
    let inspect = call(&sock, &Request::NetworkInspect { name: "lan".into() }).unwrap();
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Gateway"], "198.18.0.1");
    assert_eq!(inspect[0]["Options"]["parent"], "eth1");

    server.shutdown();
    assert!(!sock.exists(), "socket file left behind");
    assert!(fake.calls().iter().any(|c| matches!(c, Call::Detach(_))));
    let e = call(&sock, &Request::Ping {}).unwrap_err();
    assert!(e.to_string().contains("daemon not running at"), "{e}");
    assert!(std::fs::read_to_string(dir.join("state/state.json"))
        .unwrap()
        .contains("\"lan\""));
    std::fs::remove_dir_all(&dir).unwrap();
}
