//! The headline comparisons with Open vSwitch, checked against their targets in one run:
//! mvdp-busy's p50 and p99 at most OVS-PMD's; adaptive mvdp's p50 at most half OVS-nonpmd's with
//! idle CPU near zero; mvdp's pps at least OVS's at equal or lower CPU per packet.

use std::fmt::Write as _;

use serde::Serialize;

use super::report::{Ratio, Results};
use super::topology::Scenario;

/// Idle switch CPU (in % of one CPU) that still counts as "~0" (one 10 ms clock tick in a 0.5 s
/// window is 2 %).
pub const IDLE_NEAR_ZERO_PCT: f64 = 2.0;

/// One target, checked on one cell.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub target: &'static str,
    pub metric: &'static str,
    pub scenario: Option<Scenario>,
    pub payload: Option<usize>,
    pub flows: Option<usize>,
    pub numerator: String,
    pub denominator: String,
    /// The ratio must be at most (`at_most`) or at least this.
    pub bound: f64,
    pub at_most: bool,
    /// The ratio of the whole cells (or, for idle CPU, the % of one CPU).
    pub value: Option<f64>,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub rounds_agree_10pct: Option<bool>,
    /// None when either side was not measured.
    pub met: Option<bool>,
}

/// (target, numerator, denominator, metric, bound, at most).
const RATIO_TARGETS: [(&str, &str, &str, &str, f64, bool); 6] = [
    (
        "mvdp-busy p50 <= OVS-PMD p50",
        "mvdp-busy",
        "ovs-afxdp",
        "p50",
        1.0,
        true,
    ),
    (
        "mvdp-busy p99 <= OVS-PMD p99",
        "mvdp-busy",
        "ovs-afxdp",
        "p99",
        1.0,
        true,
    ),
    (
        "mvdp p50 <= 0.5 x OVS-nonpmd p50",
        "mvdp-bridge",
        "ovs-afxdp-nonpmd",
        "p50",
        0.5,
        true,
    ),
    (
        "mvdp-busy pps >= OVS-PMD pps",
        "mvdp-busy",
        "ovs-afxdp",
        "pps",
        1.0,
        false,
    ),
    (
        "mvdp-busy CPU/pkt <= OVS-PMD CPU/pkt",
        "mvdp-busy",
        "ovs-afxdp",
        "cpu_ns_per_packet",
        1.0,
        true,
    ),
    (
        "mvdp pps >= OVS-nonpmd pps",
        "mvdp-bridge",
        "ovs-afxdp-nonpmd",
        "pps",
        1.0,
        false,
    ),
];

fn check(target: &'static str, r: &Ratio, bound: f64, at_most: bool) -> TargetCheck {
    TargetCheck {
        target,
        metric: r.metric,
        scenario: Some(r.scenario),
        payload: Some(r.payload),
        flows: r.flows,
        numerator: r.numerator.clone(),
        denominator: r.denominator.clone(),
        bound,
        at_most,
        value: r.value,
        median: r.median,
        min: r.min,
        max: r.max,
        rounds_agree_10pct: r.rounds_agree_10pct,
        met: r
            .value
            .map(|v| if at_most { v <= bound } else { v >= bound }),
    }
}

impl Results {
    /// Every target on every cell both sides have; empty when the run has no OVS backend.
    pub fn compute_targets(&mut self) {
        let mut out = Vec::new();
        for (target, n, d, metric, bound, at_most) in RATIO_TARGETS {
            for r in self
                .ratios
                .iter()
                .filter(|r| r.numerator == n && r.denominator == d && r.metric == metric)
            {
                out.push(check(target, r, bound, at_most));
            }
        }
        if !out.is_empty() {
            if let Some(b) = self.backends.iter().find(|b| b.backend == "mvdp-bridge") {
                out.push(TargetCheck {
                    target: "mvdp idle CPU ~0",
                    metric: "idle_switch_cpu_pct",
                    scenario: None,
                    payload: None,
                    flows: None,
                    numerator: b.backend.clone(),
                    denominator: String::new(),
                    bound: IDLE_NEAR_ZERO_PCT,
                    at_most: true,
                    value: b.idle_switch_cpu_pct,
                    median: None,
                    min: None,
                    max: None,
                    rounds_agree_10pct: None,
                    met: b.idle_switch_cpu_pct.map(|p| p <= IDLE_NEAR_ZERO_PCT),
                });
            }
        }
        self.targets = out;
    }

    /// The targets table of summary.md.
    pub(super) fn write_targets(&self, s: &mut String) {
        if self.targets.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n## Targets against Open vSwitch (this run)\n\n| target | scenario | payload | flows | value | rounds: median (min–max) | rounds agree ±10 % | met |\n|---|---|---:|---:|---:|---|---|---|"
        );
        for t in &self.targets {
            let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
            let spread = match (t.median, t.min, t.max) {
                (Some(m), Some(lo), Some(hi)) => format!("{m:.3} ({lo:.3}–{hi:.3})"),
                _ => "-".into(),
            };
            let yn = |b: Option<bool>| match b {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {spread} | {} | {} |",
                t.target,
                t.scenario.map_or("-", |x| x.name()),
                t.payload.map_or("-".into(), |p| format!("{p} B")),
                t.flows.map_or("-".into(), |f| f.to_string()),
                f(t.value),
                yn(t.rounds_agree_10pct),
                yn(t.met)
            );
        }
    }
}
