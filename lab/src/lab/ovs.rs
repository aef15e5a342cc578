//! Open vSwitch on a lab, for `mvdp bench`'s OVS backends: its own ovsdb-server and ovs-vswitchd in
//! the lab's host namespace, with private run/db/log/sysconf directories (nothing of a system OVS is
//! read or touched), one `netdev` (userspace) bridge whose ports are the parent and the container veths
//! as `afxdp` (PMD-polled) or `afxdp-nonpmd` ports, forwarding with the default NORMAL flow (L2
//! learning). Stopped on drop: SIGTERM then SIGKILL by pidfile, the XDP programs OVS leaves on its ports
//! removed, the directories deleted. On Ctrl-C the lab's handler stops both processes and removes the
//! directory ([`super::registry`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use mvdp_control::NetNs;

use super::registry::{
    forget_daemon_on_interrupt, forget_dir_on_interrupt, remove_dir_on_interrupt,
    stop_daemon_on_interrupt,
};

/// The OVS bridge's name in the lab's host namespace.
pub const OVS_BRIDGE: &str = "brovs";
/// OVS's database schema as Debian's openvswitch-common installs it.
const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// The programs the backend runs.
const PROGRAMS: [&str; 5] = [
    "ovsdb-tool",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovs-vsctl",
    "ovs-appctl",
];
/// How long ovs-vsctl may wait for vswitchd to apply a change (never forever).
const VSCTL_TIMEOUT_S: u32 = 20;
/// The longest OVS lets a PMD sleep when it polls nothing (`other_config:pmd-maxsleep`).
const PMD_REST_US: u32 = 10_000;
/// SIGTERM to exit: vswitchd takes 1.2–1.8 s with AF_XDP ports.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How OVS polls its AF_XDP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OvsPolling {
    /// `type=afxdp`: a PMD thread pinned to this CPU (`other_config:pmd-cpu-mask`) spins on them.
    Pmd { cpu: usize },
    /// `type=afxdp-nonpmd`: vswitchd's main thread polls them.
    NonPmd,
}

impl OvsPolling {
    fn port_type(self) -> &'static str {
        match self {
            OvsPolling::Pmd { .. } => "afxdp",
            OvsPolling::NonPmd => "afxdp-nonpmd",
        }
    }
}

/// Where the OVS programs are, or why the backend cannot run.
pub fn ovs_programs() -> std::result::Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    for p in PROGRAMS {
        match find_program(p) {
            Some(path) => found.push(path),
            None => {
                return Err(format!(
                    "Open vSwitch is not installed ({p} not found; scripts/deps.sh installs openvswitch-switch)"
                ))
            }
        }
    }
    if !Path::new(SCHEMA).exists() {
        return Err(format!("Open vSwitch's schema {SCHEMA} is missing"));
    }
    Ok(found)
}

/// `name` on PATH or in the sbin directories (a root shell may not have them on PATH).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A running OVS serving one lab. Stops (and leaves nothing) on drop.
pub struct OvsSwitch {
    ns: NetNs,
    dir: PathBuf,
    polling: OvsPolling,
    ports: Vec<String>,
    /// ovs-vswitchd, then ovsdb-server (the order they are stopped in).
    pids: Vec<u32>,
}

impl OvsSwitch {
    /// Starts OVS in `ns` with its files under `dir` (removed first, then created) and `ports`
    /// (interfaces of `ns`) on one netdev bridge. On any error what was started is stopped.
    pub fn start(ns: &NetNs, dir: &Path, ports: &[&str], polling: OvsPolling) -> Result<OvsSwitch> {
        ovs_programs().map_err(|e| anyhow!(e))?;
        let _ = std::fs::remove_dir_all(dir);
        remove_dir_on_interrupt(dir);
        let mut ovs = OvsSwitch {
            ns: ns.clone(),
            dir: dir.to_path_buf(),
            polling,
            ports: ports.iter().map(|p| p.to_string()).collect(),
            pids: Vec::new(),
        };
        // On error `ovs` drops here and stops what runs.
        ovs.start_daemons()
            .and_then(|()| ovs.add_ports())
            .with_context(|| format!("starting Open vSwitch ({})", polling.port_type()))
            .map_err(|e| anyhow!("{e:#}\nvswitchd log:\n{}", ovs.log_tail()))?;
        Ok(ovs)
    }

    fn sub(&self, d: &str) -> PathBuf {
        self.dir.join(d)
    }
    fn db_sock(&self) -> PathBuf {
        self.sub("run/db.sock")
    }
    fn ctl(&self) -> PathBuf {
        self.sub("run/ovs-vswitchd.ctl")
    }

    /// An OVS program run in the lab's host namespace with the private directories.
    fn command(&self, program: &str) -> Command {
        let mut c = self
            .ns
            .command(find_program(program).unwrap_or_else(|| program.into()));
        for (var, d) in [
            ("OVS_RUNDIR", "run"),
            ("OVS_LOGDIR", "log"),
            ("OVS_DBDIR", "db"),
            ("OVS_SYSCONFDIR", "etc"),
        ] {
            c.env(var, self.sub(d));
        }
        c.stdin(Stdio::null());
        // A detached daemon must not get the terminal's Ctrl-C: the handler stops it.
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        c
    }

    fn start_daemons(&mut self) -> Result<()> {
        for d in ["run", "log", "db", "etc"] {
            std::fs::create_dir_all(self.sub(d))
                .with_context(|| format!("creating {}", self.sub(d).display()))?;
        }
        let db = self.sub("db/conf.db");
        run_ok(
            self.command("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(SCHEMA),
        )?;
        let pidfile = self.sub("run/ovsdb-server.pid");
        run_ok(
            self.command("ovsdb-server")
                .arg(&db)
                .arg(format!("--remote=punix:{}", self.db_sock().display()))
                .arg(format!("--pidfile={}", pidfile.display()))
                .arg(format!(
                    "--unixctl={}",
                    self.sub("run/ovsdb-server.ctl").display()
                ))
                .arg(format!(
                    "--log-file={}",
                    self.sub("log/ovsdb-server.log").display()
                ))
                .args(["--detach", "--no-chdir"]),
        )?;
        self.track(&pidfile)?;
        self.vsctl_no_wait(&["init"])?;
        if let OvsPolling::Pmd { cpu } = self.polling {
            let mask = format!("other_config:pmd-cpu-mask=0x{:x}", 1u128 << cpu.min(127));
            self.vsctl_no_wait(&["set", "Open_vSwitch", ".", &mask])?;
        }
        let pidfile = self.sub("run/ovs-vswitchd.pid");
        run_ok(
            self.command("ovs-vswitchd")
                .arg(format!("unix:{}", self.db_sock().display()))
                .arg(format!("--pidfile={}", pidfile.display()))
                .arg(format!("--unixctl={}", self.ctl().display()))
                .arg(format!(
                    "--log-file={}",
                    self.sub("log/ovs-vswitchd.log").display()
                ))
                .args(["--detach", "--no-chdir"]),
        )?;
        // vswitchd goes first when stopping: it holds the ports.
        let before = self.pids.clone();
        self.pids.clear();
        self.track(&pidfile)?;
        self.pids.extend(before);
        Ok(())
    }

    /// Reads a daemon's pidfile and has it stopped on drop and on Ctrl-C.
    fn track(&mut self, pidfile: &Path) -> Result<()> {
        let text = std::fs::read_to_string(pidfile)
            .with_context(|| format!("reading {}", pidfile.display()))?;
        let pid: u32 = text
            .trim()
            .parse()
            .with_context(|| format!("{}: not a pid: {text:?}", pidfile.display()))?;
        stop_daemon_on_interrupt(pid);
        self.pids.push(pid);
        Ok(())
    }

    /// The bridge and its ports, applied by the running vswitchd (ovs-vsctl waits for it, bounded).
    fn add_ports(&self) -> Result<()> {
        self.vsctl(&[
            "add-br",
            OVS_BRIDGE,
            "--",
            "set",
            "bridge",
            OVS_BRIDGE,
            "datapath_type=netdev",
        ])?;
        let ty = format!("type={}", self.polling.port_type());
        for p in &self.ports {
            self.vsctl(&[
                "add-port",
                OVS_BRIDGE,
                p,
                "--",
                "set",
                "interface",
                p,
                &ty,
                "options:xdp-mode=native",
                "options:n_rxq=1",
            ])?;
            let err = self.vsctl(&["get", "interface", p, "error"])?;
            let err = err.trim();
            if !(err.is_empty() || err == "[]") {
                bail!("OVS refused port {p}: {err}");
            }
        }
        Ok(())
    }

    fn vsctl_args(&self, wait: bool) -> Vec<String> {
        let mut a = vec![
            format!("--db=unix:{}", self.db_sock().display()),
            format!("--timeout={VSCTL_TIMEOUT_S}"),
        ];
        if !wait {
            a.push("--no-wait".into());
        }
        a
    }

    /// ovs-vsctl without waiting for vswitchd (which may not run).
    fn vsctl_no_wait(&self, args: &[&str]) -> Result<String> {
        run_ok(
            self.command("ovs-vsctl")
                .args(self.vsctl_args(false))
                .args(args),
        )
    }

    /// ovs-vsctl waiting (at most VSCTL_TIMEOUT_S) until vswitchd applied the change.
    fn vsctl(&self, args: &[&str]) -> Result<String> {
        run_ok(
            self.command("ovs-vsctl")
                .args(self.vsctl_args(true))
                .args(args),
        )
    }

    /// Lets the PMD thread sleep when it polls nothing (`rest`), or makes it spin again. A
    /// lowered priority alone did not keep an idle PMD off its core: under SCHED_IDLE it still took
    /// 70-80 % of the CPU mvdp-busy's worker was measured on, in slices of a scheduler tick. OVS 3.1's
    /// load-based sleep (`other_config:pmd-maxsleep`, at most 10 ms) does. Waits until vswitchd
    /// applied it, so a measurement starts with the PMD spinning.
    pub fn set_pmd_resting(&self, rest: bool) -> Result<()> {
        let us = if rest { PMD_REST_US } else { 0 };
        self.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("other_config:pmd-maxsleep={us}"),
        ])
        .map(|_| ())
    }

    /// ovs-appctl to vswitchd (bounded).
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new(find_program("ovs-appctl").unwrap_or_else(|| "ovs-appctl".into()));
        c.arg("-t").arg(self.ctl()).arg("--timeout=5").args(args);
        run_ok(&mut c)
    }

    /// ovs-vswitchd's process id.
    pub fn vswitchd_pid(&self) -> Option<u32> {
        self.pids.first().copied()
    }

    /// The last lines of vswitchd's log (for errors).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.sub("log/ovs-vswitchd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The thread ids of ovs-vswitchd (its PMD thread among them). A PMD spins its core even
    /// idle: the bench lowers these threads' priority while other backends are measured (stopping
    /// the process instead makes OVS see time jump, and it then stalled for seconds after resuming).
    pub fn vswitchd_threads(&self) -> Vec<u32> {
        let Some(pid) = self.vswitchd_pid() else {
            return Vec::new();
        };
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The thread ids of vswitchd's PMD threads (named `pmd-c<core>/id:<n>`); empty with
    /// `afxdp-nonpmd` ports, which vswitchd's main thread polls.
    pub fn pmd_threads(&self) -> Vec<u32> {
        let Some(pid) = self.vswitchd_pid() else {
            return Vec::new();
        };
        self.vswitchd_threads()
            .into_iter()
            .filter(|tid| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                    .is_ok_and(|c| c.starts_with("pmd"))
            })
            .collect()
    }

    /// `total` of each of OVS's coverage counters `names` (0 for those never hit, which OVS omits).
    pub fn coverage(&self, names: &[&str]) -> Result<Vec<u64>> {
        let out = self.appctl(&["coverage/show"])?;
        Ok(names.iter().map(|n| coverage_total(&out, n)).collect())
    }

    /// `ovs-vsctl get interface IF statistics` of every port (OVS refreshes these every 5 s).
    pub fn interface_statistics(&self) -> Vec<(String, String)> {
        self.ports
            .iter()
            .filter_map(|p| {
                let s = self
                    .vsctl_no_wait(&["get", "interface", p, "statistics"])
                    .ok()?;
                Some((p.clone(), s.trim().to_string()))
            })
            .collect()
    }

    fn stop(&mut self) {
        for pid in std::mem::take(&mut self.pids) {
            forget_daemon_on_interrupt(pid);
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let is_it = || process_alive_as(pid, comm.trim());
            if !crate::process::stop_pid_if(pid, STOP_GRACE, is_it) {
                tracing::warn!(pid, "OVS ignored SIGTERM; killed it");
            }
        }
        // afxdp-nonpmd leaves its XDP programs attached; a SIGKILLed vswitchd leaves all of them.
        for p in &self.ports {
            let _ = self
                .ns
                .command("ip")
                .args(["link", "set", "dev", p, "xdp", "off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.dir.display());
            }
        }
        forget_dir_on_interrupt(&self.dir);
    }
}

impl Drop for OvsSwitch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True while `pid` runs (not a zombie) under the name `comm` (a reused PID is someone else).
fn process_alive_as(pid: u32, comm: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !comm.is_empty() && stat.contains(&format!("({comm})")) && state != Some("Z")
}

/// The `total: N` of coverage counter `name` in `ovs-appctl coverage/show` output.
fn coverage_total(out: &str, name: &str) -> u64 {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.rsplit("total:").next())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `c` and returns its stdout; a failure carries its stderr.
fn run_ok(c: &mut Command) -> Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {c:?}"))?;
    if !status.success() {
        bail!(
            "{c:?}: {status}: {}",
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_totals_are_read_by_name() {
        let out = "Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=b1988d1f:\n\
                   afxdp_cq_empty             0.0/sec     0.000/sec        0.0000/sec   total: 2\n\
                   afxdp_tx_full              1.2/sec     0.000/sec        0.0000/sec   total: 1234\n";
        assert_eq!(coverage_total(out, "afxdp_tx_full"), 1234);
        assert_eq!(coverage_total(out, "afxdp_cq_empty"), 2);
        assert_eq!(coverage_total(out, "afxdp_fq_full"), 0);
    }

    #[test]
    fn a_zombie_or_another_name_is_not_alive() {
        let me = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(process_alive_as(me, comm.trim()));
        assert!(!process_alive_as(me, "ovs-vswitchd"));
        assert!(!process_alive_as(u32::MAX - 1, comm.trim()));
    }
}
