//! The busy pair at one N, measured in slices so that the backends interleave (as the bench's
//! cells do): each slice is a share of the round trips and of the flow's time, and the daemon's
//! CPU time around it.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::dense::DenseLab;
use super::measure::{busy_latency, busy_throughput, DaemonCpu, DensityError};
use super::report::DensityRow;
use crate::bench::cpu::MachineCpu;
use crate::bench::report::{LatencyFigures, ThroughputFigures};
use crate::bench::udp::{RttStats, Throughput};
use crate::bench::BenchConfig;

/// What the slices measured so far.
pub struct Busy {
    rtt: RttStats,
    flow: Throughput,
    machine: MachineCpu,
    switch: Option<Duration>,
    cpu: Option<DaemonCpu>,
    failed: Option<anyhow::Error>,
}

impl Busy {
    pub fn new() -> Busy {
        Busy {
            rtt: RttStats::new(),
            flow: Throughput::default(),
            machine: MachineCpu::default(),
            switch: None,
            cpu: None,
            failed: None,
        }
    }

    /// One slice of `cfg.rounds`; after a failure the pair is not measured again.
    pub fn measure_slice(&mut self, lab: &DenseLab, cfg: &BenchConfig) {
        if self.failed.is_none() {
            if let Err(e) = self.slice(lab, cfg) {
                self.failed = Some(e);
            }
        }
    }

    fn slice(&mut self, lab: &DenseLab, cfg: &BenchConfig) -> Result<()> {
        let rounds = cfg.rounds.max(1);
        let (t0, cpu0) = (Instant::now(), lab.daemon_cpu()?);
        let rtt = busy_latency(lab, cfg, cfg.round_trips.div_ceil(u64::from(rounds)))?;
        self.rtt.merge(&rtt);
        let f = busy_throughput(lab, cfg.duration.div_f64(f64::from(rounds)))?;
        self.flow.merge(&f.counted);
        self.machine += f.machine;
        if let Some(s) = f.switch {
            *self.switch.get_or_insert(Duration::ZERO) += s;
        }
        if let (Some(a), Some(b)) = (cpu0, lab.daemon_cpu()?) {
            let c = DaemonCpu::between(a, b, t0.elapsed().as_secs_f64());
            self.cpu.get_or_insert(DaemonCpu::default()).add(c);
        }
        Ok(())
    }

    /// Puts the figures (or the failure) into `row`.
    pub fn finish(self, row: &mut DensityRow) {
        if let Some(e) = &self.failed {
            row.fail(e);
        }
        row.latency = LatencyFigures::from_stats(&self.rtt);
        if row.latency.is_none() && self.failed.is_none() {
            row.fail(&DensityError::NothingBack.into());
        }
        if self.flow.duration > Duration::ZERO {
            row.throughput = Some(ThroughputFigures::new(
                &self.flow,
                self.machine,
                self.switch,
            ));
        }
        row.daemon_cpu = self.cpu;
    }
}
