//! Support for the tests that build labs (the root package's `tests/`, `control/tests/`): skipping
//! without root, unique lab names, judging a lab from outside with `ip`/`ping`/`ethtool`
//! ([`commands`]), a recording fake [`Dataplane`](mvdp_switch::plane::Dataplane)
//! ([`fake_dataplane`]) and a lab with `mvdp daemon` running in it ([`daemon_lab`]).

pub mod commands;
pub mod daemon_lab;
pub mod fake_dataplane;
pub mod runtimes;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use commands::*;
pub use daemon_lab::DaemonLab;
pub use fake_dataplane::{Call, FakeDataplane};

/// Root-only tests say why they skip instead of failing on an unprivileged machine.
pub fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("{test}: skipped: needs root (network namespaces, XDP, AF_XDP)");
    }
    root
}

/// Returns from the calling test, with a message naming it, unless running as root.
///
/// ```
/// fn a_test() {
///     mvdp_lab::require_root!("a_test");
///     // ... build a lab
/// }
/// ```
#[macro_export]
macro_rules! require_root {
    ($test:expr) => {
        if !$crate::testing::is_root($test) {
            return;
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A lab prefix no other test (in this or a parallel process) uses: `mvt<pid><tag><counter>`.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "mvt{}{tag}{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `cond` for up to `secs` seconds: kernel teardown (link release, netns exit) is
/// asynchronous.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An empty directory `mvdp-test-<pid>-<tag>` under the system's temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mvdp-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a temp dir");
    d
}

/// Empty network namespaces `{prefix}-{tag}1..=n` standing in for containers beyond what a lab
/// builds (dense-host tests), removed on drop, also when the test fails.
pub struct Namespaces(Vec<String>);

impl Namespaces {
    pub fn create(prefix: &str, tag: &str, n: usize) -> Namespaces {
        let mut v = Namespaces(Vec::with_capacity(n));
        for i in 1..=n {
            let name = format!("{prefix}-{tag}{i}");
            let ok = std::process::Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip netns add {name}");
            v.0.push(name);
        }
        v
    }

    /// The `i`-th namespace, 1-based.
    pub fn get(&self, i: usize) -> &str {
        &self.0[i - 1]
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}
