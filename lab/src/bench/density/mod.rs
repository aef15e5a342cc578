//! The density scenario of `mvdp bench` (`--ports 2,64,256,1000`): mvdp and kernel macvlan, both
//! in bridge mode, each on a lab that grows to every N in turn ([`dense`]). At each N, for each
//! backend: idle ports removed and added again; the busy pair's round trips and one flow's pps
//! in slices with the backends interleaved (`busy`; the one going first rotates); sampled pairs
//! probed both ways and the daemon's memory ([`measure`]); then ratios and the targets
//! ([`report`]) and `density.svg` ([`plot`]).

mod busy;
pub mod dense;
pub mod measure;
pub mod plot;
pub mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use indicatif::ProgressBar;
use mvdp_switch::Mode;

use super::pinning;
use super::topology::Backend;
use super::BenchConfig;
use busy::Busy;
use dense::{DenseLab, MAX_PORTS};
use measure::{churn_ports, reachability, sample_pairs, Memory, OpTimes, PAYLOAD};
use report::{DensityResults, DensityRow};

/// The backends the density scenario compares.
pub const BACKENDS: [Backend; 2] = [Backend::Mvdp(Mode::Bridge), Backend::Macvlan(Mode::Bridge)];

/// Sampled pairs probed both ways at each N.
pub const SAMPLED_PAIRS: u32 = 8;
/// Idle ports removed and added again at each N.
pub const CHURN: u32 = 100;

pub const METHOD: &str = "Each backend's lab grows port by port (the container namespace is made first, untimed; each port add is timed: \
`mvdp port add` through the daemon's socket for mvdp, netlink `ip link add ... type macvlan` into the namespace plus address and up for kernel macvlan). \
At each N: up to 100 idle ports (never the busy pair) are removed and added again, each timed; then containers 1 and 2 measure round trips \
(one request in flight, timed with a monotonic clock) and one UDP flow's pps, in slices with the backends interleaved; sampled pairs answer one UDP round trip each way within 2 s; \
the mvdp daemon is the `mvdp daemon` binary with its defaults (one worker, adaptive poll, 16,384 UMEM frames) but for its worker's CPU (see CPUs) in its own process, and its \
memory is VmRSS/VmHWM from /proc/PID/status. Ratios divide figures of this run: each N against the smallest N of the same backend, mvdp against \
kernel macvlan at the same N.";

/// `mvdp daemon --cpu C` with C the CPU the run keeps apart from the load (none when the run
/// pins nothing). Left unpinned, the adaptive worker goes where the kernel wakes it: often onto
/// the load's CPU, beside the echo server and client (its round trips then ~11 µs), sometimes
/// onto the other (~45 µs, waking an idle vCPU for every crossing), and which one a cell got
/// decided its p50 more than its port count did (11 vs 36 µs at 2 and 1,000 ports in one run).
fn worker_cpu_args() -> Vec<String> {
    let plan = pinning::plan();
    match plan.switch_cpu {
        Some(c) if !plan.load_cpus.is_empty() => vec!["--cpu".into(), c.to_string()],
        _ => Vec::new(),
    }
}

/// Where the scenario's threads ran, for the report.
fn placement() -> String {
    let plan = pinning::plan();
    match (worker_cpu_args().is_empty(), plan.switch_cpu) {
        (false, Some(c)) => format!(
            "mvdp's worker pinned to CPU {c} (`mvdp daemon --cpu {c}`, adaptive poll); the busy pair's client, echo server, sender and receiver on CPU {:?}",
            plan.load_cpus
        ),
        _ => "nothing pinned (one CPU, or --load-cpus none)".into(),
    }
}

/// Why a density run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DensityConfigError {
    #[error("--ports: give at least one port count")]
    NoPorts,
    #[error("--ports {0}: every count must be 2..={MAX_PORTS} (the busy pair; the mvdp demux's port slots)")]
    OutOfRange(u32),
}

/// What the density scenario runs.
#[derive(Debug, Clone)]
pub struct DensityConfig {
    /// Port counts, ascending, each once.
    pub ports: Vec<u32>,
    /// The `mvdp` binary whose `daemon` serves the mvdp lab.
    pub mvdp_bin: PathBuf,
    pub sampled_pairs: u32,
    pub churn: u32,
}

impl DensityConfig {
    pub fn new(
        mut ports: Vec<u32>,
        mvdp_bin: PathBuf,
    ) -> Result<DensityConfig, DensityConfigError> {
        if let Some(&bad) = ports.iter().find(|n| !(2..=MAX_PORTS).contains(*n)) {
            return Err(DensityConfigError::OutOfRange(bad));
        }
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return Err(DensityConfigError::NoPorts);
        }
        Ok(DensityConfig {
            ports,
            mvdp_bin,
            sampled_pairs: SAMPLED_PAIRS,
            churn: CHURN,
        })
    }
}

/// Builds both labs, grows and measures them at every N, and removes them.
pub(super) fn run(
    cfg: &BenchConfig,
    d: &DensityConfig,
    pb: &ProgressBar,
) -> Result<DensityResults> {
    let mut labs = Vec::new();
    for b in BACKENDS {
        pb.set_message(format!("building the {} lab", b.name()));
        labs.push(DenseLab::build_with(
            &b.lab_name(&cfg.run_name),
            b,
            &d.mvdp_bin,
            &worker_cpu_args(),
        )?);
    }
    let top = d.ports.last().copied().unwrap_or(0);
    pb.set_length(u64::from(top) * labs.len() as u64);
    let mut rows = Vec::new();
    let mut broken: Vec<Option<String>> = vec![None; labs.len()];
    for (step, &n) in d.ports.iter().enumerate() {
        rows.extend(step_to(&mut labs, &mut broken, (n, step), cfg, d, pb));
    }
    pb.set_message(format!(
        "removing {} namespaces",
        labs.iter().map(|l| l.ports() + 3).sum::<u32>()
    ));
    drop(labs);
    rows.sort_by_key(|r| (r.ports, BACKENDS.iter().position(|b| b.name() == r.backend)));
    let (mvdp, macvlan) = (BACKENDS[0].name(), BACKENDS[1].name());
    let ratios = report::ratios(&rows, &d.ports, &mvdp, &macvlan);
    let targets = report::targets(&rows, &ratios, &d.ports, &mvdp);
    Ok(DensityResults {
        ports: d.ports.clone(),
        payload: PAYLOAD,
        round_trips: cfg.round_trips,
        rounds: cfg.rounds.max(1),
        throughput_seconds: cfg.duration.as_secs_f64(),
        sampled_pairs: d.sampled_pairs,
        churn: d.churn,
        method: METHOD.into(),
        cpus: placement(),
        rows,
        ratios,
        targets,
    })
}

/// Every lab at `n` ports: grown and churned one after the other, the busy pair in
/// `cfg.rounds` slices with the labs interleaved (the one going first rotates with `step` and
/// the round), then the sampled pairs and the daemon's figures. A lab that failed to grow is
/// not touched again (`broken` says why).
fn step_to(
    labs: &mut [DenseLab],
    broken: &mut [Option<String>],
    (n, step): (u32, usize),
    cfg: &BenchConfig,
    d: &DensityConfig,
    pb: &ProgressBar,
) -> Vec<DensityRow> {
    let len = labs.len();
    let mut rows: Vec<DensityRow> = labs
        .iter()
        .map(|l| DensityRow::new(l.backend.name(), n))
        .collect();
    for i in (0..len).map(|k| (k + step) % len) {
        grow_and_churn(&mut labs[i], &mut broken[i], &mut rows[i], d, pb);
    }
    let mut busy: Vec<Busy> = labs.iter().map(|_| Busy::new()).collect();
    for round in 0..cfg.rounds.max(1) as usize {
        for i in (0..len).map(|k| (k + step + round) % len) {
            if broken[i].is_none() {
                pb.set_message(format!(
                    "{} at {n} ports: busy pair",
                    labs[i].backend.name()
                ));
                busy[i].measure_slice(&labs[i], cfg);
            }
        }
    }
    for (i, b) in busy.into_iter().enumerate() {
        if broken[i].is_none() {
            b.finish(&mut rows[i]);
            sampled(&labs[i], &mut rows[i], d, pb);
        }
    }
    rows
}

/// Grows `lab` to `row.ports` (each add timed), then removes and adds again idle ports.
fn grow_and_churn(
    lab: &mut DenseLab,
    broken: &mut Option<String>,
    row: &mut DensityRow,
    d: &DensityConfig,
    pb: &ProgressBar,
) {
    let (name, n) = (lab.backend.name(), row.ports);
    if let Some(why) = broken {
        row.status = format!("failed: not grown after an earlier failure: {why}");
        return;
    }
    pb.set_message(format!("{name}: adding ports {}..={n}", lab.ports() + 1));
    match lab.grow(n, || pb.inc(1)) {
        Ok(took) => row.add = OpTimes::of(&took),
        Err(e) => {
            *broken = Some(format!("{e:#}"));
            row.fail(&e);
            return;
        }
    }
    pb.set_message(format!("{name} at {n} ports: port remove/add"));
    match churn(lab, d.churn) {
        Ok((rm, add)) => (row.churn_remove, row.churn_add) = (OpTimes::of(&rm), OpTimes::of(&add)),
        Err(e) => row.fail(&e),
    }
}

/// The sampled pairs' reachability and the daemon's memory and books.
fn sampled(lab: &DenseLab, row: &mut DensityRow, d: &DensityConfig, pb: &ProgressBar) {
    pb.set_message(format!(
        "{} at {} ports: sampled pairs",
        lab.backend.name(),
        row.ports
    ));
    match reachability(lab, &sample_pairs(lab.ports(), d.sampled_pairs)) {
        Ok(r) => row.reach = Some(r),
        Err(e) => row.fail(&e),
    }
    if let Err(e) = daemon_figures(lab, row) {
        row.fail(&e);
    }
}

/// Removes and adds again up to `k` idle ports: (removes, adds).
fn churn(lab: &DenseLab, k: u32) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut times = (Vec::new(), Vec::new());
    for i in churn_ports(lab.ports(), k) {
        let (rm, add) = lab.churn(i)?;
        times.0.push(rm);
        times.1.push(add);
    }
    Ok(times)
}

/// The daemon's memory and its capacity and UMEM books (mvdp only).
fn daemon_figures(lab: &DenseLab, row: &mut DensityRow) -> Result<()> {
    if let Some(pid) = lab.daemon_pid() {
        row.daemon_memory = Some(Memory::of(pid)?);
    }
    if let Some(st) = lab.mvdp_stats()? {
        row.mvdp_capacity = st.get("capacity").cloned();
        row.mvdp_umem = st.get("umem").cloned();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_counts_are_checked_sorted_and_unique() {
        let c = DensityConfig::new(vec![256, 2, 64, 2], "mvdp".into()).unwrap();
        assert_eq!(c.ports, vec![2, 64, 256]);
        assert!(matches!(
            DensityConfig::new(vec![], "x".into()),
            Err(DensityConfigError::NoPorts)
        ));
        assert!(matches!(
            DensityConfig::new(vec![1], "x".into()),
            Err(DensityConfigError::OutOfRange(1))
        ));
        let e = DensityConfig::new(vec![2, 5000], "x".into()).unwrap_err();
        assert!(e.to_string().contains("5000"), "{e}");
    }
}
