//! Which CPUs the bench's load runs on and which one a dedicated-core switch gets. The load
//! generators (echo servers, the round-trip client, the throughput senders and receivers) are pinned
//! the same way for every backend of a run; OVS's PMD thread and mvdp-busy's worker get the switch
//! CPU, which no load thread touches. Recorded in results.json (`config.cpus`).

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde::Serialize;

/// The run's CPU plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuPlan {
    /// CPUs the load generator threads are pinned to; empty: not pinned.
    pub load_cpus: Vec<usize>,
    /// The CPU of a dedicated-core switch (OVS's PMD, mvdp-busy's worker); None when the machine
    /// has no CPU left over from the load (those backends are then unavailable).
    pub switch_cpu: Option<usize>,
}

impl CpuPlan {
    /// The default on a machine with `cpus` CPUs: load on CPU 0, the switch on CPU 1 (with two
    /// or more); nothing pinned on one CPU.
    pub fn default_for(cpus: usize) -> CpuPlan {
        if cpus >= 2 {
            CpuPlan {
                load_cpus: vec![0],
                switch_cpu: Some(1),
            }
        } else {
            CpuPlan {
                load_cpus: Vec::new(),
                switch_cpu: None,
            }
        }
    }

    /// Load on `load` (empty: unpinned); the switch on the lowest CPU below `cpus` not in `load`.
    pub fn with_load(load: Vec<usize>, cpus: usize) -> Result<CpuPlan> {
        if let Some(c) = load.iter().find(|c| **c >= cpus) {
            return Err(anyhow!("load CPU {c}: this machine has CPUs 0..{cpus}"));
        }
        let switch_cpu = if load.is_empty() {
            (cpus >= 2).then_some(cpus - 1)
        } else {
            (0..cpus).find(|c| !load.contains(c))
        };
        Ok(CpuPlan {
            load_cpus: load,
            switch_cpu,
        })
    }

    /// Where mvdp-colocated's worker goes, for the report ("" when the load is not pinned).
    fn colocated(&self) -> String {
        self.load_cpus
            .first()
            .map(|c| format!(", mvdp-colocated's on CPU {c}"))
            .unwrap_or_default()
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        let load = if self.load_cpus.is_empty() {
            "load generators not pinned".to_string()
        } else {
            format!("load generators pinned to CPU {:?}", self.load_cpus)
        };
        match self.switch_cpu {
            Some(c) => format!(
                "{load}; OVS's PMD thread and mvdp-busy's worker on CPU {c}{}",
                self.colocated()
            ),
            None => format!(
                "{load}; no CPU for a dedicated-core switch{}",
                self.colocated()
            ),
        }
    }
}

static PLAN: OnceLock<CpuPlan> = OnceLock::new();

/// Sets the run's plan (once, before any lab is built); later calls are ignored.
pub fn set_plan(plan: CpuPlan) {
    let _ = PLAN.set(plan);
}

/// The run's plan ([`CpuPlan::default_for`] this machine unless set).
pub fn plan() -> &'static CpuPlan {
    PLAN.get_or_init(|| {
        CpuPlan::default_for(std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

fn cpuset(cpus: &[usize]) -> Result<CpuSet> {
    let mut set = CpuSet::new();
    for c in cpus {
        set.set(*c).map_err(|e| anyhow!("CPU {c}: {e}"))?;
    }
    Ok(set)
}

/// Pins the calling thread (and the threads it starts from now on) to the load CPUs.
pub fn pin_load_thread() -> Result<()> {
    let cpus = &plan().load_cpus;
    if cpus.is_empty() {
        return Ok(());
    }
    sched_setaffinity(Pid::from_raw(0), &cpuset(cpus)?)
        .map_err(|e| anyhow!("pinning a load thread to CPUs {cpus:?}: {e}"))
}

/// Pins the calling thread to `cpu` alone.
pub fn pin_thread_to(cpu: usize) -> Result<()> {
    sched_setaffinity(Pid::from_raw(0), &cpuset(&[cpu])?)
        .map_err(|e| anyhow!("pinning a thread to CPU {cpu}: {e}"))
}

/// While alive, the calling thread runs on the load CPUs (threads it starts inherit that);
/// its former affinity comes back on drop. Created around each measurement, so the threads the
/// bench starts otherwise (mvdp's workers, the ceiling forwarder) are not confined to the load's CPUs.
pub struct LoadPinned {
    old: Option<CpuSet>,
}

impl LoadPinned {
    pub fn new() -> Result<LoadPinned> {
        if plan().load_cpus.is_empty() {
            return Ok(LoadPinned { old: None });
        }
        let old = sched_getaffinity(Pid::from_raw(0)).map_err(|e| anyhow!("affinity: {e}"))?;
        pin_load_thread()?;
        Ok(LoadPinned { old: Some(old) })
    }
}

impl Drop for LoadPinned {
    fn drop(&mut self) {
        if let Some(old) = self.old.take() {
            let _ = sched_setaffinity(Pid::from_raw(0), &old);
        }
    }
}

/// The CPUs threads `tids` may run on, as the kernel has them (the union; sorted). None when
/// there are no threads or one cannot be read (gone).
pub fn affinity(tids: &[u32]) -> Option<Vec<usize>> {
    let mut cpus = std::collections::BTreeSet::new();
    for tid in tids {
        let set = sched_getaffinity(Pid::from_raw(*tid as i32)).ok()?;
        cpus.extend((0..CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)));
    }
    (!cpus.is_empty()).then(|| cpus.into_iter().collect())
}

/// `[0, 2, 3]` as taskset prints it: "0,2-3".
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// Puts threads `tids` under SCHED_IDLE (`idle`) or back under SCHED_OTHER: a switch's threads
/// waiting for their turn run only when their core has nothing else to do.
pub fn set_idle_priority(tids: &[u32], idle: bool) -> Result<()> {
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    let param = libc::sched_param { sched_priority: 0 };
    for tid in tids {
        // SAFETY: plain syscall on a thread id with a valid, initialised sched_param; no memory
        // is written.
        let r = unsafe { libc::sched_setscheduler(*tid as libc::pid_t, policy, &param) };
        if r != 0 {
            return Err(anyhow!(
                "scheduling policy of thread {tid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_keep_the_switch_off_the_load() {
        assert_eq!(
            CpuPlan::default_for(2),
            CpuPlan {
                load_cpus: vec![0],
                switch_cpu: Some(1)
            }
        );
        assert_eq!(CpuPlan::default_for(1).switch_cpu, None);
        let p = CpuPlan::with_load(vec![0, 1], 4).unwrap();
        assert_eq!(p.switch_cpu, Some(2));
        assert_eq!(CpuPlan::with_load(vec![0, 1], 2).unwrap().switch_cpu, None);
        assert_eq!(CpuPlan::with_load(vec![], 2).unwrap().switch_cpu, Some(1));
        assert!(CpuPlan::with_load(vec![5], 2).is_err());
        assert!(p.describe().contains("CPU 2"), "{}", p.describe());
        assert_eq!(cpu_list(&[0, 2, 3, 5]), "0,2-3,5");
        assert_eq!(cpu_list(&[1]), "1");
        assert_eq!(cpu_list(&[]), "");
        // mvdp-colocated's worker joins the load, and the report says where.
        assert!(
            p.describe().contains("mvdp-colocated's on CPU 0"),
            "{}",
            p.describe()
        );
        let unpinned = CpuPlan::with_load(vec![], 2).unwrap();
        assert!(
            !unpinned.describe().contains("mvdp-colocated"),
            "{}",
            unpinned.describe()
        );
    }
}
