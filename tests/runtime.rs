//! The AF_XDP runtime on a real lab, driven directly (no daemon): containers on veths attached
//! to the switch reach each other and the external host the way kernel macvlan would let them,
//! and every UMEM frame is accounted for afterwards.

mod common;

use std::time::Duration;

use common::{eventually, in_netns, ping, require_root};
use mvdp_engine::runtime::{Runtime, RuntimeOptions};
use mvdp_lab::lab::{container_ip, container_mac, ContainerVeth};
use mvdp_lab::Lab;
use mvdp_switch::plane::{Dataplane, ParentHandle, PortConfig};
use mvdp_switch::{Mac, Mode};

fn lab(tag: &str, containers: u32, hairpin: bool) -> Lab {
    lab_on_hosts(tag, &vec![1; containers as usize], hairpin)
}

/// A lab whose container `n` (1-based) hangs off host `hosts[n - 1]`.
fn lab_on_hosts(tag: &str, hosts: &[u32], hairpin: bool) -> Lab {
    let containers = hosts.len() as u32;
    let lab = Lab::builder(&common::unique_prefix(tag))
        .containers(containers)
        .hosts(hosts.iter().copied().max().unwrap_or(1))
        .hairpin(hairpin)
        .build()
        .expect("building the lab");
    for n in 1..=containers {
        lab.add_container_veth(
            hosts[n as usize - 1],
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

/// Runs `f` in netns `host` with a runtime on its parent whose ports are (container, VLAN).
fn with_runtime<T: Send>(
    host: &str,
    opts: RuntimeOptions,
    mode: Mode,
    ports: &[(u32, u16)],
    f: impl FnOnce(&mut Runtime) -> T + Send,
) -> T {
    in_netns(host, || {
        let mut rt = Runtime::new(opts).expect("runtime");
        let parent = rt.attach_parent("eth1").expect("attach parent");
        for &(i, vlan) in ports {
            rt.add_port(&port(parent, i, vlan, mode)).expect("add port");
        }
        f(&mut rt)
    })
}

fn port(parent: ParentHandle, i: u32, vlan: u16, mode: Mode) -> PortConfig {
    PortConfig {
        parent,
        vlan,
        mode,
        mac: mac(i),
        veth_ifname: format!("mvp{i}"),
    }
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
    require_root!("bridge_containers_reach_each_other_the_ext_host_and_frames_balance");
    let lab = lab("rtb", 2, false);
    let ext = lab.ext_ip().to_string();
    let c2 = container_ip(2).to_string();
    // Two workers: the ports land on different threads, so c1 <-> c2 is handed between them.
    let opts = RuntimeOptions {
        workers: 2,
        ..RuntimeOptions::default()
    };
    with_runtime(
        lab.host().name(),
        opts,
        Mode::Bridge,
        &[(1, 0), (2, 0)],
        |rt| {
            assert!(ping(&c(&lab, 1), &c2, 3), "c1 -> c2 (bridge, local)");
            assert!(ping(&c(&lab, 1), &ext, 3), "c1 -> external host");
            assert!(ping(&c(&lab, 2), &ext, 3), "c2 -> external host");
            assert!(
                ping(lab.host().name(), &ext, 3),
                "the host keeps its own connectivity over the parent"
            );
            let s = rt.stats();
            assert!(
                s.ports
                    .values()
                    .all(|p| p.traffic.rx_frames > 0 && p.traffic.tx_frames > 0),
                "{s:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                idle_balanced(rt),
                "UMEM frames unaccounted for: {:?}",
                rt.stats().umem
            );
        },
    );
}

/// VLAN 100 on two hosts talks across the wire; VLAN 200 on the same parents never hears it;
/// the wire sees VLAN 100's frames tagged 100.
#[test]
fn vlans_span_two_hosts_and_stay_apart() {
    require_root!("vlans_span_two_hosts_and_stay_apart");
    // c1 on host 1 (VLAN 100), c2 on host 2 (VLAN 100), c3 on host 2 (VLAN 200).
    let lab = lab_on_hosts("rtv", &[1, 2, 2], false);
    let (h1, h2) = (
        lab.host_n(1).ns.name().to_string(),
        lab.host_n(2).ns.name().to_string(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let h2 = &h2;
        s.spawn(move || {
            with_runtime(
                h2,
                RuntimeOptions::default(),
                Mode::Bridge,
                &[(2, 100), (3, 200)],
                move |_| {
                    up_tx.send(()).unwrap();
                    let _ = rx.recv_timeout(Duration::from_secs(60));
                },
            )
        });
        up_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("host 2 runtime up");
        with_runtime(
            &h1,
            RuntimeOptions::default(),
            Mode::Bridge,
            &[(1, 100)],
            move |_| {
                // Dropped on the way out, panic or not: host 2's runtime stops waiting.
                let _release = tx;
                // Tags stay in the frame data the capture sees.
                assert!(common::ns_ok(
                    lab.ext().name(),
                    &["ethtool", "-K", "eth0", "rxvlan", "off"]
                ));
                // The flood tap reads broadcasts with the tag the stack moved to metadata put back.
                let mut cap = in_netns(lab.ext().name(), || {
                    mvdp_ebpf::FloodTap::open("eth0").expect("tap on the external host")
                });
                assert!(
                    ping(&c(&lab, 1), &container_ip(2).to_string(), 3),
                    "VLAN 100 across hosts"
                );
                assert!(
                    !ping(&c(&lab, 1), &container_ip(3).to_string(), 2),
                    "VLAN 100 -> 200"
                );
                assert!(
                    !ping(&c(&lab, 3), &container_ip(2).to_string(), 2),
                    "VLAN 200 -> 100"
                );
                let mut seen = Vec::new();
                let mut buf = [0u8; 2048];
                while let Ok(Some(f)) = cap.recv(&mut buf) {
                    seen.push(buf[f.offset..f.offset + f.len].to_vec());
                }
                let tagged_from = |m: Mac, vid: u16| {
                    seen.iter().any(|f| {
                        f.len() > 16
                            && f[6..12] == m.0
                            && f[12..14] == [0x81, 0x00]
                            && u16::from_be_bytes([f[14], f[15]]) & 0xfff == vid
                    })
                };
                assert!(
                    tagged_from(mac(1), 100),
                    "c1's frames carry tag 100 on the wire"
                );
                assert!(
                    tagged_from(mac(3), 200),
                    "c3's frames carry tag 200 on the wire"
                );
                assert!(
                    !seen.iter().any(|f| f.len() > 12
                        && (f[6..12] == mac(1).0 || f[6..12] == mac(3).0)
                        && f[12..14] != [0x81, 0x00]),
                    "no untagged frame from a VLAN port"
                );
            },
        );
    });
}

#[test]
fn passthru_port_takes_all_wire_unicast_and_a_second_port_is_refused() {
    require_root!("passthru_port_takes_all_wire_unicast_and_a_second_port_is_refused");
    let lab = lab("rtx", 2, false);
    in_netns(lab.host().name(), || {
        // The busy-polling worker, for once: it must forward exactly like the adaptive one.
        let mut rt = Runtime::new(RuntimeOptions {
            poll: mvdp_engine::runtime::PollMode::BusyPoll,
            ..RuntimeOptions::default()
        })
        .expect("runtime");
        let parent = rt.attach_parent("eth1").expect("attach");
        rt.add_port(&port(parent, 1, 0, Mode::Passthru))
            .expect("passthru port");
        let second = rt.add_port(&port(parent, 2, 0, Mode::Passthru));
        assert!(second.is_err(), "a second passthru port must be refused");
        let bridge = rt.add_port(&port(parent, 2, 0, Mode::Bridge));
        assert!(
            bridge.is_err(),
            "no other network beside passthru on its parent"
        );
        assert!(ping(&c(&lab, 1), &lab.ext_ip().to_string(), 3));
        // Unicast to a MAC nobody owns reaches the passthru port.
        let mut cap = in_netns(&c(&lab, 1), || {
            mvdp_lab::probe::raw::Capture::open("eth0").unwrap()
        });
        let f = mvdp_lab::probe::raw::frame(
            [0x02, 0x99, 0, 0, 0, 1],
            [0x02, 0xee, 0, 0, 0, 1],
            None,
            "ptu",
        );
        in_netns(lab.ext().name(), || {
            mvdp_lab::probe::raw::send("eth0", &[f]).unwrap()
        });
        let got = cap.collect(Duration::from_millis(300));
        assert!(got
            .iter()
            .any(|g| mvdp_lab::probe::raw::marker(g).as_deref() == Some("ptu")));
    });
}

/// Round-trip times (ms) of `count` pings from `ns` to `ip`, `interval` seconds apart.
fn ping_times(ns: &str, ip: &str, count: u32, interval: &str) -> Vec<f64> {
    let out = common::ns_exec(
        ns,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            ip,
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// A hot port's socket leaves the worker's epoll set during a burst (the sending CPU then pays
/// no epoll callback per frame) and must be watched again before the worker sleeps: otherwise
/// a frame that arrives while it sleeps is never seen (the port went cold) or waits for the
/// 100 ms poll timeout (it stayed hot).
#[test]
fn a_sleeping_worker_wakes_for_ports_that_had_a_burst() {
    require_root!("a_sleeping_worker_wakes_for_ports_that_had_a_burst");
    use mvdp_lab::bench::udp::{measure_throughput, Load, Pace};
    let lab = lab("rtw", 2, false);
    let c2 = container_ip(2).to_string();
    with_runtime(
        lab.host().name(),
        RuntimeOptions::default(),
        Mode::Bridge,
        &[(1, 0), (2, 0)],
        |rt| {
            assert!(ping(&c(&lab, 1), &c2, 3), "c1 -> c2 before the burst");
            assert_eq!(rt.stats().unwatched, 0, "nothing unwatched before a burst");
            // A UDP blast c1 -> c2: the sending port takes frames on turn after turn.
            let (c1, c2n) = (lab.container(1), lab.container(2));
            let t = measure_throughput(
                &c1.ns,
                c1.ip,
                &c2n.ns,
                c2n.ip,
                Load {
                    flows: 1,
                    payload: 64,
                    duration: Duration::from_millis(300),
                    pace: Pace::Flat,
                },
            )
            .expect("blast");
            assert!(
                t.recv_pkts > 1000,
                "the blast went through the switch: {t:?}"
            );
            assert!(
                rt.stats().unwatched > 0,
                "the sending port's socket left the epoll set during the blast"
            );
            // Pings 200 ms apart: the worker (50 µs spin) is asleep when each arrives.
            let times = ping_times(&c(&lab, 1), &c2, 10, "0.2");
            let prompt = times.iter().filter(|&&t| t < 20.0).count();
            assert!(
                times.len() == 10 && prompt >= 8,
                "every ping answered, nearly all well within the worker's 100 ms poll timeout: {times:?}"
            );
        },
    );
}

/// The poll mode switches while the workers run: a busy-polling worker switched to adaptive
/// sleeps with no traffic (the bench rests mvdp-busy this way while it measures others), and
/// spins again at once when switched back.
#[test]
fn workers_switch_between_busy_and_adaptive_polling_while_running() {
    require_root!("workers_switch_between_busy_and_adaptive_polling_while_running");
    let lab = lab("rtp", 2, false);
    let c2 = container_ip(2).to_string();
    let opts = RuntimeOptions {
        poll: mvdp_engine::runtime::PollMode::BusyPoll,
        ..RuntimeOptions::default()
    };
    with_runtime(
        lab.host().name(),
        opts,
        Mode::Bridge,
        &[(1, 0), (2, 0)],
        |rt| {
            use mvdp_engine::runtime::PollMode;
            let tids = rt.worker_tids();
            // Share of one CPU the workers used over half a second.
            let share = || {
                let c0 = mvdp_lab::bench::cpu::tids_cpu(&tids);
                std::thread::sleep(Duration::from_millis(500));
                (mvdp_lab::bench::cpu::tids_cpu(&tids) - c0).as_secs_f64() / 0.5
            };
            let switch = rt.poll_switch();
            assert_eq!(switch.get(), PollMode::BusyPoll);
            let busy = share();
            switch.set(PollMode::Adaptive);
            assert_eq!(rt.stats().poll_mode, "adaptive");
            std::thread::sleep(Duration::from_millis(50));
            let resting = share();
            assert!(
                ping(&c(&lab, 1), &c2, 3),
                "an adaptive worker still forwards"
            );
            switch.set(PollMode::BusyPoll);
            let again = share();
            assert!(
                // Wide margins: other tests may share the CPUs.
                busy > 0.25 && again > 0.25 && resting < 0.1,
                "busy {busy:.2}, resting {resting:.2}, busy again {again:.2} of a CPU"
            );
            assert!(ping(&c(&lab, 1), &c2, 3), "busy again, it forwards");
        },
    );
}
