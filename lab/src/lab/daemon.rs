//! Daemons serving labs (the mvdp backend): where they live and how `lab down` stops them.

use super::records::RECORD_DIR;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabDaemon {
    pub pid: u32,
    /// Its directory: control socket, state and log. Removed by `lab down`.
    pub dir: std::path::PathBuf,
    pub socket: std::path::PathBuf,
}

/// How long a lab's daemon gets to let go of the parent after SIGTERM before SIGKILL.
const DAEMON_STOP: std::time::Duration = std::time::Duration::from_secs(10);

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

/// Where `mvdp lab up --backend mvdp` puts lab `prefix`'s daemon: socket, state and log.
pub fn daemon_dir(prefix: &str) -> std::path::PathBuf {
    std::path::Path::new(RECORD_DIR).join(format!("{prefix}.mvdp"))
}
