//! `mvdp bench` end to end: the quick run's every figure is present and sane, and bad input
//! (a taken lab name, an unknown mode, Ctrl-C) leaves nothing behind. Needs root; without it each
//! test says why and returns.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn mvdp() -> Command {
    Command::new(common::BIN)
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

/// Checks one latency cell's figures; returns its p50.
fn check_latency(cell: &Value, round_trips: f64) -> f64 {
    let f = &cell["figures"];
    let (min, p50, p90, p99, p999, max) = (
        num(f, "min_us"),
        num(f, "p50_us"),
        num(f, "p90_us"),
        num(f, "p99_us"),
        num(f, "p999_us"),
        num(f, "max_us"),
    );
    assert!(
        0.0 < min && min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "percentiles out of order in {cell}"
    );
    assert!(
        max < 1_000_000.0,
        "a round trip over the timeout was timed: {cell}"
    );
    assert_eq!(num(f, "round_trips"), round_trips, "{cell}");
    let received = num(f, "received");
    assert_eq!(
        received + num(f, "lost") + num(f, "send_failed"),
        round_trips,
        "{cell}"
    );
    assert!(received >= 0.9 * round_trips, "too much loss: {cell}");
    let cdf = f["cdf"].as_array().expect("cdf");
    assert!(cdf.len() > 50);
    assert!(
        cdf.windows(2)
            .all(|w| w[0][0].as_f64() < w[1][0].as_f64() && w[0][1].as_f64() <= w[1][1].as_f64()),
        "CDF not monotonic: {cell}"
    );
    p50
}

fn check_throughput(cell: &Value, switched: bool) {
    let f = &cell["figures"];
    let payload = num(cell, "payload");
    let (pps, gbps, recv, bytes) = (
        num(f, "pps"),
        num(f, "gbps"),
        num(f, "recv_pkts"),
        num(f, "recv_bytes"),
    );
    assert!(pps > 0.0 && recv > 0.0, "nothing received: {cell}");
    assert_eq!(bytes, recv * payload, "{cell}");
    assert!(
        (gbps * 1e9 - pps * payload * 8.0).abs() <= 1e-6 * gbps * 1e9 + 1.0,
        "{cell}"
    );
    assert!(
        num(f, "sent_pkts") >= recv,
        "received more than sent: {cell}"
    );
    let cpu = &f["cpu"];
    assert!(
        num(cpu, "sender_ms") > 0.0 && num(cpu, "receiver_ms") > 0.0,
        "{cell}"
    );
    assert!(num(cpu, "ns_per_packet") > 0.0, "{cell}");
    // The cost is the machine's busy time over the cell: never more than every CPU for the
    // whole cell (plus the 100 ms drain of each slice, thread start-up and a tick per CPU at
    // each end), and never less than any one measured thread's own time (less a tick). The
    // parts overlap and are not summed.
    let cpus = std::thread::available_parallelism().unwrap().get() as f64;
    let total = num(cpu, "total_ms");
    let window_ms = num(f, "duration_s") * 1000.0 + 300.0;
    assert!(
        total <= cpus * (window_ms + 20.0),
        "more busy time than CPUs: {cell}"
    );
    for part in ["sender_ms", "receiver_ms", "softirq_ms", "switch_ms"] {
        let v = cpu[part].as_f64().unwrap_or(0.0);
        assert!(
            total + 20.0 >= v,
            "{part} above the machine's busy time: {cell}"
        );
    }
    let ns = num(cpu, "ns_per_packet");
    assert!(
        (ns - total * 1e6 / recv).abs() <= 1e-6 * ns + 1e-9,
        "{cell}"
    );
    assert_eq!(cpu["switch_ms"].is_number(), switched, "{cell}");
}

#[test]
fn bench_quick_reports_every_figure_and_leaves_nothing() {
    require_root!("bench_quick");
    let name = unique_prefix("bq");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = mvdp()
        .args(["bench", "--quick", "--json", "--lab-name", &name, "--out"])
        .arg(out.path())
        .args(["--backends", "mvdp,macvlan,bridge,mvdp-colocated"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mvdp bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // How long it took is the machine's business (timing bounds live in benchmarks); what
    // `--quick` promises is its sizes, checked below.
    eprintln!("--quick took {:?}", started.elapsed());
    let stdout: Value = serde_json::from_slice(&o.stdout).expect("--json prints the results");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(stdout, file, "--json output and results.json differ");
    let r = file;
    assert_eq!(r["config"]["quick"], true, "{}", r["config"]);
    assert_eq!(num(&r["config"], "round_trips_per_cell"), 3000.0);
    assert_eq!(num(&r["config"], "throughput_seconds_per_cell"), 0.5);

    let env = &r["environment"];
    for key in [
        "date_utc",
        "kernel",
        "cpu_model",
        "command_line",
        "mvdp_version",
    ] {
        assert!(
            !env[key].as_str().unwrap_or("").is_empty(),
            "environment.{key}"
        );
    }
    assert_eq!(env["af_xdp"]["bind_mode"], "copy");
    assert!(num(&env["af_xdp"], "batch_size") > 0.0 && num(&env["af_xdp"], "frame_size") > 0.0);
    assert!(env["crate_versions"]["xsk-rs"].is_string());
    assert!(env["command_line"].as_str().unwrap().contains("--quick"));

    let backend = |b: &str| -> &Value {
        r["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["backend"] == b)
            .unwrap_or_else(|| panic!("backend {b} not reported"))
    };
    let status = |b: &str| backend(b)["status"].as_str().unwrap().to_string();
    for b in [
        "mvdp-bridge",
        "macvlan-bridge",
        "bridge",
        "ceiling",
        "mvdp-colocated",
    ] {
        assert_eq!(status(b), "ok", "{b}");
    }
    // mvdp-colocated's worker is on the load's CPU (the kernel's own affinity of the thread),
    // adaptive mvdp's is not pinned, and the kernel's backends have no switching thread.
    let switch_cpus = |b: &str| backend(b)["switch_cpus"].clone();
    let load = r["config"]["cpus"]["load_cpus"].clone();
    assert_eq!(load, serde_json::json!([0]), "{}", r["config"]);
    assert_eq!(switch_cpus("mvdp-colocated"), load, "{}", r["backends"]);
    assert!(
        switch_cpus("mvdp-bridge")
            .as_array()
            .is_some_and(|c| c.len() >= 2),
        "{}",
        r["backends"]
    );
    assert!(switch_cpus("macvlan-bridge").is_null(), "{}", r["backends"]);
    // mvdp's own books at the end of the run: every UMEM frame accounted for.
    let st = &r["mvdp_stats"]["mvdp-bridge"];
    assert!(st["umem"]["balanced"].as_bool().unwrap_or(false), "{st}");
    assert!(st["ports"].as_array().is_some_and(|p| p.len() == 2), "{st}");

    let rt = num(&r["config"], "round_trips_per_cell");
    assert!(rt >= 1000.0);
    let mut measured = 0;
    for cell in r["latency"].as_array().unwrap() {
        let (b, sc) = (
            cell["backend"].as_str().unwrap(),
            cell["scenario"].as_str().unwrap(),
        );
        if cell["status"] == "ok" {
            check_latency(cell, rt);
            measured += 1;
        } else {
            assert!(cell["figures"].is_null(), "{cell}");
            let expected_gap = b == "ceiling" && sc == "container_external";
            assert!(expected_gap, "unexpected unmeasured cell: {cell}");
        }
    }
    // mvdp, mvdp-colocated, macvlan and bridge: 2 scenarios x 2 payloads; ceiling: 1 x 2.
    assert!(measured >= 18, "only {measured} latency cells measured");
    let mut measured = 0;
    for cell in r["throughput"].as_array().unwrap() {
        let b = cell["backend"].as_str().unwrap();
        if cell["status"] == "ok" {
            check_throughput(cell, b == "ceiling" || b.starts_with("mvdp"));
            measured += 1;
        } else {
            assert!(cell["figures"].is_null(), "{cell}");
        }
    }
    assert!(measured >= 36, "only {measured} throughput cells measured");

    // Ratios are the figures divided, not made up.
    let p50 = |b: &str, sc: &str, p: u64| -> f64 {
        r["latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["backend"] == b && c["scenario"] == sc && c["payload"] == p)
            .map(|c| num(&c["figures"], "p50_us"))
            .unwrap()
    };
    let ratio = r["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["metric"] == "p50"
                && x["numerator"] == "macvlan-bridge"
                && x["denominator"] == "bridge"
                && x["scenario"] == "container_external"
                && x["payload"] == 64
        })
        .expect("macvlan/bridge p50 ratio");
    let want =
        p50("macvlan-bridge", "container_external", 64) / p50("bridge", "container_external", 64);
    assert!((num(ratio, "value") - want).abs() < 1e-9 * want);
    let mvdp_vs = r["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["numerator"] == "mvdp-bridge" && x["value"].is_number())
        .count();
    assert!(
        mvdp_vs > 0,
        "no mvdp ratios reported (with values or reasons)"
    );
    // mvdp-colocated is compared with kernel macvlan like adaptive mvdp.
    assert!(
        r["ratios"].as_array().unwrap().iter().any(|x| {
            x["numerator"] == "mvdp-colocated"
                && x["denominator"] == "macvlan-bridge"
                && x["metric"] == "p50"
                && x["value"].is_number()
        }),
        "no mvdp-colocated / macvlan-bridge p50 ratio"
    );

    // Loss at kernel macvlan's rate: mvdp, macvlan itself and the ceiling (container to
    // container, the only path it has), one flow, paced at macvlan's pps, per scenario and
    // payload; never more sent than the pace allows over the slice.
    let paced = &r["paced"];
    let rows = paced["rows"].as_array().expect("a paced section with rows");
    let slice_s = num(&r["config"], "throughput_seconds_per_cell") / num(&r["config"], "rounds");
    let mut measured = 0;
    let mut ceiling = 0;
    for row in rows {
        assert_eq!(row["reference"], "macvlan-bridge", "{row}");
        assert_eq!(row["flows"], 1, "{row}");
        let b = row["backend"].as_str().unwrap();
        assert!(
            ["mvdp-bridge", "macvlan-bridge", "ceiling"].contains(&b),
            "{row}"
        );
        if b == "ceiling" {
            assert_eq!(row["scenario"], "container_container", "{row}");
            ceiling += 1;
        }
        let rate = num(row, "rate_pps");
        assert!(rate > 0.0, "{row}");
        if row["status"] != "ok" {
            continue;
        }
        let f = &row["figures"];
        let (sent, recv) = (num(f, "sent_pkts"), num(f, "recv_pkts"));
        assert!(sent > 0.0, "nothing sent: {row}");
        assert!(recv <= sent, "received more than sent: {row}");
        // One burst (at most 32) of slack per round over the schedule.
        let rounds = num(&r["config"], "rounds");
        assert!(
            sent + num(f, "send_errors") <= rate * slice_s * rounds + 32.0 * rounds,
            "sent over the pace: {row}"
        );
        let loss = num(f, "loss_ratio");
        assert!((0.0..=1.0).contains(&loss), "{row}");
        assert!((num(row, "loss_pct") - loss * 100.0).abs() < 1e-9, "{row}");
        assert!(row["drops"].is_object(), "{row}");
        measured += 1;
    }
    // mvdp-bridge and macvlan-bridge: 2 scenarios x 2 payloads each; the ceiling 2 payloads.
    assert!(
        measured >= 10,
        "only {measured} paced cells measured: {paced}"
    );
    assert_eq!(
        ceiling, 2,
        "the ceiling paced container to container: {paced}"
    );

    // Report files.
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    for needle in [
        "macvlan-bridge",
        "ceiling",
        "p99",
        "CPU ns/pkt",
        "Ratios",
        "Loss at kernel macvlan's rate",
        "mvdp's loss at kernel macvlan's rate",
    ] {
        assert!(summary.contains(needle), "summary.md lacks {needle}");
    }
    for plot in [
        "latency_cdf_container_container_64.svg",
        "latency_cdf_container_container_1400.svg",
        "latency_cdf_container_external_64.svg",
        "latency_cdf_container_external_1400.svg",
        "throughput_64.svg",
        "throughput_1400.svg",
    ] {
        let svg = std::fs::read_to_string(out.path().join(plot))
            .unwrap_or_else(|e| panic!("{plot}: {e}"));
        assert!(
            svg.contains("<svg") && svg.contains("macvlan-bridge"),
            "{plot} has no data"
        );
    }
    assert!(
        eventually(3, || netns_with_prefix_any(&name).is_empty()),
        "left behind: {:?}",
        netns_with_prefix_any(&name)
    );
}

/// Namespaces whose name starts with `run` (every backend's lab appends a tag to it).
fn netns_with_prefix_any(run: &str) -> Vec<String> {
    ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(run))
        .collect()
}

fn assert_fails_cleanly(args: &[&str], needle: &str) {
    let o = mvdp().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bench_refuses_a_taken_lab_name_and_leaves_the_namespace_alone() {
    require_root!("bench_taken");
    let run = unique_prefix("bt");
    let squatter = format!("{run}br-wire");
    assert!(Command::new("ip")
        .args(["netns", "add", &squatter])
        .status()
        .unwrap()
        .success());
    let out = tempfile::tempdir().unwrap();
    let o = mvdp()
        .args([
            "bench",
            "--quick",
            "--backends",
            "macvlan,bridge",
            "--lab-name",
            &run,
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let left = netns_with_prefix_any(&run);
    let _ = Command::new("ip")
        .args(["netns", "del", &squatter])
        .status();
    assert!(!o.status.success(), "bench ran on a taken lab name");
    assert!(
        err.contains(&squatter),
        "the error does not name the namespace: {err}"
    );
    assert_eq!(
        left,
        vec![squatter],
        "namespaces other than the pre-existing one"
    );
    assert!(!out.path().join("results.json").exists());
}

#[test]
fn bench_rejects_bad_arguments_without_building_anything() {
    require_root!("bench_args");
    let run = unique_prefix("ba");
    assert_fails_cleanly(
        &["bench", "--quick", "--modes", "source", "--lab-name", &run],
        "source",
    );
    assert_fails_cleanly(
        &["bench", "--quick", "--modes", "nosuch", "--lab-name", &run],
        "nosuch",
    );
    assert_fails_cleanly(
        &["bench", "--quick", "--duration", "0", "--lab-name", &run],
        "--duration",
    );
    assert_fails_cleanly(&["bench", "--quick", "--lab-name", "Bad Name"], "lab name");
    assert!(netns_with_prefix_any(&run).is_empty());
}

#[test]
fn bench_interrupted_removes_its_labs() {
    require_root!("bench_sigint");
    let run = unique_prefix("bi");
    let out = tempfile::tempdir().unwrap();
    let mut child = mvdp()
        .args([
            "bench",
            "--quick",
            "--backends",
            "macvlan,bridge",
            "--lab-name",
            &run,
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the second lab is up, in the middle of the run.
    assert!(
        eventually(30, || netns_with_prefix_any(&run).len() >= 6),
        "labs never appeared"
    );
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit status after SIGINT");
    assert!(
        eventually(3, || netns_with_prefix_any(&run).is_empty()),
        "left behind: {:?}",
        netns_with_prefix_any(&run)
    );
    assert!(!Path::new(&out.path().join("results.json")).exists());
}

#[test]
fn bench_as_an_ordinary_user_says_it_needs_root() {
    require_root!("bench_not_root");
    // Drop to nobody for the child only (util-linux setpriv); skip where it is missing.
    let Ok(o) = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::BIN)
        .args(["bench", "--quick", "--out", "/nonexistent/never-written"])
        .output()
    else {
        eprintln!("bench_not_root: skipped: no setpriv");
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("Permission denied") && !err.contains("mvdp:") {
        eprintln!("bench_not_root: skipped: nobody cannot execute the test binary here: {err}");
        return;
    }
    assert!(!o.status.success());
    assert!(err.contains("needs root"), "{err}");
}

/// One density row's figures are present and sane; returns its reachability (answered, probed).
fn check_density_row(row: &Value) -> (f64, f64) {
    assert_eq!(row["status"], "ok", "{row}");
    assert!(num(&row["throughput"], "pps") > 0.0, "{row}");
    let lat = &row["latency"];
    assert!(
        0.0 < num(lat, "p50_us") && num(lat, "p50_us") <= num(lat, "p99_us"),
        "{row}"
    );
    let add = &row["add"];
    assert!(
        num(add, "count") >= 1.0 && num(add, "p50_ms") > 0.0,
        "{row}"
    );
    assert!(num(add, "p50_ms") <= num(add, "p99_ms"), "{row}");
    if row["backend"] == "mvdp-bridge" {
        let mem = &row["daemon_memory"];
        assert!(
            num(mem, "rss_kib") > 0.0 && num(mem, "hwm_kib") >= num(mem, "rss_kib"),
            "{row}"
        );
        let split = num(mem, "anon_kib") + num(mem, "file_kib") + num(mem, "shmem_kib");
        assert!(
            (split - num(mem, "rss_kib")).abs() <= 64.0,
            "RSS split does not add up: {row}"
        );
        let cpu = &row["daemon_cpu"];
        assert!(
            num(cpu, "seconds") > 0.0 && num(cpu, "workers_ms") >= 0.0,
            "{row}"
        );
        assert_eq!(row["mvdp_capacity"]["ports"], row["ports"], "{row}");
    } else {
        assert!(
            row["daemon_memory"].is_null() && row["daemon_cpu"].is_null(),
            "{row}"
        );
    }
    let reach = &row["reach"];
    (num(reach, "answered"), num(reach, "probed"))
}

#[test]
fn bench_ports_reports_the_density_figures_and_leaves_nothing() {
    require_root!("bench_density");
    let name = unique_prefix("bd");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = mvdp()
        .args([
            "bench",
            "--ports",
            "2,8",
            "--quick",
            "--rounds",
            "2",
            "--json",
            "--lab-name",
            &name,
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mvdp bench --ports failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("--ports 2,8 --quick took {:?}", started.elapsed());
    let r: Value = serde_json::from_slice(&o.stdout).expect("--json prints the results");
    let d = &r["density"];
    assert_eq!(d["ports"], serde_json::json!([2, 8]));
    assert_eq!(d["rounds"], 2);
    let rows = d["rows"].as_array().expect("density rows");
    assert_eq!(rows.len(), 4, "two backends at two sizes: {d}");
    for row in rows {
        let (answered, probed) = check_density_row(row);
        assert!(
            probed >= 2.0 && answered == probed,
            "unreachable pairs: {row}"
        );
    }
    // At 8 ports, 6 idle ports were removed and added again.
    // --quick: 500 round trips per cell, measured in two slices of 250.
    for row in rows {
        assert_eq!(num(&row["latency"], "round_trips"), 500.0, "{row}");
    }
    let at8 = rows
        .iter()
        .find(|r| r["ports"] == 8 && r["backend"] == "mvdp-bridge")
        .unwrap();
    assert_eq!(num(&at8["churn_remove"], "count"), 6.0, "{at8}");
    assert_eq!(num(&at8["churn_add"], "count"), 6.0, "{at8}");
    let ratio = d["ratios"].as_array().unwrap().iter().find(|x| {
        x["metric"] == "pps"
            && x["numerator"] == "mvdp-bridge"
            && x["ports"] == 8
            && x["denominator"] == "macvlan-bridge"
    });
    assert!(
        ratio.is_some_and(|x| x["value"].is_number()),
        "{}",
        d["ratios"]
    );
    assert!(
        d["targets"].as_array().is_some_and(|t| t.len() >= 5),
        "{}",
        d["targets"]
    );

    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    for needle in [
        "## Density",
        "| 8 | mvdp-bridge |",
        "| 8 | macvlan-bridge |",
        "### Targets",
    ] {
        assert!(
            summary.contains(needle),
            "summary.md lacks {needle}:\n{summary}"
        );
    }
    let svg = std::fs::read_to_string(out.path().join("density.svg")).unwrap();
    assert!(
        svg.contains("mvdp-bridge") && svg.contains("macvlan-bridge"),
        "density.svg has no data"
    );
    assert!(
        eventually(3, || netns_with_prefix_any(&name).is_empty()),
        "left behind: {:?}",
        netns_with_prefix_any(&name)
    );
    let daemon_dir = std::env::temp_dir().join(format!("mvdp-bench-{name}db"));
    assert!(!daemon_dir.exists(), "{} left behind", daemon_dir.display());
}

/// Processes whose command line mentions `needle` (the daemon's directory names the lab).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            v.push(pid);
        }
    }
    v
}

#[test]
fn bench_ports_interrupted_removes_its_namespaces_and_daemon() {
    require_root!("bench_density_sigint");
    let run = unique_prefix("bj");
    let out = tempfile::tempdir().unwrap();
    let mut child = mvdp()
        .args([
            "bench",
            "--ports",
            "2,300",
            "--quick",
            "--lab-name",
            &run,
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt while the labs grow past the builder's containers.
    assert!(
        eventually(60, || netns_with_prefix_any(&run).len() >= 40),
        "the dense labs never grew"
    );
    let daemon = format!("mvdp-bench-{run}db");
    assert!(
        !processes_mentioning(&daemon).is_empty(),
        "no daemon process for {daemon}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(130),
        "exit status after SIGINT"
    );
    assert!(
        eventually(5, || netns_with_prefix_any(&run).is_empty()),
        "left behind: {:?}",
        netns_with_prefix_any(&run)
    );
    assert!(
        eventually(3, || processes_mentioning(&daemon).is_empty()),
        "daemon still running: {:?}",
        processes_mentioning(&daemon)
    );
    assert!(!out.path().join("results.json").exists());
    // The daemon's directory (socket, log) is left on Ctrl-C, like the in-process daemon's socket.
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&daemon));
}
