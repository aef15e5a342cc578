//! What a run produced, as data (results.json) and as text (summary.md). Every figure is computed
//! from the measurements of this run; cells that could not be measured say why instead.

use std::fmt::Write as _;

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
    /// The ceiling forwarder's counters over the whole run (where its losses went).
    pub ceiling_counters: Option<super::ceiling::ForwardCounters>,
    /// Per mvdp backend: the dataplane's counters at the end of the run (`mvdp stats --json`).
    pub mvdp_stats: std::collections::BTreeMap<String, serde_json::Value>,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    pub backend: String,
    /// "ok" or "unavailable: <reason>".
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyCell {
    pub backend: String,
    pub scenario: Scenario,
    pub payload: usize,
    pub status: String,
    pub figures: Option<LatencyFigures>,
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
    pub total_ms: f64,
    /// total CPU / packets received.
    pub ns_per_packet: f64,
}

impl ThroughputFigures {
    pub fn new(
        t: &Throughput,
        softirq: std::time::Duration,
        switch: Option<std::time::Duration>,
    ) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let total = t.sender_cpu + t.receiver_cpu + softirq + switch.unwrap_or_default();
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
}

/// A cell's status as a table shows it: the backend-wide reasons are in the Backends table.
fn short_status(status: &str) -> &str {
    if status.starts_with("unavailable") {
        "unavailable (see Backends)"
    } else {
        status
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

    /// Fills `ratios` for every (numerator, denominator) pair given, over every cell both have.
    pub fn compute_ratios(&mut self, pairs: &[(String, String)], pps_pairs: &[(String, String)]) {
        let mut out = Vec::new();
        let mk = |metric,
                  sc,
                  payload,
                  flows,
                  n: &str,
                  d: &str,
                  a: Result<f64, String>,
                  b: Result<f64, String>| {
            let (value, note) = match (a, b) {
                (Ok(a), Ok(b)) if b > 0.0 => (Some(a / b), String::new()),
                (Ok(_), Ok(_)) => (None, format!("{d} measured zero")),
                (Err(e), _) => (None, format!("{n}: {e}")),
                (_, Err(e)) => (None, format!("{d}: {e}")),
            };
            Ratio {
                metric,
                scenario: sc,
                payload,
                flows,
                numerator: n.to_string(),
                denominator: d.to_string(),
                value,
                note,
            }
        };
        let lat =
            |r: &Results, b: &str, sc, p, f: fn(&LatencyFigures) -> f64| -> Result<f64, String> {
                let c = r.latency(b, sc, p).ok_or("not run")?;
                c.figures.as_ref().map(f).ok_or_else(|| c.status.clone())
            };
        let tp = |r: &Results,
                  b: &str,
                  sc,
                  p,
                  fl,
                  f: fn(&ThroughputFigures) -> f64|
         -> Result<f64, String> {
            let c = r.throughput(b, sc, p, fl).ok_or("not run")?;
            c.figures.as_ref().map(f).ok_or_else(|| c.status.clone())
        };
        let keys_lat: Vec<(Scenario, usize)> = {
            let mut v: Vec<_> = self
                .latency
                .iter()
                .map(|c| (c.scenario, c.payload))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let keys_tp: Vec<(Scenario, usize, usize)> = {
            let mut v: Vec<_> = self
                .throughput
                .iter()
                .map(|c| (c.scenario, c.payload, c.flows))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        for (n, d) in pairs {
            for &(sc, p) in &keys_lat {
                if self.latency(n, sc, p).is_none() || self.latency(d, sc, p).is_none() {
                    continue;
                }
                out.push(mk(
                    "p50",
                    sc,
                    p,
                    None,
                    n,
                    d,
                    lat(self, n, sc, p, |f| f.p50_us),
                    lat(self, d, sc, p, |f| f.p50_us),
                ));
                out.push(mk(
                    "p99",
                    sc,
                    p,
                    None,
                    n,
                    d,
                    lat(self, n, sc, p, |f| f.p99_us),
                    lat(self, d, sc, p, |f| f.p99_us),
                ));
            }
            for &(sc, p, fl) in &keys_tp {
                if self.throughput(n, sc, p, fl).is_none()
                    || self.throughput(d, sc, p, fl).is_none()
                {
                    continue;
                }
                out.push(mk(
                    "pps",
                    sc,
                    p,
                    Some(fl),
                    n,
                    d,
                    tp(self, n, sc, p, fl, |f| f.pps),
                    tp(self, d, sc, p, fl, |f| f.pps),
                ));
                out.push(mk(
                    "cpu_ns_per_packet",
                    sc,
                    p,
                    Some(fl),
                    n,
                    d,
                    tp(self, n, sc, p, fl, |f| f.cpu.ns_per_packet),
                    tp(self, d, sc, p, fl, |f| f.cpu.ns_per_packet),
                ));
            }
        }
        for (n, d) in pps_pairs {
            for &(sc, p, fl) in &keys_tp {
                if self.throughput(n, sc, p, fl).is_none()
                    || self.throughput(d, sc, p, fl).is_none()
                {
                    continue;
                }
                out.push(mk(
                    "pps",
                    sc,
                    p,
                    Some(fl),
                    n,
                    d,
                    tp(self, n, sc, p, fl, |f| f.pps),
                    tp(self, d, sc, p, fl, |f| f.pps),
                ));
            }
        }
        self.ratios = out;
    }

    /// The human report.
    pub fn summary_markdown(&self) -> String {
        let e = &self.environment;
        let mut s = String::new();
        let _ = writeln!(s, "# mvdp bench results\n");
        let _ = writeln!(
            s,
            "{} · kernel {} · {} ({} CPUs) · mvdp {}{}\n",
            e.date_utc,
            e.kernel,
            e.cpu_model,
            e.cpus,
            e.mvdp_version,
            if self.config.quick { " · --quick" } else { "" }
        );
        let _ = writeln!(s, "Command: `{}`\n", e.command_line);
        let _ = writeln!(
            s,
            "{} round trips per latency cell ({} rounds, interleaved across backends), {:.1} s per throughput cell.\n",
            self.config.round_trips_per_cell, self.config.rounds, self.config.throughput_seconds_per_cell
        );
        let _ = writeln!(s, "## Backends\n\n| backend | status |\n|---|---|");
        for b in &self.backends {
            let _ = writeln!(s, "| {} | {} |", b.backend, b.status);
        }
        let _ = writeln!(
            s,
            "\n## Round-trip latency (µs, UDP request/response)\n\n| scenario | payload | backend | p50 | p90 | p99 | p99.9 | max | lost |\n|---|---:|---|---:|---:|---:|---:|---:|---:|"
        );
        for c in &self.latency {
            match &c.figures {
                Some(f) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} B | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {}/{} |",
                        c.scenario.name(),
                        c.payload,
                        c.backend,
                        f.p50_us,
                        f.p90_us,
                        f.p99_us,
                        f.p999_us,
                        f.max_us,
                        f.lost + f.send_failed,
                        f.round_trips
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | {} B | {} | {} | | | | | |",
                        c.scenario.name(),
                        c.payload,
                        c.backend,
                        short_status(&c.status)
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\n## Throughput (UDP blast, counted at the receiver)\n\n| scenario | payload | flows | backend | pps | Gbit/s | CPU ns/pkt | CPU ms (send/recv/softirq/switch) | loss |\n|---|---:|---:|---|---:|---:|---:|---|---:|"
        );
        for c in &self.throughput {
            match &c.figures {
                Some(f) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} B | {} | {} | {:.0} | {:.3} | {:.0} | {:.0}/{:.0}/{:.0}/{} | {:.1}% |",
                        c.scenario.name(),
                        c.payload,
                        c.flows,
                        c.backend,
                        f.pps,
                        f.gbps,
                        f.cpu.ns_per_packet,
                        f.cpu.sender_ms,
                        f.cpu.receiver_ms,
                        f.cpu.softirq_ms,
                        f.cpu.switch_ms.map_or("-".to_string(), |v| format!("{v:.0}")),
                        f.loss_ratio * 100.0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | {} B | {} | {} | {} | | | | |",
                        c.scenario.name(),
                        c.payload,
                        c.flows,
                        c.backend,
                        short_status(&c.status)
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\n## Ratios (same run)\n\nBelow 1 is better for p50, p99 and CPU per packet; above 1 is better for pps.\n\n| metric | scenario | payload | flows | ratio | value |\n|---|---|---:|---:|---|---:|"
        );
        let mut skipped: Vec<String> = Vec::new();
        for r in &self.ratios {
            if r.value.is_none() {
                let why = match r.note.split_once(": unavailable") {
                    Some((who, _)) => format!("{who} unavailable (see Backends)"),
                    None => r.note.clone(),
                };
                let line = format!("{} / {}: {why}", r.numerator, r.denominator);
                if !skipped.contains(&line) {
                    skipped.push(line);
                }
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} B | {} | {} / {} | {} |",
                r.metric,
                r.scenario.name(),
                r.payload,
                r.flows.map_or("-".into(), |f| f.to_string()),
                r.numerator,
                r.denominator,
                r.value
                    .map_or_else(|| r.note.clone(), |v| format!("{v:.3}"))
            );
        }
        if !skipped.is_empty() {
            let _ = writeln!(s, "\nNot computed (one side not measured):\n");
            for l in skipped {
                let _ = writeln!(s, "- {l}");
            }
        }
        if let Some(c) = &self.ceiling_counters {
            let _ = writeln!(
                s,
                "\nCeiling forwarder over the run: {} frames forwarded, {} dropped on a full TX ring; kernel XSK statistics: {} rx dropped, {} rx ring full, {} fill ring empty, {} invalid TX descriptors.",
                c.forwarded, c.tx_ring_full, c.rx_dropped, c.rx_ring_full, c.rx_fill_ring_empty, c.tx_invalid
            );
        }
        for (name, st) in &self.mvdp_stats {
            let g = |path: &[&str]| -> u64 {
                path.iter()
                    .try_fold(st, |v, k| v.get(k))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
            };
            let mut ports = (0u64, 0u64, 0u64, 0u64);
            if let Some(p) = st.get("ports").and_then(|p| p.as_array()) {
                for v in p {
                    let x = |k: &str| {
                        v.pointer(&format!("/xsk/{k}"))
                            .and_then(|v| v.as_u64())
                            .unwrap_or(0)
                    };
                    ports.0 += x("rx_dropped");
                    ports.1 += x("rx_ring_full");
                    ports.2 += x("fill_ring_empty");
                    ports.3 += v.get("tx_dropped").and_then(|v| v.as_u64()).unwrap_or(0);
                }
            }
            let _ = writeln!(
                s,
                "\n{name} over the run: ports' AF_XDP sockets: {} dropped by the kernel ({} on a full RX ring, {} with the fill ring empty), {} dropped by the switch on a full TX ring; UMEM {} of {} frames free.",
                ports.0, ports.1, ports.2, ports.3,
                g(&["umem", "free"]),
                g(&["umem", "total"]),
            );
        }
        let _ = writeln!(s, "\n## Method\n\n{}", e.cpu_method);
        s
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
                figures,
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
                ThroughputFigures::new(&t, Duration::ZERO, None)
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
            },
            backends: Vec::new(),
            latency: latencies.iter().map(|(b, v)| lat_cell(b, *v)).collect(),
            throughput: pps.iter().map(|(b, v)| tp_cell(b, *v)).collect(),
            ratios: Vec::new(),
            ceiling_counters: None,
            mvdp_stats: Default::default(),
        }
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
}
