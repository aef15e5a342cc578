//! The cells of a run: one per (scenario, payload, backend) for latency and per (scenario, payload,
//! backend, flows) for throughput, their status, and measuring them slice by slice.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::ProgressBar;

use super::cpu;
use super::drops::{udp_rcvbuf_errors, DropSites};
use super::pinning::LoadPinned;
use super::report::{
    median, LatencyCell, LatencyFigures, LatencyRound, PacedRow, PacedSection, ThroughputCell,
    ThroughputFigures, ThroughputRound,
};
use super::topology::{Backend, BenchLab, NotApplicable, Scenario};
use super::udp::{measure_rtt, measure_throughput, Load, Pace, RttClient, RttStats, Throughput};
use super::BenchConfig;
use mvdp_switch::hops::HopStats;

/// Round trips lost in a row after which a latency cell gives up (a dead path must not turn
/// 100,000 timeouts into hours).
const MAX_CONSECUTIVE_LOSSES: u64 = 50;

/// Whether a cell is measured, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CellStatus {
    Ok,
    /// The backend cannot be measured at all in this build.
    Unavailable(String),
    /// The scenario does not exist for the backend.
    NotApplicable(NotApplicable),
    /// A measurement failed; the cell is not measured again.
    Failed(String),
}

impl CellStatus {
    /// The status `backend`'s cells of `scenario` start with.
    fn of(backend: Backend, scenario: Scenario) -> CellStatus {
        if let Some(why) = backend.unavailable() {
            return CellStatus::Unavailable(why);
        }
        match backend.supports(scenario) {
            Ok(()) => CellStatus::Ok,
            Err(why) => CellStatus::NotApplicable(why),
        }
    }
    fn is_ok(&self) -> bool {
        *self == CellStatus::Ok
    }
}

impl fmt::Display for CellStatus {
    /// What results.json says: "ok", "unavailable: …", "n/a: …" or "failed: …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellStatus::Ok => f.write_str("ok"),
            CellStatus::Unavailable(why) => write!(f, "unavailable: {why}"),
            CellStatus::NotApplicable(why) => write!(f, "n/a: {why}"),
            CellStatus::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// One cell and what its slices measured so far.
struct Cell<T, R> {
    backend: Backend,
    scenario: Scenario,
    payload: usize,
    flows: usize,
    status: CellStatus,
    acc: T,
    /// The machine's CPU time during the cell's slices (throughput only).
    machine: cpu::MachineCpu,
    /// CPU time of the switching threads outside the endpoints, when the backend has any.
    switch_cpu: Option<Duration>,
    /// Each slice's own figures (one slice per round), for the ratios' spread over rounds.
    rounds: Vec<R>,
    /// Where frames were dropped during the cell's slices (throughput only).
    drops: DropSites,
    /// What mvdp's `--trace-hops` counted during the cell's slices (traced backend only).
    hops: Option<HopStats>,
    /// Datagrams per second per flow (throughput only; None: as fast as the socket takes them).
    pace: Option<f64>,
}

impl<T, R> Cell<T, R> {
    fn new(backend: Backend, scenario: Scenario, payload: usize, flows: usize, acc: T) -> Self {
        Cell {
            backend,
            scenario,
            payload,
            flows,
            status: CellStatus::of(backend, scenario),
            acc,
            machine: cpu::MachineCpu::default(),
            switch_cpu: None,
            rounds: Vec::new(),
            drops: DropSites::default(),
            hops: None,
            pace: None,
        }
    }
}

/// Every cell of a run.
pub(super) struct Cells {
    latency: Vec<Cell<RttStats, LatencyRound>>,
    throughput: Vec<Cell<Throughput, ThroughputRound>>,
    /// The paced phase (see [`Cells::plan_paced`]): one group per one-flow kernel macvlan cell.
    paced: Vec<PacedGroup>,
    /// Why the paced phase, or one of its groups, was not measured.
    paced_notes: Vec<String>,
}

/// One-flow cells paced at the rate a kernel macvlan cell delivered in this run's throughput
/// phase: one cell per mvdp backend in the run, the ceiling (container to container, bridge mode)
/// and kernel macvlan itself.
struct PacedGroup {
    /// The macvlan backend whose rate this is.
    reference: Backend,
    /// The macvlan cell's pps in each round; the pace is their median.
    reference_rounds: Vec<f64>,
    rate: f64,
    cells: Vec<Cell<Throughput, ThroughputRound>>,
}

impl Cells {
    /// The cells `cfg` asks for, grouped so that a group holds one cell of each backend.
    pub(super) fn plan(cfg: &BenchConfig) -> Cells {
        let mut latency = Vec::new();
        let mut throughput = Vec::new();
        for sc in Scenario::ALL {
            for &p in &cfg.payloads {
                for &b in &cfg.backends {
                    latency.push(Cell::new(b, sc, p, 1, RttStats::new()));
                    if b.latency_only() {
                        continue;
                    }
                    for &f in &cfg.flows {
                        throughput.push(Cell::new(b, sc, p, f, Throughput::default()));
                    }
                }
            }
        }
        Cells {
            latency,
            throughput,
            paced: Vec::new(),
            paced_notes: Vec::new(),
        }
    }

    /// Plans the paced phase from the throughput cells measured so far: for every one-flow cell
    /// of a kernel macvlan backend, the median of its rounds' pps is the pace for one-flow cells
    /// of the mvdp backends in the run that switch in that mode (unavailable ones left out), of
    /// the ceiling where it has a path (bridge mode, container to container) and of that macvlan
    /// backend itself. Returns how many cells each round will measure.
    pub(super) fn plan_paced(&mut self, cfg: &BenchConfig) -> u64 {
        if !cfg
            .backends
            .iter()
            .any(|b| matches!(b, Backend::Macvlan(_)))
        {
            self.paced_notes.push(
                "skipped: kernel macvlan is not among the backends, so there is no rate to pace at"
                    .into(),
            );
            return 0;
        }
        for reference in self.throughput.iter().filter(|c| {
            c.flows == 1 && matches!(c.backend, Backend::Macvlan(_)) && c.status.is_ok()
        }) {
            let Backend::Macvlan(mode) = reference.backend else {
                continue;
            };
            let rounds: Vec<f64> = reference.rounds.iter().map(|r| r.pps).collect();
            let Some(rate) = median(&rounds).filter(|r| *r > 0.0) else {
                self.paced_notes.push(format!(
                    "{} {} {} B: kernel macvlan delivered nothing, no rate to pace at",
                    reference.backend.name(),
                    reference.scenario.name(),
                    reference.payload
                ));
                continue;
            };
            let mut backends = vec![Backend::Mvdp(mode)];
            if mode == mvdp_switch::Mode::Bridge {
                backends.push(Backend::MvdpBusy);
                // What AF_XDP itself loses at this rate (container↔container only: a cell it
                // has no path for is left out by its status below).
                backends.push(Backend::Ceiling);
                // And the peer a user would pick instead, on its own core as mvdp-busy is.
                backends.push(Backend::OvsAfxdp);
            }
            backends.push(reference.backend);
            // Only backends whose own throughput cell here was measured: one whose lab did not
            // start (OVS not installed) or that has no path for the scenario is left out.
            let measured = |b: &Backend| {
                self.throughput.iter().any(|t| {
                    t.backend == *b
                        && t.scenario == reference.scenario
                        && t.payload == reference.payload
                        && t.status.is_ok()
                })
            };
            let cells = backends
                .into_iter()
                .filter(|b| cfg.backends.contains(b) && measured(b))
                .map(|b| {
                    let mut c = Cell::new(
                        b,
                        reference.scenario,
                        reference.payload,
                        1,
                        Throughput::default(),
                    );
                    c.pace = Some(rate);
                    c
                })
                .filter(|c| c.status.is_ok())
                .collect();
            self.paced.push(PacedGroup {
                reference: reference.backend,
                reference_rounds: rounds,
                rate,
                cells,
            });
        }
        self.paced.iter().map(|g| g.cells.len() as u64).sum::<u64>()
    }

    /// Measures one slice of every paced cell, the first backend rotating with `round` as in
    /// [`Cells::measure_round`].
    pub(super) fn measure_paced_round(
        &mut self,
        round: u32,
        cfg: &BenchConfig,
        labs: &[BenchLab],
        pb: &ProgressBar,
    ) -> Result<()> {
        let slice = cfg.duration.div_f64(cfg.rounds.max(1) as f64);
        for g in &mut self.paced {
            for c in rotated_live(&mut g.cells, round) {
                pb.set_message(format!(
                    "paced {} {} {} B at {:.0} pps",
                    c.backend.name(),
                    c.scenario.name(),
                    c.payload,
                    g.rate
                ));
                let lab = labs
                    .iter()
                    .find(|l| l.backend == c.backend)
                    .expect("available backends have labs");
                measure_throughput_slice(c, lab, slice)?;
                pb.inc(1);
            }
        }
        Ok(())
    }

    /// The paced phase as results.json reports it.
    pub(super) fn paced_report(&self) -> PacedSection {
        let rows = self
            .paced
            .iter()
            .flat_map(|g| {
                g.cells.iter().map(|c| {
                    PacedRow::new(
                        g.reference.name(),
                        g.reference_rounds.clone(),
                        g.rate,
                        throughput_cell(c),
                    )
                })
            })
            .collect();
        PacedSection {
            notes: self.paced_notes.clone(),
            rows,
        }
    }

    /// How many cells will be measured (in each round).
    /// `backend`'s cells are not measured: its lab did not start (`why`).
    pub(super) fn mark_unavailable(&mut self, backend: Backend, why: &str) {
        let lat = self.latency.iter_mut().map(|c| (c.backend, &mut c.status));
        let tput = self
            .throughput
            .iter_mut()
            .map(|c| (c.backend, &mut c.status));
        for (b, status) in lat.chain(tput) {
            if b == backend && status.is_ok() {
                *status = CellStatus::Unavailable(why.to_string());
            }
        }
    }

    pub(super) fn live(&self) -> u64 {
        let lat = self.latency.iter().filter(|c| c.status.is_ok()).count();
        let tput = self.throughput.iter().filter(|c| c.status.is_ok()).count();
        (lat + tput) as u64
    }

    /// Measures one slice of every live cell. Within each group the backend that goes first
    /// rotates with `round`, so none always runs on a cold or warm machine.
    pub(super) fn measure_round(
        &mut self,
        round: u32,
        cfg: &BenchConfig,
        labs: &[BenchLab],
        pb: &ProgressBar,
    ) -> Result<()> {
        let lab_of = |b: Backend| {
            labs.iter()
                .find(|l| l.backend == b)
                .expect("available backends have labs")
        };
        let rounds = cfg.rounds.max(1);
        let per_round = cfg.round_trips.div_ceil(rounds as u64);
        let n = cfg.backends.len().max(1);
        for group in self.latency.chunks_mut(n) {
            for c in rotated_live(group, round) {
                pb.set_message(format!(
                    "latency {} {} {} B",
                    c.backend.name(),
                    c.scenario.name(),
                    c.payload
                ));
                measure_latency_slice(c, lab_of(c.backend), cfg, per_round)?;
                pb.inc(1);
            }
        }
        let tput_backends = cfg.backends.iter().filter(|b| !b.latency_only()).count();
        let n = tput_backends * cfg.flows.len().max(1);
        let slice = cfg.duration.div_f64(rounds as f64);
        for group in self.throughput.chunks_mut(n.max(1)) {
            for c in rotated_live(group, round) {
                pb.set_message(format!(
                    "throughput {} {} {} B x{}",
                    c.backend.name(),
                    c.scenario.name(),
                    c.payload,
                    c.flows
                ));
                measure_throughput_slice(c, lab_of(c.backend), slice)?;
                pb.inc(1);
            }
        }
        Ok(())
    }

    /// The cells as results.json reports them.
    pub(super) fn report(&self) -> (Vec<LatencyCell>, Vec<ThroughputCell>) {
        let latency = self.latency.iter().map(latency_cell).collect();
        let throughput = self.throughput.iter().map(throughput_cell).collect();
        (latency, throughput)
    }
}

/// The live cells of `group`, starting at position `round` (mod the group's size).
fn rotated_live<T, R>(
    group: &mut [Cell<T, R>],
    round: u32,
) -> impl Iterator<Item = &mut Cell<T, R>> {
    let k = round as usize % group.len().max(1);
    let (before, after) = group.split_at_mut(k);
    after
        .iter_mut()
        .chain(before.iter_mut())
        .filter(|c| c.status.is_ok())
}

fn measure_latency_slice(
    c: &mut Cell<RttStats, LatencyRound>,
    lab: &BenchLab,
    cfg: &BenchConfig,
    round_trips: u64,
) -> Result<()> {
    let (cl, sv) = (lab.client(), lab.server(c.scenario));
    let mut client = RttClient::new(&cl.ns, cl.ip, sv.ip, c.payload, cfg.timeout)?;
    let traced = lab.backend.traced();
    if traced {
        client.time_delivery()?;
    }
    let pinned = LoadPinned::new()?;
    lab.set_measuring(true);
    // The warm-up first, on its own, so the hop histograms below hold the measured trips only.
    let warm = measure_rtt_bounded(&mut client, cfg.warmup, 0);
    client.take_delivery();
    let hops0 = traced.then(|| lab.hops());
    let st = warm.and_then(|_| measure_rtt_bounded(&mut client, 0, round_trips));
    let hops = hops0.map(|h0| {
        let mut h = lab.hops().since(&h0);
        if let Some(d) = client.take_delivery() {
            h.hops.insert(super::hops::DELIVERY.into(), d);
        }
        h
    });
    lab.set_measuring(false);
    drop(pinned);
    if let Some(h) = hops {
        c.hops.get_or_insert_with(HopStats::default).merge(&h);
    }
    match st {
        Ok(st) => {
            c.acc.merge(&st);
            if let Some(f) = LatencyFigures::from_stats(&st) {
                c.rounds.push(LatencyRound::of(&f));
            }
        }
        Err(e) => c.status = CellStatus::Failed(e.to_string()),
    }
    Ok(())
}

fn measure_throughput_slice(
    c: &mut Cell<Throughput, ThroughputRound>,
    lab: &BenchLab,
    duration: Duration,
) -> Result<()> {
    let (cl, sv) = (lab.client(), lab.server(c.scenario));
    let pinned = LoadPinned::new()?;
    lab.set_measuring(true);
    let drops0 = drops_now(lab, &sv.ns);
    let sw0 = lab.switch_cpu();
    let m0 = cpu::MachineCpu::now()?;
    let t = measure_throughput(
        &cl.ns,
        cl.ip,
        &sv.ns,
        sv.ip,
        Load {
            flows: c.flows,
            payload: c.payload,
            duration,
            pace: Pace::from_rate(c.pace),
        },
    );
    let m1 = cpu::MachineCpu::now()?;
    let sw1 = lab.switch_cpu();
    let drops1 = drops_now(lab, &sv.ns);
    lab.set_measuring(false);
    drop(pinned);
    match t {
        Ok(t) => {
            c.acc.merge(&t);
            let machine = m1.since(m0);
            c.machine += machine;
            let switch = match (sw0, sw1) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
            if let Some(d) = switch {
                *c.switch_cpu.get_or_insert(Duration::ZERO) += d;
            }
            c.rounds.push(ThroughputRound::of(&ThroughputFigures::new(
                &t, machine, switch,
            )));
            c.drops.add(&drops1.since(&drops0));
        }
        Err(e) => c.status = CellStatus::Failed(format!("{e:#}")),
    }
    Ok(())
}

/// The lab's drop counters and the receiver's UDP buffer overruns, as of now.
fn drops_now(lab: &BenchLab, receiver: &mvdp_control::NetNs) -> DropSites {
    let mut d = lab.drop_sites();
    d.udp_rcvbuf = udp_rcvbuf_errors(receiver).ok();
    d
}

pub(super) fn measure_rtt_bounded(
    client: &mut RttClient,
    warmup: u64,
    count: u64,
) -> Result<RttStats> {
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

fn latency_cell(c: &Cell<RttStats, LatencyRound>) -> LatencyCell {
    let figures = c
        .status
        .is_ok()
        .then(|| LatencyFigures::from_stats(&c.acc))
        .flatten();
    let status = if c.status.is_ok() && figures.is_none() {
        CellStatus::Failed("no round trip came back".into())
    } else {
        c.status.clone()
    };
    LatencyCell {
        backend: c.backend.name(),
        scenario: c.scenario,
        payload: c.payload,
        status: status.to_string(),
        figures,
        rounds: c.rounds.clone(),
        hops: c.hops.clone(),
    }
}

fn throughput_cell(c: &Cell<Throughput, ThroughputRound>) -> ThroughputCell {
    let ok = c.status.is_ok();
    ThroughputCell {
        backend: c.backend.name(),
        scenario: c.scenario,
        payload: c.payload,
        flows: c.flows,
        status: c.status.to_string(),
        figures: ok.then(|| ThroughputFigures::new(&c.acc, c.machine, c.switch_cpu)),
        rounds: c.rounds.clone(),
        drops: ok.then_some(c.drops),
    }
}
