//! mvdp daemons on a lab, the one way every user starts them: `mvdp daemon` as a child process in
//! the lab's host namespace ([`spawn_daemon`], [`OwnedDaemon`]: `mvdp lab up --backend mvdp`, the
//! conformance suite, the tests' `DaemonLab`) or the daemon inside this process ([`InProcessDaemon`]:
//! `mvdp bench`, which counts its workers' CPU time); one network whose ports are the lab's
//! containers ([`attach_containers`]); and stopping a kept lab's daemon for `mvdp lab down`.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use mvdp_control::daemon::{call, serve, DaemonConfig, NetworkCreate, PortAdd, Request, Server};
use mvdp_control::{Mode, NetNs};
use mvdp_engine::runtime::{PollMode, PollSwitch, Runtime, RuntimeOptions};
use nix::sys::signal::Signal;

use super::addressing::{LAB_NET, LAB_PREFIX_LEN};
use super::built::Lab;
use super::description::LabDescription;
use super::records::RECORD_DIR;
use super::registry::{forget_daemon_on_interrupt, stop_daemon_on_interrupt};
use crate::backend::Backend;

/// The network `mvdp lab up --backend mvdp` and the conformance suite make.
pub const LAB_NETWORK: &str = "lab";

/// How long a fresh daemon may take to answer (the AF_XDP runtime starts first).
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon gets to let go of the parent after SIGTERM before SIGKILL.
const DAEMON_STOP: Duration = Duration::from_secs(10);

// ---- a daemon process ------------------------------------------------------------------------------

/// Where a lab's daemon keeps its socket, state and log.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub dir: PathBuf,
    /// More `mvdp daemon` options (`--docker-plugin=…`).
    pub args: Vec<String>,
}

impl DaemonPaths {
    pub fn new(dir: impl Into<PathBuf>) -> DaemonPaths {
        DaemonPaths {
            dir: dir.into(),
            args: vec![],
        }
    }
    /// Where the daemon serves Docker's remote driver protocol when told to (named as dockerd
    /// looks for a driver `mvdp` in its plugin directory).
    pub fn docker_plugin(&self) -> PathBuf {
        self.dir.join("plugins/mvdp.sock")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mvdp.sock")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }
    /// The daemon's log so far ("" when there is none).
    pub fn read_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

/// Starts `bin daemon` inside `ns` with its files under `paths` and waits until it answers. The child
/// gets its own process group, so a Ctrl-C aimed at the caller's terminal does not reach it: whoever
/// started it stops it ([`stop_daemon`], [`stop_daemon_child`]), and so does the lab's Ctrl-C handler.
pub fn spawn_daemon(bin: &Path, ns: &NetNs, paths: &DaemonPaths) -> anyhow::Result<Child> {
    std::fs::create_dir_all(&paths.dir)
        .with_context(|| format!("creating {}", paths.dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.log())
        .with_context(|| format!("opening {}", paths.log().display()))?;
    let mut cmd = ns.command(bin);
    cmd.arg("daemon")
        .arg("--socket")
        .arg(paths.socket())
        .arg("--state-dir")
        .arg(paths.state_dir())
        .args(&paths.args)
        .env("MVDP_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {} daemon", bin.display()))?;
    // Out of the caller's process group, so a Ctrl-C must stop it explicitly.
    stop_daemon_on_interrupt(child.id());
    wait_answering(&mut child, paths).inspect_err(|_| {
        stop_daemon_child(&mut child, Signal::SIGTERM);
    })?;
    Ok(child)
}

/// Waits until the daemon answers on its socket; fails when it exits or takes too long.
fn wait_answering(child: &mut Child, paths: &DaemonPaths) -> anyhow::Result<()> {
    let end = Instant::now() + START_TIMEOUT;
    loop {
        if call(&paths.socket(), &Request::Ping {}).is_ok() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!("mvdp daemon exited ({st}):\n{}", paths.read_log());
        }
        if Instant::now() > end {
            bail!("mvdp daemon did not answer within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the daemon with PID `pid` that this process started: SIGTERM, then SIGKILL after
/// 10 s; returns once it is gone (or was never there).
pub fn stop_daemon(pid: u32) {
    forget_daemon_on_interrupt(pid);
    crate::process::stop_pid(pid, DAEMON_STOP);
}

/// Stops our daemon `child` with `signal` (SIGKILL after 10 s) and returns how it ended.
pub fn stop_daemon_child(child: &mut Child, signal: Signal) -> ExitStatus {
    forget_daemon_on_interrupt(child.id());
    crate::process::stop_child(child, signal, DAEMON_STOP)
}

/// A daemon this process started and stops on drop (its directory goes too).
pub struct OwnedDaemon {
    child: Child,
    pub paths: DaemonPaths,
}

impl OwnedDaemon {
    pub fn start(bin: &Path, ns: &NetNs, paths: DaemonPaths) -> anyhow::Result<OwnedDaemon> {
        let child = spawn_daemon(bin, ns, &paths)?;
        Ok(OwnedDaemon { child, paths })
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn socket(&self) -> PathBuf {
        self.paths.socket()
    }
    pub fn log(&self) -> String {
        self.paths.read_log()
    }
}

impl Drop for OwnedDaemon {
    fn drop(&mut self) {
        stop_daemon_child(&mut self.child, Signal::SIGTERM);
        let _ = std::fs::remove_dir_all(&self.paths.dir);
    }
}

// ---- the daemon in this process ------------------------------------------------------------------

/// mvdp serving a lab from inside this process: the runtime and the daemon's control thread run
/// here, in the lab's host netns; containers are attached through its socket as with a daemon
/// process. Shut down (and its socket removed) on drop.
pub struct InProcessDaemon {
    server: Option<Server>,
    socket: PathBuf,
    worker_tids: Vec<u32>,
    poll: PollSwitch,
}

impl InProcessDaemon {
    /// Starts the runtime (workers waiting and pinned as `opts` says) and the daemon in `lab`'s
    /// host namespace, serving `socket`.
    pub fn start(
        lab: &Lab,
        socket: PathBuf,
        opts: RuntimeOptions,
    ) -> anyhow::Result<InProcessDaemon> {
        let sock = socket.clone();
        let (server, worker_tids, poll) = lab
            .host()
            .run(move || -> anyhow::Result<_> {
                let rt = Runtime::new(opts)?;
                let tids = rt.worker_tids();
                let poll = rt.poll_switch();
                let cfg = DaemonConfig {
                    state_dir: None,
                    max_mtu: rt.max_mtu(),
                    netns: None,
                };
                Ok((serve(rt, cfg, &sock)?, tids, poll))
            })
            .context("entering the lab's host netns")??;
        Ok(InProcessDaemon {
            server: Some(server),
            socket,
            worker_tids,
            poll,
        })
    }
    pub fn socket(&self) -> &Path {
        &self.socket
    }
    /// The thread ids of the runtime's workers.
    pub fn worker_tids(&self) -> &[u32] {
        &self.worker_tids
    }
    /// Switches the workers between busy and adaptive polling (see [`PollSwitch`]).
    pub fn set_poll(&self, mode: PollMode) {
        self.poll.set(mode);
    }
}

impl Drop for InProcessDaemon {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

// ---- attaching a lab's containers -----------------------------------------------------------------

/// Creates `network` on the lab's parent in `mode` (subnet the lab's) and adds every container as
/// a port (`eth0` with the lab's MAC and IP for it), through the daemon at `socket`.
pub fn attach_containers(
    socket: &Path,
    lab: &Lab,
    network: &str,
    mode: Mode,
) -> anyhow::Result<()> {
    let ask = |req: Request| call(socket, &req).map(|_| ()).map_err(|e| anyhow!("{e}"));
    ask(Request::NetworkCreate(NetworkCreate {
        name: network.into(),
        parent: lab.parent_ifname().into(),
        mode: Some(mode.to_string()),
        subnet: Some(format!("{LAB_NET}/{LAB_PREFIX_LEN}")),
        ..Default::default()
    }))
    .context("mvdp network create")?;
    for c in lab.containers() {
        ask(Request::PortAdd(PortAdd {
            network: network.into(),
            netns: Some(c.ns.name().into()),
            ifname: Some(c.ifname.clone()),
            mac: Some(c.mac.to_string()),
            ip: Some(format!("{}/{LAB_PREFIX_LEN}", c.ip)),
            ..Default::default()
        }))
        .with_context(|| format!("mvdp port add for {}", c.ns.name()))?;
    }
    Ok(())
}

// ---- labs left up with their daemon ----------------------------------------------------------------

/// A daemon serving a lab (the mvdp backend), as recorded for `lab down`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabDaemon {
    pub pid: u32,
    /// Its directory: control socket, state and log. Removed by `lab down`.
    pub dir: PathBuf,
    pub socket: PathBuf,
}

/// Where `mvdp lab up --backend mvdp` puts lab `prefix`'s daemon: socket, state and log.
pub fn daemon_dir(prefix: &str) -> PathBuf {
    Path::new(RECORD_DIR).join(format!("{prefix}.mvdp"))
}

impl Lab {
    /// `mvdp lab up --backend mvdp`: starts `bin daemon` in the lab's host namespace, attaches
    /// every container as a port of one `mode` network ([`LAB_NETWORK`]), and keeps the lab with
    /// the daemon recorded; the daemon outlives this process and `lab down` stops it. On any
    /// failure the daemon is stopped and the lab removed.
    pub fn keep_with_daemon(self, bin: &Path, mode: Mode) -> anyhow::Result<LabDescription> {
        let paths = DaemonPaths::new(daemon_dir(self.prefix()));
        // A leftover of a lab removed by hand: its daemon is gone with the record.
        let _ = std::fs::remove_dir_all(&paths.dir);
        let mut child = spawn_daemon(bin, self.host(), &paths)?;
        let daemon = LabDaemon {
            pid: child.id(),
            dir: paths.dir.clone(),
            socket: paths.socket(),
        };
        let kept = attach_containers(&paths.socket(), &self, LAB_NETWORK, mode)
            .and_then(|()| Ok(self.keep_with(Backend::Mvdp(mode), Some(daemon))?));
        if kept.is_err() {
            stop_daemon_child(&mut child, Signal::SIGTERM);
            let _ = std::fs::remove_dir_all(&paths.dir);
        } else {
            forget_daemon_on_interrupt(child.id());
        }
        kept
    }
}

/// Stops a lab's daemon, if the process with its PID still is that daemon (its command line names
/// the daemon's socket: a PID reused by anything else is left alone), and removes its directory.
pub(super) fn stop_lab_daemon(d: &LabDaemon) {
    let ours = || {
        std::fs::read(format!("/proc/{}/cmdline", d.pid)).is_ok_and(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.contains(&b"daemon".as_slice())
                && args.contains(&d.socket.as_os_str().as_encoded_bytes())
        })
    };
    if !crate::process::stop_pid_if(d.pid, DAEMON_STOP, ours) {
        tracing::warn!(pid = d.pid, "lab daemon ignored SIGTERM; killed it");
    }
    if let Err(e) = std::fs::remove_dir_all(&d.dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", d.dir.display());
        }
    }
}
