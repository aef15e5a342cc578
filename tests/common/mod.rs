//! Shared helpers for the end-to-end tests.
#![allow(dead_code)]

use std::process::Command;

/// Root-only tests say why they skip instead of failing on an unprivileged machine.
pub fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("{test}: skipped: needs root (network namespaces, XDP, AF_XDP)");
    }
    root
}

/// Runs `f` on a fresh thread that has entered netns `name`; sockets and BPF objects it
/// creates stay bound to that namespace.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    mvdp_control::NetNs::open(name)
        .and_then(|ns| ns.run(f))
        .unwrap_or_else(|e| panic!("entering netns {name}: {e}"))
}

/// `ip netns exec NS ARGS…`, returning success.
pub fn ns_ok(ns: &str, args: &[&str]) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `ip -n NS ARGS…` stdout.
pub fn ip_n(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("ip");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether `ifname` in netns `ns` has an XDP program attached.
pub fn xdp_attached(ns: &str, ifname: &str) -> bool {
    ip_n(ns, &["link", "show", "dev", ifname]).contains("prog/xdp")
}

/// Polls `cond` for up to `secs` seconds: kernel teardown (link release, netns exit) is
/// asynchronous.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
