//! `mvdp bench` with real Open vSwitch: the OVS AF_XDP backends (PMD and not) and mvdp-busy next
//! to mvdp and the ceiling report every figure (latency, throughput, CPU, drop sites, idle CPU,
//! ratios per round, targets), and leave nothing behind: no OVS process, no namespace, no
//! directory, no XDP program; a Ctrl-C in the middle of an OVS cell neither. Needs root and OVS
//! (scripts/deps.sh installs openvswitch-switch); without either each test says why and returns.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mvdp_lab::lab::ovs::{ovs_programs, OvsPolling, OvsSwitch};
use mvdp_lab::Lab;
use serde_json::Value;

fn have_ovs(test: &str) -> bool {
    match ovs_programs() {
        Ok(_) => true,
        Err(why) => {
            eprintln!("{test}: skipped: {why}");
            false
        }
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

/// Running (not zombie) ovs-vswitchd / ovsdb-server processes whose command line mentions `needle`.
fn ovs_processes(needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            == Some("Z");
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if !zombie && cmd.contains("ovs") && cmd.contains(needle) {
            v.push(pid);
        }
    }
    v
}

fn netns_starting(run: &str) -> Vec<String> {
    ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(run))
        .collect()
}

/// OVS directories of this run's labs under /run/mvdp.
fn ovs_dirs(run: &str) -> Vec<String> {
    std::fs::read_dir("/run/mvdp")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("ovs-{run}")))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_nothing_left(run: &str) {
    assert!(
        eventually(5, || netns_starting(run).is_empty()),
        "namespaces left: {:?}",
        netns_starting(run)
    );
    assert!(
        eventually(5, || ovs_processes(run).is_empty()),
        "OVS processes left: {:?}",
        ovs_processes(run)
    );
    assert!(ovs_dirs(run).is_empty(), "left: {:?}", ovs_dirs(run));
}

fn backend_row<'a>(r: &'a Value, b: &str) -> &'a Value {
    r["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["backend"] == b)
        .unwrap_or_else(|| panic!("backend {b} not reported"))
}

fn check_latency_cells(r: &Value) {
    let mut by_backend = std::collections::BTreeMap::<String, usize>::new();
    for cell in r["latency"].as_array().unwrap() {
        let b = cell["backend"].as_str().unwrap().to_string();
        if b == "ceiling" && cell["scenario"] == "container_external" {
            assert!(cell["figures"].is_null(), "{cell}");
            continue;
        }
        assert_eq!(cell["status"], "ok", "{cell}");
        let f = &cell["figures"];
        assert!(
            0.0 < num(f, "p50_us") && num(f, "p50_us") <= num(f, "p99_us"),
            "{cell}"
        );
        let rounds = cell["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 2, "one figure per round: {cell}");
        assert!(rounds.iter().all(|x| num(x, "p50_us") > 0.0), "{cell}");
        *by_backend.entry(b).or_default() += 1;
    }
    for b in ["ovs-afxdp", "ovs-afxdp-nonpmd", "mvdp-busy", "mvdp-bridge"] {
        assert_eq!(by_backend.get(b), Some(&4), "{b}: 2 scenarios x 2 payloads");
    }
}

/// Every throughput cell measured, its CPU counted (with the switch's share), its drop sites
/// present where the backend exposes them.
fn check_throughput_cells(r: &Value) {
    let mut measured = 0;
    for cell in r["throughput"].as_array().unwrap() {
        let b = cell["backend"].as_str().unwrap();
        if cell["status"] != "ok" {
            assert!(b == "ceiling" && cell["scenario"] == "container_external");
            continue;
        }
        measured += 1;
        let f = &cell["figures"];
        assert!(num(f, "pps") > 0.0, "{cell}");
        assert!(num(f, "sent_pkts") >= num(f, "recv_pkts"), "{cell}");
        if b == "macvlan-bridge" {
            // Only here to give the paced phase its rate: no switch, no AF_XDP drop sites.
            assert!(f["cpu"]["switch_ms"].is_null(), "{cell}");
            continue;
        }
        assert!(
            num(&f["cpu"], "switch_ms") >= 0.0,
            "every backend here has a switch: {cell}"
        );
        assert_eq!(cell["rounds"].as_array().unwrap().len(), 2, "{cell}");
        let d = &cell["drops"];
        assert!(num(d, "udp_rcvbuf") >= 0.0, "{cell}");
        assert!(num(d, "tx_ring_full") >= 0.0, "{cell}");
        if b.starts_with("ovs") {
            // OVS's sockets are its own: the kernel's counters for them are not ours to read.
            assert!(d["fill_ring_empty"].is_null(), "{cell}");
        } else {
            let lost = num(f, "sent_pkts") - num(f, "recv_pkts");
            let fill = num(d, "fill_ring_empty");
            assert!(num(d, "rx_ring_full") >= 0.0, "{cell}");
            assert!(
                fill <= num(d, "xsk_rx_dropped"),
                "copy mode counts a fill-ring-empty drop in rx_dropped too: {cell}"
            );
            // Counted drops cannot much exceed what the cell lost: the counters are read before
            // and after each slice, and a few frames of the slice before (still on the veth's
            // ring when it was read) or of other traffic (ARP) may land in this one.
            assert!(fill <= lost * 1.05 + 16.0, "{cell}");
            if b == "mvdp-bridge" || b == "mvdp-busy" {
                assert!(num(d, "flood_budget") >= 0.0, "{cell}");
            }
        }
    }
    // 4 backends and kernel macvlan x 2 scenarios x 2 payloads x 2 flow counts, the ceiling
    // 1 x 2 x 2.
    assert_eq!(measured, 44);
}

fn check_ratios_and_targets(r: &Value) {
    let ratios = r["ratios"].as_array().unwrap();
    let find = |n: &str, d: &str, metric: &str| {
        ratios
            .iter()
            .find(|x| {
                x["numerator"] == n
                    && x["denominator"] == d
                    && x["metric"] == metric
                    && x["scenario"] == "container_container"
                    && x["payload"] == 64
                    && (x["flows"].is_null() || x["flows"] == 1)
            })
            .unwrap_or_else(|| panic!("no {n}/{d} {metric} ratio"))
    };
    for (n, d, m) in [
        ("mvdp-busy", "ovs-afxdp", "p50"),
        ("mvdp-busy", "ovs-afxdp", "p99"),
        ("mvdp-bridge", "ovs-afxdp-nonpmd", "p50"),
        ("mvdp-busy", "ovs-afxdp", "pps"),
        ("mvdp-bridge", "ovs-afxdp-nonpmd", "cpu_ns_per_packet"),
        ("ovs-afxdp", "ceiling", "pps"),
    ] {
        let x = find(n, d, m);
        assert!(num(x, "value") > 0.0, "{x}");
        let per_round = x["per_round"].as_array().unwrap();
        assert_eq!(per_round.len(), 2, "{x}");
        let (lo, med, hi) = (num(x, "min"), num(x, "median"), num(x, "max"));
        assert!(lo <= med && med <= hi, "{x}");
        assert_eq!(
            x["rounds_agree_10pct"].as_bool().unwrap(),
            hi <= lo * 1.1,
            "{x}"
        );
    }
    let targets = r["targets"].as_array().unwrap();
    assert!(targets.len() >= 7, "{targets:?}");
    for t in targets {
        let (v, bound) = (num(t, "value"), num(t, "bound"));
        let at_most = t["at_most"].as_bool().unwrap();
        assert_eq!(
            t["met"].as_bool().unwrap(),
            if at_most { v <= bound } else { v >= bound },
            "{t}"
        );
    }
    assert!(targets.iter().any(|t| t["metric"] == "idle_switch_cpu_pct"));
}

#[test]
fn bench_with_ovs_reports_every_figure_and_leaves_nothing() {
    require_root!("bench_ovs");
    if !have_ovs("bench_ovs") {
        return;
    }
    let run = unique_prefix("bo");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = Command::new(BIN)
        .args(["bench", "--quick", "--rounds", "2", "--round-trips", "1000"])
        .args(["--duration", "0.4", "--json", "--lab-name", &run, "--out"])
        .arg(out.path())
        .args([
            "--backends",
            "mvdp,mvdp-busy,ovs-afxdp,ovs-afxdp-nonpmd,macvlan",
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mvdp bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("bench_ovs: the run took {:?}", started.elapsed());
    let r: Value = serde_json::from_slice(&o.stdout).expect("--json prints the results");
    assert_eq!(r["config"]["cpus"]["load_cpus"], serde_json::json!([0]));
    assert_eq!(r["config"]["cpus"]["switch_cpu"], 1);
    assert!(r["environment"]["af_xdp"]["ovs"]
        .as_str()
        .is_some_and(|s| s.contains("Open vSwitch")));
    for b in [
        "mvdp-bridge",
        "mvdp-busy",
        "ovs-afxdp",
        "ovs-afxdp-nonpmd",
        "ceiling",
    ] {
        let row = backend_row(&r, b);
        assert_eq!(row["status"], "ok", "{row}");
        let idle = num(row, "idle_switch_cpu_pct");
        assert!((0.0..=200.0).contains(&idle), "{row}");
    }
    // mvdp-busy spins its core idle, adaptive mvdp sleeps. (How much CPU OVS's PMD gets idle
    // depends on what else wants its core on a shared machine: only its presence is checked.)
    let idle = |b: &str| num(backend_row(&r, b), "idle_switch_cpu_pct");
    assert!(idle("mvdp-busy") > idle("mvdp-bridge"), "{}", r["backends"]);
    assert!(idle("mvdp-bridge") < 50.0, "{}", r["backends"]);
    // Where the switching threads ran, as the kernel had their affinity: the dedicated-core
    // switches on the switch CPU alone, OVS-nonpmd's main thread and adaptive mvdp unpinned.
    let on = |b: &str| backend_row(&r, b)["switch_cpus"].clone();
    for b in ["mvdp-busy", "ovs-afxdp"] {
        assert_eq!(on(b), serde_json::json!([1]), "{}", r["backends"]);
    }
    for b in ["mvdp-bridge", "ovs-afxdp-nonpmd"] {
        assert!(
            on(b).as_array().is_some_and(|c| c.len() >= 2),
            "{}",
            r["backends"]
        );
    }
    check_latency_cells(&r);
    check_throughput_cells(&r);
    check_ratios_and_targets(&r);
    for b in ["ovs-afxdp", "ovs-afxdp-nonpmd"] {
        let st = r["ovs_statistics"][b]
            .as_object()
            .expect("OVS port statistics");
        assert_eq!(st.len(), 3, "eth1, vc1, vc2: {st:?}");
        assert!(st
            .values()
            .all(|s| s.as_str().unwrap().contains("rx_packets")));
    }
    // The paced phase measures OVS's PMD at kernel macvlan's rate too, in both scenarios.
    let paced_ovs: Vec<&Value> = r["paced"]["rows"]
        .as_array()
        .expect("a paced section")
        .iter()
        .filter(|row| row["backend"] == "ovs-afxdp")
        .collect();
    assert_eq!(
        paced_ovs.len(),
        4,
        "2 scenarios x 2 payloads: {}",
        r["paced"]
    );
    for row in &paced_ovs {
        assert_eq!(row["status"], "ok", "{row}");
        let f = &row["figures"];
        assert!(num(f, "sent_pkts") > 0.0, "{row}");
        assert!(num(f, "recv_pkts") <= num(f, "sent_pkts"), "{row}");
    }
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    for needle in [
        "| ovs-afxdp-nonpmd | ok |",
        "## Drop sites",
        "## Targets against Open vSwitch",
        "mvdp-busy / ovs-afxdp",
        "rounds agree",
    ] {
        assert!(summary.contains(needle), "summary.md lacks {needle}");
    }
    assert_nothing_left(&run);
}

#[test]
fn bench_interrupted_in_an_ovs_cell_leaves_nothing() {
    require_root!("bench_ovs_sigint");
    if !have_ovs("bench_ovs_sigint") {
        return;
    }
    let run = unique_prefix("bq");
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["bench", "--quick", "--no-ceiling", "--lab-name", &run])
        .args(["--backends", "ovs-afxdp,ovs-afxdp-nonpmd", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Both labs up with their OVS (two daemons each), then into the cells.
    assert!(
        eventually(60, || ovs_processes(&run).len() >= 4),
        "OVS never started: {:?}",
        ovs_processes(&run)
    );
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "exit after SIGINT");
    assert_nothing_left(&run);
    assert!(!Path::new(&out.path().join("results.json")).exists());
}

#[test]
fn ovs_on_a_lab_stops_and_removes_its_xdp_programs() {
    require_root!("ovs_switch");
    if !have_ovs("ovs_switch") {
        return;
    }
    let prefix = unique_prefix("bs");
    let lab = Lab::builder(&prefix).container_veths(true).build().unwrap();
    let dir = std::path::PathBuf::from(format!("/run/mvdp/ovs-{prefix}"));
    let has_xdp = |ifname: &str| {
        let o = lab
            .host()
            .command("ip")
            .args(["link", "show", "dev", ifname])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("prog/xdp")
    };
    // afxdp-nonpmd is the one that leaves its programs attached when vswitchd exits.
    let ovs = OvsSwitch::start(lab.host(), &dir, &["vc1", "vc2"], OvsPolling::NonPmd).unwrap();
    assert!(
        has_xdp("vc1") && has_xdp("vc2"),
        "OVS attached no XDP program"
    );
    let c1 = lab.container(1);
    let ok = c1
        .ns
        .command("ping")
        .args(["-c1", "-W2", &lab.container(2).ip.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "no ping through OVS:\n{}", ovs.log_tail());
    let pid = ovs.vswitchd_pid().unwrap();
    drop(ovs);
    assert!(!has_xdp("vc1") && !has_xdp("vc2"), "XDP programs left");
    assert!(!dir.exists(), "{} left", dir.display());
    assert!(
        eventually(3, || ovs_processes(&prefix).is_empty()),
        "vswitchd {pid} left"
    );
}
