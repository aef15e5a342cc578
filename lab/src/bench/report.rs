//! What a run produced, as data (results.json) and as text (summary.md). Every figure is computed
//! from the measurements of this run; cells that could not be measured say why instead.

use serde::Serialize;

use super::topology::Scenario;
use super::udp::{RttStats, Throughput};

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub environment: Environment,
    pub config: ConfigReport,
    pub backends: Vec<BackendStatus>,
    pub latency: Vec<LatencyCell>,
    pub throughput: Vec<ThroughputCell>,
    pub ratios: Vec<Ratio>,
    /// The headline comparisons with OVS against their targets (empty without OVS backends).
    pub targets: Vec<super::targets::TargetCheck>,
    /// The ceiling forwarder's counters over the whole run (where its losses went).
    pub ceiling_counters: Option<super::ceiling::ForwardCounters>,
    /// Per mvdp backend: the dataplane's counters at the end of the run (`mvdp stats --json`).
    pub mvdp_stats: std::collections::BTreeMap<String, serde_json::Value>,
    /// Per OVS backend and port: `ovs-vsctl get interface PORT statistics` at the end of the run
    /// (OVS refreshes them every 5 s, so the last seconds may be missing).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ovs_statistics:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// The density scenario (`--ports`), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<super::density::report::DensityResults>,
    /// The broadcast-storm scenario (`--storm`), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<super::storm::report::StormResults>,
    /// Where mvdp's round trip goes, per latency cell of `mvdp-traced` (see `hops`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<super::hops::HopRow>,
    /// One-flow loss at the rate kernel macvlan delivered in this run (absent in scenario runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paced: Option<PacedSection>,
}

/// The paced phase: after the throughput cells, each one-flow kernel macvlan cell's delivered pps
/// (median over its rounds) is the pace for one-flow cells of mvdp, of the ceiling (container to
/// container) and of macvlan itself.
#[derive(Debug, Clone, Serialize)]
pub struct PacedSection {
    /// Why the phase, or part of it, was not measured.
    pub notes: Vec<String>,
    pub rows: Vec<PacedRow>,
}

/// One backend's one-flow cell paced at a kernel macvlan cell's rate.
#[derive(Debug, Clone, Serialize)]
pub struct PacedRow {
    /// The kernel macvlan backend whose delivered rate is the pace.
    pub reference: String,
    /// That backend's one-flow pps in each round of the throughput phase.
    pub reference_rounds_pps: Vec<f64>,
    /// The pace: the median of `reference_rounds_pps`, datagrams per second.
    pub rate_pps: f64,
    /// Sent minus received, in % of sent (null when not measured or nothing was sent).
    pub loss_pct: Option<f64>,
    /// The cell: sent, received, loss and drop sites as in `throughput`.
    #[serde(flatten)]
    pub cell: ThroughputCell,
}

impl PacedRow {
    pub fn new(
        reference: String,
        reference_rounds_pps: Vec<f64>,
        rate_pps: f64,
        cell: ThroughputCell,
    ) -> PacedRow {
        let loss_pct = cell
            .figures
            .as_ref()
            .filter(|f| f.sent_pkts > 0)
            .map(|f| f.loss_ratio * 100.0);
        PacedRow {
            reference,
            reference_rounds_pps,
            rate_pps,
            loss_pct,
            cell,
        }
    }
}

impl PacedSection {
    /// One line: whether every measured mvdp cell lost nothing at kernel macvlan's rate, and
    /// if not, which did and how much.
    pub fn mvdp_verdict(&self) -> String {
        let mvdp: Vec<(&PacedRow, &ThroughputFigures, f64)> = self
            .rows
            .iter()
            .filter(|r| r.cell.backend.starts_with("mvdp"))
            .filter_map(|r| Some((r, r.cell.figures.as_ref()?, r.loss_pct?)))
            .collect();
        if mvdp.is_empty() {
            return "mvdp's loss at kernel macvlan's rate: not measured.".into();
        }
        // Datagrams the receiving container's own UDP socket dropped (its buffer full): lost
        // after the switch, as kernel macvlan's receiver can lose them too.
        let at_receiver = |r: &PacedRow| {
            r.cell
                .drops
                .as_ref()
                .and_then(|d| d.udp_rcvbuf)
                .unwrap_or(0)
        };
        let lossy: Vec<String> = mvdp
            .iter()
            .filter(|(_, f, _)| f.recv_pkts < f.sent_pkts)
            .map(|(r, f, l)| {
                let lost = f.sent_pkts - f.recv_pkts;
                let rcv = at_receiver(r).min(lost);
                format!(
                    "{} {} {} B {l:.2} % ({lost} of {}{})",
                    r.cell.backend,
                    r.cell.scenario.name(),
                    r.cell.payload,
                    f.sent_pkts,
                    if rcv > 0 {
                        format!(", {rcv} of them at the receiver's UDP socket")
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        if lossy.is_empty() {
            return format!(
                "mvdp's loss at kernel macvlan's rate is 0 in all {} cell(s).",
                mvdp.len()
            );
        }
        let clean = mvdp
            .iter()
            .filter(|(r, f, _)| f.sent_pkts.saturating_sub(f.recv_pkts) <= at_receiver(r))
            .count();
        format!(
            "mvdp's loss at kernel macvlan's rate is not 0: {}. Before the receiving socket (in \
             the switch, its AF_XDP sockets and the veths) it is 0 in {clean} of {} cell(s).",
            lossy.join("; "),
            mvdp.len()
        )
    }
}

/// The median of `v`'s finite values (None when there are none).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub date_utc: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub command_line: String,
    pub mvdp_version: String,
    /// Versions of the crates on the measured paths, from Cargo.lock.
    pub crate_versions: std::collections::BTreeMap<String, String>,
    pub af_xdp: AfXdpEnv,
    pub cpu_method: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AfXdpEnv {
    /// mvdp's own settings: attach, bind, batch, UMEM, workers, poll mode.
    pub mvdp: String,
    pub xdp_program: String,
    pub xdp_attach_mode: String,
    pub bind_mode: String,
    pub batch_size: usize,
    pub frame_size: u32,
    pub umem_frames: u32,
    /// Open vSwitch's version and setup, when installed.
    pub ovs: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    pub quick: bool,
    pub round_trips_per_cell: u64,
    pub warmup_per_round: u64,
    pub rounds: u32,
    pub throughput_seconds_per_cell: f64,
    pub rtt_timeout_ms: u64,
    pub payloads: Vec<usize>,
    pub flows: Vec<usize>,
    /// Where the load generators and the dedicated-core switches ran (the same for every backend).
    pub cpus: super::pinning::CpuPlan,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    pub backend: String,
    /// "ok" or "unavailable: <reason>".
    pub status: String,
    /// CPU the switching threads used with no traffic, in % of one CPU (null for the kernel
    /// backends, which have none, and backends not built).
    pub idle_switch_cpu_pct: Option<f64>,
    /// The CPUs its switching threads may run on, as the kernel reports them (mvdp's workers,
    /// OVS's PMD threads or, without them, vswitchd's main thread); null where there are none.
    pub switch_cpus: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyCell {
    pub backend: String,
    pub scenario: Scenario,
    pub payload: usize,
    pub status: String,
    pub figures: Option<LatencyFigures>,
    /// Each round's (interleaved slice's) own figures.
    pub rounds: Vec<LatencyRound>,
    /// mvdp's per-hop histograms over the cell (`mvdp-traced` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<mvdp_switch::hops::HopStats>,
}

/// One round's latency figures of a cell.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyRound {
    pub p50_us: f64,
    pub p99_us: f64,
}

impl LatencyRound {
    pub fn of(f: &LatencyFigures) -> LatencyRound {
        LatencyRound {
            p50_us: f.p50_us,
            p99_us: f.p99_us,
        }
    }
}

/// One round's throughput figures of a cell.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ThroughputRound {
    pub pps: f64,
    pub ns_per_packet: f64,
}

impl ThroughputRound {
    pub fn of(f: &ThroughputFigures) -> ThroughputRound {
        ThroughputRound {
            pps: f.pps,
            ns_per_packet: f.cpu.ns_per_packet,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    pub round_trips: u64,
    pub received: u64,
    pub lost: u64,
    pub send_failed: u64,
    pub late: u64,
    pub loss_ratio: f64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// (quantile, µs) pairs for the CDF plot.
    pub cdf: Vec<(f64, f64)>,
}

impl LatencyFigures {
    /// None when nothing came back.
    pub fn from_stats(st: &RttStats) -> Option<LatencyFigures> {
        let h = &st.hist;
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let mut qs: Vec<f64> = (1..100).map(|i| i as f64 / 100.0).collect();
        qs.extend([0.995, 0.999, 0.9995, 0.9999, 1.0]);
        Some(LatencyFigures {
            round_trips: st.sent,
            received: h.len(),
            lost: st.lost,
            send_failed: st.send_failed,
            late: st.late,
            loss_ratio: (st.lost + st.send_failed) as f64 / st.sent.max(1) as f64,
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            cdf: qs
                .into_iter()
                .map(|q| (q, us(h.value_at_quantile(q))))
                .collect(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputCell {
    pub backend: String,
    pub scenario: Scenario,
    pub payload: usize,
    pub flows: usize,
    pub status: String,
    pub figures: Option<ThroughputFigures>,
    /// Each round's (interleaved slice's) own figures.
    pub rounds: Vec<ThroughputRound>,
    /// Where frames were dropped during the cell, per site (null sites: not observable for this
    /// backend). Sent minus received is the total loss; sites not listed (the kernel's own queues)
    /// make up the rest.
    pub drops: Option<super::drops::DropSites>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputFigures {
    pub duration_s: f64,
    pub sent_pkts: u64,
    pub send_errors: u64,
    pub recv_pkts: u64,
    pub recv_bytes: u64,
    pub loss_ratio: f64,
    pub pps: f64,
    /// UDP payload goodput.
    pub gbps: f64,
    pub cpu: CpuFigures,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuFigures {
    pub sender_ms: f64,
    pub receiver_ms: f64,
    /// System-wide softirq time over the cell (/proc/stat).
    pub softirq_ms: f64,
    /// Switching threads: the ceiling's forwarder, mvdp's workers; null where there are none.
    pub switch_ms: Option<f64>,
    /// Every CPU's busy time over the cell (/proc/stat): the cost. The four times above are a
    /// breakdown that overlaps (softirq run in a thread's context is in both), never summed.
    pub total_ms: f64,
    /// total CPU / packets received.
    pub ns_per_packet: f64,
}

impl ThroughputFigures {
    pub fn new(
        t: &Throughput,
        machine: super::cpu::MachineCpu,
        switch: Option<std::time::Duration>,
    ) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let (total, softirq) = (machine.busy, machine.softirq);
        ThroughputFigures {
            duration_s: t.duration.as_secs_f64(),
            sent_pkts: t.sent_pkts,
            send_errors: t.send_errors,
            recv_pkts: t.recv_pkts,
            recv_bytes: t.recv_bytes,
            loss_ratio: if t.sent_pkts == 0 {
                0.0
            } else {
                1.0 - (t.recv_pkts as f64 / t.sent_pkts as f64).min(1.0)
            },
            pps: t.pps(),
            gbps: t.gbps(),
            cpu: CpuFigures {
                sender_ms: ms(t.sender_cpu),
                receiver_ms: ms(t.receiver_cpu),
                softirq_ms: ms(softirq),
                switch_ms: switch.map(ms),
                total_ms: ms(total),
                ns_per_packet: if t.recv_pkts == 0 {
                    0.0
                } else {
                    total.as_nanos() as f64 / t.recv_pkts as f64
                },
            },
        }
    }
}

/// numerator / denominator for one metric of one cell, measured in this run.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub metric: &'static str,
    pub scenario: Scenario,
    pub payload: usize,
    pub flows: Option<usize>,
    pub numerator: String,
    pub denominator: String,
    /// None when either side was not measured (see `note`).
    pub value: Option<f64>,
    pub note: String,
    /// The ratio in each round both sides measured (a round is one interleaved pass over the backends).
    pub per_round: Vec<f64>,
    /// Median, min and max of `per_round`.
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Whether every round agrees with every other within 10 % (max ≤ 1.1 × min); null with
    /// fewer than two rounds.
    pub rounds_agree_10pct: Option<bool>,
}

/// How far apart rounds may be and still agree.
pub const AGREE_WITHIN: f64 = 0.10;

impl Ratio {
    /// Fills the spread fields from `per_round`.
    fn set_rounds(&mut self, per_round: Vec<f64>) {
        let mut v: Vec<f64> = per_round
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        self.median = median(&v);
        self.min = v.first().copied();
        self.max = v.last().copied();
        self.rounds_agree_10pct = match (v.len(), self.min, self.max) {
            (n, Some(lo), Some(hi)) if n >= 2 => Some(hi <= lo * (1.0 + AGREE_WITHIN)),
            _ => None,
        };
        self.per_round = per_round;
    }
}

impl Results {
    fn latency(&self, backend: &str, sc: Scenario, payload: usize) -> Option<&LatencyCell> {
        self.latency
            .iter()
            .find(|c| c.backend == backend && c.scenario == sc && c.payload == payload)
    }
    fn throughput(
        &self,
        backend: &str,
        sc: Scenario,
        payload: usize,
        flows: usize,
    ) -> Option<&ThroughputCell> {
        self.throughput.iter().find(|c| {
            c.backend == backend && c.scenario == sc && c.payload == payload && c.flows == flows
        })
    }

    /// One figure of `backend`'s latency cell `key`.
    fn latency_figure(
        &self,
        backend: &str,
        key: CellKey,
        f: fn(&LatencyFigures) -> f64,
    ) -> Result<f64, NoFigure> {
        let c = self
            .latency(backend, key.scenario, key.payload)
            .ok_or(NoFigure::NotRun)?;
        c.figures
            .as_ref()
            .map(f)
            .ok_or_else(|| NoFigure::NotMeasured(c.status.clone()))
    }

    /// One figure of `backend`'s throughput cell `key`.
    fn throughput_figure(
        &self,
        backend: &str,
        key: CellKey,
        f: fn(&ThroughputFigures) -> f64,
    ) -> Result<f64, NoFigure> {
        let c = self
            .throughput(backend, key.scenario, key.payload, key.flows.unwrap_or(1))
            .ok_or(NoFigure::NotRun)?;
        c.figures
            .as_ref()
            .map(f)
            .ok_or_else(|| NoFigure::NotMeasured(c.status.clone()))
    }

    /// Every (scenario, payload) with a latency cell, sorted.
    fn latency_keys(&self) -> Vec<CellKey> {
        let mut v: Vec<_> = self
            .latency
            .iter()
            .map(|c| (c.scenario, c.payload))
            .collect();
        v.sort();
        v.dedup();
        v.into_iter()
            .map(|(scenario, payload)| CellKey {
                scenario,
                payload,
                flows: None,
            })
            .collect()
    }

    /// Every (scenario, payload, flows) with a throughput cell, sorted.
    fn throughput_keys(&self) -> Vec<CellKey> {
        let mut v: Vec<_> = self
            .throughput
            .iter()
            .map(|c| (c.scenario, c.payload, c.flows))
            .collect();
        v.sort();
        v.dedup();
        v.into_iter()
            .map(|(scenario, payload, flows)| CellKey {
                scenario,
                payload,
                flows: Some(flows),
            })
            .collect()
    }

    /// `n / d` for each latency metric, over every latency cell both have.
    fn latency_ratios(&self, n: &str, d: &str) -> Vec<Ratio> {
        let mut out = Vec::new();
        for key in self.latency_keys() {
            let has = |b| self.latency(b, key.scenario, key.payload).is_some();
            if !has(n) || !has(d) {
                continue;
            }
            for (metric, f, r) in LATENCY_METRICS {
                let (a, b) = (
                    self.latency_figure(n, key, f),
                    self.latency_figure(d, key, f),
                );
                let mut x = ratio(metric, key, n, d, a, b);
                let rounds = |be: &str| {
                    self.latency(be, key.scenario, key.payload)
                        .map(|c| c.rounds.iter().map(r).collect::<Vec<_>>())
                        .unwrap_or_default()
                };
                x.set_rounds(divide_rounds(&rounds(n), &rounds(d)));
                out.push(x);
            }
        }
        out
    }

    /// `n / d` for each of `metrics`, over every throughput cell both have.
    fn throughput_ratios(&self, n: &str, d: &str, metrics: &[ThroughputMetric]) -> Vec<Ratio> {
        let mut out = Vec::new();
        for key in self.throughput_keys() {
            let flows = key.flows.unwrap_or(1);
            let has = |b| {
                self.throughput(b, key.scenario, key.payload, flows)
                    .is_some()
            };
            if !has(n) || !has(d) {
                continue;
            }
            for &(metric, f, r) in metrics {
                let a = self.throughput_figure(n, key, f);
                let b = self.throughput_figure(d, key, f);
                let mut x = ratio(metric, key, n, d, a, b);
                let rounds = |be: &str| {
                    self.throughput(be, key.scenario, key.payload, flows)
                        .map(|c| c.rounds.iter().map(r).collect::<Vec<_>>())
                        .unwrap_or_default()
                };
                x.set_rounds(divide_rounds(&rounds(n), &rounds(d)));
                out.push(x);
            }
        }
        out
    }

    /// Fills `ratios` for every (numerator, denominator) pair given, over every cell both have:
    /// latency and throughput metrics for `pairs`, pps only for `pps_pairs`.
    pub fn compute_ratios(&mut self, pairs: &[(String, String)], pps_pairs: &[(String, String)]) {
        let mut out = Vec::new();
        for (n, d) in pairs {
            out.extend(self.latency_ratios(n, d));
            out.extend(self.throughput_ratios(n, d, &THROUGHPUT_METRICS));
        }
        for (n, d) in pps_pairs {
            out.extend(self.throughput_ratios(n, d, &PPS_ONLY));
        }
        self.ratios = out;
    }
}

/// Why one side of a ratio has no figure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NoFigure {
    #[error("not run")]
    NotRun,
    /// The cell's status ("unavailable: …", "n/a: …", "failed: …").
    #[error("{0}")]
    NotMeasured(String),
}

/// The cell a ratio compares: the same scenario, payload and (throughput) flows on both sides.
#[derive(Debug, Clone, Copy)]
struct CellKey {
    scenario: Scenario,
    payload: usize,
    flows: Option<usize>,
}

/// A metric: its name, and how to read it from a cell's figures and from one round's.
type LatencyMetric = (
    &'static str,
    fn(&LatencyFigures) -> f64,
    fn(&LatencyRound) -> f64,
);
type ThroughputMetric = (
    &'static str,
    fn(&ThroughputFigures) -> f64,
    fn(&ThroughputRound) -> f64,
);

const LATENCY_METRICS: [LatencyMetric; 2] = [
    ("p50", |f| f.p50_us, |r| r.p50_us),
    ("p99", |f| f.p99_us, |r| r.p99_us),
];
const THROUGHPUT_METRICS: [ThroughputMetric; 2] = [
    ("pps", |f| f.pps, |r| r.pps),
    (
        "cpu_ns_per_packet",
        |f| f.cpu.ns_per_packet,
        |r| r.ns_per_packet,
    ),
];
const PPS_ONLY: [ThroughputMetric; 1] = [("pps", |f| f.pps, |r| r.pps)];

/// `n[i] / d[i]` for every round both have (a zero denominator gives no ratio for that round).
fn divide_rounds(n: &[f64], d: &[f64]) -> Vec<f64> {
    n.iter()
        .zip(d)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect()
}

/// `metric` of `n` over `d` for cell `key`, or a note saying which side is missing and why.
fn ratio(
    metric: &'static str,
    key: CellKey,
    n: &str,
    d: &str,
    a: Result<f64, NoFigure>,
    b: Result<f64, NoFigure>,
) -> Ratio {
    let (value, note) = match (a, b) {
        (Ok(a), Ok(b)) if b > 0.0 => (Some(a / b), String::new()),
        (Ok(_), Ok(_)) => (None, format!("{d} measured zero")),
        (Err(e), _) => (None, format!("{n}: {e}")),
        (_, Err(e)) => (None, format!("{d}: {e}")),
    };
    Ratio {
        metric,
        scenario: key.scenario,
        payload: key.payload,
        flows: key.flows,
        numerator: n.to_string(),
        denominator: d.to_string(),
        value,
        note,
        per_round: Vec::new(),
        median: None,
        min: None,
        max: None,
        rounds_agree_10pct: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn results(latencies: &[(&str, Option<u64>)], pps: &[(&str, Option<u64>)]) -> Results {
        let lat_cell = |b: &str, p50_ns: Option<u64>| {
            let figures = p50_ns.and_then(|ns| {
                let mut st = RttStats::new();
                for _ in 0..100 {
                    st.hist.record(ns).unwrap();
                }
                st.sent = 100;
                LatencyFigures::from_stats(&st)
            });
            LatencyCell {
                backend: b.into(),
                scenario: Scenario::ContainerContainer,
                payload: 64,
                status: if figures.is_some() {
                    "ok".into()
                } else {
                    "unavailable: not built".into()
                },
                rounds: figures.iter().map(LatencyRound::of).collect(),
                figures,
                hops: None,
            }
        };
        let tp_cell = |b: &str, pkts: Option<u64>| ThroughputCell {
            backend: b.into(),
            scenario: Scenario::ContainerContainer,
            payload: 64,
            flows: 1,
            status: if pkts.is_some() {
                "ok".into()
            } else {
                "unavailable: not built".into()
            },
            rounds: Vec::new(),
            drops: None,
            figures: pkts.map(|n| {
                let t = Throughput {
                    duration: Duration::from_secs(1),
                    sent_pkts: n,
                    recv_pkts: n,
                    recv_bytes: n * 64,
                    sender_cpu: Duration::from_millis(100),
                    receiver_cpu: Duration::from_millis(100),
                    ..Default::default()
                };
                let machine = crate::bench::cpu::MachineCpu {
                    busy: Duration::from_millis(200),
                    softirq: Duration::ZERO,
                };
                ThroughputFigures::new(&t, machine, None)
            }),
        };
        Results {
            environment: crate::bench::env::collect("test".into()),
            config: ConfigReport {
                quick: true,
                round_trips_per_cell: 100,
                warmup_per_round: 0,
                rounds: 1,
                throughput_seconds_per_cell: 1.0,
                rtt_timeout_ms: 10,
                payloads: vec![64],
                flows: vec![1],
                cpus: crate::bench::pinning::CpuPlan::default_for(2),
            },
            backends: Vec::new(),
            latency: latencies.iter().map(|(b, v)| lat_cell(b, *v)).collect(),
            throughput: pps.iter().map(|(b, v)| tp_cell(b, *v)).collect(),
            ratios: Vec::new(),
            targets: Vec::new(),
            ceiling_counters: None,
            mvdp_stats: Default::default(),
            ovs_statistics: Default::default(),
            density: None,
            storm: None,
            hops: Vec::new(),
            paced: None,
        }
    }

    #[test]
    fn round_spreads_give_median_range_and_a_verdict() {
        let mut x = ratio(
            "p50",
            CellKey {
                scenario: Scenario::ContainerContainer,
                payload: 64,
                flows: None,
            },
            "a",
            "b",
            Ok(1.0),
            Ok(2.0),
        );
        x.set_rounds(divide_rounds(&[1.0, 1.2, 1.1], &[2.0, 2.0, 2.0]));
        assert_eq!(x.per_round.len(), 3);
        assert!((x.median.unwrap() - 0.55).abs() < 1e-9);
        assert!((x.min.unwrap() - 0.5).abs() < 1e-9 && (x.max.unwrap() - 0.6).abs() < 1e-9);
        assert_eq!(x.rounds_agree_10pct, Some(false), "0.6 is 20 % above 0.5");
        x.set_rounds(vec![1.0, 1.05]);
        assert_eq!(x.rounds_agree_10pct, Some(true));
        assert!((x.median.unwrap() - 1.025).abs() < 1e-9);
        x.set_rounds(vec![1.0]);
        assert_eq!(
            x.rounds_agree_10pct, None,
            "one round cannot agree with itself"
        );
        assert_eq!(divide_rounds(&[1.0, 2.0], &[0.0, 4.0]), vec![0.5]);
    }

    #[test]
    fn ratios_divide_measured_figures_and_explain_missing_ones() {
        let mut r = results(
            &[("a", Some(20_000)), ("b", Some(40_000)), ("m", None)],
            &[("a", Some(3_000)), ("b", Some(1_000)), ("m", None)],
        );
        r.compute_ratios(&[("a".into(), "b".into()), ("m".into(), "b".into())], &[]);
        let get = |metric: &str, n: &str| {
            r.ratios
                .iter()
                .find(|x| x.metric == metric && x.numerator == n)
                .unwrap()
                .clone()
        };
        let p50 = get("p50", "a").value.unwrap();
        assert!((p50 - 0.5).abs() < 0.01, "{p50}");
        assert!((get("pps", "a").value.unwrap() - 3.0).abs() < 1e-9);
        // Same CPU over 3x the packets.
        assert!((get("cpu_ns_per_packet", "a").value.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        let missing = get("p99", "m");
        assert!(missing.value.is_none());
        assert!(missing.note.contains("unavailable"), "{}", missing.note);

        let md = r.summary_markdown();
        assert!(
            md.contains("| p50 | container_container | 64 B | - | a / b | 0.50"),
            "{md}"
        );
        assert!(md.contains("m / b: m unavailable (see Backends)"), "{md}");
    }

    #[test]
    fn the_paced_verdict_names_every_lossy_mvdp_cell_and_only_mvdp() {
        let row = |b: &str, sent: u64, recv: u64| {
            let mut cell = results(&[], &[(b, Some(recv))]).throughput.remove(0);
            if let Some(f) = cell.figures.as_mut() {
                f.sent_pkts = sent;
                f.loss_ratio = 1.0 - recv as f64 / sent as f64;
            }
            PacedRow::new("macvlan-bridge".into(), vec![1000.0], 1000.0, cell)
        };
        let mut p = PacedSection {
            notes: Vec::new(),
            rows: vec![
                row("mvdp-bridge", 1000, 1000),
                row("macvlan-bridge", 1000, 990),
            ],
        };
        assert_eq!(p.rows[1].loss_pct.map(|l| (l * 100.0).round()), Some(100.0));
        let v = p.mvdp_verdict();
        assert!(v.contains("is 0 in all 1 cell"), "{v}");
        p.rows.push(row("mvdp-busy", 1000, 900));
        let v = p.mvdp_verdict();
        assert!(
            v.contains("is not 0") && v.contains("mvdp-busy") && v.contains("(100 of 1000)"),
            "{v}"
        );
        assert!(!v.contains("macvlan-bridge"), "{v}");
        assert!(v.contains("it is 0 in 1 of 2 cell(s)"), "{v}");
        // Loss that is all the receiver's full socket buffer is not the switch's.
        let mut at_socket = row("mvdp-busy", 1000, 950);
        at_socket.cell.drops = Some(crate::bench::drops::DropSites {
            udp_rcvbuf: Some(50),
            ..Default::default()
        });
        p.rows.push(at_socket);
        let v = p.mvdp_verdict();
        assert!(
            v.contains("(50 of 1000, 50 of them at the receiver's UDP socket)"),
            "{v}"
        );
        assert!(v.contains("it is 0 in 2 of 3 cell(s)"), "{v}");
        p.rows.clear();
        assert!(p.mvdp_verdict().contains("not measured"));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(median(&[]), None);
    }
}
