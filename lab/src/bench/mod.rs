//! `mvdp bench`: mvdp against kernel macvlan, the Linux bridge and Open vSwitch's AF_XDP datapath on
//! labs of one shape, with an AF_XDP forwarder with no switching logic as the ceiling. Pieces:
//! [`udp`] (echo server, round-trip client, throughput), [`cpu`] (CPU time sources),
//! [`topology`] (the labs per backend), `cells` (what is measured, slice by slice), [`ceiling`]
//! (the bare forwarder), [`report`]
//! (results.json and the ratios), `summary` (summary.md), [`plot`] (SVG plots), [`env`] (the recorded environment),
//! [`pinning`] (where the load and the dedicated-core switches run) and [`drops`] (where frames were dropped).
//! [`density`] is the scenario of `--ports`: the same pieces on labs of up to a thousand ports.

pub mod ceiling;
mod cells;
pub mod cpu;
pub mod density;
pub mod drops;
pub mod env;
pub mod hops;
pub mod pinning;
pub mod plot;
pub mod report;
pub mod storm;
mod summary;
pub mod targets;
pub mod topology;
pub mod udp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lab::Lab;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ceiling::ForwardCounters;
use cells::Cells;
use report::{BackendStatus, ConfigReport, Results};
use topology::{Backend, BenchLab};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Lab names are `{run_name}{backend tag}`.
    pub run_name: String,
    pub backends: Vec<Backend>,
    pub round_trips: u64,
    pub warmup: u64,
    /// Each cell is measured in this many slices, backends interleaved within each.
    pub rounds: u32,
    pub duration: Duration,
    pub payloads: Vec<usize>,
    pub flows: Vec<usize>,
    pub timeout: Duration,
    /// How long each backend's switching threads are watched with no traffic (their idle CPU).
    pub idle_window: Duration,
    pub quick: bool,
    pub command_line: String,
    pub progress: bool,
    /// `--ports`: run the density scenario instead of the cells.
    pub density: Option<density::DensityConfig>,
    /// `--storm`: run the broadcast-storm scenario instead of the cells.
    pub storm: Option<storm::StormConfig>,
}

impl BenchConfig {
    pub fn quick(run_name: &str) -> BenchConfig {
        BenchConfig {
            run_name: run_name.into(),
            backends: vec![
                Backend::Mvdp(mvdp_switch::Mode::Bridge),
                Backend::Macvlan(mvdp_switch::Mode::Bridge),
                Backend::Bridge,
                Backend::Ceiling,
            ],
            round_trips: 3_000,
            warmup: 200,
            rounds: 1,
            duration: Duration::from_millis(500),
            payloads: vec![64, 1400],
            flows: vec![1, 4],
            timeout: Duration::from_millis(100),
            idle_window: Duration::from_millis(500),
            quick: true,
            command_line: String::new(),
            progress: true,
            density: None,
            storm: None,
        }
    }
}

/// Labs that would collide with this run's, by backend.
pub fn preflight(cfg: &BenchConfig) -> Result<()> {
    if !mvdp_control::is_root() {
        bail!("mvdp bench needs root (network namespaces, macvlan, XDP, AF_XDP); run it with sudo");
    }
    let mut taken = Vec::new();
    for b in &cfg.backends {
        if b.unavailable().is_some() {
            continue;
        }
        let name = b.lab_name(&cfg.run_name);
        let existing =
            Lab::namespaces_of(&name).with_context(|| format!("lab name for {}", b.name()))?;
        taken.extend(existing);
    }
    if !taken.is_empty() {
        bail!(
            "namespaces of this run's labs already exist: {} (another bench running, or left over? pick another --lab-name, or remove them with `ip netns del`)",
            taken.join(", ")
        );
    }
    Ok(())
}

/// Builds the labs, measures every cell and returns the results (nothing written yet).
pub fn run(cfg: &BenchConfig) -> Result<Results> {
    preflight(cfg)?;
    if let Some(d) = &cfg.density {
        return run_density(cfg, d);
    }
    if let Some(s) = &cfg.storm {
        return run_storm(cfg, s);
    }
    let pb = progress_bar(cfg.progress);
    let (mut labs, mut statuses, failed) = build_labs(cfg, &pb)?;
    measure_idle(cfg, &labs, &mut statuses, &pb);
    let mut cells = Cells::plan(cfg);
    for (b, why) in &failed {
        cells.mark_unavailable(*b, why);
    }
    let rounds = cfg.rounds.max(1);
    pb.set_length(cells.live() * rounds as u64);
    for round in 0..rounds {
        cells.measure_round(round, cfg, &labs, &pb)?;
    }
    // Loss at kernel macvlan's rate: needs this run's macvlan figures, so it comes after.
    let paced_cells = cells.plan_paced(cfg);
    pb.inc_length(paced_cells * rounds as u64);
    for round in 0..rounds {
        cells.measure_paced_round(round, cfg, &labs, &pb)?;
    }
    pb.finish_and_clear();
    let (ceiling_counters, mvdp_stats, ovs_statistics) = collect_counters(&mut labs);
    drop(labs);
    let (latency, throughput) = cells.report();
    let paced = cells.paced_report();
    let mut results = Results {
        environment: env::collect(cfg.command_line.clone()),
        config: config_report(cfg),
        backends: statuses,
        latency,
        throughput,
        ratios: Vec::new(),
        targets: Vec::new(),
        ceiling_counters,
        mvdp_stats,
        ovs_statistics,
        density: None,
        storm: None,
        hops: Vec::new(),
        paced: Some(paced),
    };
    let (pairs, pps_pairs) = ratio_pairs(&cfg.backends);
    results.compute_ratios(&pairs, &pps_pairs);
    results.compute_targets();
    results.hops = hops::breakdown(&results.latency);
    Ok(results)
}

/// The density scenario alone: its labs, figures and the environment, no cells.
fn run_density(cfg: &BenchConfig, d: &density::DensityConfig) -> Result<Results> {
    let pb = progress_bar(cfg.progress);
    let figures = density::run(cfg, d, &pb)?;
    pb.finish_and_clear();
    Ok(Results {
        density: Some(figures),
        ..scenario_results(cfg, &density::BACKENDS)
    })
}

/// The storm scenario alone: its labs, figures and the environment, no cells.
fn run_storm(cfg: &BenchConfig, s: &storm::StormConfig) -> Result<Results> {
    let pb = progress_bar(cfg.progress);
    let figures = storm::run(cfg, s, &pb)?;
    pb.finish_and_clear();
    Ok(Results {
        storm: Some(figures),
        ..scenario_results(cfg, &storm::BACKENDS)
    })
}

/// The results of a scenario run on its own (density, storm): the environment and its
/// backends, no cells; the caller adds its figures.
fn scenario_results(cfg: &BenchConfig, backends: &[Backend]) -> Results {
    Results {
        environment: env::collect(cfg.command_line.clone()),
        config: config_report(cfg),
        backends: backends
            .iter()
            .map(|b| BackendStatus {
                backend: b.name(),
                status: "ok".into(),
                idle_switch_cpu_pct: None,
                switch_cpus: None,
            })
            .collect(),
        latency: Vec::new(),
        throughput: Vec::new(),
        ratios: Vec::new(),
        targets: Vec::new(),
        ceiling_counters: None,
        mvdp_stats: BTreeMap::new(),
        ovs_statistics: BTreeMap::new(),
        density: None,
        storm: None,
        hops: Vec::new(),
        paced: None,
    }
}

fn progress_bar(visible: bool) -> ProgressBar {
    let pb = if visible {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// The labs of the backends that built, every backend's status for the report, and the peers
/// whose lab failed to start (with why).
type BuiltLabs = (Vec<BenchLab>, Vec<BackendStatus>, Vec<(Backend, String)>);

/// Builds the lab of every available backend. A peer switch that fails to start (OVS's
/// `add-port` once timed out and took a whole run with it) is reported as failed and the run
/// goes on without it; a failure of mvdp's or the kernel's labs stops the run.
fn build_labs(cfg: &BenchConfig, pb: &ProgressBar) -> Result<BuiltLabs> {
    let mut labs = Vec::new();
    let mut statuses = Vec::new();
    let mut failed = Vec::new();
    for b in &cfg.backends {
        let status = match b.unavailable() {
            Some(why) => format!("unavailable: {why}"),
            None => {
                pb.set_message(format!("building the {} lab", b.name()));
                pb.tick();
                match BenchLab::build(&b.lab_name(&cfg.run_name), *b) {
                    Ok(lab) => {
                        labs.push(lab);
                        "ok".into()
                    }
                    Err(e) if b.is_peer() => {
                        let why = format!("failed to start: {e:#}");
                        tracing::warn!(backend = b.name(), "{why}");
                        failed.push((*b, why.clone()));
                        why
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        statuses.push(BackendStatus {
            backend: b.name(),
            status,
            idle_switch_cpu_pct: None,
            switch_cpus: None,
        });
    }
    Ok((labs, statuses, failed))
}

/// Each lab's switching threads' CPU over `cfg.idle_window` with no traffic, as it is while
/// measured (a PMD resumed, mvdp-busy's worker busy-polling), in % of one CPU; and the CPUs those
/// threads may run on, read here because by now every worker has pinned itself.
fn measure_idle(
    cfg: &BenchConfig,
    labs: &[BenchLab],
    statuses: &mut [BackendStatus],
    pb: &ProgressBar,
) {
    for lab in labs {
        pb.set_message(format!("idle CPU of {}", lab.backend.name()));
        pb.tick();
        lab.set_measuring(true);
        // Let a resumed vswitchd or a worker switched to busy polling settle.
        std::thread::sleep(Duration::from_millis(100));
        let c0 = lab.switch_cpu();
        let t0 = std::time::Instant::now();
        std::thread::sleep(cfg.idle_window);
        let c1 = lab.switch_cpu();
        let secs = t0.elapsed().as_secs_f64();
        lab.set_measuring(false);
        let pct = match (c0, c1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / secs * 100.0),
            _ => None,
        };
        if let Some(st) = statuses
            .iter_mut()
            .find(|s| s.backend == lab.backend.name())
        {
            st.idle_switch_cpu_pct = pct;
            st.switch_cpus = lab.switch_affinity();
        }
    }
}

/// Per OVS backend and port, OVS's own statistics.
type OvsStatistics = BTreeMap<String, BTreeMap<String, String>>;

/// The ceiling forwarder's counters, mvdp's and OVS's, read (and the forwarder stopped) before
/// the labs go.
fn collect_counters(
    labs: &mut [BenchLab],
) -> (
    Option<ForwardCounters>,
    BTreeMap<String, serde_json::Value>,
    OvsStatistics,
) {
    let mut ceiling_counters = None;
    let mut mvdp_stats = BTreeMap::new();
    let mut ovs = BTreeMap::new();
    for lab in labs {
        if let Some(st) = lab.mvdp_stats() {
            mvdp_stats.insert(lab.backend.name(), st);
        }
        if let Some(st) = lab.ovs_statistics() {
            ovs.insert(lab.backend.name(), st.into_iter().collect());
        }
        match lab.stop_forwarder() {
            // The traced ceiling's are not the ceiling's.
            Some(Ok(c)) if lab.backend == Backend::Ceiling => ceiling_counters = Some(c),
            Some(Ok(_)) => {}
            Some(Err(e)) => tracing::warn!("ceiling forwarder: {e:#}"),
            None => {}
        }
    }
    (ceiling_counters, mvdp_stats, ovs)
}

fn config_report(cfg: &BenchConfig) -> ConfigReport {
    let rounds = cfg.rounds.max(1);
    ConfigReport {
        quick: cfg.quick,
        round_trips_per_cell: cfg.round_trips.div_ceil(rounds as u64) * rounds as u64,
        warmup_per_round: cfg.warmup,
        rounds,
        throughput_seconds_per_cell: cfg.duration.as_secs_f64(),
        rtt_timeout_ms: cfg.timeout.as_millis() as u64,
        payloads: cfg.payloads.clone(),
        flows: cfg.flows.clone(),
        cpus: pinning::plan().clone(),
    }
}

/// (numerator, denominator) backend names.
type Pair = (String, String);

/// (numerator, denominator) pairs: every mvdp mode (and mvdp-busy and mvdp-colocated, in bridge
/// mode) against
/// OVS (PMD and not), kernel macvlan in that mode and the bridge, kernel macvlan against the
/// bridge; and pps of mvdp and OVS against the ceiling.
fn ratio_pairs(backends: &[Backend]) -> (Vec<Pair>, Vec<Pair>) {
    let has = |b: &Backend| backends.contains(b);
    let mut pairs = Vec::new();
    let mut pps = Vec::new();
    let ovs = [Backend::OvsAfxdp, Backend::OvsAfxdpNonPmd];
    for b in backends {
        let mvdp_mode = match b {
            Backend::Mvdp(m) => Some(*m),
            Backend::MvdpBusy | Backend::MvdpColocated => Some(mvdp_switch::Mode::Bridge),
            _ => None,
        };
        if let Some(m) = mvdp_mode {
            for o in ovs.iter().filter(|o| has(o)) {
                pairs.push((b.name(), o.name()));
            }
            if has(&Backend::Macvlan(m)) {
                pairs.push((b.name(), Backend::Macvlan(m).name()));
            }
            if has(&Backend::Bridge) {
                pairs.push((b.name(), Backend::Bridge.name()));
            }
        }
        let vs_ceiling = mvdp_mode.is_some() || ovs.contains(b);
        if vs_ceiling && has(&Backend::Ceiling) {
            pps.push((b.name(), Backend::Ceiling.name()));
        }
        if matches!(b, Backend::Macvlan(_)) && has(&Backend::Bridge) {
            pairs.push((b.name(), Backend::Bridge.name()))
        }
    }
    (pairs, pps)
}

/// Writes results.json, summary.md and the plots into `dir` (created if needed); returns the
/// files written.
pub fn write_outputs(r: &Results, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(r)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let md = dir.join("summary.md");
    let mut summary = r.summary_markdown();
    let plots = plot::write_all(r, dir)?;
    summary.push_str("\n## Plots\n\n");
    for p in &plots {
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            summary.push_str(&format!("![{name}]({name})\n"));
        }
    }
    std::fs::write(&md, &summary).with_context(|| format!("writing {}", md.display()))?;
    let mut files = vec![json, md];
    files.extend(plots);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvdp_switch::Mode;

    #[test]
    fn mvdp_is_compared_with_ovs_and_both_with_the_ceiling() {
        let backends = [
            Backend::Mvdp(Mode::Bridge),
            Backend::MvdpBusy,
            Backend::MvdpColocated,
            Backend::OvsAfxdp,
            Backend::OvsAfxdpNonPmd,
            Backend::Macvlan(Mode::Bridge),
            Backend::Ceiling,
        ];
        let (pairs, pps) = ratio_pairs(&backends);
        let has = |v: &[Pair], n: &str, d: &str| v.iter().any(|(a, b)| a == n && b == d);
        for (n, d) in [
            ("mvdp-busy", "ovs-afxdp"),
            ("mvdp-busy", "ovs-afxdp-nonpmd"),
            ("mvdp-bridge", "ovs-afxdp-nonpmd"),
            ("mvdp-busy", "macvlan-bridge"),
            ("mvdp-colocated", "macvlan-bridge"),
        ] {
            assert!(has(&pairs, n, d), "{n}/{d} missing from {pairs:?}");
        }
        for n in ["mvdp-busy", "ovs-afxdp", "ovs-afxdp-nonpmd", "mvdp-bridge"] {
            assert!(has(&pps, n, "ceiling"), "{n}/ceiling missing from {pps:?}");
        }
        assert!(
            !has(&pairs, "ovs-afxdp", "mvdp-busy"),
            "mvdp is the numerator"
        );
        let (none, _) = ratio_pairs(&[Backend::OvsAfxdp, Backend::Bridge]);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn a_peer_whose_lab_failed_is_left_out_and_the_rest_measured() {
        let mut cfg = BenchConfig::quick("t");
        // Two backends with the same cells (whether OVS is installed here or not).
        cfg.backends = vec![Backend::Mvdp(Mode::Bridge), Backend::Macvlan(Mode::Bridge)];
        assert!(Backend::OvsAfxdp.is_peer() && !Backend::MvdpBusy.is_peer());
        let mut cells = Cells::plan(&cfg);
        let all = cells.live();
        cells.mark_unavailable(Backend::Macvlan(Mode::Bridge), "failed to start: timed out");
        let left = cells.live();
        assert!(left > 0 && left < all, "{left} of {all} cells left");
        assert_eq!(all, 2 * left, "mvdp's cells stay, the failed backend's go");
    }
}
