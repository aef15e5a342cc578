//! summary.md: the human report of a run, table by table.

use std::fmt::Write as _;

use super::drops::DropSites;
use super::report::{LatencyCell, PacedSection, Ratio, Results, ThroughputCell};

impl Results {
    /// The human report.
    pub fn summary_markdown(&self) -> String {
        let mut s = String::new();
        self.write_header(&mut s);
        self.write_backends(&mut s);
        if let Some(d) = &self.density {
            let backends = super::density::BACKENDS.map(|b| b.name());
            d.write_markdown(&mut s, &backends[0], &backends[1]);
            return s;
        }
        if let Some(st) = &self.storm {
            st.write_markdown(&mut s);
            return s;
        }
        self.write_latency(&mut s);
        self.write_throughput(&mut s);
        self.write_drops(&mut s);
        if let Some(p) = &self.paced {
            write_paced(p, self.config.rounds, &mut s);
        }
        self.write_ratios(&mut s);
        super::hops::write_markdown(&self.hops, &mut s);
        self.write_targets(&mut s);
        self.write_counters(&mut s);
        let _ = writeln!(s, "\n## Method\n\n{}", self.environment.cpu_method);
        s
    }

    fn write_header(&self, s: &mut String) {
        let e = &self.environment;
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
        if self.density.is_some() || self.storm.is_some() {
            return;
        }
        let _ = writeln!(
            s,
            "{} round trips per latency cell ({} rounds, interleaved across backends), {:.1} s per throughput cell.\n",
            self.config.round_trips_per_cell, self.config.rounds, self.config.throughput_seconds_per_cell
        );
        let _ = writeln!(s, "CPUs: {}.\n", self.config.cpus.describe());
    }

    fn write_backends(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "## Backends\n\n| backend | status | idle switch CPU | switch runs on CPUs |\n|---|---|---:|---|"
        );
        for b in &self.backends {
            let idle = b
                .idle_switch_cpu_pct
                .map_or("-".to_string(), |p| format!("{p:.0} %"));
            let on = b
                .switch_cpus
                .as_deref()
                .map_or("-".to_string(), super::pinning::cpu_list);
            let _ = writeln!(s, "| {} | {} | {idle} | {on} |", b.backend, b.status);
        }
    }

    fn write_latency(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Round-trip latency (µs, UDP request/response)\n\n| scenario | payload | backend | p50 | p90 | p99 | p99.9 | max | lost |\n|---|---:|---|---:|---:|---:|---:|---:|---:|"
        );
        for c in &self.latency {
            let _ = writeln!(s, "{}", latency_row(c));
        }
    }

    fn write_throughput(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Throughput (UDP blast, counted at the receiver)\n\n| scenario | payload | flows | backend | pps | Gbit/s | CPU ns/pkt | CPU ms busy (send/recv/softirq/switch, overlapping) | loss |\n|---|---:|---:|---|---:|---:|---:|---|---:|"
        );
        for c in &self.throughput {
            let _ = writeln!(s, "{}", throughput_row(c));
        }
    }

    /// Where each throughput cell's frames were dropped.
    fn write_drops(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Drop sites (throughput cells)\n\nFrames lost between sender and receiver, and where they were counted: the kernel's AF_XDP socket \
             statistics (fill ring empty, RX ring full, and XSK `rx_dropped`, which includes the fill-ring-empty drops in copy mode), the switch's full TX rings (OVS: `afxdp_tx_full` events, one per batch \
             that did not fit, from `ovs-appctl coverage/show`, which OVS folds in about once a second), mvdp's flood budget, and the receiving \
             UDP sockets' full buffers. `-`: the backend does not expose that site.\n\n\
             | scenario | payload | flows | backend | lost | fill ring empty | RX ring full | XSK RX dropped | TX ring full | flood budget | UDP rcvbuf |\n\
             |---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for c in &self.throughput {
            let (Some(f), Some(d)) = (&c.figures, &c.drops) else {
                continue;
            };
            let v = |x: Option<u64>| x.map_or("-".to_string(), |n| n.to_string());
            let _ = writeln!(
                s,
                "| {} | {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.scenario.name(),
                c.payload,
                c.flows,
                c.backend,
                f.sent_pkts.saturating_sub(f.recv_pkts),
                v(d.fill_ring_empty),
                v(d.rx_ring_full),
                v(d.xsk_rx_dropped),
                v(d.tx_ring_full),
                v(d.flood_budget),
                v(d.udp_rcvbuf)
            );
        }
    }

    /// The ratios measured, then one line per pair that could not be computed.
    fn write_ratios(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n## Ratios (same run)\n\nBelow 1 is better for p50, p99 and CPU per packet; above 1 is better for pps. `value` divides the whole cells; \
             `rounds` is the ratio per round (one interleaved pass over all backends): median (min–max), and whether all rounds agree within \
             {:.0} % (max ≤ 1.1 × min; `-` with one round).\n\n| metric | scenario | payload | flows | ratio | value | rounds | agree |\n|---|---|---:|---:|---|---:|---|---|",
            super::report::AGREE_WITHIN * 100.0
        );
        let mut skipped: Vec<String> = Vec::new();
        for r in &self.ratios {
            if r.value.is_none() {
                let line = skipped_ratio(r);
                if !skipped.contains(&line) {
                    skipped.push(line);
                }
                continue;
            }
            let _ = writeln!(s, "{}", ratio_row(r));
        }
        if !skipped.is_empty() {
            let _ = writeln!(s, "\nNot computed (one side not measured):\n");
            for l in skipped {
                let _ = writeln!(s, "- {l}");
            }
        }
    }

    /// Where the ceiling's and mvdp's losses went.
    fn write_counters(&self, s: &mut String) {
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
            let ports = PortDrops::sum(st);
            let _ = writeln!(
                s,
                "\n{name} over the run: ports' AF_XDP sockets: {} dropped by the kernel ({} on a full RX ring, {} with the fill ring empty), {} dropped by the switch on a full TX ring; UMEM {} of {} frames free.",
                ports.rx_dropped, ports.rx_ring_full, ports.fill_ring_empty, ports.tx_dropped,
                g(&["umem", "free"]),
                g(&["umem", "total"]),
            );
        }
    }
}

/// "Loss at kernel macvlan's rate": each one-flow paced cell, and whether mvdp's loss is 0.
fn write_paced(p: &PacedSection, rounds: u32, s: &mut String) {
    let _ = writeln!(
        s,
        "\n## Loss at kernel macvlan's rate\n\nOne flow paced at the pps kernel macvlan delivered with one flow in this run's \
         throughput cells (median over its rounds), sent in short bursts against a schedule; {rounds} round(s), backends \
         interleaved. `of pace`: sent in % of what the pace asks over the cell's time (below 100 %: the sender, \
         which shares its CPU with the receiver, fell behind). Drop sites as in the table above (only sites that \
         counted something are listed). The ceiling, where measured (container↔container), is the bare AF_XDP \
         forwarder at the same rate: what copy mode on these veths loses with no switch in it. \
         ovs-afxdp, where measured, is Open vSwitch's PMD at the same rate (its losses are counted at the \
         receiver; its fill ring is not exposed)."
    );
    if !p.notes.is_empty() {
        let _ = writeln!(s);
    }
    for n in &p.notes {
        let _ = writeln!(s, "- {n}");
    }
    if p.rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n| scenario | payload | pace (pps) | backend | sent | of pace | received | loss | drop sites |\n|---|---:|---:|---|---:|---:|---:|---:|---|"
    );
    for r in &p.rows {
        let c = &r.cell;
        match &c.figures {
            Some(f) => {
                let _ = writeln!(
                    s,
                    "| {} | {} B | {:.0} | {} | {} | {:.0} % | {} | {} | {} |",
                    c.scenario.name(),
                    c.payload,
                    r.rate_pps,
                    c.backend,
                    f.sent_pkts,
                    f.sent_pkts as f64 / (r.rate_pps * f.duration_s).max(1.0) * 100.0,
                    f.recv_pkts,
                    r.loss_pct.map_or("-".to_string(), |l| format!("{l:.2} %")),
                    c.drops.as_ref().map_or("-".to_string(), drop_list)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} B | {:.0} | {} | {} | | | | |",
                    c.scenario.name(),
                    c.payload,
                    r.rate_pps,
                    c.backend,
                    short_status(&c.status)
                );
            }
        }
    }
    let _ = writeln!(s, "\n{}", p.mvdp_verdict());
}

/// The sites of `d` that counted a drop, e.g. "fill ring empty 12, UDP rcvbuf 3"; "none".
fn drop_list(d: &DropSites) -> String {
    let sites = [
        ("fill ring empty", d.fill_ring_empty),
        ("RX ring full", d.rx_ring_full),
        ("XSK RX dropped", d.xsk_rx_dropped),
        ("TX ring full", d.tx_ring_full),
        ("flood budget", d.flood_budget),
        ("UDP rcvbuf", d.udp_rcvbuf),
    ];
    let v: Vec<String> = sites
        .iter()
        .filter_map(|(name, n)| n.filter(|&n| n > 0).map(|n| format!("{name} {n}")))
        .collect();
    let list = if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    };
    match d.late_turns.filter(|&n| n > 0) {
        Some(n) => format!("{list} (worker turns of 1 ms or more: {n})"),
        None => list,
    }
}

/// A cell's status as a table shows it: the backend-wide reasons are in the Backends table.
fn short_status(status: &str) -> &str {
    if status.starts_with("unavailable") {
        "unavailable (see Backends)"
    } else {
        status
    }
}

fn latency_row(c: &LatencyCell) -> String {
    match &c.figures {
        Some(f) => format!(
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
        ),
        None => format!(
            "| {} | {} B | {} | {} | | | | | |",
            c.scenario.name(),
            c.payload,
            c.backend,
            short_status(&c.status)
        ),
    }
}

fn throughput_row(c: &ThroughputCell) -> String {
    match &c.figures {
        Some(f) => format!(
            "| {} | {} B | {} | {} | {:.0} | {:.3} | {:.0} | {:.0} ({:.0}/{:.0}/{:.0}/{}) | {:.1}% |",
            c.scenario.name(),
            c.payload,
            c.flows,
            c.backend,
            f.pps,
            f.gbps,
            f.cpu.ns_per_packet,
            f.cpu.total_ms,
            f.cpu.sender_ms,
            f.cpu.receiver_ms,
            f.cpu.softirq_ms,
            f.cpu
                .switch_ms
                .map_or("-".to_string(), |v| format!("{v:.0}")),
            f.loss_ratio * 100.0
        ),
        None => format!(
            "| {} | {} B | {} | {} | {} | | | | |",
            c.scenario.name(),
            c.payload,
            c.flows,
            c.backend,
            short_status(&c.status)
        ),
    }
}

fn ratio_row(r: &Ratio) -> String {
    format!(
        "| {} | {} | {} B | {} | {} / {} | {} | {} | {} |",
        r.metric,
        r.scenario.name(),
        r.payload,
        r.flows.map_or("-".into(), |f| f.to_string()),
        r.numerator,
        r.denominator,
        r.value
            .map_or_else(|| r.note.clone(), |v| format!("{v:.3}")),
        spread(r),
        agree(r)
    )
}

/// "median (min–max)" of a ratio's rounds.
fn spread(r: &Ratio) -> String {
    match (r.median, r.min, r.max) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.3} ({lo:.3}–{hi:.3})"),
        _ => "-".into(),
    }
}

fn agree(r: &Ratio) -> &'static str {
    match r.rounds_agree_10pct {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

/// "n / d: why" for a ratio that could not be computed.
fn skipped_ratio(r: &Ratio) -> String {
    let why = match r.note.split_once(": unavailable") {
        Some((who, _)) => format!("{who} unavailable (see Backends)"),
        None => r.note.clone(),
    };
    format!("{} / {}: {why}", r.numerator, r.denominator)
}

/// What the ports' AF_XDP sockets and the switch dropped, summed over an mvdp stats report's ports.
#[derive(Default)]
struct PortDrops {
    rx_dropped: u64,
    rx_ring_full: u64,
    fill_ring_empty: u64,
    tx_dropped: u64,
}

impl PortDrops {
    fn sum(stats: &serde_json::Value) -> PortDrops {
        let mut d = PortDrops::default();
        let ports = stats.get("ports").and_then(|p| p.as_array());
        for v in ports.into_iter().flatten() {
            let x = |k: &str| {
                v.pointer(&format!("/xsk/{k}"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
            };
            d.rx_dropped += x("rx_dropped");
            d.rx_ring_full += x("rx_ring_full");
            d.fill_ring_empty += x("fill_ring_empty");
            d.tx_dropped += v.get("tx_dropped").and_then(|v| v.as_u64()).unwrap_or(0);
        }
        d
    }
}
