//! What is measured on a dense lab at N ports: the busy pair (containers 1 and 2: round trips and
//! one flow's pps, with the bench's UDP pieces), reachability of sampled pairs, the daemon's
//! memory, and how long port adds and removes took.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::dense::DenseLab;
use crate::bench::cells::measure_rtt_bounded;
use crate::bench::cpu::MachineCpu;
use crate::bench::pinning::LoadPinned;
use crate::bench::udp::{
    measure_throughput, wait_reachable, EchoServer, Load, Pace, RttClient, RttStats, Throughput,
};
use crate::bench::BenchConfig;

/// UDP payload of the busy pair's round trips and flow.
pub const PAYLOAD: usize = 64;
/// How long a sampled pair gets to answer (the first frame waits for ARP across every port).
const REACH_WAIT: Duration = Duration::from_secs(2);
/// How long the busy pair gets to answer before it is measured.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Why a measurement has no figure.
#[derive(Debug, thiserror::Error)]
pub enum DensityError {
    #[error("no round trip between containers 1 and 2 came back")]
    NothingBack,
    #[error("reading {path}: no {field} line")]
    NoStatusField { path: String, field: &'static str },
}

/// `round_trips` round trips between containers 1 and 2 (container 2 echoes), after the warm-up.
pub fn busy_latency(lab: &DenseLab, cfg: &BenchConfig, round_trips: u64) -> Result<RttStats> {
    let _pinned = LoadPinned::new()?;
    let (a, b) = (lab.endpoint(1), lab.endpoint(2));
    let _echo = EchoServer::start(&b.ns, b.ip)?;
    wait_reachable(&a.ns, a.ip, b.ip, BUSY_WAIT)?;
    let mut client = RttClient::new(&a.ns, a.ip, b.ip, PAYLOAD, cfg.timeout)?;
    measure_rtt_bounded(&mut client, cfg.warmup, round_trips)
}

/// What one throughput slice counted, with the CPU time around it.
pub struct FlowSlice {
    pub counted: Throughput,
    /// The machine's CPU time over the slice.
    pub machine: MachineCpu,
    /// The daemon's workers' CPU time over the slice (mvdp only).
    pub switch: Option<Duration>,
}

/// One flow from container 1 to container 2 for `duration`.
pub fn busy_throughput(lab: &DenseLab, duration: Duration) -> Result<FlowSlice> {
    let _pinned = LoadPinned::new()?;
    let (a, b) = (lab.endpoint(1), lab.endpoint(2));
    let (sw0, m0) = (lab.switch_cpu()?, MachineCpu::now()?);
    let counted = measure_throughput(
        &a.ns,
        a.ip,
        &b.ns,
        b.ip,
        Load {
            flows: 1,
            payload: PAYLOAD,
            duration,
            pace: Pace::Flat,
        },
    )?;
    let (sw1, m1) = (lab.switch_cpu()?, MachineCpu::now()?);
    Ok(FlowSlice {
        counted,
        machine: m1.since(m0),
        switch: sw0.zip(sw1).map(|(a, b)| b.saturating_sub(a)),
    })
}

/// Sampled pairs of ports probed both ways with a UDP round trip.
#[derive(Debug, Clone, Serialize)]
pub struct Reach {
    /// The pairs (port numbers), each probed a -> b and b -> a.
    pub pairs: Vec<(u32, u32)>,
    pub probed: u32,
    pub answered: u32,
    /// "a->b" for each probe that got no answer.
    pub failed: Vec<String>,
}

/// Probes every pair of `pairs` both ways: an echo server on each port involved, one round trip
/// from the other end, up to [`REACH_WAIT`] each.
pub fn reachability(lab: &DenseLab, pairs: &[(u32, u32)]) -> Result<Reach> {
    let mut servers = BTreeMap::new();
    for &i in pairs.iter().flat_map(|(a, b)| [a, b]) {
        if let std::collections::btree_map::Entry::Vacant(v) = servers.entry(i) {
            let e = lab.endpoint(i);
            v.insert(EchoServer::start(&e.ns, e.ip)?);
        }
    }
    let mut reach = Reach {
        pairs: pairs.to_vec(),
        probed: 0,
        answered: 0,
        failed: Vec::new(),
    };
    for &(a, b) in pairs {
        for (from, to) in [(a, b), (b, a)] {
            let (f, t) = (lab.endpoint(from), lab.endpoint(to));
            reach.probed += 1;
            match wait_reachable(&f.ns, f.ip, t.ip, REACH_WAIT) {
                Ok(()) => reach.answered += 1,
                Err(_) => reach.failed.push(format!("{from}->{to}")),
            }
        }
    }
    Ok(reach)
}

/// Up to `k` pairs of distinct ports among `1..=n`, spread over the range (first and last,
/// early and late ones), each as (smaller, larger), without repeats.
pub fn sample_pairs(n: u32, k: u32) -> Vec<(u32, u32)> {
    let mut pairs: Vec<(u32, u32)> = (0..k)
        .map(|j| (1 + j * n / k.max(1), n - j * n / (2 * k.max(1))))
        .filter(|(a, b)| a != b && *a >= 1 && *b >= 1)
        .map(|(a, b)| (a.min(b), a.max(b)))
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

/// Up to `k` idle ports (3..=n, never the busy pair) spread evenly, for the remove/re-add churn.
pub fn churn_ports(n: u32, k: u32) -> Vec<u32> {
    let idle = n.saturating_sub(2);
    let k = k.min(idle);
    let mut v: Vec<u32> = (0..k).map(|j| 3 + j * idle / k).collect();
    v.dedup();
    v
}

/// A process's resident memory (/proc/PID/status).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the most it was resident.
    pub hwm_kib: u64,
    /// VmRSS split: anonymous memory, file mappings, shared memory.
    pub anon_kib: u64,
    pub file_kib: u64,
    pub shmem_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &'static str| {
            status_kib(&status, name).ok_or(DensityError::NoStatusField {
                path: path.clone(),
                field: name,
            })
        };
        Ok(Memory {
            rss_kib: field("VmRSS")?,
            hwm_kib: field("VmHWM")?,
            anon_kib: field("RssAnon")?,
            file_kib: field("RssFile")?,
            shmem_kib: field("RssShmem")?,
        })
    }
}

/// CPU time of the daemon's threads over a stretch of measuring.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DaemonCpu {
    pub seconds: f64,
    /// The `mvdp-worker-N` threads (forwarding).
    pub workers_ms: f64,
    /// Every other thread (control, link polling).
    pub others_ms: f64,
}

impl DaemonCpu {
    /// Adds another stretch.
    pub fn add(&mut self, o: DaemonCpu) {
        self.seconds += o.seconds;
        self.workers_ms += o.workers_ms;
        self.others_ms += o.others_ms;
    }

    /// Between two (workers, all threads) readings taken `seconds` apart.
    pub fn between(a: (Duration, Duration), b: (Duration, Duration), seconds: f64) -> DaemonCpu {
        let workers = b.0.saturating_sub(a.0);
        let all = b.1.saturating_sub(a.1);
        DaemonCpu {
            seconds,
            workers_ms: workers.as_secs_f64() * 1e3,
            others_ms: all.saturating_sub(workers).as_secs_f64() * 1e3,
        }
    }
}

/// The kB value of line `name:` of a /proc status file.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How long a set of port operations took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpTimes {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl OpTimes {
    /// Nearest-rank percentiles; `None` for no operations.
    pub fn of(times: &[Duration]) -> Option<OpTimes> {
        let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        (!ms.is_empty()).then(|| OpTimes {
            count: ms.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_pairs_are_distinct_ports_in_range() {
        assert_eq!(sample_pairs(2, 8), vec![(1, 2)]);
        for n in [3, 8, 64, 256, 1000] {
            let p = sample_pairs(n, 8);
            assert!(!p.is_empty() && p.len() <= 8, "{n}: {p:?}");
            assert!(p.iter().all(|&(a, b)| 1 <= a && a < b && b <= n), "{p:?}");
        }
        let p = sample_pairs(1000, 8);
        assert_eq!(p.len(), 8);
        assert!(p.contains(&(1, 1000)), "{p:?}");
    }

    #[test]
    fn churn_spares_the_busy_pair() {
        assert!(churn_ports(2, 100).is_empty());
        assert_eq!(churn_ports(8, 100), vec![3, 4, 5, 6, 7, 8]);
        let c = churn_ports(1000, 100);
        assert_eq!(c.len(), 100);
        assert!(c.iter().all(|&i| (3..=1000).contains(&i)), "{c:?}");
    }

    #[test]
    fn op_times_take_nearest_rank_percentiles() {
        let t: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let o = OpTimes::of(&t).unwrap();
        assert_eq!(
            (o.count, o.p50_ms, o.p99_ms, o.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert!(OpTimes::of(&[]).is_none());
        let one = OpTimes::of(&[Duration::from_millis(3)]).unwrap();
        assert_eq!(one.p99_ms, 3.0);
    }

    #[test]
    fn reads_status_fields() {
        let s = "Name:\tmvdp\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nRssAnon:\t 20480 kB\n";
        assert_eq!(status_kib(s, "VmRSS"), Some(30720));
        assert_eq!(status_kib(s, "VmHWM"), Some(40960));
        assert_eq!(status_kib(s, "RssAnon"), Some(20480));
        assert_eq!(status_kib(s, "VmSwap"), None);
        let me = Memory::of(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib);
    }
}
