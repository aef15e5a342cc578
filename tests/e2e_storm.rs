//! A broadcast storm from one port: its broadcasts beyond its flood share per turn or its flood
//! rate are dropped and counted on that port, while two other ports' unicast keeps flowing and
//! their own broadcasts keep their share and rate. Counts only; how much the storm delays unicast is measured by
//! `mvdp bench --storm`, whose quick run is checked here too (figures present, nothing left).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use mvdp_lab::bench::density::dense::DenseLab;
use mvdp_lab::bench::storm::blast::Blaster;
use mvdp_lab::bench::storm::{broadcast_addr, STORM_PORT};
use mvdp_lab::bench::udp::{measure_rtt, wait_reachable, EchoServer, RttClient};
use mvdp_lab::Backend;
use mvdp_switch::Mode;
use serde_json::Value;

const ROUND_TRIPS: u64 = 300;
/// The daemon's `--flood-rate` here: low enough that the storm meets it within the test.
const RATE_PPS: u64 = 1000;
const RATE_BURST: u64 = 50;

fn port_row<'a>(stats: &'a Value, ns: &str) -> &'a Value {
    stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["netns"] == ns)
        .unwrap_or_else(|| panic!("no port in {ns}: {}", stats["ports"]))
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"))
}

#[test]
fn a_storm_is_dropped_and_counted_on_its_port_and_unicast_still_flows() {
    require_root!("e2e_storm");
    let mut lab = DenseLab::build_with(
        &unique_prefix("st"),
        Backend::Mvdp(Mode::Bridge),
        Path::new(BIN),
        &["--flood-rate".into(), format!("{RATE_PPS},{RATE_BURST}")],
    )
    .unwrap();
    lab.grow(STORM_PORT, || {}).unwrap();
    let (a, b, s) = (lab.endpoint(1), lab.endpoint(2), lab.endpoint(STORM_PORT));
    let _echo = EchoServer::start(&b.ns, b.ip).unwrap();
    wait_reachable(&a.ns, a.ip, b.ip, Duration::from_secs(5)).unwrap();
    let before = lab.mvdp_stats().unwrap().unwrap();
    let tx1_before = n(port_row(&before, a.ns.name()), "tx_frames");
    let s_before = port_row(&before, s.ns.name()).clone();
    assert_eq!(
        before["flood_rate"],
        serde_json::json!({"pps": RATE_PPS, "burst": RATE_BURST}),
        "the daemon runs with the rate it was given"
    );

    let started = Instant::now();
    let storm = Blaster::start(&s.ns, s.ip, broadcast_addr(), None).unwrap();
    storm.settle(Duration::from_millis(300));
    let mut client = RttClient::new(&a.ns, a.ip, b.ip, 64, Duration::from_secs(1)).unwrap();
    let rtt = measure_rtt(&mut client, 0, ROUND_TRIPS, |_| {});
    let sent = storm.stop();
    assert!(sent.sent > 10_000, "the storm hardly ran: {sent:?}");

    // Unicast between ports 1 and 2 came back through the storm.
    let received = rtt.hist.len();
    assert!(
        received >= ROUND_TRIPS * 99 / 100,
        "{received} of {ROUND_TRIPS} round trips came back under the storm (lost {}, send failed {})",
        rtt.lost,
        rtt.send_failed
    );

    let st = lab.mvdp_stats().unwrap().unwrap();
    let elapsed = started.elapsed();
    let storm_row = port_row(&st, s.ns.name());
    let dropped = n(storm_row, "flood_dropped");
    assert!(
        dropped > 0,
        "the storming port's floods beyond its share were dropped: {storm_row}"
    );
    assert!(
        n(storm_row, "rx_frames") > n(storm_row, "rx_dropped"),
        "some of the storm was within the cap and forwarded: {storm_row}"
    );
    for ep in [&a, &b] {
        let row = port_row(&st, ep.ns.name());
        assert_eq!(n(row, "flood_dropped"), 0, "{row}");
    }
    // The rate dropped most of it (in the port program, and what got past it in the switch),
    // the share maybe some; all of it is counted on the storming port.
    let (share, rate) = (
        n(&st["drops"], "flood_share"),
        n(&st["drops"], "flood_rate"),
    );
    assert!(rate > 0, "{}", st["drops"]);
    assert_eq!(share + rate, dropped, "{}", st["drops"]);
    // What the storming port got through is within its bucket: the burst and the rate over the
    // time the storm ran (an upper bound: the clock ran before the storm and after it).
    let through = |row: &Value| n(row, "rx_frames") - n(row, "rx_dropped");
    let forwarded = through(storm_row) - through(&s_before);
    let cap = RATE_BURST + RATE_PPS * elapsed.as_millis() as u64 / 1000 + 1;
    assert!(
        forwarded <= cap,
        "{forwarded} of the storm forwarded in {elapsed:?}, more than the rate allows ({cap})"
    );
    // And the port program kept the rest from the worker: it took off its ring hardly more than
    // the bucket lets through (CPUs racing on the bucket may let a few extra past).
    let taken = n(storm_row, "rx_frames") - n(&s_before, "rx_frames");
    assert!(
        taken <= 2 * cap,
        "the worker took {taken} of the storm's {} frames off the port's ring (cap {cap})",
        sent.sent
    );
    // Port 1 received the storm's broadcasts that were within the share, besides the echoes.
    let tx1 = n(port_row(&st, a.ns.name()), "tx_frames") - tx1_before;
    assert!(
        tx1 > received,
        "port 1 got {tx1} frames: the {received} echoes and no broadcast?"
    );
    assert!(
        eventually(5, || lab.mvdp_stats().unwrap().unwrap()["umem"]["balanced"]
            == true),
        "UMEM books: {}",
        lab.mvdp_stats().unwrap().unwrap()["umem"]
    );
}

#[test]
fn bench_storm_quick_reports_its_figures_and_leaves_nothing() {
    require_root!("bench_storm");
    let run = unique_prefix("bs");
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args([
            "bench",
            "--storm",
            "--quick",
            "--round-trips",
            "400",
            "--json",
        ])
        .args(["--lab-name", &run, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mvdp bench --storm failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: Value = serde_json::from_slice(&o.stdout).expect("--json prints the results");
    let rows = r["storm"]["rows"].as_array().expect("storm rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row["status"], "ok", "{row}");
        for phase in ["idle", "storm"] {
            for key in ["p50_us", "p99_us", "max_us"] {
                assert!(
                    row[phase][key].as_f64().is_some_and(|x| x > 0.0),
                    "{} {phase}.{key}: {row}",
                    row["backend"]
                );
            }
        }
        assert!(row["p99_ratio"].as_f64().is_some_and(|x| x > 0.0), "{row}");
        assert!(n(row, "broadcasts_sent") > 0, "{row}");
    }
    let mvdp = rows.iter().find(|r| r["backend"] == "mvdp-bridge").unwrap();
    assert!(
        mvdp["storm_port"]["flood_dropped"].as_u64().is_some(),
        "{}",
        mvdp["storm_port"]
    );
    assert_eq!(
        mvdp["flood_rate"]["pps"].as_u64(),
        Some(u64::from(mvdp_switch::FloodRate::DEFAULT.pps)),
        "the cap the daemon ran with: {mvdp}"
    );
    assert!(r["storm"]["target_met"].is_boolean(), "{}", r["storm"]);
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("Broadcast storm"), "{summary}");
    assert!(summary.contains("flood rate per port 2000/s"), "{summary}");
    let left: Vec<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&run))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}
