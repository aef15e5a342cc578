//! The density scenario of `mvdp bench` (`--ports 2,64,256,1000`): mvdp and kernel macvlan, both
//! in bridge mode, each on a lab that grows to every N in turn ([`dense`]). At each N, for each
//! backend (the one that goes first alternates): idle ports removed and added again, the busy
//! pair's round trips and one flow's pps, sampled pairs probed both ways, the daemon's memory
//! ([`measure`]); then ratios and the targets ([`report`]) and `density.svg` ([`plot`]).

pub mod dense;
pub mod measure;
pub mod plot;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;
use mvdp_switch::Mode;

use super::topology::Backend;
use super::BenchConfig;
use dense::{DenseLab, MAX_PORTS};
use measure::{busy_latency, busy_throughput, churn_ports, reachability, sample_pairs};
use measure::{DaemonCpu, Memory, OpTimes, PAYLOAD};
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
(one request in flight, timed with a monotonic clock) and one UDP flow's pps; sampled pairs answer one UDP round trip each way within 2 s; \
the mvdp daemon is the `mvdp daemon` binary with its defaults (one worker, adaptive poll, 16,384 UMEM frames) in its own process, and its \
memory is VmRSS/VmHWM from /proc/PID/status. Ratios divide figures of this run: each N against the smallest N of the same backend, mvdp against \
kernel macvlan at the same N.";

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
        labs.push(DenseLab::build(&b.lab_name(&cfg.run_name), b, &d.mvdp_bin)?);
    }
    let top = d.ports.last().copied().unwrap_or(0);
    pb.set_length(u64::from(top) * labs.len() as u64);
    let mut rows = Vec::new();
    let mut broken: Vec<Option<String>> = vec![None; labs.len()];
    for (step, &n) in d.ports.iter().enumerate() {
        for k in 0..labs.len() {
            let i = (k + step) % labs.len();
            rows.push(step_to(&mut labs[i], &mut broken[i], n, cfg, d, pb));
        }
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
        throughput_seconds: cfg.duration.as_secs_f64(),
        sampled_pairs: d.sampled_pairs,
        churn: d.churn,
        method: METHOD.into(),
        rows,
        ratios,
        targets,
    })
}

/// Grows `lab` to `n` ports and measures it there; a lab that failed to grow before is not
/// touched again (`broken` says why).
fn step_to(
    lab: &mut DenseLab,
    broken: &mut Option<String>,
    n: u32,
    cfg: &BenchConfig,
    d: &DensityConfig,
    pb: &ProgressBar,
) -> DensityRow {
    let name = lab.backend.name();
    let mut row = DensityRow::new(name.clone(), n);
    if let Some(why) = broken {
        row.status = format!("failed: not grown after an earlier failure: {why}");
        return row;
    }
    pb.set_message(format!("{name}: adding ports {}..={n}", lab.ports() + 1));
    match lab.grow(n, || pb.inc(1)) {
        Ok(took) => row.add = OpTimes::of(&took),
        Err(e) => {
            *broken = Some(format!("{e:#}"));
            row.fail(&e);
            return row;
        }
    }
    measure_at(lab, &mut row, cfg, d, pb);
    row
}

/// Everything measured on `lab` at its current size; each failure is recorded in `row` and the
/// rest still measured.
fn measure_at(
    lab: &DenseLab,
    row: &mut DensityRow,
    cfg: &BenchConfig,
    d: &DensityConfig,
    pb: &ProgressBar,
) {
    let (name, n) = (lab.backend.name(), lab.ports());
    pb.set_message(format!("{name} at {n} ports: port remove/add"));
    match churn(lab, d.churn) {
        Ok((rm, add)) => (row.churn_remove, row.churn_add) = (OpTimes::of(&rm), OpTimes::of(&add)),
        Err(e) => row.fail(&e),
    }
    pb.set_message(format!("{name} at {n} ports: busy pair"));
    if let Err(e) = busy_pair(lab, row, cfg) {
        row.fail(&e);
    }
    pb.set_message(format!("{name} at {n} ports: sampled pairs"));
    match reachability(lab, &sample_pairs(n, d.sampled_pairs)) {
        Ok(r) => row.reach = Some(r),
        Err(e) => row.fail(&e),
    }
    if let Err(e) = daemon_figures(lab, row) {
        row.fail(&e);
    }
}

/// The busy pair's round trips and flow, and the daemon's CPU meanwhile.
fn busy_pair(lab: &DenseLab, row: &mut DensityRow, cfg: &BenchConfig) -> Result<()> {
    let (t0, cpu0) = (Instant::now(), lab.daemon_cpu()?);
    match busy_latency(lab, cfg) {
        Ok(l) => row.latency = Some(l),
        Err(e) => row.fail(&e),
    }
    match busy_throughput(lab, cfg) {
        Ok(t) => row.throughput = Some(t),
        Err(e) => row.fail(&e),
    }
    let cpu1 = lab.daemon_cpu()?;
    let secs = t0.elapsed().as_secs_f64();
    row.daemon_cpu = cpu0.zip(cpu1).map(|(a, b)| DaemonCpu::between(a, b, secs));
    Ok(())
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
