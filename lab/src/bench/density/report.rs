//! The density section of results.json and summary.md: one row per (N, backend), ratios against
//! the smallest N of the same backend and mvdp against kernel macvlan at each N, and the issue's
//! targets checked at the largest N.

use std::fmt::Write as _;

use serde::Serialize;

use super::measure::{DaemonCpu, Memory, OpTimes, Reach};
use crate::bench::report::{LatencyFigures, ThroughputFigures};

/// Daemon RSS target.
pub const RSS_TARGET_MIB: f64 = 128.0;
/// Port add and remove p99 target.
pub const PORT_OP_TARGET_MS: f64 = 20.0;
/// pps and RTT p50 at N within this of the smallest N's.
pub const DENSITY_TOLERANCE: f64 = 0.10;

#[derive(Debug, Clone, Serialize)]
pub struct DensityResults {
    /// Port counts measured, ascending.
    pub ports: Vec<u32>,
    pub payload: usize,
    pub round_trips: u64,
    pub throughput_seconds: f64,
    /// Slices each busy-pair cell is measured in, the backends interleaved.
    pub rounds: u32,
    /// Sampled pairs probed both ways at each N.
    pub sampled_pairs: u32,
    /// Idle ports removed and added again at each N.
    pub churn: u32,
    pub method: String,
    /// Which CPUs mvdp's worker and the busy pair's load ran on.
    pub cpus: String,
    pub rows: Vec<DensityRow>,
    pub ratios: Vec<DensityRatio>,
    pub targets: Vec<Target>,
}

/// One backend at N ports.
#[derive(Debug, Clone, Serialize)]
pub struct DensityRow {
    pub backend: String,
    pub ports: u32,
    /// "ok", or "failed: …" (then the figures it did not get are null).
    pub status: String,
    pub latency: Option<LatencyFigures>,
    pub throughput: Option<ThroughputFigures>,
    /// The port adds that took the lab from the previous N to this one.
    pub add: Option<OpTimes>,
    /// Idle ports removed at N ...
    pub churn_remove: Option<OpTimes>,
    /// ... and added again.
    pub churn_add: Option<OpTimes>,
    pub reach: Option<Reach>,
    /// The mvdp daemon process's memory (null for kernel macvlan).
    pub daemon_memory: Option<Memory>,
    /// The daemon's CPU time while the busy pair was measured (null for kernel macvlan).
    pub daemon_cpu: Option<DaemonCpu>,
    /// The daemon's `capacity` and `umem` from `mvdp stats`.
    pub mvdp_capacity: Option<serde_json::Value>,
    pub mvdp_umem: Option<serde_json::Value>,
}

impl DensityRow {
    pub fn new(backend: String, ports: u32) -> DensityRow {
        DensityRow {
            backend,
            ports,
            status: "ok".into(),
            latency: None,
            throughput: None,
            add: None,
            churn_remove: None,
            churn_add: None,
            reach: None,
            daemon_memory: None,
            daemon_cpu: None,
            mvdp_capacity: None,
            mvdp_umem: None,
        }
    }

    /// Records a failure (the first one is kept).
    pub fn fail(&mut self, e: &anyhow::Error) {
        if self.status == "ok" {
            self.status = format!("failed: {e:#}");
        }
    }

    fn metric(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::Pps => self.throughput.as_ref().map(|t| t.pps),
            Metric::P50 => self.latency.as_ref().map(|l| l.p50_us),
            Metric::P99 => self.latency.as_ref().map(|l| l.p99_us),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Pps,
    P50,
    P99,
}

impl Metric {
    const ALL: [Metric; 3] = [Metric::Pps, Metric::P50, Metric::P99];
}

/// `numerator` at `ports` over `denominator` at `denominator_ports`, for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct DensityRatio {
    pub metric: Metric,
    pub numerator: String,
    pub ports: u32,
    pub denominator: String,
    pub denominator_ports: u32,
    /// Null when either side has no figure.
    pub value: Option<f64>,
}

/// One of the targets, checked on mvdp at the largest N of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub ports: u32,
    pub measured: String,
    /// Null when it could not be checked.
    pub holds: Option<bool>,
}

fn find<'a>(rows: &'a [DensityRow], backend: &str, ports: u32) -> Option<&'a DensityRow> {
    rows.iter()
        .find(|r| r.backend == backend && r.ports == ports)
}

fn ratio(m: Metric, n: &DensityRow, d: Option<&DensityRow>, dn: &str, dp: u32) -> DensityRatio {
    let value = match (n.metric(m), d.and_then(|d| d.metric(m))) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    DensityRatio {
        metric: m,
        numerator: n.backend.clone(),
        ports: n.ports,
        denominator: dn.to_string(),
        denominator_ports: dp,
        value,
    }
}

/// Every row against the smallest N of its backend, and `mvdp` against `macvlan` at each N.
pub fn ratios(rows: &[DensityRow], ports: &[u32], mvdp: &str, macvlan: &str) -> Vec<DensityRatio> {
    let base = ports.first().copied().unwrap_or(2);
    let mut out = Vec::new();
    for r in rows {
        for m in Metric::ALL {
            out.push(ratio(m, r, find(rows, &r.backend, base), &r.backend, base));
            if r.backend == mvdp {
                out.push(ratio(m, r, find(rows, macvlan, r.ports), macvlan, r.ports));
            }
        }
    }
    out
}

/// A ratio of `ratios`.
fn ratio_of(ratios: &[DensityRatio], m: Metric, n: &str, p: u32, d: &str, dp: u32) -> Option<f64> {
    ratios
        .iter()
        .find(|r| {
            r.metric == m
                && r.numerator == n
                && r.ports == p
                && r.denominator == d
                && r.denominator_ports == dp
        })
        .and_then(|r| r.value)
}

/// The targets for `mvdp` at the largest N of `ports`.
pub fn targets(
    rows: &[DensityRow],
    ratios: &[DensityRatio],
    ports: &[u32],
    mvdp: &str,
) -> Vec<Target> {
    let (Some(&base), Some(&top)) = (ports.first(), ports.last()) else {
        return Vec::new();
    };
    let row = find(rows, mvdp, top);
    let target = |t: String, measured: String, holds: Option<bool>| Target {
        target: t,
        ports: top,
        measured,
        holds,
    };
    let within = |m: Metric, ok: fn(f64) -> bool| {
        let v = ratio_of(ratios, m, mvdp, top, mvdp, base);
        let shown = v.map_or("not measured".into(), |v| {
            format!("{v:.3}x the {base}-port figure")
        });
        (shown, v.map(ok))
    };
    let tol = DENSITY_TOLERANCE;
    let (pps, pps_ok) = within(Metric::Pps, |v| v >= 1.0 - DENSITY_TOLERANCE);
    let (p50, p50_ok) = within(Metric::P50, |v| v <= 1.0 + DENSITY_TOLERANCE);
    let mut out = vec![
        target(
            format!("pps within {:.0} % of {base} ports", tol * 100.0),
            pps,
            pps_ok,
        ),
        target(
            format!("RTT p50 within {:.0} % of {base} ports", tol * 100.0),
            p50,
            p50_ok,
        ),
    ];
    let rss = row
        .and_then(|r| r.daemon_memory)
        .map(|m| m.rss_kib as f64 / 1024.0);
    out.push(target(
        format!("daemon RSS <= {RSS_TARGET_MIB} MiB"),
        rss.map_or("not measured".into(), |v| format!("{v:.1} MiB")),
        rss.map(|v| v <= RSS_TARGET_MIB),
    ));
    let reach = row.and_then(|r| r.reach.as_ref());
    out.push(target(
        "every sampled port reachable".into(),
        reach.map_or("not measured".into(), |r| {
            format!("{}/{} probes answered", r.answered, r.probed)
        }),
        reach.map(|r| r.probed > 0 && r.answered == r.probed),
    ));
    for (what, times) in [
        ("port add p99 (ramp to N)", row.and_then(|r| r.add)),
        ("port add p99 (at N)", row.and_then(|r| r.churn_add)),
        ("port remove p99 (at N)", row.and_then(|r| r.churn_remove)),
    ] {
        out.push(target(
            format!("{what} <= {PORT_OP_TARGET_MS} ms"),
            times.map_or("not measured".into(), |t| {
                format!("{:.2} ms over {}", t.p99_ms, t.count)
            }),
            times.map(|t| t.p99_ms <= PORT_OP_TARGET_MS),
        ));
    }
    out
}

impl DensityResults {
    /// The density section of summary.md.
    pub fn write_markdown(&self, s: &mut String, mvdp: &str, macvlan: &str) {
        let _ = writeln!(
            s,
            "\n## Density (busy pair: containers 1 and 2; every other port idle)\n\n{} round trips and {:.1} s of one flow per cell ({} slices, backends interleaved), {} B UDP; {} sampled pairs probed both ways; up to {} idle ports removed and added again at each N.\n",
            self.round_trips,
            self.throughput_seconds,
            self.rounds,
            self.payload,
            self.sampled_pairs,
            self.churn
        );
        let base = self.ports.first().copied().unwrap_or(2);
        let _ = writeln!(
            s,
            "| N | backend | pps | RTT p50 µs | RTT p99 µs | daemon RSS MiB | add p50/p99 ms | remove p50/p99 ms | reachable | pps ÷ N={base} | p50 ÷ N={base} | pps ÷ {macvlan} | p50 ÷ {macvlan} |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.rows {
            let _ = writeln!(s, "{}", self.row_line(r, base, mvdp, macvlan));
        }
        let _ = writeln!(
            s,
            "\n{macvlan}'s figures do not depend on idle ports, so its ratios against its own N={base} show how much this machine drifts between cells; read {mvdp}'s against them."
        );
        let failed: Vec<_> = self.rows.iter().filter(|r| r.status != "ok").collect();
        for r in failed {
            let _ = writeln!(s, "\n- {} at {} ports: {}", r.backend, r.ports, r.status);
        }
        self.write_daemon(s, mvdp);
        self.write_targets(s, mvdp);
    }

    /// The mvdp daemon's memory and CPU at each N.
    fn write_daemon(&self, s: &mut String, mvdp: &str) {
        let _ = writeln!(
            s,
            "\n### The {mvdp} daemon process\n\n| N | RSS MiB | anon | file | shmem | HWM MiB | workers' CPU ms | other threads' CPU ms | over s |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
        for r in self.rows.iter().filter(|r| r.backend == mvdp) {
            let mem = r
                .daemon_memory
                .map_or("| - | - | - | - | - |".to_string(), |m| {
                    format!(
                        "| {} | {} | {} | {} | {} |",
                        mib(m.rss_kib),
                        mib(m.anon_kib),
                        mib(m.file_kib),
                        mib(m.shmem_kib),
                        mib(m.hwm_kib)
                    )
                });
            let cpu = r.daemon_cpu.map_or(" - | - | - |".to_string(), |c| {
                format!(
                    " {:.0} | {:.0} | {:.1} |",
                    c.workers_ms, c.others_ms, c.seconds
                )
            });
            let _ = writeln!(s, "| {} {mem}{cpu}", r.ports);
        }
    }

    fn row_line(&self, r: &DensityRow, base: u32, mvdp: &str, macvlan: &str) -> String {
        let f = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
        let times = |t: Option<OpTimes>| {
            t.map_or("-".to_string(), |t| {
                format!("{:.2}/{:.2}", t.p50_ms, t.p99_ms)
            })
        };
        let q = |m, d: &str, dp| f(ratio_of(&self.ratios, m, &r.backend, r.ports, d, dp), 3);
        let (vs_pps, vs_p50) = if r.backend == mvdp {
            (
                q(Metric::Pps, macvlan, r.ports),
                q(Metric::P50, macvlan, r.ports),
            )
        } else {
            ("".into(), "".into())
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {vs_pps} | {vs_p50} |",
            r.ports,
            r.backend,
            f(r.metric(Metric::Pps), 0),
            f(r.metric(Metric::P50), 1),
            f(r.metric(Metric::P99), 1),
            f(r.daemon_memory.map(|m| m.rss_kib as f64 / 1024.0), 1),
            times(r.add),
            times(r.churn_remove),
            r.reach
                .as_ref()
                .map_or("-".into(), |x| format!("{}/{}", x.answered, x.probed)),
            q(Metric::Pps, &r.backend, base),
            q(Metric::P50, &r.backend, base),
        )
    }

    fn write_targets(&self, s: &mut String, mvdp: &str) {
        let _ = writeln!(
            s,
            "\n### Targets ({mvdp})\n\n| target | N | measured | holds |\n|---|---:|---|---|"
        );
        for t in &self.targets {
            let holds = match t.holds {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not checked",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {holds} |",
                t.target, t.ports, t.measured
            );
        }
        let _ = writeln!(s, "\n{} CPUs: {}.", self.method, self.cpus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::udp::{RttStats, Throughput};
    use std::time::Duration;

    fn row(backend: &str, ports: u32, pps: u64, p50_ns: u64) -> DensityRow {
        let mut r = DensityRow::new(backend.into(), ports);
        let mut st = RttStats::new();
        for _ in 0..10 {
            st.hist.record(p50_ns).unwrap();
        }
        st.sent = 10;
        r.latency = LatencyFigures::from_stats(&st);
        let t = Throughput {
            duration: Duration::from_secs(1),
            sent_pkts: pps,
            recv_pkts: pps,
            recv_bytes: pps * 64,
            ..Default::default()
        };
        r.throughput = Some(ThroughputFigures::new(&t, Default::default(), None));
        r.daemon_memory = (backend == "m").then_some(Memory {
            rss_kib: 64 * 1024,
            hwm_kib: 70 * 1024,
            anon_kib: 0,
            file_kib: 0,
            shmem_kib: 0,
        });
        let ms = |v: u64| (1..=v).map(Duration::from_millis).collect::<Vec<_>>();
        r.add = OpTimes::of(&ms(5));
        r.churn_add = OpTimes::of(&ms(5));
        r.churn_remove = OpTimes::of(&ms(30));
        r
    }

    #[test]
    fn ratios_and_targets_come_from_the_rows() {
        let rows = vec![
            row("m", 2, 100_000, 40_000),
            row("k", 2, 50_000, 20_000),
            row("m", 1000, 95_000, 48_000),
            row("k", 1000, 50_000, 20_000),
        ];
        let ports = [2, 1000];
        let r = ratios(&rows, &ports, "m", "k");
        let pps = ratio_of(&r, Metric::Pps, "m", 1000, "m", 2).unwrap();
        assert!((pps - 0.95).abs() < 1e-9, "{pps}");
        let vs = ratio_of(&r, Metric::Pps, "m", 1000, "k", 1000).unwrap();
        assert!((vs - 1.9).abs() < 1e-9, "{vs}");
        let t = targets(&rows, &r, &ports, "m");
        let holds = |name: &str| t.iter().find(|t| t.target.starts_with(name)).unwrap().holds;
        assert_eq!(holds("pps within"), Some(true));
        assert_eq!(
            holds("RTT p50 within"),
            Some(false),
            "48 vs 40 µs is 20 % worse"
        );
        assert_eq!(holds("daemon RSS"), Some(true));
        assert_eq!(holds("every sampled"), None, "no reachability measured");
        assert_eq!(holds("port remove"), Some(false));
        assert_eq!(holds("port add p99 (at N)"), Some(true));
    }
}
