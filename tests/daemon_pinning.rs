//! `mvdp daemon --cpu LIST` pins the workers: the worker thread may run on the listed CPU only.

mod common;

use common::{require_root, unique_prefix, DaemonLab, BIN};

/// `Cpus_allowed_list` of every thread of `pid` named `name`.
fn allowed_cpus(pid: i32, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if status.lines().any(|l| l == format!("Name:\t{name}")) {
            if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
                out.push(l.split_whitespace().nth(1).unwrap_or("").to_string());
            }
        }
    }
    out
}

#[test]
fn workers_run_on_the_cpus_they_are_given() {
    require_root!("workers_run_on_the_cpus_they_are_given");
    let last = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    // The daemon reads --cpu from its environment, which it inherits from this process.
    std::env::set_var("MVDP_CPU", last.to_string());
    let d = DaemonLab::start(BIN, &unique_prefix("pin"), 0, false);
    // Thread names are cut to 15 bytes by the kernel.
    let cpus = allowed_cpus(d.pid(), "mvdp-worker-0");
    assert_eq!(cpus, vec![last.to_string()], "worker affinity");
    assert!(
        d.mvdp(&["network", "ls"]).status.success(),
        "the daemon answers"
    );
}
