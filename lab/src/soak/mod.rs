//! `mvdp lab soak`: hours of a daemon's life in minutes. A lab of eight containers on one
//! bridge-mode network of an `mvdp daemon` process: two pairs exchange UDP round trips and one
//! container broadcasts a trickle ([`traffic`]), while the three others' ports are removed and
//! added again in turn and the daemon is restarted (SIGTERM, then started again on its state) on
//! a schedule. Every sample pauses the traffic, waits for the UMEM's books to balance, and reads
//! the daemon's RSS and open descriptors; [`report`] checks that nothing grows and writes
//! soak.csv, report.json and summary.md. Not a test (it takes minutes and root): run by hand.

pub mod report;
pub mod traffic;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mvdp_control::daemon::{call, NetworkCreate, PortAdd, Request};
use mvdp_control::{Mode, NetNs};
use nix::sys::signal::Signal;

use crate::bench::density::dense::{port_ip, port_mac, DENSE_NET, DENSE_PREFIX_LEN};
use crate::bench::storm::broadcast_addr;
use crate::lab::daemon::{spawn_daemon, stop_daemon_child, DaemonPaths};
use crate::lab::{Lab, CONTAINER_IFNAME, PARENT_IFNAME};
use report::{Sample, SoakReport};
use traffic::{End, Traffic};

const NETWORK: &str = "soak";
/// Containers 1..=4 are two round-trip pairs, 5 broadcasts, 6..=8 are churned.
const BROADCASTER: u32 = 5;
const CHURNED: [u32; 3] = [6, 7, 8];
const CONTAINERS: u32 = 8;
/// How long a sample waits for the books to balance once the traffic is paused.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The lab's name (its namespaces' prefix).
    pub name: String,
    /// The `mvdp` binary whose `daemon` is soaked.
    pub mvdp_bin: PathBuf,
    pub duration: Duration,
    pub restart_every: Duration,
    pub churn_every: Duration,
    pub sample_every: Duration,
}

/// The lab and its daemon process; dropping it stops the daemon, then removes the namespaces.
struct SoakLab {
    daemon: Option<Child>,
    paths: DaemonPaths,
    instance: u32,
    bin: PathBuf,
    containers: Vec<NetNs>,
    lab: Lab,
}

impl SoakLab {
    fn build(cfg: &SoakConfig) -> Result<SoakLab> {
        let mut lab = Lab::builder(&cfg.name).containers(0).build()?;
        let paths = DaemonPaths::new(std::env::temp_dir().join(format!("mvdp-soak-{}", cfg.name)));
        let _ = std::fs::remove_dir_all(&paths.dir);
        let daemon = spawn_daemon(&cfg.mvdp_bin, lab.host(), &paths)?;
        let mut containers = Vec::new();
        for i in 1..=CONTAINERS {
            containers.push(lab.add_bare_container(i)?);
        }
        let s = SoakLab {
            daemon: Some(daemon),
            paths,
            instance: 0,
            bin: cfg.mvdp_bin.clone(),
            containers,
            lab,
        };
        let create = Request::NetworkCreate(NetworkCreate {
            name: NETWORK.into(),
            parent: PARENT_IFNAME.into(),
            mode: Some(Mode::Bridge.to_string()),
            subnet: Some(format!("{DENSE_NET}/{DENSE_PREFIX_LEN}")),
            ..Default::default()
        });
        s.call(&create).context("mvdp network create")?;
        for i in 1..=CONTAINERS {
            s.port_add(i)?;
        }
        Ok(s)
    }

    fn call(&self, req: &Request) -> Result<serde_json::Value> {
        Ok(call(&self.paths.socket(), req)?)
    }

    fn port_add(&self, i: u32) -> Result<()> {
        let ns = &self.containers[i as usize - 1];
        self.call(&Request::PortAdd(PortAdd {
            network: NETWORK.into(),
            netns: Some(ns.name().into()),
            ifname: Some(CONTAINER_IFNAME.into()),
            mac: Some(port_mac(i).to_string()),
            ip: Some(format!("{}/{DENSE_PREFIX_LEN}", port_ip(i))),
            ..Default::default()
        }))
        .with_context(|| format!("adding port {i}"))?;
        Ok(())
    }

    /// Removes container `i`'s port and adds it again.
    fn churn(&self, i: u32) -> Result<()> {
        let ns = &self.containers[i as usize - 1];
        self.call(&Request::PortRm {
            network: NETWORK.into(),
            port: ns.name().into(),
        })
        .with_context(|| format!("removing port {i}"))?;
        self.port_add(i)
    }

    /// Stops the daemon (SIGTERM) and starts it again on its state; returns how long it took.
    fn restart(&mut self) -> Result<Duration> {
        let t = Instant::now();
        if let Some(mut d) = self.daemon.take() {
            stop_daemon_child(&mut d, Signal::SIGTERM);
        }
        self.daemon = Some(spawn_daemon(&self.bin, self.lab.host(), &self.paths)?);
        self.instance += 1;
        Ok(t.elapsed())
    }

    fn pid(&self) -> u32 {
        self.daemon.as_ref().map_or(0, Child::id)
    }

    fn end(&self, i: u32) -> End {
        End {
            ns: self.containers[i as usize - 1].clone(),
            ip: port_ip(i),
        }
    }
}

impl Drop for SoakLab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            stop_daemon_child(&mut d, Signal::SIGTERM);
        }
        let _ = std::fs::remove_dir_all(&self.paths.dir);
    }
}

/// Runs the soak; the report says whether it passed (its files are not written here).
pub fn run(cfg: &SoakConfig, mut progress: impl FnMut(&str)) -> Result<SoakReport> {
    progress("building the lab");
    let mut lab = SoakLab::build(cfg)?;
    let traffic = Traffic::start(
        &[(lab.end(1), lab.end(2)), (lab.end(3), lab.end(4))],
        &lab.end(BROADCASTER),
        broadcast_addr(),
    )?;
    let mut report = SoakReport {
        minutes: cfg.duration.as_secs_f64() / 60.0,
        samples: Vec::new(),
        restart_s: Vec::new(),
        failures: Vec::new(),
    };
    let t0 = Instant::now();
    let (mut next_churn, mut next_restart, mut next_sample) =
        (cfg.churn_every, cfg.restart_every, cfg.sample_every);
    let mut churns = 0u64;
    while t0.elapsed() < cfg.duration {
        let wake = next_churn
            .min(next_restart)
            .min(next_sample)
            .min(cfg.duration);
        std::thread::sleep(wake.saturating_sub(t0.elapsed()));
        let now = t0.elapsed();
        if now >= next_churn {
            lab.churn(CHURNED[churns as usize % CHURNED.len()])?;
            churns += 1;
            next_churn += cfg.churn_every;
        }
        if now >= next_restart {
            progress(&format!(
                "{:.0} s: restarting the daemon",
                now.as_secs_f64()
            ));
            report.restart_s.push(lab.restart()?.as_secs_f64());
            next_restart += cfg.restart_every;
        }
        if now >= next_sample || now >= cfg.duration {
            let s = sample(&lab, &traffic, t0, churns, report.restart_s.len() as u64)?;
            progress(&format!(
                "{:.0} s: RSS {} KiB, {} fds, books {}, {} round trips back",
                s.t_s,
                s.rss_kib,
                s.fds,
                if s.balanced {
                    "balanced"
                } else {
                    "NOT balanced"
                },
                s.rtt_ok
            ));
            report.samples.push(s);
            next_sample += cfg.sample_every;
        }
    }
    drop(traffic);
    progress("removing the lab");
    drop(lab);
    report.check();
    Ok(report)
}

/// Pauses the traffic, waits for the books to balance (up to [`SETTLE`]), reads the daemon.
fn sample(
    lab: &SoakLab,
    traffic: &Traffic,
    t0: Instant,
    churns: u64,
    restarts: u64,
) -> Result<Sample> {
    traffic.pause(true);
    std::thread::sleep(Duration::from_millis(300));
    let end = Instant::now() + SETTLE;
    let stats = loop {
        let st = lab.call(&Request::Stats {})?;
        if st["umem"]["balanced"] == true || Instant::now() > end {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = lab.pid();
    let (rtt_ok, rtt_lost, broadcasts) = traffic.counts.read();
    let s = Sample {
        t_s: t0.elapsed().as_secs_f64(),
        instance: lab.instance,
        pid,
        rss_kib: rss_kib(pid)?,
        fds: fds(pid)?,
        ports: stats["ports"].as_array().map_or(0, |p| p.len() as u64),
        balanced: stats["umem"]["balanced"] == true,
        umem: stats["umem"].to_string(),
        rtt_ok,
        rtt_lost,
        broadcasts,
        churns,
        restarts,
    };
    traffic.pause(false);
    Ok(s)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{path}: no VmRSS"))
}

/// The daemon's open descriptors: the least of a few looks 100 ms apart, so that the control
/// connection of the stats call just made (closed by the daemon right after its reply) is not
/// counted.
fn fds(pid: u32) -> Result<u64> {
    let mut least = u64::MAX;
    for k in 0..3 {
        if k > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let n = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count() as u64;
        least = least.min(n);
    }
    Ok(least)
}
