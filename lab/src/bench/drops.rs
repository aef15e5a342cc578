//! Where frames were dropped during a throughput cell: the counters each backend exposes, read
//! before and after the cell. A site a backend cannot observe is `None` (not zero).

use anyhow::{Context, Result};
use mvdp_control::NetNs;
use serde::Serialize;

/// Frames (or, where said, events) dropped at each site, over one cell or cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DropSites {
    /// The kernel had a frame for an AF_XDP socket whose fill ring was empty.
    pub fill_ring_empty: Option<u64>,
    /// The kernel found an AF_XDP socket's RX ring full.
    pub rx_ring_full: Option<u64>,
    /// The kernel's `rx_dropped` of AF_XDP sockets: frames dropped for want of a UMEM frame (in copy
    /// mode every fill-ring-empty drop counts here too) or for being too large. RX ring full is
    /// counted apart.
    pub xsk_rx_dropped: Option<u64>,
    /// The switch found a TX ring full (mvdp, the ceiling: frames; OVS: `afxdp_tx_full` events,
    /// one per batch that did not fit).
    pub tx_ring_full: Option<u64>,
    /// mvdp's per-segment broadcast budget was spent (copies not made).
    pub flood_budget: Option<u64>,
    /// The receiving UDP sockets' buffers were full (RcvbufErrors in the receiver's netns).
    pub udp_rcvbuf: Option<u64>,
    /// Not a drop site but why fill rings run empty: mvdp's worker turns that took 1 ms or more,
    /// the worker off the CPU (events; `late_turns` of the dataplane's stats).
    pub late_turns: Option<u64>,
}

impl DropSites {
    /// `self - before`, site by site (a site either side lacks stays None).
    pub fn since(&self, before: &DropSites) -> DropSites {
        let d = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
        DropSites {
            fill_ring_empty: d(self.fill_ring_empty, before.fill_ring_empty),
            rx_ring_full: d(self.rx_ring_full, before.rx_ring_full),
            xsk_rx_dropped: d(self.xsk_rx_dropped, before.xsk_rx_dropped),
            tx_ring_full: d(self.tx_ring_full, before.tx_ring_full),
            flood_budget: d(self.flood_budget, before.flood_budget),
            udp_rcvbuf: d(self.udp_rcvbuf, before.udp_rcvbuf),
            late_turns: d(self.late_turns, before.late_turns),
        }
    }

    /// Adds `o` site by site (None + x = x: one slice may see a site another does not).
    pub fn add(&mut self, o: &DropSites) {
        let s = |a: &mut Option<u64>, b: Option<u64>| {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(0) + b);
            }
        };
        s(&mut self.fill_ring_empty, o.fill_ring_empty);
        s(&mut self.rx_ring_full, o.rx_ring_full);
        s(&mut self.xsk_rx_dropped, o.xsk_rx_dropped);
        s(&mut self.tx_ring_full, o.tx_ring_full);
        s(&mut self.flood_budget, o.flood_budget);
        s(&mut self.udp_rcvbuf, o.udp_rcvbuf);
        s(&mut self.late_turns, o.late_turns);
    }

    /// The sites of an mvdp stats reply (`mvdp stats --json`): ports' and parents' socket
    /// counters, the ports' TX drops and the switch's flood-budget drops.
    pub fn from_mvdp_stats(st: &serde_json::Value) -> DropSites {
        let u = |v: &serde_json::Value, p: &str| v.pointer(p).and_then(|v| v.as_u64()).unwrap_or(0);
        let mut d = DropSites {
            fill_ring_empty: Some(0),
            rx_ring_full: Some(0),
            xsk_rx_dropped: Some(0),
            tx_ring_full: Some(0),
            flood_budget: Some(u(st, "/drops/flood_budget")),
            udp_rcvbuf: None,
            late_turns: Some(u(st, "/late_turns")),
        };
        let ports = st
            .get("ports")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten();
        let parents = st
            .get("parents")
            .and_then(|p| p.as_object())
            .into_iter()
            .flat_map(|m| m.values());
        for v in ports.chain(parents) {
            let add = |site: &mut Option<u64>, n: u64| *site = Some(site.unwrap_or(0) + n);
            add(&mut d.fill_ring_empty, u(v, "/xsk/fill_ring_empty"));
            add(&mut d.rx_ring_full, u(v, "/xsk/rx_ring_full"));
            add(&mut d.xsk_rx_dropped, u(v, "/xsk/rx_dropped"));
            add(&mut d.tx_ring_full, u(v, "/tx_dropped"));
        }
        d
    }
}

/// `RcvbufErrors` of UDP in `ns` (/proc/net/snmp as that netns sees it).
pub fn udp_rcvbuf_errors(ns: &NetNs) -> Result<u64> {
    let text = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))
        .with_context(|| format!("entering {}", ns.name()))?
        .context("reading /proc/net/snmp")?;
    parse_rcvbuf_errors(&text).context("no Udp RcvbufErrors in /proc/net/snmp")
}

fn parse_rcvbuf_errors(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_rcvbuf_errors_are_found_by_column() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 10 0 7 12 7 0\nUdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 3\n";
        assert_eq!(parse_rcvbuf_errors(snmp), Some(7));
        assert_eq!(parse_rcvbuf_errors("Ip: a\nIp: 1\n"), None);
    }

    #[test]
    fn mvdp_stats_sum_ports_and_parents() {
        let st = serde_json::json!({
            "ports": [
                {"tx_dropped": 3, "xsk": {"rx_dropped": 5, "rx_ring_full": 4, "fill_ring_empty": 1}},
                {"tx_dropped": 1, "xsk": {"rx_dropped": 0, "rx_ring_full": 0, "fill_ring_empty": 0}}
            ],
            "parents": {"eth1": {"xsk": {"rx_dropped": 2, "rx_ring_full": 0, "fill_ring_empty": 2}}},
            "drops": {"flood_budget": 9},
            "late_turns": 2
        });
        let d = DropSites::from_mvdp_stats(&st);
        assert_eq!(d.tx_ring_full, Some(4));
        assert_eq!(d.xsk_rx_dropped, Some(7));
        assert_eq!(d.fill_ring_empty, Some(3));
        assert_eq!(d.flood_budget, Some(9));
        assert_eq!(d.udp_rcvbuf, None);
        assert_eq!(d.late_turns, Some(2));
        let before = DropSites {
            tx_ring_full: Some(1),
            flood_budget: Some(9),
            ..Default::default()
        };
        let diff = d.since(&before);
        assert_eq!(diff.tx_ring_full, Some(3));
        assert_eq!(diff.flood_budget, Some(0));
        assert_eq!(diff.fill_ring_empty, None);
        let mut sum = DropSites::default();
        sum.add(&diff);
        sum.add(&diff);
        assert_eq!(sum.tx_ring_full, Some(6));
        assert_eq!(sum.rx_ring_full, None);
    }
}
