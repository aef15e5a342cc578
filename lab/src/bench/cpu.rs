//! CPU time: per thread (getrusage RUSAGE_THREAD), per named thread of another process
//! (/proc/<pid>/task/*/stat) and the whole machine's busy and softirq time (/proc/stat).
//!
//! Method, for the report: a throughput cell's CPU cost is the time every CPU of the machine was
//! busy over the cell (/proc/stat: user, nice, system, irq, softirq; not idle, iowait or steal),
//! so it catches whatever else ran meanwhile (an upper bound on a shared VM). The sender's,
//! receiver's and switch's own times and the softirq time are reported beside it as a
//! breakdown, but they overlap and are never summed: without IRQ time accounting (this VM's
//! kernel, tick-based), softirq work run inline in a thread's context (the end of a `sendto`, a
//! TX kick) is charged to that thread *and* to the softirq column, and summing them counted
//! up to 2.8 CPUs on a 2-CPU machine.

use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::resource::{getrusage, UsageWho};

/// User + system time the calling thread has used so far.
pub fn thread_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        // getrusage on the calling thread cannot fail on Linux; a zero keeps callers simple.
        Err(_) => Duration::ZERO,
    }
}

/// Clock ticks per second for /proc time fields (USER_HZ; 100 on every Linux ABI we run on).
fn ticks_per_sec() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|v| v as u64)
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / ticks_per_sec())
}

/// The whole machine's CPU time (all CPUs, /proc/stat's `cpu` line): so far, or between two
/// samples ([`MachineCpu::since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// user + nice + system + irq + softirq: every CPU's time not idle, waiting on I/O or stolen
    /// by the hypervisor. Each CPU-second counts once, whichever thread or context ran in it.
    pub busy: Duration,
    /// The softirq part of `busy`.
    pub softirq: Duration,
}

impl MachineCpu {
    pub fn now() -> Result<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_machine(&stat).context("no `cpu` line with a softirq column in /proc/stat")
    }

    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(earlier.busy),
            softirq: self.softirq.saturating_sub(earlier.softirq),
        }
    }
}

impl std::ops::AddAssign for MachineCpu {
    fn add_assign(&mut self, o: MachineCpu) {
        self.busy += o.busy;
        self.softirq += o.softirq;
    }
}

fn parse_machine(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // cpu user nice system idle iowait irq softirq steal ... (guest time is inside user)
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq] = f[..] else {
        return None;
    };
    Some(MachineCpu {
        busy: ticks_to_duration(user + nice + system + irq + softirq),
        softirq: ticks_to_duration(softirq),
    })
}

/// utime + stime of one /proc/<pid>/task/<tid>/stat line, and its comm.
fn parse_task_stat(stat: &str) -> Option<(String, Duration)> {
    // The comm is in parentheses and may itself contain spaces or ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the comm: state(0) ppid(1) ... utime is field 14 of the line, i.e. rest[11].
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, ticks_to_duration(utime + stime)))
}

/// Summed CPU time of threads `tids` of this process (threads that are gone count nothing).
pub fn tids_cpu(tids: &[u32]) -> Duration {
    tids.iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/self/task/{t}/stat")).ok())
        .filter_map(|s| parse_task_stat(&s).map(|(_, d)| d))
        .sum()
}

/// CPU time (all threads, user + system) of process `pid` so far; None when it is gone.
pub fn pid_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_task_stat(&stat).map(|(_, d)| d)
}

/// Summed CPU time of the threads of process `pid` whose name starts with `prefix` (e.g.
/// "mvdp-worker-"), and how many there were. Resolution is one clock tick (10 ms).
pub fn named_threads_cpu(pid: u32, prefix: &str) -> Result<(Duration, usize)> {
    let dir = format!("/proc/{pid}/task");
    let mut total = Duration::ZERO;
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path().join("stat");
        // A thread may exit between readdir and read.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some((comm, t)) = parse_task_stat(&stat) {
            if comm.starts_with(prefix) {
                total += t;
                n += 1;
            }
        }
    }
    Ok((total, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_busy_and_softirq_columns() {
        let hz = ticks_per_sec();
        let t = |ticks: u64| Duration::from_nanos(ticks * 1_000_000_000 / hz);
        // user nice system idle iowait irq softirq steal: idle, iowait and steal are not busy.
        let stat = "cpu  10 1 20 300 4 5 250 7 0 0\ncpu0 1 0 2 30 0 0 25 0 0 0\n";
        let m = parse_machine(stat).unwrap();
        assert_eq!(m.busy, t(10 + 1 + 20 + 5 + 250));
        assert_eq!(m.softirq, t(250));
        assert_eq!(parse_machine("intr 1 2 3\n"), None);
        assert_eq!(parse_machine("cpu  1 2 3\n"), None, "too few columns");
        // Deltas never go negative, and add up.
        let later = MachineCpu {
            busy: m.busy + t(10),
            softirq: m.softirq,
        };
        assert_eq!(later.since(m).busy, t(10));
        assert_eq!(m.since(later), MachineCpu::default());
        let mut sum = later.since(m);
        sum += later.since(m);
        assert_eq!(sum.busy, t(20));
    }

    #[test]
    fn parses_task_stat_with_odd_comm() {
        let hz = ticks_per_sec();
        let line = "42 (mvdp-worker) 0) R 1 42 42 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0";
        let (comm, t) = parse_task_stat(line).unwrap();
        assert_eq!(comm, "mvdp-worker) 0");
        assert_eq!(t, Duration::from_nanos(10 * 1_000_000_000 / hz));
    }

    #[test]
    fn finds_named_busy_threads_of_this_process() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let h = std::thread::Builder::new()
            .name("mvdp-worker-7".into())
            .spawn(move || {
                let mut x = 0u64;
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let (t, n) = named_threads_cpu(std::process::id(), "mvdp-worker-").unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap();
        assert_eq!(n, 1);
        assert!(
            t >= Duration::from_millis(50),
            "busy thread used only {t:?}"
        );
        let (_, none) = named_threads_cpu(std::process::id(), "no-such-thread").unwrap();
        assert_eq!(none, 0);
    }

    #[test]
    fn a_process_cpu_time_is_read() {
        assert!(pid_cpu(std::process::id()).is_some());
        assert!(pid_cpu(u32::MAX - 1).is_none());
    }

    #[test]
    fn thread_cpu_grows_with_work() {
        let a = thread_cpu();
        let end = std::time::Instant::now() + Duration::from_millis(100);
        let mut x = 0u64;
        while std::time::Instant::now() < end {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu() > a);
    }
}
