//! The measurement pieces of `mvdp bench` on the plainest lab (external host <-> host parent over
//! the wire bridge): echo + round-trip client, loss accounting on a dead path, throughput counts,
//! and the AF_XDP ceiling forwarder between two container veths. Needs root.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use mvdp_lab::bench::ceiling::Forwarder;
use mvdp_lab::bench::udp::{
    burst_for, due_by, measure_rtt, measure_throughput, EchoServer, Load, Pace, RttClient,
};
use mvdp_lab::lab::Lab;

#[test]
fn round_trips_are_timed_and_a_dead_path_counts_losses_without_hanging() {
    require_root!("bench_rtt");
    let lab = Lab::builder(&unique_prefix("rtt"))
        .containers(0)
        .build()
        .unwrap();
    let echo = EchoServer::start(lab.host(), lab.host_ip()).unwrap();
    let mut c = RttClient::new(
        lab.ext(),
        lab.ext_ip(),
        lab.host_ip(),
        64,
        Duration::from_millis(500),
    )
    .unwrap();
    let st = measure_rtt(&mut c, 20, 500, |_| {});
    assert_eq!(st.sent, 500);
    assert_eq!(st.hist.len() + st.lost + st.send_failed, 500);
    assert!(
        st.hist.len() >= 490,
        "lost {} of 500 on a quiet lab",
        st.lost
    );
    assert!(st.hist.min() > 0 && st.hist.value_at_quantile(0.5) < 50_000_000);
    assert!(
        echo.stop() >= 510,
        "the echo server answered fewer than it was sent"
    );

    // Nobody at this address: every round trip is lost after the timeout, none is timed.
    let nobody = Ipv4Addr::new(198, 18, 0, 77);
    let mut c = RttClient::new(
        lab.ext(),
        lab.ext_ip(),
        nobody,
        64,
        Duration::from_millis(20),
    )
    .unwrap();
    let t0 = Instant::now();
    let st = measure_rtt(&mut c, 0, 10, |_| {});
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(st.lost + st.send_failed, 10);
    assert!(st.hist.is_empty());

    // A payload that does not fit one frame is refused up front.
    assert!(RttClient::new(
        lab.ext(),
        lab.ext_ip(),
        lab.host_ip(),
        9000,
        Duration::from_millis(20)
    )
    .is_err());
}

#[test]
fn throughput_counts_what_arrives_and_the_threads_cpu() {
    require_root!("bench_tput");
    let lab = Lab::builder(&unique_prefix("tput"))
        .containers(0)
        .build()
        .unwrap();
    for flows in [1, 4] {
        let t = measure_throughput(
            lab.ext(),
            lab.ext_ip(),
            lab.host(),
            lab.host_ip(),
            Load {
                flows,
                payload: 1400,
                duration: Duration::from_millis(300),
                pace: Pace::Flat,
            },
        )
        .unwrap();
        assert!(t.duration >= Duration::from_millis(300));
        assert!(
            t.recv_pkts > 100,
            "{flows} flows: only {} received",
            t.recv_pkts
        );
        assert!(t.recv_pkts <= t.sent_pkts);
        assert_eq!(t.recv_bytes, t.recv_pkts * 1400);
        assert!(t.sender_cpu > Duration::ZERO && t.receiver_cpu > Duration::ZERO);
        assert!((t.gbps() * 1e9 - t.pps() * 1400.0 * 8.0).abs() < 1.0);
    }
}

#[test]
fn a_paced_flow_sends_about_the_asked_count_and_never_more() {
    require_root!("bench_paced");
    let lab = Lab::builder(&unique_prefix("pace"))
        .containers(0)
        .build()
        .unwrap();
    let (rate, window) = (20_000.0, Duration::from_millis(500));
    let asked = due_by(rate, window);
    let t = measure_throughput(
        lab.ext(),
        lab.ext_ip(),
        lab.host(),
        lab.host_ip(),
        Load {
            flows: 1,
            payload: 64,
            duration: window,
            pace: Pace::PerSec(rate),
        },
    )
    .unwrap();
    let tried = t.sent_pkts + t.send_errors;
    // The sender's schedule starts after the window's and stops at its deadline: never more
    // than what was due plus the burst it may have started; it catches up after a preemption,
    // so a loaded machine costs at most the last few milliseconds' worth.
    assert!(
        tried <= asked + burst_for(rate),
        "sent {tried}, asked {asked}"
    );
    assert!(tried * 10 >= asked * 9, "sent {tried}, asked {asked}");
    assert!(t.recv_pkts <= t.sent_pkts);
    assert!(
        t.recv_pkts * 10 >= t.sent_pkts * 9,
        "{} of {} arrived at 20 kpps over a plain veth",
        t.recv_pkts,
        t.sent_pkts
    );
}

#[test]
fn the_ceiling_forwarder_carries_traffic_between_two_veths_and_only_while_running() {
    require_root!("bench_ceiling");
    let lab = Lab::builder(&unique_prefix("ceil"))
        .containers(2)
        .container_veths(true)
        .build()
        .unwrap();
    let (c1, c2) = (lab.container(1), lab.container(2));
    let echo = EchoServer::start(&c2.ns, c2.ip).unwrap();
    let mut client = RttClient::new(&c1.ns, c1.ip, c2.ip, 64, Duration::from_millis(100)).unwrap();
    // Two separate veths and no bridge: nothing connects the containers yet.
    let st = measure_rtt(&mut client, 0, 5, |_| {});
    assert_eq!(
        st.lost + st.send_failed,
        5,
        "containers talk without a forwarder"
    );

    let fwd = Forwarder::start(lab.host(), &c1.host_ifname, &c2.host_ifname).unwrap();
    assert!(xdp_attached(lab.host().name(), &c1.host_ifname));
    fwd.set_active(true);
    let st = measure_rtt(&mut client, 50, 500, |_| {});
    assert!(
        st.hist.len() >= 490,
        "lost {} of 500 through the forwarder",
        st.lost
    );
    // A resting forwarder looks at its rings every 50 ms; made active, it must look at once
    // (the bench measures right after): the first round trip after each wake-up is prompt.
    let mut first = Vec::new();
    for _ in 0..5 {
        fwd.set_active(false);
        std::thread::sleep(Duration::from_millis(120));
        fwd.set_active(true);
        let st = measure_rtt(&mut client, 0, 1, |_| {});
        first.push(st.hist.max() as f64 / 1e6);
    }
    assert!(
        first.iter().all(|&ms| ms > 0.0 && ms < 20.0),
        "round trips (ms) right after waking a resting forwarder: {first:?}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert!(fwd.cpu() > Duration::ZERO);
    let counters = fwd.stop().unwrap();
    // Requests and answers (plus ARP) all crossed it.
    assert!(counters.forwarded >= 1000, "{counters:?}");
    assert!(
        eventually(2, || !xdp_attached(lab.host().name(), &c1.host_ifname)),
        "the port program stayed attached after the forwarder stopped"
    );
    let st = measure_rtt(&mut client, 0, 5, |_| {});
    assert_eq!(
        st.lost + st.send_failed,
        5,
        "traffic still flows after the forwarder stopped"
    );
    drop(echo);
}
