//! CPU time: per thread (getrusage RUSAGE_THREAD), per named thread of another process
//! (/proc/<pid>/task/*/stat) and the whole machine's softirq time (/proc/stat).
//!
//! Method, for the report: a throughput cell's CPU cost is the sum of the sender and receiver
//! threads' own user+system time, plus the kernel's softirq time over the cell (system-wide, so
//! it also catches whatever else the machine did meanwhile: an upper bound on this VM), plus the
//! mvdp daemon's `mvdp-worker-N` threads or the ceiling forwarder's polling thread where present.
//! Softirq work the kernel runs inline at the end of a `sendto` may be charged to the sender's
//! system time instead, depending on IRQ time accounting; both are counted, never twice by us.

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

/// Total softirq time of all CPUs so far (the `softirq` column of /proc/stat's `cpu` line).
pub fn softirq_total() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_softirq(&stat).context("no `cpu` line with a softirq column in /proc/stat")
}

fn parse_softirq(stat: &str) -> Option<Duration> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // cpu user nice system idle iowait irq softirq ...
    let ticks: u64 = line.split_whitespace().nth(7)?.parse().ok()?;
    Some(ticks_to_duration(ticks))
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
    fn parses_proc_stat_softirq_column() {
        let hz = ticks_per_sec();
        let stat = "cpu  10 0 20 300 4 5 250 0 0 0\ncpu0 1 0 2 30 0 0 25 0 0 0\n";
        assert_eq!(
            parse_softirq(stat),
            Some(Duration::from_nanos(250 * 1_000_000_000 / hz))
        );
        assert_eq!(parse_softirq("intr 1 2 3\n"), None);
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
