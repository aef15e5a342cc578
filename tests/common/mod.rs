//! Shared helpers for the end-to-end tests. Checks go through `ip`, `ping` and `ethtool` so
//! they judge a lab from the outside, independently of the netlink code that built it.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Root-only tests say why they skip instead of failing on an unprivileged machine.
pub fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("{test}: skipped: needs root (network namespaces, XDP, AF_XDP)");
    }
    root
}

/// Runs `f` on a thread that has entered netns `name`; sockets and BPF objects it creates
/// stay bound to that namespace.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    mvdp_control::NetNs::open(name)
        .and_then(|ns| ns.run(f))
        .unwrap_or_else(|e| panic!("entering netns {name}: {e}"))
}

/// `ip netns exec NS ARGS…` succeeded.
pub fn ns_ok(ns: &str, args: &[&str]) -> bool {
    ns_exec(ns, args).status.success()
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

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A prefix no other test (in this or a parallel process) uses: `mvt<pid><tag><counter>`.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "mvt{}{tag}{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// `ip netns list` names, as iproute2 sees them.
pub fn ip_netns_list() -> Vec<String> {
    let o = run(Command::new("ip").args(["netns", "list"]));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Namespaces whose name starts with `{prefix}-`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    let mut v: Vec<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect();
    v.sort();
    v
}

/// `ip -n NS ARGS…` stdout (panics when ip fails).
pub fn ip_n(ns: &str, args: &[&str]) -> String {
    let o = run(Command::new("ip").arg("-n").arg(ns).args(args));
    assert!(
        o.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Interface names in a namespace (`ip -br link`), without the `@peer` suffix.
pub fn links_in(ns: &str) -> Vec<String> {
    ip_n(ns, &["-br", "link"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Interface names in the root namespace.
pub fn root_links() -> Vec<String> {
    let o = run(Command::new("ip").args(["-br", "link"]));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// `ip netns exec NS ARGS…` (the iproute2 way in, to prove the namespaces are iproute2-compatible).
pub fn ns_exec(ns: &str, args: &[&str]) -> Output {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

/// `ping -c1 -W1 ip` from `ns`, up to `tries` times.
pub fn pings(ns: &str, ip: &str, tries: u32) -> bool {
    (0..tries).any(|_| ns_exec(ns, &["ping", "-c1", "-W1", ip]).status.success())
}

/// `ethtool -k IF` in `ns`: the value of feature `name` ("on"/"off").
pub fn ethtool_feature(ns: &str, ifname: &str, name: &str) -> String {
    let o = ns_exec(ns, &["ethtool", "-k", ifname]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no feature {name} for {ifname} in {ns}:\n{out}"))
}
