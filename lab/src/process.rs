//! The one way the lab stops a process: a signal (SIGTERM unless said otherwise), a grace period for
//! it to exit (a daemon releases its XDP program and sockets on the way out), then SIGKILL.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How often a stopping process is looked at.
const POLL: Duration = Duration::from_millis(20);

/// Sends `signal` to every process in `pids`, then waits up to `grace` (for all of them together)
/// until `gone(pid)`, and SIGKILLs those still there. Processes the signal cannot reach are skipped.
fn signal_wait_kill(
    pids: &[u32],
    signal: Signal,
    grace: Duration,
    mut gone: impl FnMut(Pid) -> bool,
) -> Vec<Pid> {
    let signalled: Vec<Pid> = pids
        .iter()
        .map(|p| Pid::from_raw(*p as i32))
        .filter(|p| kill(*p, signal).is_ok())
        .collect();
    let end = Instant::now() + grace;
    let mut killed = Vec::new();
    for &pid in &signalled {
        while !gone(pid) {
            if Instant::now() > end {
                let _ = kill(pid, Signal::SIGKILL);
                killed.push(pid);
                break;
            }
            std::thread::sleep(POLL);
        }
    }
    killed
}

/// True once `pid` is gone: reaped here when it is our child, no longer there at all, or a zombie
/// someone else (a detached daemon's reaper) has yet to reap.
fn reaped_or_absent(pid: Pid) -> bool {
    if is_zombie(pid) {
        // Exited: reap it when it is our child (another's waits for its own parent). Checked
        // first: a child that died between a WNOHANG wait and this look was left a zombie.
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        return true;
    }
    matches!(
        waitpid(pid, Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    ) || kill(pid, None).is_err()
}

/// The process's state in /proc is Z (exited, not yet reaped).
fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            == Some("Z")
    })
}

/// SIGTERM to each of `pids` (our children or not), up to `grace` for them to exit, then SIGKILL.
/// Returns once every one is gone (a killed child of ours is reaped).
pub fn stop_pids(pids: &[u32], grace: Duration) {
    for pid in signal_wait_kill(pids, Signal::SIGTERM, grace, reaped_or_absent) {
        let _ = waitpid(pid, None);
    }
}

/// [`stop_pids`] for one process.
pub fn stop_pid(pid: u32, grace: Duration) {
    stop_pids(&[pid], grace);
}

/// SIGTERM to `pid` only while `is_it()` says the process with that PID still is the one meant (a
/// process that is not our child, whose PID could be reused), up to `grace`, then SIGKILL. Returns
/// false when the process had to be killed.
pub fn stop_pid_if(pid: u32, grace: Duration, mut is_it: impl FnMut() -> bool) -> bool {
    if !is_it() {
        return true;
    }
    signal_wait_kill(&[pid], Signal::SIGTERM, grace, |_| !is_it()).is_empty()
}

/// Sends `signal` to our child, up to `grace` for it to exit, then SIGKILL; returns how it ended.
pub fn stop_child(child: &mut Child, signal: Signal, grace: Duration) -> ExitStatus {
    let mut status = None;
    signal_wait_kill(&[child.id()], signal, grace, |_| {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    match status {
        Some(st) => st,
        None => child.wait().expect("waiting for a child process"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_child_that_exits_on_sigterm_is_reaped() {
        let mut c = Command::new("sleep").arg("30").spawn().unwrap();
        let st = stop_child(&mut c, Signal::SIGTERM, Duration::from_secs(5));
        assert!(!st.success());
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_killed() {
        let mut c = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(c.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let t = Instant::now();
        let st = stop_child(&mut c, Signal::SIGTERM, Duration::from_millis(200));
        assert!(t.elapsed() >= Duration::from_millis(200));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn stopping_by_pid_reaps_our_child() {
        let mut c = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = c.id();
        stop_pid(pid, Duration::from_secs(5));
        assert!(kill(Pid::from_raw(pid as i32), None).is_err(), "reaped");
        assert!(c.wait().is_err(), "already reaped by stop_pid");
    }
}
