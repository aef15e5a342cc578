//! The labs being compared. Every backend gets the same shape — the lab's wire switch with the
//! external host, one host with parent NIC eth1, containers c1 and c2 — and differs only in how
//! the containers are attached to the parent: kernel macvlan children, a Linux bridge over veths,
//! mvdp (adaptive, or busy-polling on a core of its own), Open vSwitch's userspace datapath with
//! the parent and container veths as AF_XDP ports (PMD or not), or (for the ceiling) a bare AF_XDP
//! forwarder between the two container veths.

use std::net::Ipv4Addr;
use std::time::Duration;

pub use crate::backend::Backend;
use crate::lab::daemon::{attach_containers, InProcessDaemon};
use crate::lab::ovs::{ovs_programs, OvsPolling, OvsSwitch};
use crate::lab::Lab;
use anyhow::{anyhow, Context, Result};
use mvdp_control::{Mode, NetNs};
use serde::Serialize;

use super::ceiling::Forwarder;
use super::drops::DropSites;
use super::pinning;
use super::udp::{wait_reachable, EchoServer};

/// Why a scenario does not exist for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotApplicable(pub &'static str);

/// The bench's view of a [`Backend`]: its name in results, its lab, and which scenarios it has.
impl Backend {
    /// Stable name used in results.json, plots and criterion ids ("mvdp-bridge", "ceiling").
    pub fn name(&self) -> String {
        match self {
            Backend::Mvdp(m) => format!("mvdp-{m}"),
            Backend::Macvlan(m) => format!("macvlan-{m}"),
            Backend::Bridge => "bridge".into(),
            Backend::Ceiling => "ceiling".into(),
            Backend::None => "none".into(),
            Backend::MvdpBusy
            | Backend::MvdpTraced
            | Backend::CeilingTraced
            | Backend::MvdpBusyTraced
            | Backend::MvdpColocated
            | Backend::OvsAfxdp
            | Backend::OvsAfxdpNonPmd => self.kind().into(),
        }
    }

    /// Short suffix of this backend's lab name (lab names stay within 40 bytes).
    fn tag(&self) -> String {
        let m = |m: &Mode| match m {
            Mode::Bridge => "b",
            Mode::Private => "p",
            Mode::Vepa => "v",
            Mode::Passthru => "t",
            Mode::Source => "s",
        };
        match self {
            Backend::Mvdp(mode) => format!("d{}", m(mode)),
            Backend::Macvlan(mode) => format!("k{}", m(mode)),
            Backend::Bridge => "br".into(),
            Backend::Ceiling => "x".into(),
            Backend::None => "n".into(),
            Backend::MvdpBusy => "dy".into(),
            Backend::MvdpTraced => "dh".into(),
            Backend::CeilingTraced => "xh".into(),
            Backend::MvdpBusyTraced => "dyh".into(),
            Backend::MvdpColocated => "dc".into(),
            Backend::OvsAfxdp => "o".into(),
            Backend::OvsAfxdpNonPmd => "on".into(),
        }
    }

    /// Every backend the bench can measure: mvdp and kernel macvlan in bridge, vepa, private and
    /// passthru mode, the Linux bridge, the ceiling, mvdp-busy, mvdp-colocated and OVS with AF_XDP
    /// ports.
    pub fn bench_all() -> Vec<Backend> {
        let modes = [Mode::Bridge, Mode::Vepa, Mode::Private, Mode::Passthru];
        let mut v: Vec<Backend> = modes.iter().map(|m| Backend::Mvdp(*m)).collect();
        v.extend(modes.iter().map(|m| Backend::Macvlan(*m)));
        v.extend([
            Backend::Bridge,
            Backend::Ceiling,
            Backend::MvdpBusy,
            Backend::MvdpTraced,
            Backend::CeilingTraced,
            Backend::MvdpBusyTraced,
            Backend::MvdpColocated,
            Backend::OvsAfxdp,
            Backend::OvsAfxdpNonPmd,
        ]);
        v
    }

    /// Measured in the latency cells only (its throughput would only measure the tracing).
    pub fn latency_only(&self) -> bool {
        self.traced()
    }

    /// Its switch splits round trips into hops (see `bench::hops`).
    pub fn traced(&self) -> bool {
        matches!(
            self,
            Backend::MvdpTraced | Backend::MvdpBusyTraced | Backend::CeilingTraced
        )
    }

    /// The lab name this backend uses under run name `run`.
    pub fn lab_name(&self, run: &str) -> String {
        format!("{run}{}", self.tag())
    }

    /// `Some(reason)` when this backend cannot be measured at all in this build.
    /// A peer switch measured against mvdp (Open vSwitch), not mvdp or the kernel.
    pub fn is_peer(&self) -> bool {
        matches!(self, Backend::OvsAfxdp | Backend::OvsAfxdpNonPmd)
    }

    pub fn unavailable(&self) -> Option<String> {
        match self {
            Backend::Macvlan(Mode::Source) => {
                Some("source mode needs per-port allowed-MAC lists; not benchmarked".into())
            }
            Backend::OvsAfxdp | Backend::OvsAfxdpNonPmd if ovs_programs().is_err() => {
                ovs_programs().err()
            }
            Backend::MvdpColocated if pinning::plan().load_cpus.is_empty() => Some(
                "its worker goes on the load generators' CPU, and the load is not pinned (--load-cpus none, or one CPU)"
                    .into(),
            ),
            b if b.dedicated_core() && pinning::plan().switch_cpu.is_none() => Some(
                "needs a CPU of its own apart from the load generators' (one CPU, or --load-cpus took them all)"
                    .into(),
            ),
            _ => None,
        }
    }

    /// `Err(reason)` when `scenario` does not exist for this backend.
    pub fn supports(&self, scenario: Scenario) -> Result<(), NotApplicable> {
        match (self, scenario) {
            (Backend::Ceiling | Backend::CeilingTraced, Scenario::ContainerExternal) => Err(
                NotApplicable("the ceiling forwards between the two container veths only"),
            ),
            (
                Backend::Macvlan(Mode::Passthru) | Backend::Mvdp(Mode::Passthru),
                Scenario::ContainerContainer,
            ) => Err(NotApplicable("passthru allows a single port per parent")),
            // The kernel delivers a private port's broadcasts back to itself only, so a sibling
            // never sees its ARP request: siblings cannot talk at all.
            (
                Backend::Macvlan(Mode::Private) | Backend::Mvdp(Mode::Private),
                Scenario::ContainerContainer,
            ) => Err(NotApplicable(
                "private mode isolates ports of one parent from each other",
            )),
            _ => Ok(()),
        }
    }

    fn containers(&self) -> u32 {
        match self {
            Backend::Macvlan(Mode::Passthru) | Backend::Mvdp(Mode::Passthru) => 1,
            _ => 2,
        }
    }
}

/// Who talks to whom. The client is always container 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Container 1 <-> container 2 on the same host.
    ContainerContainer,
    /// Container 1 <-> the external host behind the wire switch.
    ContainerExternal,
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::ContainerContainer, Scenario::ContainerExternal];
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::ContainerContainer => "container_container",
            Scenario::ContainerExternal => "container_external",
        }
    }
    pub fn label(&self) -> &'static str {
        match self {
            Scenario::ContainerContainer => "container <-> container (same host)",
            Scenario::ContainerExternal => "container <-> external host",
        }
    }
}

/// One backend's lab with echo servers running on every possible server endpoint.
pub struct BenchLab {
    pub backend: Backend,
    // Field order is drop order: servers and the forwarder go before the namespaces.
    echo: Vec<EchoServer>,
    forwarder: Option<Forwarder>,
    /// Open vSwitch serving this lab (OVS backends; stopped before the namespaces go).
    ovs: Option<OvsSwitch>,
    /// The mvdp daemon serving this lab (in this process, inside the lab's host netns) and its
    /// worker threads, whose CPU time is the switching cost counted next to every throughput.
    daemon: Option<InProcessDaemon>,
    lab: Lab,
}

/// An endpoint of a scenario.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ns: NetNs,
    pub ip: Ipv4Addr,
}

/// Thread-name prefix of the daemon's busy-polling workers.
pub const DAEMON_WORKER_PREFIX: &str = "mvdp-worker-";

impl BenchLab {
    /// Builds `backend`'s lab named `lab_name` and checks every scenario's path answers. On any
    /// error everything built so far is removed.
    pub fn build(lab_name: &str, backend: Backend) -> Result<BenchLab> {
        if let Some(why) = backend.unavailable() {
            return Err(anyhow!("{}: unavailable: {why}", backend.name()));
        }
        // Kernel macvlan and the bridge are the lab's own backends; the ceiling (and mvdp, once
        // its daemon exists) attach to plain container veths / empty containers themselves.
        let lab_backend = match backend {
            Backend::Macvlan(_) | Backend::Bridge => backend,
            Backend::Ceiling
            | Backend::Mvdp(_)
            | Backend::None
            | Backend::MvdpBusy
            | Backend::MvdpTraced
            | Backend::CeilingTraced
            | Backend::MvdpBusyTraced
            | Backend::MvdpColocated
            | Backend::OvsAfxdp
            | Backend::OvsAfxdpNonPmd => Backend::None,
        };
        let lab = Lab::builder(lab_name)
            .containers(backend.containers())
            // VEPA exchanges container traffic only through a reflecting switch.
            .hairpin(matches!(
                backend,
                Backend::Macvlan(Mode::Vepa) | Backend::Mvdp(Mode::Vepa)
            ))
            .container_veths(matches!(
                backend,
                Backend::Ceiling
                    | Backend::CeilingTraced
                    | Backend::OvsAfxdp
                    | Backend::OvsAfxdpNonPmd
            ))
            .backend(lab_backend)
            .build()
            .with_context(|| format!("building lab {lab_name} for {}", backend.name()))?;
        let mut bl = BenchLab {
            backend,
            echo: Vec::new(),
            forwarder: None,
            ovs: None,
            daemon: None,
            lab,
        };
        bl.attach()
            .with_context(|| format!("attaching containers for {}", backend.name()))?;
        for sc in Scenario::ALL {
            if backend.supports(sc).is_ok() {
                let server = bl.server(sc);
                bl.echo.push(EchoServer::start(&server.ns, server.ip)?);
            }
        }
        bl.set_measuring(true);
        for sc in Scenario::ALL {
            if backend.supports(sc).is_ok() {
                let (c, s) = (bl.client(), bl.server(sc));
                wait_reachable(&c.ns, c.ip, s.ip, Duration::from_secs(5))
                    .with_context(|| format!("{}: {}", backend.name(), sc.label()))?;
            }
        }
        bl.set_measuring(false);
        Ok(bl)
    }

    fn attach(&mut self) -> Result<()> {
        use mvdp_engine::runtime::{PollMode, RuntimeOptions};
        if let Backend::Mvdp(mode) = self.backend {
            let opts = RuntimeOptions {
                poll: mvdp_poll(),
                ..RuntimeOptions::default()
            };
            self.daemon = Some(start_mvdp(&self.lab, mode, opts)?);
        }
        if matches!(self.backend, Backend::MvdpBusy | Backend::MvdpBusyTraced) {
            let opts = RuntimeOptions {
                poll: PollMode::BusyPoll,
                cpus: pinning::plan().switch_cpu.into_iter().collect(),
                trace_hops: u32::from(self.backend == Backend::MvdpBusyTraced),
                ..RuntimeOptions::default()
            };
            self.daemon = Some(start_mvdp(&self.lab, Mode::Bridge, opts)?);
        }
        if self.backend == Backend::MvdpColocated {
            // On the first load CPU, where the containers' senders and receivers run: the frame a
            // container sends wakes the worker there and the worker's TX kick wakes the receiver
            // there, so no crossing waits for another (halted) CPU to wake. No spin: spinning on a
            // CPU the receiver needs only delays the receiver.
            let cpu = *pinning::plan()
                .load_cpus
                .first()
                .ok_or_else(|| anyhow!("mvdp-colocated: the load is not pinned to a CPU"))?;
            let opts = RuntimeOptions {
                poll: PollMode::Adaptive,
                spin: Duration::ZERO,
                cpus: vec![cpu],
                ..RuntimeOptions::default()
            };
            self.daemon = Some(start_mvdp(&self.lab, Mode::Bridge, opts)?);
        }
        if self.backend == Backend::MvdpTraced {
            let opts = RuntimeOptions {
                poll: mvdp_poll(),
                trace_hops: 1,
                ..RuntimeOptions::default()
            };
            self.daemon = Some(start_mvdp(&self.lab, Mode::Bridge, opts)?);
        }
        if matches!(self.backend, Backend::OvsAfxdp | Backend::OvsAfxdpNonPmd) {
            let polling = match (self.backend, pinning::plan().switch_cpu) {
                (Backend::OvsAfxdp, Some(cpu)) => OvsPolling::Pmd { cpu },
                (Backend::OvsAfxdp, None) => anyhow::bail!("no CPU for OVS's PMD thread"),
                _ => OvsPolling::NonPmd,
            };
            let lab = &self.lab;
            let dir = std::path::PathBuf::from(format!("/run/mvdp/ovs-{}", lab.prefix()));
            let ports = [
                lab.parent_ifname(),
                lab.container(1).host_ifname.as_str(),
                lab.container(2).host_ifname.as_str(),
            ];
            self.ovs = Some(OvsSwitch::start(lab.host(), &dir, &ports, polling)?);
        }
        if matches!(self.backend, Backend::Ceiling | Backend::CeilingTraced) {
            let lab = &self.lab;
            let (a, b) = (&lab.container(1).host_ifname, &lab.container(2).host_ifname);
            let trace = self.backend == Backend::CeilingTraced;
            self.forwarder = Some(Forwarder::start_traced(lab.host(), a, b, trace)?);
        }
        Ok(())
    }

    /// mvdp's counters as `mvdp stats --json` shows them (mvdp backends only).
    pub fn mvdp_stats(&self) -> Option<serde_json::Value> {
        use mvdp_control::daemon::api::Request;
        let d = self.daemon.as_ref()?;
        // Right after a blast the worker may still be draining; its books are exact once idle.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let st = mvdp_control::daemon::call(d.socket(), &Request::Stats {}).ok()?;
            let balanced = st.pointer("/umem/balanced").and_then(|b| b.as_bool()) == Some(true);
            if balanced || std::time::Instant::now() > deadline {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The switch's hop histograms so far (mvdp's `--trace-hops`, the traced ceiling's; empty
    /// for other backends).
    pub fn hops(&self) -> mvdp_switch::hops::HopStats {
        use mvdp_control::daemon::api::Request;
        if let Some(f) = &self.forwarder {
            return f.hops();
        }
        self.daemon
            .as_ref()
            .and_then(|d| mvdp_control::daemon::call(d.socket(), &Request::Stats {}).ok())
            .and_then(|st| serde_json::from_value(st.get("hops")?.clone()).ok())
            .unwrap_or_default()
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Container 1: the client of every scenario and the sender of every flow.
    pub fn client(&self) -> Endpoint {
        let c = self.lab.container(1);
        Endpoint {
            ns: c.ns.clone(),
            ip: c.ip,
        }
    }

    /// The other end of `scenario`.
    pub fn server(&self, scenario: Scenario) -> Endpoint {
        match scenario {
            Scenario::ContainerContainer => {
                let c = self.lab.container(2);
                Endpoint {
                    ns: c.ns.clone(),
                    ip: c.ip,
                }
            }
            Scenario::ContainerExternal => Endpoint {
                ns: self.lab.ext().clone(),
                ip: self.lab.ext_ip(),
            },
        }
    }

    /// Marks the start/end of a measurement on this lab. The switches that spin (the ceiling,
    /// OVS's PMD, mvdp-busy's worker) do so only then, so they do not tax the backends measured
    /// meanwhile: the ceiling polls every 50 ms, mvdp-busy's worker polls adaptively (asleep,
    /// with no traffic), vswitchd's threads run under SCHED_IDLE (only when their CPU has
    /// nothing else to do) and OVS's PMD sleeps when it polls nothing (see
    /// `OvsSwitch::set_pmd_resting`). mvdp-busy's worker too ran under SCHED_IDLE before; the
    /// scheduler still gave it millisecond slices on the measured switch's CPU.
    pub fn set_measuring(&self, on: bool) {
        use mvdp_engine::runtime::PollMode;
        if let Some(f) = &self.forwarder {
            f.set_active(on);
        }
        if let (Some(d), true) = (&self.daemon, self.backend.dedicated_core()) {
            d.set_poll(if on {
                PollMode::BusyPoll
            } else {
                PollMode::Adaptive
            });
        }
        if let Some(o) = &self.ovs {
            if let Err(e) = pinning::set_idle_priority(&o.vswitchd_threads(), !on) {
                tracing::warn!("{}: {e:#}", self.backend.name());
            }
            if let Err(e) = o.set_pmd_resting(!on) {
                tracing::warn!("{}: {e:#}", self.backend.name());
            }
        }
    }

    /// The CPUs this lab's switching threads may run on (see [`pinning::affinity`]): mvdp's
    /// workers; OVS's PMD threads, or vswitchd's main thread where it has none; None for the
    /// kernel's backends and the ceiling.
    pub fn switch_affinity(&self) -> Option<Vec<usize>> {
        if let Some(d) = &self.daemon {
            return pinning::affinity(d.worker_tids());
        }
        let o = self.ovs.as_ref()?;
        let pmds = o.pmd_threads();
        if pmds.is_empty() {
            pinning::affinity(&[o.vswitchd_pid()?])
        } else {
            pinning::affinity(&pmds)
        }
    }

    /// Stops the ceiling forwarder (if this lab has one) and returns what it counted.
    pub fn stop_forwarder(&mut self) -> Option<Result<super::ceiling::ForwardCounters>> {
        self.forwarder.take().map(Forwarder::stop)
    }

    /// CPU time so far of the switching threads outside the endpoints (the ceiling's forwarder;
    /// mvdp's `mvdp-worker-N` threads; every thread of ovs-vswitchd), if there are any.
    pub fn switch_cpu(&self) -> Option<Duration> {
        if let Some(d) = &self.daemon {
            return Some(super::cpu::tids_cpu(d.worker_tids()));
        }
        if let Some(o) = &self.ovs {
            return o.vswitchd_pid().and_then(super::cpu::pid_cpu);
        }
        self.forwarder.as_ref().map(|f| f.cpu())
    }

    /// Drops so far at the sites this backend exposes (see [`DropSites`]).
    pub fn drop_sites(&self) -> DropSites {
        use mvdp_control::daemon::api::Request;
        if let Some(d) = &self.daemon {
            return mvdp_control::daemon::call(d.socket(), &Request::Stats {})
                .map(|st| DropSites::from_mvdp_stats(&st))
                .unwrap_or_default();
        }
        if let Some(o) = &self.ovs {
            return DropSites {
                tx_ring_full: o.coverage(&["afxdp_tx_full"]).ok().map(|v| v[0]),
                ..DropSites::default()
            };
        }
        self.forwarder
            .as_ref()
            .map(|f| f.drop_sites())
            .unwrap_or_default()
    }

    /// OVS's own per-port statistics (`ovs-vsctl get interface IF statistics`), OVS backends only.
    pub fn ovs_statistics(&self) -> Option<Vec<(String, String)>> {
        self.ovs.as_ref().map(|o| o.interface_statistics())
    }
}

static MVDP_POLL: std::sync::OnceLock<mvdp_engine::runtime::PollMode> = std::sync::OnceLock::new();

/// How mvdp's workers wait in this run (set once, before any lab is built; adaptive otherwise).
pub fn set_mvdp_poll(mode: mvdp_engine::runtime::PollMode) {
    let _ = MVDP_POLL.set(mode);
}

pub fn mvdp_poll() -> mvdp_engine::runtime::PollMode {
    MVDP_POLL.get().copied().unwrap_or_default()
}

/// Starts mvdp for a bench lab in this process, inside the lab's host netns, and attaches the
/// containers through the daemon's API, as `mvdp network create` / `mvdp port add` would.
fn start_mvdp(
    lab: &Lab,
    mode: Mode,
    opts: mvdp_engine::runtime::RuntimeOptions,
) -> Result<InProcessDaemon> {
    let socket = std::path::PathBuf::from(format!("/run/mvdp/bench-{}.sock", lab.prefix()));
    let d = InProcessDaemon::start(lab, socket, opts)?;
    attach_containers(d.socket(), lab, "bench", mode)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_gets_its_own_valid_lab_name() {
        let run = "mvb4194304";
        let mut names: Vec<String> = Backend::bench_all()
            .iter()
            .map(|b| b.lab_name(run))
            .collect();
        for n in &names {
            mvdp_control::names::validate_prefix(n).unwrap();
            assert!(n.starts_with(run));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Backend::bench_all().len());
    }

    #[test]
    fn cells_that_cannot_exist_say_why() {
        let cc = Scenario::ContainerContainer;
        let ce = Scenario::ContainerExternal;
        assert!(Backend::Ceiling.supports(ce).is_err());
        assert!(Backend::Ceiling.supports(cc).is_ok());
        assert!(Backend::Macvlan(Mode::Passthru).supports(cc).is_err());
        assert!(Backend::Macvlan(Mode::Private).supports(cc).is_err());
        assert!(Backend::Macvlan(Mode::Vepa).supports(cc).is_ok());
        for b in Backend::bench_all() {
            assert!(
                b.supports(ce).is_ok() || b == Backend::Ceiling || b == Backend::CeilingTraced,
                "{}",
                b.name()
            );
        }
        assert!(Backend::Mvdp(Mode::Bridge).unavailable().is_none());
        assert!(Backend::Mvdp(Mode::Private).supports(cc).is_err());
        assert!(Backend::Macvlan(Mode::Source).unavailable().is_some());
        assert!(Backend::Bridge.unavailable().is_none());
    }
}
