//! A multicast group reaches the containers that joined it, not every container: kernel macvlan's
//! multicast filter, on mvdp and on kernel macvlan side by side. Three containers on one bridge
//! network; the second joins a group, the first sends to it; the third sees the group's frames
//! only once it turns ALLMULTI on. mvdp follows the containers' groups from the kernel's
//! notifications, so its side waits until `port ls` shows what a container joined.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::*;
use mvdp_lab::lab::Lab;
use mvdp_lab::Backend;
use mvdp_switch::{Mac, McBucket, McFilter, Mode};
use pnet_datalink::{Channel, Config, DataLinkReceiver};
use serde_json::Value;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const GROUP_MAC: &str = "01:00:5e:01:02:03";
const UDP_PORT: u16 = 5353;
const SENT: usize = 20;

/// A socket in `ns` that joined `GROUP` on the interface holding `local`.
fn join(ns: &str, local: Ipv4Addr) -> UdpSocket {
    in_netns(ns, || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, UDP_PORT)).unwrap();
        s.join_multicast_v4(&GROUP, &local).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    })
}

/// Sends `SENT` datagrams to `GROUP` from `ns` (its multicast route: its only interface).
fn send(ns: &str, ifname: &str) {
    ip_n(ns, &["route", "replace", "239.0.0.0/8", "dev", ifname]);
    let s = in_netns(ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap());
    for i in 0..SENT {
        s.send_to(&[i as u8; 32], (GROUP, UDP_PORT)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn received(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 64];
    let mut n = 0;
    while s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Frames to `GROUP_MAC` that reach `ifname` in `ns`, seen by a packet socket that does not make
/// the interface promiscuous (that would open its filter to every group).
struct Sniffer(Box<dyn DataLinkReceiver>);

impl Sniffer {
    fn open(ns: &str, ifname: &str) -> Sniffer {
        let ifname = ifname.to_string();
        Sniffer(in_netns(ns, move || {
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .unwrap();
            let cfg = Config {
                promiscuous: false,
                read_timeout: Some(Duration::from_millis(300)),
                ..Config::default()
            };
            match pnet_datalink::channel(&iface, cfg).unwrap() {
                Channel::Ethernet(_, rx) => rx,
                _ => panic!("not an Ethernet channel"),
            }
        }))
    }

    fn group_frames(&mut self) -> usize {
        let want: Mac = GROUP_MAC.parse().unwrap();
        let mut n = 0;
        while let Ok(f) = self.0.next() {
            if f.get(..6) == Some(&want.0[..]) {
                n += 1;
            }
        }
        n
    }
}

/// One side's counts: (datagrams the member got, group frames at the non-member, the same after
/// the non-member turned ALLMULTI on).
fn scenario(ns: [&str; 3], ifname: &str, ips: [Ipv4Addr; 3], ready: impl Fn(bool)) -> [usize; 3] {
    let member = join(ns[1], ips[1]);
    let mut other = Sniffer::open(ns[2], ifname);
    ready(false);
    other.group_frames();
    send(ns[0], ifname);
    let got = received(&member);
    let leaked = other.group_frames();
    ip_n(ns[2], &["link", "set", ifname, "allmulticast", "on"]);
    ready(true);
    send(ns[0], ifname);
    let with_allmulti = other.group_frames();
    received(&member);
    [got, leaked, with_allmulti]
}

fn port<'a>(ports: &'a Value, ns: &str) -> &'a Value {
    ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["netns"] == ns)
        .unwrap_or_else(|| panic!("no port in {ns}: {ports}"))
}

#[test]
fn a_group_reaches_its_members_and_allmulti_ports_as_on_kernel_macvlan() {
    require_root!("a_group_reaches_its_members_and_allmulti_ports_as_on_kernel_macvlan");
    let ips: [Ipv4Addr; 3] = [
        "198.18.0.40".parse().unwrap(),
        "198.18.0.41".parse().unwrap(),
        "198.18.0.42".parse().unwrap(),
    ];

    // Kernel macvlan: the oracle.
    let lab = Lab::builder(&unique_prefix("mck"))
        .containers(3)
        .backend(Backend::Macvlan(Mode::Bridge))
        .build()
        .unwrap();
    let kns: Vec<String> = (1..=3)
        .map(|n| lab.container(n).ns.name().to_string())
        .collect();
    let kips: Vec<Ipv4Addr> = (1..=3).map(|n| lab.container(n).ip).collect();
    let kernel = scenario(
        [&kns[0], &kns[1], &kns[2]],
        &lab.container(1).ifname,
        [kips[0], kips[1], kips[2]],
        |_| {},
    );
    drop(lab);

    // mvdp.
    let d = DaemonLab::start(BIN, &unique_prefix("mcm"), 3, false);
    d.create_lan("198.18.0.40/29");
    for (n, ip) in (1..=3).zip(ips) {
        d.add_port("lan", n, &ip.to_string());
    }
    let (c1, c2, c3) = (d.c(1), d.c(2), d.c(3));
    let ports = || d.json(&["port", "ls", "--json"]);
    let others = std::cell::RefCell::new(Vec::<Mac>::new());
    let mvdp = scenario([&c1, &c2, &c3], "eth0", ips, |allmulti| {
        let ok = eventually(10, || {
            let ps = ports();
            let member = &port(&ps, &c2)["multicast"];
            let other = &port(&ps, &c3)["multicast"];
            if allmulti {
                other.is_null()
            } else {
                member
                    .as_array()
                    .is_some_and(|g| g.iter().any(|m| m == GROUP_MAC))
                    && other.is_array()
            }
        });
        assert!(ok, "the daemon did not follow the groups: {}", ports());
        if !allmulti {
            let ps = ports();
            *others.borrow_mut() = port(&ps, &c3)["multicast"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().parse().unwrap())
                .collect();
        }
    });
    // Which groups leak through a filter is a matter of hash buckets (the kernel's depend on a
    // pointer, so the kernel's side is not checked for it): the non-member's own groups must not
    // share the test group's bucket for the check to mean anything.
    let group_bucket = McBucket::of(GROUP_MAC.parse().unwrap());
    let collides = McFilter::of_groups(others.borrow().iter().copied()).passes(group_bucket);

    eprintln!(
        "kernel macvlan {kernel:?}, mvdp {mvdp:?} (member got, non-member saw, with ALLMULTI)"
    );
    assert!(kernel[0] >= SENT - 2, "kernel: member got {kernel:?}");
    assert!(mvdp[0] >= SENT - 2, "mvdp: member got {mvdp:?}");
    assert!(
        kernel[2] >= SENT - 2 && mvdp[2] >= SENT - 2,
        "ALLMULTI: kernel {kernel:?}, mvdp {mvdp:?}"
    );
    assert!(
        !others.borrow().is_empty(),
        "the non-member's groups were not shown"
    );
    if !collides {
        assert_eq!(mvdp[1], 0, "mvdp handed the group to a non-member");
    }
    let stats = d.json(&["stats", "--json"]);
    assert_eq!(stats["umem"]["balanced"], true, "{stats}");
}
