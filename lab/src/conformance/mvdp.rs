//! mvdp on a lab: `mvdp daemon` inside the lab's host namespace and one network whose ports are the
//! lab's containers. Used by the conformance suite's [`Mvdp`](super::Mvdp) subject and by
//! `mvdp lab up --backend mvdp`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{LAB_NET, LAB_PREFIX_LEN};
use crate::Lab;
use anyhow::{bail, Context, Result};
use mvdp_control::daemon::{call, NetworkCreate, PortAdd, Request};
use mvdp_control::{MacvlanMode, NetNs};

/// The network every mvdp lab makes.
pub const LAB_NETWORK: &str = "lab";

/// How long a fresh daemon may take to answer (the AF_XDP runtime starts first).
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon gets to release the parent after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a lab's daemon keeps its socket, state and log.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub dir: PathBuf,
}

impl DaemonPaths {
    pub fn new(dir: impl Into<PathBuf>) -> DaemonPaths {
        DaemonPaths { dir: dir.into() }
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
}

/// Starts `bin daemon` inside `ns` with its files under `paths` and waits until it answers. The child
/// gets its own process group, so a Ctrl-C aimed at the caller's terminal does not reach it: whoever
/// started it stops it (by PID).
pub fn spawn_daemon(bin: &Path, ns: &NetNs, paths: &DaemonPaths) -> Result<Child> {
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
    crate::lab::stop_daemon_on_interrupt(child.id());
    let end = Instant::now() + START_TIMEOUT;
    loop {
        if call(&paths.socket(), &Request::Ping).is_ok() {
            return Ok(child);
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "mvdp daemon exited ({st}):\n{}",
                std::fs::read_to_string(paths.log()).unwrap_or_default()
            );
        }
        if Instant::now() > end {
            stop_pid(child.id() as i32);
            let _ = child.wait();
            bail!("mvdp daemon did not answer within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; returns once the process is gone (or was never there).
pub fn stop_pid(pid: i32) {
    crate::lab::forget_daemon_on_interrupt(pid as u32);
    crate::process::stop_pid(pid as u32, STOP_TIMEOUT);
}

/// Creates [`LAB_NETWORK`] on the lab's parent in `mode` and adds every container as a port (`eth0`
/// with the lab's MAC and IP for it).
pub fn attach_containers(socket: &Path, lab: &Lab, mode: MacvlanMode) -> Result<()> {
    call(
        socket,
        &Request::NetworkCreate(NetworkCreate {
            name: LAB_NETWORK.into(),
            parent: lab.parent_ifname().into(),
            mode: Some(mode.to_string()),
            subnet: Some(format!("{LAB_NET}/{LAB_PREFIX_LEN}")),
            ..Default::default()
        }),
    )
    .context("mvdp network create")?;
    for c in lab.containers() {
        call(
            socket,
            &Request::PortAdd(PortAdd {
                network: LAB_NETWORK.into(),
                netns: Some(c.ns.name().into()),
                ifname: Some(c.ifname.clone()),
                mac: Some(c.mac.to_string()),
                ip: Some(format!("{}/{LAB_PREFIX_LEN}", c.ip)),
                ..Default::default()
            }),
        )
        .with_context(|| format!("mvdp port add for {}", c.ns.name()))?;
    }
    Ok(())
}

/// A daemon this process started and stops on drop.
pub struct OwnedDaemon {
    child: Child,
    pub paths: DaemonPaths,
}

impl OwnedDaemon {
    pub fn start(bin: &Path, ns: &NetNs, paths: DaemonPaths) -> Result<OwnedDaemon> {
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
        std::fs::read_to_string(self.paths.log()).unwrap_or_default()
    }
}

impl Drop for OwnedDaemon {
    fn drop(&mut self) {
        stop_pid(self.child.id() as i32);
        let _ = self.child.try_wait();
        let _ = std::fs::remove_dir_all(&self.paths.dir);
    }
}
