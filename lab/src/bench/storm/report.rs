//! The storm scenario's part of results.json and its table in summary.md.

use std::fmt::Write as _;

use serde::Serialize;

use mvdp_switch::FloodRate;

use super::blast::Blasted;
use super::{BACKENDS, METHOD, STORM_PORT};
use crate::bench::density::dense::DenseLab;
use crate::bench::report::LatencyFigures;
use crate::bench::udp::RttStats;
use crate::bench::BenchConfig;

/// The target: unicast p99 under a storm at most this many times the idle p99 (mvdp).
pub const P99_RATIO_TARGET: f64 = 2.0;

#[derive(Debug, Clone, Serialize)]
pub struct StormResults {
    pub round_trips: u64,
    pub rounds: u32,
    pub method: String,
    /// Which CPUs the measured pair and the storm's sender ran on.
    pub cpus: String,
    pub rows: Vec<StormRow>,
    /// Whether mvdp's p99 ratio met [`P99_RATIO_TARGET`] (null when it has no figure).
    pub target_met: Option<bool>,
}

/// One backend.
#[derive(Debug, Clone, Serialize)]
pub struct StormRow {
    pub backend: String,
    /// "ok", or "failed: …" (then the figures it did not get are null).
    pub status: String,
    pub idle: Option<LatencyFigures>,
    pub storm: Option<LatencyFigures>,
    /// Storm / idle, per figure.
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
    pub max_ratio: Option<f64>,
    /// Broadcasts container 3's socket took, and how fast (over the storm slices).
    pub broadcasts_sent: u64,
    pub broadcasts_per_s: f64,
    /// Sends its socket refused (its own queue was full).
    pub broadcasts_refused: u64,
    /// mvdp only: the storming port's row of `mvdp stats --json` at the end (its
    /// `flood_dropped` are the broadcasts beyond its flood share or rate).
    pub storm_port: Option<serde_json::Value>,
    /// mvdp only: the dataplane's drop counters at the end.
    pub mvdp_drops: Option<serde_json::Value>,
    /// mvdp only: each port's flood rate cap the daemon ran with (`mvdp stats`; pps 0: none).
    pub flood_rate: Option<FloodRate>,
}

impl StormRow {
    pub fn new(
        lab: &DenseLab,
        idle: &RttStats,
        storm: &RttStats,
        blasted: Blasted,
        failed: Option<&anyhow::Error>,
    ) -> StormRow {
        let idle = LatencyFigures::from_stats(idle);
        let storm = LatencyFigures::from_stats(storm);
        let ratio = |f: fn(&LatencyFigures) -> f64| match (&idle, &storm) {
            (Some(i), Some(s)) if f(i) > 0.0 => Some(f(s) / f(i)),
            _ => None,
        };
        let mut status = failed.map_or("ok".to_string(), |e| format!("failed: {e:#}"));
        let stats = match lab.mvdp_stats() {
            Ok(s) => s,
            Err(e) => {
                if status == "ok" {
                    status = format!("failed: mvdp stats: {e:#}");
                }
                None
            }
        };
        let ns = lab.endpoint(STORM_PORT).ns.name().to_string();
        let storm_port = stats.as_ref().and_then(|s| {
            s["ports"]
                .as_array()?
                .iter()
                .find(|p| p["netns"].as_str() == Some(ns.as_str()))
                .cloned()
        });
        StormRow {
            backend: lab.backend.name(),
            status,
            p50_ratio: ratio(|l| l.p50_us),
            p99_ratio: ratio(|l| l.p99_us),
            max_ratio: ratio(|l| l.max_us),
            idle,
            storm,
            broadcasts_sent: blasted.sent,
            broadcasts_per_s: blasted.rate(),
            broadcasts_refused: blasted.refused,
            storm_port,
            flood_rate: stats
                .as_ref()
                .and_then(|s| serde_json::from_value(s["flood_rate"].clone()).ok()),
            mvdp_drops: stats.map(|s| s["drops"].clone()),
        }
    }
}

impl StormResults {
    pub fn new(cfg: &BenchConfig, rows: Vec<StormRow>) -> StormResults {
        let mvdp = BACKENDS[0].name();
        let target_met = rows
            .iter()
            .find(|r| r.backend == mvdp)
            .and_then(|r| r.p99_ratio)
            .map(|x| x <= P99_RATIO_TARGET);
        StormResults {
            round_trips: cfg.round_trips,
            rounds: cfg.rounds.max(1),
            method: METHOD.into(),
            cpus: super::placement(),
            rows,
            target_met,
        }
    }

    pub fn write_markdown(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Broadcast storm (µs, UDP round trips between containers 1 and 2; container 3 broadcasting)\n\n{} round trips idle and {} under the storm per backend, in {} slices.\n",
            self.round_trips, self.round_trips, self.rounds
        );
        let _ = writeln!(
            s,
            "| backend | status | idle p50 | idle p99 | idle max | storm p50 | storm p99 | storm max | p99 storm/idle | lost (storm) | broadcasts/s | storm port flood_dropped |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let f = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.1}"));
        for r in &self.rows {
            let (i, st) = (r.idle.as_ref(), r.storm.as_ref());
            let dropped = r
                .storm_port
                .as_ref()
                .and_then(|p| p["flood_dropped"].as_u64())
                .map_or("–".to_string(), |n| n.to_string());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
                r.backend,
                r.status,
                f(i.map(|l| l.p50_us)),
                f(i.map(|l| l.p99_us)),
                f(i.map(|l| l.max_us)),
                f(st.map(|l| l.p50_us)),
                f(st.map(|l| l.p99_us)),
                f(st.map(|l| l.max_us)),
                r.p99_ratio.map_or("–".to_string(), |x| format!("{x:.2}")),
                st.map_or("–".to_string(), |l| (l.lost + l.send_failed).to_string()),
                r.broadcasts_per_s,
                dropped,
            );
        }
        for r in self.rows.iter().filter(|r| r.flood_rate.is_some()) {
            let d = |k: &str| {
                r.mvdp_drops
                    .as_ref()
                    .and_then(|d| d[k].as_u64())
                    .unwrap_or(0)
            };
            let _ = writeln!(
                s,
                "\n{}: flood rate per port {} (`mvdp daemon --flood-rate`); the storm's drops: {} over the share per turn (flood_share), {} over the rate (flood_rate).",
                r.backend,
                r.flood_rate.map_or("-".to_string(), |f| f.to_string()),
                d("flood_share"),
                d("flood_rate"),
            );
        }
        let verdict = match self.target_met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "\nTarget: mvdp's unicast p99 under the storm <= {P99_RATIO_TARGET}x idle: **{verdict}**.\n\n{} CPUs: {}.",
            self.method, self.cpus
        );
    }
}
