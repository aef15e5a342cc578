//! Where mvdp's round trip goes: the `mvdp-traced` backend's latency cells carry mvdp's per-hop
//! histograms (`mvdp daemon --trace-hops`), and this puts them next to the round trips of the
//! same cell for untraced mvdp, kernel macvlan and the bare AF_XDP forwarder (the ceiling).
//!
//! One way through mvdp is about half a round trip (the echo server answers through the same
//! switch): the sender's stack up to the host end's XDP program (S), XDP to RX pickup (P), the
//! decision (D), the TX kick up to the frame entering the receiver's stack (K1), and from there
//! to the receiver's `recv` returning (W). P and D are measured in the worker, W by the client
//! (the kernel's receive timestamp of the answer, SO_TIMESTAMPNS, to `recv` returning). The kick
//! is measured whole (K, until `sendto` returns), and it is longer than K1: copy-mode TX into a
//! veth whose peer has no XDP program runs the receiver's stack inside the `sendto` (netif_rx,
//! then the softirq when bottom halves are enabled again), so the receiver may already answer
//! while the kick is returning. Hence the remainder RTT/2 − P − D − W is S + K1.

use std::fmt::Write;

use mvdp_switch::hops::{Hop, HopStats};
use serde::Serialize;

use super::report::LatencyCell;
use super::topology::{Backend, Scenario};

/// One hop's figures in one cell.
#[derive(Debug, Clone, Serialize)]
pub struct HopFigure {
    pub hop: &'static str,
    pub samples: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// The breakdown of one (scenario, payload) cell.
#[derive(Debug, Clone, Serialize)]
pub struct HopRow {
    /// `mvdp-traced` or `ceiling-traced`.
    pub backend: String,
    pub scenario: Scenario,
    pub payload: usize,
    /// How mvdp's workers waited (the traced and the untraced backend alike).
    pub mvdp_poll: &'static str,
    /// Sampled frames without a usable XDP stamp.
    pub no_stamp: u64,
    pub hops: Vec<HopFigure>,
    /// The client's side: the answer's kernel receive timestamp to `recv` returning (W).
    pub delivery: HopFigure,
    /// Round trip p50 of the traced backend, and of the same switch untraced (mvdp-bridge, the
    /// ceiling): the tracing's cost.
    pub traced_rtt_p50_us: Option<f64>,
    pub untraced_rtt_p50_us: Option<f64>,
    /// Half the traced round trip's p50.
    pub one_way_us: Option<f64>,
    /// p50 of XDP to pickup plus p50 of the decision (none for the ceiling): XDP program to the
    /// frame staged for TX (a sum of medians, not the median of sums).
    pub switch_us: Option<f64>,
    /// `one_way_us - switch_us - delivery p50`: the sender's stack up to the XDP program plus
    /// the TX kick up to the frame entering the receiver's stack (S + K1).
    pub remainder_us: Option<f64>,
    pub macvlan_rtt_p50_us: Option<f64>,
    /// The bare AF_XDP forwarder (busy-polling while measured; container <-> container only).
    pub ceiling_rtt_p50_us: Option<f64>,
    pub mvdp_busy_rtt_p50_us: Option<f64>,
    /// Untraced mvdp's p50 ÷ the ceiling's (target: ≤ 1.10 at the same poll mode).
    pub mvdp_vs_ceiling: Option<f64>,
    /// mvdp-busy's p50 ÷ the ceiling's: both busy-poll.
    pub mvdp_busy_vs_ceiling: Option<f64>,
}

fn us(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e3)
}

/// One row per latency cell of `mvdp-traced` and `ceiling-traced` that counted samples.
pub fn breakdown(latency: &[LatencyCell]) -> Vec<HopRow> {
    let mvdp = Backend::Mvdp(mvdp_switch::Mode::Bridge).name();
    let pairs = [
        (Backend::MvdpTraced.name(), mvdp.clone()),
        (Backend::MvdpBusyTraced.name(), Backend::MvdpBusy.name()),
        (Backend::CeilingTraced.name(), Backend::Ceiling.name()),
    ];
    let p50 = |backend: &str, sc: Scenario, payload: usize| {
        latency
            .iter()
            .find(|c| c.backend == backend && c.scenario == sc && c.payload == payload)
            .and_then(|c| c.figures.as_ref())
            .map(|f| f.p50_us)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let mut rows = Vec::new();
    for c in latency {
        let Some((traced, plain)) = pairs.iter().find(|(t, _)| *t == c.backend) else {
            continue;
        };
        let Some(h) = &c.hops else { continue };
        let is_mvdp = *traced == Backend::MvdpTraced.name();
        let (sc, p) = (c.scenario, c.payload);
        let hops = figures(h);
        let median = |hop: Hop| hops[hop.index()].p50_us;
        // The bare forwarder has no decision: 0, not unknown.
        let switch_us = median(Hop::XdpToPickup).map(|p| p + median(Hop::Decision).unwrap_or(0.0));
        let delivery = figure(DELIVERY, h.hops.get(DELIVERY));
        let traced_p50 = p50(traced, sc, p);
        let untraced = p50(plain, sc, p);
        let ceiling = p50(&Backend::Ceiling.name(), sc, p);
        let busy = p50(&Backend::MvdpBusy.name(), sc, p);
        let one_way = traced_p50.map(|v| v / 2.0);
        rows.push(HopRow {
            backend: traced.clone(),
            scenario: sc,
            payload: p,
            mvdp_poll: super::topology::mvdp_poll().name(),
            no_stamp: h.no_stamp,
            traced_rtt_p50_us: traced_p50,
            untraced_rtt_p50_us: untraced,
            one_way_us: one_way,
            switch_us,
            remainder_us: match (one_way, switch_us, delivery.p50_us) {
                (Some(o), Some(s), Some(w)) => Some(o - s - w),
                _ => None,
            },
            delivery,
            macvlan_rtt_p50_us: p50(&Backend::Macvlan(mvdp_switch::Mode::Bridge).name(), sc, p),
            ceiling_rtt_p50_us: ceiling,
            mvdp_busy_rtt_p50_us: busy,
            mvdp_vs_ceiling: ratio(untraced, ceiling).filter(|_| is_mvdp),
            mvdp_busy_vs_ceiling: ratio(busy, ceiling).filter(|_| is_mvdp),
            hops,
        });
    }
    rows
}

/// The key of the client's delivery histogram among a cell's hops (measured by the bench's
/// client, not the switch).
pub const DELIVERY: &str = "delivery";

/// Every hop's figures, in [`Hop::ALL`] order.
fn figures(h: &HopStats) -> Vec<HopFigure> {
    Hop::ALL
        .iter()
        .map(|&hop| figure(hop.name(), h.hop(hop)))
        .collect()
}

fn figure(name: &'static str, x: Option<&mvdp_switch::hops::HopHistogram>) -> HopFigure {
    HopFigure {
        hop: name,
        samples: x.map_or(0, |x| x.samples),
        p50_us: us(x.and_then(|x| x.quantile(0.5))),
        p99_us: us(x.and_then(|x| x.quantile(0.99))),
    }
}

/// The "Where mvdp's round trip goes" section of summary.md (nothing without rows).
pub fn write_markdown(rows: &[HopRow], s: &mut String) {
    if rows.is_empty() {
        return;
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let r = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let _ = writeln!(s, "\n## Where mvdp's round trip goes\n");
    let _ = writeln!(
        s,
        "`mvdp-traced` is mvdp (bridge mode, {} poll) with `--trace-hops`, `mvdp-busy-traced` \
         mvdp-busy with it, `ceiling-traced` the \
         bare forwarder with the same split (no decision: its pickup-to-kick time is `tx_kick`): the XDP programs stamp \
         every frame they redirect and the worker reads the same clock at RX pickup, after the \
         decision and after the TX kick returns; `delivery` is the client's, from the answer's \
         kernel receive timestamp to `recv` returning. One way ≈ RTT/2; switch = xdp_to_pickup + \
         decision; remainder = one way − switch − delivery = the sender's stack up to the XDP \
         program + the TX kick up to the receiver's stack (the whole kick, `tx_kick`, ends later: \
         the receiver's stack runs inside it). µs; hop cells are p50 / p99.\n",
        rows[0].mvdp_poll
    );
    let mut head = String::from("| backend | cell | samples |");
    let mut rule = String::from("|---|---|---:|");
    for h in Hop::ALL {
        let _ = write!(head, " {} |", h.name());
        rule.push_str("---:|");
    }
    head.push_str(" delivery | switch | one way (RTT/2) | remainder | RTT p50 traced / untraced | macvlan RTT p50 | ceiling RTT p50 | mvdp ÷ ceiling | mvdp-busy ÷ ceiling |");
    rule.push_str("---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(s, "{head}\n{rule}");
    for row in rows {
        let mut line = format!(
            "| {} | {} {} B | {} |",
            row.backend,
            row.scenario.name(),
            row.payload,
            row.hops.first().map_or(0, |h| h.samples)
        );
        for h in &row.hops {
            let _ = write!(line, " {} / {} |", f(h.p50_us), f(h.p99_us));
        }
        let _ = writeln!(
            s,
            "{line} {} / {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            f(row.delivery.p50_us),
            f(row.delivery.p99_us),
            f(row.switch_us),
            f(row.one_way_us),
            f(row.remainder_us),
            f(row.traced_rtt_p50_us),
            f(row.untraced_rtt_p50_us),
            f(row.macvlan_rtt_p50_us),
            f(row.ceiling_rtt_p50_us),
            r(row.mvdp_vs_ceiling),
            r(row.mvdp_busy_vs_ceiling),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::LatencyFigures;
    use crate::bench::udp::RttStats;
    use mvdp_switch::hops::{bucket, HopHistogram, BUCKETS};

    fn cell(backend: &str, p50_ns: u64, hops: Option<HopStats>) -> LatencyCell {
        let mut st = RttStats::new();
        for _ in 0..100 {
            st.hist.record(p50_ns).unwrap();
        }
        st.sent = 100;
        LatencyCell {
            backend: backend.into(),
            scenario: Scenario::ContainerContainer,
            payload: 64,
            status: "ok".into(),
            figures: LatencyFigures::from_stats(&st),
            rounds: Vec::new(),
            hops,
        }
    }

    #[test]
    fn the_remainder_is_half_the_round_trip_less_the_switch() {
        let mut h = HopStats {
            sample_every: 1,
            ..HopStats::default()
        };
        for (hop, ns) in [
            (Hop::XdpToPickup, 10_000),
            (Hop::Decision, 1_000),
            (Hop::TxKick, 5_000),
        ] {
            let mut counts = vec![0u64; BUCKETS];
            counts[bucket(ns)] = 10;
            h.hops
                .insert(hop.name().into(), HopHistogram::from_counts(counts));
        }
        let mut counts = vec![0u64; BUCKETS];
        counts[bucket(2_000)] = 10;
        h.hops
            .insert(DELIVERY.into(), HopHistogram::from_counts(counts));
        let latency = vec![
            cell("mvdp-traced", 40_000, Some(h)),
            cell("mvdp-bridge", 38_000, None),
            cell("ceiling", 19_000, None),
        ];
        let rows = breakdown(&latency);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        let one_way = r.one_way_us.unwrap();
        let switch = r.switch_us.unwrap();
        assert!((one_way - r.traced_rtt_p50_us.unwrap() / 2.0).abs() < 1e-9);
        assert!((10.0..12.0).contains(&switch), "{switch}");
        let w = r.delivery.p50_us.unwrap();
        assert!((1.8..2.2).contains(&w), "{w}");
        assert!((r.remainder_us.unwrap() - (one_way - switch - w)).abs() < 1e-9);
        let ratio = r.mvdp_vs_ceiling.unwrap();
        assert!((1.9..2.1).contains(&ratio), "{ratio}");
        assert_eq!(r.hops[Hop::XdpToWake.index()].samples, 0);
        let mut md = String::new();
        write_markdown(&rows, &mut md);
        assert!(md.contains("container_container 64 B"), "{md}");
    }
}
