//! What a soak saw: one sample per interval (the daemon's books at rest, its memory and open
//! descriptors, the traffic's counts), the checks over them, soak.csv and summary.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// RSS may grow by this much over the run (the UMEM's pages are touched as traffic spreads over
/// it, allocator noise) before it counts as growth: the larger of the two.
pub const RSS_SLACK_KIB: u64 = 8 * 1024;
pub const RSS_SLACK_RATIO: f64 = 0.10;

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Which daemon process (0 = the first; each restart adds one).
    pub instance: u32,
    pub pid: u32,
    pub rss_kib: u64,
    pub fds: u64,
    pub ports: u64,
    /// The UMEM's books at rest (traffic paused): free + fill + tx + in transit = total.
    pub balanced: bool,
    pub umem: String,
    pub rtt_ok: u64,
    pub rtt_lost: u64,
    pub broadcasts: u64,
    pub churns: u64,
    pub restarts: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub minutes: f64,
    pub samples: Vec<Sample>,
    /// Seconds each restart took (stop, start, answering again).
    pub restart_s: Vec<f64>,
    pub failures: Vec<String>,
}

impl SoakReport {
    /// The checks: books balanced at every sample; descriptors and RSS not growing, within a
    /// daemon's life (its first sample against its later ones) and across restarts (every
    /// instance's first sample against the first instance's); traffic flowing in every interval.
    pub fn check(&mut self) {
        let Some(first) = self.samples.first().cloned() else {
            self.failures.push("no sample taken".into());
            return;
        };
        let rss_limit =
            |base: u64| base + RSS_SLACK_KIB.max((base as f64 * RSS_SLACK_RATIO) as u64);
        let mut instance_first = first.clone();
        let mut prev_ok = 0;
        for s in &self.samples {
            if !s.balanced {
                self.failures.push(format!(
                    "t={:.0}s: UMEM books not balanced: {}",
                    s.t_s, s.umem
                ));
            }
            if s.instance != instance_first.instance {
                instance_first = s.clone();
                for (what, base, now) in [("fds", first.fds, s.fds)] {
                    if now > base {
                        self.failures.push(format!(
                            "t={:.0}s: daemon {} started with {now} {what}, the first with {base}",
                            s.t_s, s.instance
                        ));
                    }
                }
                if s.rss_kib > rss_limit(first.rss_kib) {
                    self.failures.push(format!(
                        "t={:.0}s: daemon {} started at {} KiB RSS, the first at {} KiB",
                        s.t_s, s.instance, s.rss_kib, first.rss_kib
                    ));
                }
            }
            if s.fds > instance_first.fds {
                self.failures.push(format!(
                    "t={:.0}s: {} fds, {} at daemon {}'s first sample",
                    s.t_s, s.fds, instance_first.fds, s.instance
                ));
            }
            if s.rss_kib > rss_limit(instance_first.rss_kib) {
                self.failures.push(format!(
                    "t={:.0}s: RSS {} KiB, {} KiB at daemon {}'s first sample",
                    s.t_s, s.rss_kib, instance_first.rss_kib, s.instance
                ));
            }
            if s.rtt_ok == prev_ok {
                self.failures.push(format!(
                    "t={:.0}s: no round trip came back since the last sample",
                    s.t_s
                ));
            }
            prev_ok = s.rtt_ok;
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Writes soak.csv, report.json and summary.md into `dir`; returns the files.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut csv = String::from(
            "t_s,instance,pid,rss_kib,fds,ports,balanced,rtt_ok,rtt_lost,broadcasts,churns,restarts\n",
        );
        for s in &self.samples {
            let _ = writeln!(
                csv,
                "{:.1},{},{},{},{},{},{},{},{},{},{},{}",
                s.t_s,
                s.instance,
                s.pid,
                s.rss_kib,
                s.fds,
                s.ports,
                s.balanced,
                s.rtt_ok,
                s.rtt_lost,
                s.broadcasts,
                s.churns,
                s.restarts
            );
        }
        let files = [
            (dir.join("soak.csv"), csv),
            (
                dir.join("report.json"),
                serde_json::to_string_pretty(self)? + "\n",
            ),
            (dir.join("summary.md"), self.summary()),
        ];
        for (p, body) in &files {
            std::fs::write(p, body).with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(files.into_iter().map(|(p, _)| p).collect())
    }

    pub fn summary(&self) -> String {
        let mut s = String::from("# mvdp soak\n\n");
        let (first, last) = (self.samples.first(), self.samples.last());
        let _ = writeln!(
            s,
            "{:.1} minutes, {} samples, {} restarts (each {}), {} port churns.\n",
            self.minutes,
            self.samples.len(),
            self.restart_s.len(),
            span(&self.restart_s),
            last.map_or(0, |l| l.churns)
        );
        if let (Some(f), Some(l)) = (first, last) {
            let _ = writeln!(
                s,
                "| | first sample | last sample |\n|---|---:|---:|\n| RSS (KiB) | {} | {} |\n| fds | {} | {} |\n| ports | {} | {} |\n| round trips back / lost | {} / {} | {} / {} |\n| broadcasts sent | {} | {} |\n",
                f.rss_kib, l.rss_kib, f.fds, l.fds, f.ports, l.ports, f.rtt_ok, f.rtt_lost,
                l.rtt_ok, l.rtt_lost, f.broadcasts, l.broadcasts
            );
        }
        let max_rss = self.samples.iter().map(|x| x.rss_kib).max().unwrap_or(0);
        let max_fds = self.samples.iter().map(|x| x.fds).max().unwrap_or(0);
        let balanced = self.samples.iter().filter(|x| x.balanced).count();
        let _ = writeln!(
            s,
            "Books balanced at {balanced} of {} samples; largest RSS {max_rss} KiB, most fds {max_fds}.\n",
            self.samples.len()
        );
        if self.passed() {
            s.push_str("**Passed**: books balanced, no growth in RSS or fds, traffic flowing.\n");
        } else {
            s.push_str("**Failed**:\n\n");
            for f in &self.failures {
                let _ = writeln!(s, "- {f}");
            }
        }
        s
    }
}

fn span(xs: &[f64]) -> String {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(0.0, f64::max);
    if xs.is_empty() {
        "–".into()
    } else {
        format!("{min:.1}–{max:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, instance: u32, rss_kib: u64, fds: u64, rtt_ok: u64) -> Sample {
        Sample {
            t_s: t,
            instance,
            pid: 100 + instance,
            rss_kib,
            fds,
            ports: 8,
            balanced: true,
            umem: "{}".into(),
            rtt_ok,
            rtt_lost: 0,
            broadcasts: 0,
            churns: 0,
            restarts: u64::from(instance),
        }
    }

    fn checked(samples: Vec<Sample>) -> SoakReport {
        let mut r = SoakReport {
            minutes: 1.0,
            samples,
            restart_s: vec![],
            failures: vec![],
        };
        r.check();
        r
    }

    #[test]
    fn steady_samples_across_a_restart_pass() {
        let r = checked(vec![
            sample(15.0, 0, 100_000, 43, 10),
            sample(30.0, 0, 104_000, 43, 20),
            sample(45.0, 1, 99_000, 43, 30),
            sample(60.0, 1, 101_000, 43, 40),
        ]);
        assert!(r.passed(), "{:?}", r.failures);
        assert!(r.summary().contains("**Passed**"));
    }

    #[test]
    fn unbalanced_books_growth_and_stalls_fail() {
        let mut unbalanced = sample(30.0, 0, 100_000, 43, 20);
        unbalanced.balanced = false;
        let r = checked(vec![sample(15.0, 0, 100_000, 43, 10), unbalanced]);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(r.failures[0].contains("not balanced"));

        let r = checked(vec![
            sample(15.0, 0, 100_000, 43, 10),
            sample(30.0, 0, 100_000, 44, 20),
        ]);
        assert!(
            r.failures.iter().any(|f| f.contains("44 fds")),
            "{:?}",
            r.failures
        );

        // RSS: within max(8 MiB, 10 %) passes, beyond fails; so does a restarted daemon's start.
        let r = checked(vec![
            sample(15.0, 0, 100_000, 43, 10),
            sample(30.0, 0, 110_001, 43, 20),
            sample(45.0, 1, 120_000, 43, 30),
        ]);
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);

        let r = checked(vec![
            sample(15.0, 0, 100_000, 43, 10),
            sample(30.0, 0, 100_000, 43, 10),
        ]);
        assert!(
            r.failures.iter().any(|f| f.contains("no round trip")),
            "{:?}",
            r.failures
        );
        assert!(r.summary().contains("**Failed**"));
    }
}
