//! `--trace-hops`: with it, frames crossing mvdp (container to container through the port
//! programs, and from the wire through the parent's demux) are followed through the worker and
//! every hop is counted; without it nothing is. Counts and order only: how long the hops take
//! is measured by `mvdp bench` (its `mvdp-traced` backend).

mod common;

use std::time::Duration;

use common::*;
use mvdp_lab::bench::topology::{BenchLab, Scenario};
use mvdp_lab::bench::udp::{measure_rtt, RttClient};
use mvdp_lab::Backend;
use mvdp_switch::hops::{Hop, HopStats};
use mvdp_switch::Mode;

const ROUND_TRIPS: u64 = 200;

/// `a` and `b` count the same followed frames: equal, or `b` one short. The last answer reaches
/// the client inside the switch's TX kick, so the client may read the counters while the switch
/// is still recording that frame's hops, one after the other.
fn same_frames(a: u64, b: u64, what: &str) {
    assert!(b <= a && a - b <= 1, "{what}: {a} vs {b}");
}

/// Round trips between the client and `scenario`'s server; the hop histograms they added.
fn trips(lab: &BenchLab, scenario: Scenario) -> HopStats {
    // As the bench measures: the switch active (a resting ceiling polls only every 50 ms), and
    // whatever the lab's reachability probes left in flight drained before the first count.
    lab.set_measuring(true);
    std::thread::sleep(Duration::from_millis(200));
    let before = lab.hops();
    let (c, s) = (lab.client(), lab.server(scenario));
    let mut client = RttClient::new(&c.ns, c.ip, s.ip, 64, Duration::from_secs(1)).unwrap();
    client.time_delivery().unwrap();
    let rtt = measure_rtt(&mut client, 0, ROUND_TRIPS, |_| {});
    let back = rtt.hist.len();
    assert!(
        back >= ROUND_TRIPS * 9 / 10,
        "{back} of {ROUND_TRIPS} round trips came back"
    );
    // The client's own last stretch: every answer carried the kernel's receive timestamp (late
    // answers to earlier requests are timed too, so there may be more).
    let delivery = client.take_delivery().unwrap();
    assert!(delivery.samples >= back, "{back} answers: {delivery:?}");
    let after = lab.hops().since(&before);
    lab.set_measuring(false);
    after
}

#[test]
fn traced_frames_are_counted_in_every_hop_in_order() {
    require_root!("e2e_hops");
    let lab = BenchLab::build(&unique_prefix("hp"), Backend::MvdpTraced).unwrap();
    for scenario in Scenario::ALL {
        let h = trips(&lab, scenario);
        let n = |hop: Hop| h.hop(hop).map_or(0, |x| x.samples);
        assert_eq!(h.sample_every, 1, "{scenario:?}");
        // Each round trip crosses the switch twice; every followed frame is counted once in
        // each of these hops (a frame whose batch found no room is not followed).
        let picked = n(Hop::XdpToPickup);
        assert!(
            picked >= ROUND_TRIPS,
            "{scenario:?}: {picked} samples: {h:?}"
        );
        same_frames(picked, n(Hop::Decision), &format!("{scenario:?} decision"));
        same_frames(picked, n(Hop::TxKick), &format!("{scenario:?} tx_kick"));
        // The wake-up split exists only for frames met right after a sleep, and is part of
        // the XDP-to-pickup time: its parts cannot outnumber it.
        same_frames(
            n(Hop::XdpToWake),
            n(Hop::WakeToPickup),
            &format!("{scenario:?} wake-up"),
        );
        assert!(n(Hop::XdpToWake) <= picked, "{scenario:?}");
        assert!(
            h.no_stamp <= picked / 10,
            "{scenario:?}: {} sampled frames had no XDP stamp",
            h.no_stamp
        );
        // Percentiles exist and keep their order.
        for hop in [Hop::XdpToPickup, Hop::Decision, Hop::TxKick] {
            let x = h.hop(hop).unwrap();
            let (p50, p99) = (x.quantile(0.5).unwrap(), x.quantile(0.99).unwrap());
            assert!(
                p50 <= p99,
                "{scenario:?} {}: p50 {p50} > p99 {p99}",
                hop.name()
            );
        }
    }
}

#[test]
fn without_the_flag_nothing_is_followed() {
    require_root!("e2e_hops_off");
    let lab = BenchLab::build(&unique_prefix("hq"), Backend::Mvdp(Mode::Bridge)).unwrap();
    let h = trips(&lab, Scenario::ContainerContainer);
    assert_eq!(h.sample_every, 0);
    assert!(h.hops.values().all(|x| x.samples == 0), "{h:?}");
    assert_eq!(h.no_stamp, 0);
}

#[test]
fn the_traced_ceiling_splits_its_frames_too() {
    require_root!("e2e_hops_ceiling");
    let lab = BenchLab::build(&unique_prefix("hc"), Backend::CeilingTraced).unwrap();
    let h = trips(&lab, Scenario::ContainerContainer);
    let n = |hop: Hop| h.hop(hop).map_or(0, |x| x.samples);
    // Two forwarded frames per round trip; the forwarder follows the first of every batch.
    assert!(n(Hop::XdpToPickup) >= ROUND_TRIPS, "{h:?}");
    same_frames(n(Hop::XdpToPickup), n(Hop::TxKick), "tx_kick");
    // No decision and no sleeping worker in the bare forwarder.
    assert_eq!(n(Hop::Decision), 0);
    assert_eq!(n(Hop::XdpToWake), 0);
}

/// The daemon binary's flag (through its environment variable, which the spawned daemon
/// inherits) reaches the dataplane, and `mvdp stats` prints the hops.
#[test]
fn the_daemon_flag_turns_tracing_on_and_stats_show_the_hops() {
    require_root!("e2e_hops_daemon");
    std::env::set_var("MVDP_TRACE_HOPS", "1");
    let d = DaemonLab::start(BIN, &unique_prefix("hd"), 2, false);
    std::env::remove_var("MVDP_TRACE_HOPS");
    d.create_lan("198.18.0.32/28");
    d.add_port("lan", 1, "198.18.0.33");
    d.add_port("lan", 2, "198.18.0.34");
    assert!(ping(&d.c(1), "198.18.0.34", 3), "c1 -> c2");
    let st = d.json(&["stats", "--json"]);
    let h: HopStats = serde_json::from_value(st["hops"].clone()).unwrap();
    assert_eq!(h.sample_every, 1);
    assert!(h.hop(Hop::Decision).is_some_and(|x| x.samples > 0), "{h:?}");
    let text = d.ok(&["stats"]);
    assert!(text.contains("hops (one batch in 1 followed"), "{text}");
    assert!(text.contains("xdp_to_pickup"), "{text}");
}
