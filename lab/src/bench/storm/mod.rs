//! The broadcast-storm scenario of `mvdp bench` (`--storm`): on a three-container lab per backend
//! (mvdp and kernel macvlan, bridge mode; the density scenario's [`DenseLab`]), containers 1 and 2
//! measure UDP round trips while idle, then again while container 3 sends broadcasts as fast as
//! its socket takes them ([`blast`]). Slices alternate idle and storm, backends interleaved.
//! Figures: both latency distributions, their ratio (storm / idle), the storm's rate, and for
//! mvdp the flood rate cap it ran with and the storming port's counters from `mvdp stats` (its
//! floods dropped by the per-port flood share and rate). [`report`] holds results.json's part
//! and summary.md's table.

pub mod blast;
pub mod report;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use indicatif::ProgressBar;
use mvdp_switch::{FloodRate, Mode};

use super::density::dense::{DenseLab, DENSE_NET, DENSE_PREFIX_LEN};
use super::density::measure::busy_latency;
use super::pinning::{self, LoadPinned};
use super::topology::Backend;
use super::udp::RttStats;
use super::BenchConfig;
use blast::{Blasted, Blaster};
use report::{StormResults, StormRow};

/// The backends the storm scenario compares.
pub const BACKENDS: [Backend; 2] = [Backend::Mvdp(Mode::Bridge), Backend::Macvlan(Mode::Bridge)];
/// The storming container; 1 and 2 are the measured pair.
pub const STORM_PORT: u32 = 3;
/// How long the storm runs before round trips are timed under it.
const SETTLE: Duration = Duration::from_millis(300);

pub const METHOD: &str = "Each backend gets a lab of three containers in bridge mode on one parent (mvdp: the `mvdp daemon` binary with its defaults, \
one worker, adaptive poll; kernel macvlan: children of the same parent). Containers 1 and 2 time UDP round trips (64-byte payload, one in flight, \
container 2 echoes). Each slice measures a share of the round trips idle, then starts container 3 sending 64-byte UDP broadcasts to the subnet's \
broadcast address from one thread as fast as its socket takes them, waits 0.3 s, and measures the same share again under the storm. Backends are \
interleaved slice by slice. The ratio divides the storm's figure by the idle one of the same backend; the target is mvdp's p99 ratio <= 2. \
The storming port's counters are mvdp's own (`mvdp stats`): flood_dropped is its broadcasts dropped whole because its flood share per turn \
(flood_share) or its flood rate per second (flood_rate, the cap shown: `mvdp daemon --flood-rate`, the daemon's default unless `mvdp bench \
--flood-rate` set one) was spent.";

/// What the storm scenario runs.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// The `mvdp` binary whose `daemon` serves the mvdp lab.
    pub mvdp_bin: PathBuf,
    /// `mvdp daemon --flood-rate` for the mvdp lab (`None`: the daemon's default).
    pub flood_rate: Option<FloodRate>,
}

impl StormConfig {
    /// The options the mvdp lab's daemon gets.
    fn daemon_args(&self) -> Vec<String> {
        match self.flood_rate {
            Some(r) => vec!["--flood-rate".into(), format!("{},{}", r.pps, r.burst)],
            None => Vec::new(),
        }
    }
}

/// The subnet's broadcast address (the storm's destination).
pub fn broadcast_addr() -> Ipv4Addr {
    let host_bits = 32 - u32::from(DENSE_PREFIX_LEN);
    Ipv4Addr::from(u32::from(DENSE_NET) | ((1u32 << host_bits) - 1))
}

/// One backend's measurements so far.
struct Tally {
    idle: RttStats,
    storm: RttStats,
    blasted: Blasted,
    failed: Option<anyhow::Error>,
}

/// Builds both labs, measures them in `cfg.rounds` slices and removes them.
pub(super) fn run(cfg: &BenchConfig, s: &StormConfig, pb: &ProgressBar) -> Result<StormResults> {
    let mut labs = Vec::new();
    for b in BACKENDS {
        pb.set_message(format!("building the {} lab", b.name()));
        let mut lab =
            DenseLab::build_with(&b.lab_name(&cfg.run_name), b, &s.mvdp_bin, &s.daemon_args())?;
        lab.grow(STORM_PORT, || {})?;
        labs.push(lab);
    }
    let rounds = cfg.rounds.max(1);
    pb.set_length(u64::from(rounds) * labs.len() as u64);
    let mut tallies: Vec<Tally> = labs
        .iter()
        .map(|_| Tally {
            idle: RttStats::new(),
            storm: RttStats::new(),
            blasted: Blasted::default(),
            failed: None,
        })
        .collect();
    let per_slice = cfg.round_trips.div_ceil(u64::from(rounds));
    for round in 0..rounds as usize {
        for i in (0..labs.len()).map(|k| (k + round) % labs.len()) {
            pb.set_message(format!("{}: slice {}", labs[i].backend.name(), round + 1));
            let t = &mut tallies[i];
            if t.failed.is_none() {
                if let Err(e) = slice(&labs[i], cfg, per_slice, t) {
                    t.failed = Some(e);
                }
            }
            pb.inc(1);
        }
    }
    let rows: Vec<StormRow> = labs
        .iter()
        .zip(tallies)
        .map(|(lab, t)| StormRow::new(lab, &t.idle, &t.storm, t.blasted, t.failed.as_ref()))
        .collect();
    pb.set_message("removing the labs");
    drop(labs);
    Ok(StormResults::new(cfg, rows))
}

/// One idle share of round trips, then one under a storm from container 3.
/// The measured pair (client and echo server) runs on the load CPUs and the storm's sender on
/// the CPU apart from them (`pinning::plan`), as a storming container and its neighbours have
/// CPUs of their own on a real host: what is left between them is the switch.
fn slice(lab: &DenseLab, cfg: &BenchConfig, n: u64, t: &mut Tally) -> Result<()> {
    let _pinned = LoadPinned::new()?;
    t.idle.merge(&busy_latency(lab, cfg, n)?);
    let storm = lab.endpoint(STORM_PORT);
    let blaster = Blaster::start(&storm.ns, storm.ip, broadcast_addr(), storm_cpu())?;
    blaster.settle(SETTLE);
    let measured = busy_latency(lab, cfg, n);
    let b = blaster.stop();
    t.blasted.sent += b.sent;
    t.blasted.refused += b.refused;
    t.blasted.seconds += b.seconds;
    t.storm.merge(&measured?);
    Ok(())
}

/// The storm sender's CPU: the one the run keeps apart from the load (None: not pinned).
fn storm_cpu() -> Option<usize> {
    let plan = pinning::plan();
    plan.switch_cpu.filter(|_| !plan.load_cpus.is_empty())
}

/// Where the scenario's threads ran, for the report.
pub fn placement() -> String {
    match storm_cpu() {
        Some(c) => format!(
            "measured pair (client, echo server) pinned to CPU {:?}, storm sender to CPU {c}; mvdp's worker not pinned (the daemon's default)",
            pinning::plan().load_cpus
        ),
        None => "nothing pinned (one CPU, or --load-cpus none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_goes_to_the_subnets_broadcast_address() {
        assert_eq!(broadcast_addr(), Ipv4Addr::new(198, 18, 31, 255));
    }

    #[test]
    fn the_daemon_gets_the_flood_rate_asked_for_and_parses_it_back() {
        let mut s = StormConfig {
            mvdp_bin: "mvdp".into(),
            flood_rate: None,
        };
        assert!(s.daemon_args().is_empty());
        s.flood_rate = Some(FloodRate::new(300, 7).unwrap());
        let a = s.daemon_args();
        assert_eq!(a[0], "--flood-rate");
        assert_eq!(
            a[1].parse::<FloodRate>(),
            Ok(FloodRate::new(300, 7).unwrap())
        );
        s.flood_rate = Some(FloodRate::UNLIMITED);
        assert_eq!(s.daemon_args()[1].parse(), Ok(FloodRate::UNLIMITED));
    }
}
