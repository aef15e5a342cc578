//! `mvdp bench`: mvdp against kernel macvlan and the Linux bridge on labs of one shape, with an
//! AF_XDP forwarder with no switching logic as the ceiling. Pieces:
//! [`udp`] (echo server, round-trip client, throughput), [`cpu`] (CPU time sources),
//! [`topology`] (the labs per backend), [`ceiling`] (the bare forwarder), [`report`]
//! (results.json and summary.md), [`plot`] (SVG plots) and [`env`] (the recorded environment).

pub mod ceiling;
pub mod cpu;
pub mod env;
pub mod plot;
pub mod report;
pub mod topology;
pub mod udp;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lab::Lab;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use report::{
    BackendStatus, ConfigReport, LatencyCell, LatencyFigures, Results, ThroughputCell,
    ThroughputFigures,
};
use topology::{Backend, BenchLab, Scenario};
use udp::{measure_rtt, measure_throughput, RttClient, RttStats, Throughput};

/// Round trips lost in a row after which a latency cell gives up (a dead path must not turn
/// 100,000 timeouts into hours).
const MAX_CONSECUTIVE_LOSSES: u64 = 50;

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
    pub quick: bool,
    pub command_line: String,
    pub progress: bool,
}

impl BenchConfig {
    pub fn quick(run_name: &str) -> BenchConfig {
        BenchConfig {
            run_name: run_name.into(),
            backends: vec![
                Backend::Mvdp(mvdp_control::MacvlanMode::Bridge),
                Backend::Macvlan(mvdp_control::MacvlanMode::Bridge),
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
            quick: true,
            command_line: String::new(),
            progress: true,
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

struct Cell<T> {
    backend: Backend,
    scenario: Scenario,
    payload: usize,
    flows: usize,
    status: Result<(), String>,
    acc: T,
    extra: (Duration, Option<Duration>),
}

/// Builds the labs, measures every cell and returns the results (nothing written yet).
pub fn run(cfg: &BenchConfig) -> Result<Results> {
    preflight(cfg)?;
    let pb = if cfg.progress {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut labs: Vec<BenchLab> = Vec::new();
    let mut statuses = Vec::new();
    for b in &cfg.backends {
        match b.unavailable() {
            Some(why) => statuses.push(BackendStatus {
                backend: b.name(),
                status: format!("unavailable: {why}"),
            }),
            None => {
                pb.set_message(format!("building the {} lab", b.name()));
                pb.tick();
                labs.push(BenchLab::build(&b.lab_name(&cfg.run_name), *b)?);
                statuses.push(BackendStatus {
                    backend: b.name(),
                    status: "ok".into(),
                });
            }
        }
    }

    let lab_of = |b: &Backend| labs.iter().position(|l| l.backend == *b);
    let status_of = |b: &Backend, sc: Scenario| -> Result<(), String> {
        if let Some(why) = b.unavailable() {
            return Err(format!("unavailable: {why}"));
        }
        b.supports(sc).map_err(|why| format!("n/a: {why}"))
    };
    let mut lat: Vec<Cell<RttStats>> = Vec::new();
    let mut tput: Vec<Cell<Throughput>> = Vec::new();
    for sc in Scenario::ALL {
        for &p in &cfg.payloads {
            for b in &cfg.backends {
                lat.push(Cell {
                    backend: *b,
                    scenario: sc,
                    payload: p,
                    flows: 1,
                    status: status_of(b, sc),
                    acc: RttStats::new(),
                    extra: (Duration::ZERO, None),
                });
                for &f in &cfg.flows {
                    tput.push(Cell {
                        backend: *b,
                        scenario: sc,
                        payload: p,
                        flows: f,
                        status: status_of(b, sc),
                        acc: Throughput::default(),
                        extra: (Duration::ZERO, None),
                    });
                }
            }
        }
    }
    let rounds = cfg.rounds.max(1);
    let live_lat = lat.iter().filter(|c| c.status.is_ok()).count() as u64;
    let live_tp = tput.iter().filter(|c| c.status.is_ok()).count() as u64;
    pb.set_length((live_lat + live_tp) * rounds as u64);
    let per_round = cfg.round_trips.div_ceil(rounds as u64);
    for round in 0..rounds {
        // Rotate which backend goes first in each group so none always runs on a cold or warm
        // machine.
        let n = cfg.backends.len().max(1);
        for group in lat.chunks_mut(n) {
            let len = group.len();
            for k in 0..len {
                let c = &mut group[(k + round as usize) % len];
                if c.status.is_err() {
                    continue;
                }
                let lab = &labs[lab_of(&c.backend).expect("available backends have labs")];
                pb.set_message(format!(
                    "latency {} {} {} B",
                    c.backend.name(),
                    c.scenario.name(),
                    c.payload
                ));
                let (cl, sv) = (lab.client(), lab.server(c.scenario));
                let mut client = RttClient::new(&cl.ns, cl.ip, sv.ip, c.payload, cfg.timeout)?;
                lab.set_measuring(true);
                let st = measure_rtt_bounded(&mut client, cfg.warmup, per_round);
                lab.set_measuring(false);
                match st {
                    Ok(st) => c.acc.merge(&st),
                    Err(e) => c.status = Err(format!("failed: {e}")),
                }
                pb.inc(1);
            }
        }
        let n = cfg.backends.len() * cfg.flows.len().max(1);
        for group in tput.chunks_mut(n.max(1)) {
            let len = group.len();
            for k in 0..len {
                let c = &mut group[(k + round as usize) % len];
                if c.status.is_err() {
                    continue;
                }
                let lab = &labs[lab_of(&c.backend).expect("available backends have labs")];
                pb.set_message(format!(
                    "throughput {} {} {} B x{}",
                    c.backend.name(),
                    c.scenario.name(),
                    c.payload,
                    c.flows
                ));
                let (cl, sv) = (lab.client(), lab.server(c.scenario));
                lab.set_measuring(true);
                let sw0 = lab.switch_cpu();
                let si0 = cpu::softirq_total()?;
                let t = measure_throughput(
                    &cl.ns,
                    cl.ip,
                    &sv.ns,
                    sv.ip,
                    c.flows,
                    c.payload,
                    cfg.duration.div_f64(rounds as f64),
                );
                let si1 = cpu::softirq_total()?;
                let sw1 = lab.switch_cpu();
                lab.set_measuring(false);
                match t {
                    Ok(t) => {
                        c.acc.merge(&t);
                        c.extra.0 += si1.saturating_sub(si0);
                        if let (Some(a), Some(b)) = (sw0, sw1) {
                            *c.extra.1.get_or_insert(Duration::ZERO) += b.saturating_sub(a);
                        }
                    }
                    Err(e) => c.status = Err(format!("failed: {e:#}")),
                }
                pb.inc(1);
            }
        }
    }
    pb.finish_and_clear();
    let mut ceiling_counters = None;
    let mut mvdp_stats = std::collections::BTreeMap::new();
    for lab in &mut labs {
        if let Some(st) = lab.mvdp_stats() {
            mvdp_stats.insert(lab.backend.name(), st);
        }
        match lab.stop_forwarder() {
            Some(Ok(c)) => ceiling_counters = Some(c),
            Some(Err(e)) => tracing::warn!("ceiling forwarder: {e:#}"),
            None => {}
        }
    }
    drop(labs);

    let status_text = |s: &Result<(), String>| match s {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let latency = lat
        .iter()
        .map(|c| {
            let figures = c
                .status
                .as_ref()
                .ok()
                .and_then(|_| LatencyFigures::from_stats(&c.acc));
            LatencyCell {
                backend: c.backend.name(),
                scenario: c.scenario,
                payload: c.payload,
                status: if c.status.is_ok() && figures.is_none() {
                    "failed: no round trip came back".into()
                } else {
                    status_text(&c.status)
                },
                figures,
            }
        })
        .collect();
    let throughput = tput
        .iter()
        .map(|c| ThroughputCell {
            backend: c.backend.name(),
            scenario: c.scenario,
            payload: c.payload,
            flows: c.flows,
            status: status_text(&c.status),
            figures: c
                .status
                .as_ref()
                .ok()
                .map(|_| ThroughputFigures::new(&c.acc, c.extra.0, c.extra.1)),
        })
        .collect();
    let mut results = Results {
        environment: env::collect(cfg.command_line.clone()),
        config: ConfigReport {
            quick: cfg.quick,
            round_trips_per_cell: per_round * rounds as u64,
            warmup_per_round: cfg.warmup,
            rounds,
            throughput_seconds_per_cell: cfg.duration.as_secs_f64(),
            rtt_timeout_ms: cfg.timeout.as_millis() as u64,
            payloads: cfg.payloads.clone(),
            flows: cfg.flows.clone(),
        },
        backends: statuses,
        latency,
        throughput,
        ratios: Vec::new(),
        ceiling_counters,
        mvdp_stats,
    };
    let (pairs, pps_pairs) = ratio_pairs(&cfg.backends);
    results.compute_ratios(&pairs, &pps_pairs);
    Ok(results)
}

fn measure_rtt_bounded(client: &mut RttClient, warmup: u64, count: u64) -> Result<RttStats> {
    for _ in 0..warmup {
        let _ = client.round_trip();
    }
    // Slices of MAX_CONSECUTIVE_LOSSES: a dead path costs at most that many timeouts, not
    // `count` of them.
    let mut total = RttStats::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(MAX_CONSECUTIVE_LOSSES);
        let st = measure_rtt(client, 0, n, |_| {});
        let dead = st.lost + st.send_failed == n;
        total.merge(&st);
        left -= n;
        if dead {
            bail!("{n} round trips in a row got no answer");
        }
    }
    Ok(total)
}

/// (numerator, denominator) backend names.
type Pair = (String, String);

/// (numerator, denominator) pairs: every mvdp mode against kernel macvlan in that mode and the
/// bridge, kernel macvlan against the bridge; and pps against the ceiling.
fn ratio_pairs(backends: &[Backend]) -> (Vec<Pair>, Vec<Pair>) {
    let has = |b: &Backend| backends.contains(b);
    let mut pairs = Vec::new();
    let mut pps = Vec::new();
    for b in backends {
        match b {
            Backend::Mvdp(m) => {
                if has(&Backend::Macvlan(*m)) {
                    pairs.push((b.name(), Backend::Macvlan(*m).name()));
                }
                if has(&Backend::Bridge) {
                    pairs.push((b.name(), Backend::Bridge.name()));
                }
                if has(&Backend::Ceiling) {
                    pps.push((b.name(), Backend::Ceiling.name()));
                }
            }
            Backend::Macvlan(_) if has(&Backend::Bridge) => {
                pairs.push((b.name(), Backend::Bridge.name()))
            }
            _ => {}
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
