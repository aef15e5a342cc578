//! Looking at a lab from outside, through `ip`, `ping` and `ethtool`, independently of the netlink
//! code that built it. Every helper panics when the command cannot run at all.

use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs `f` on a thread that has entered netns `name`; sockets and BPF objects it creates
/// stay bound to that namespace.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    mvdp_control::NetNs::open(name)
        .and_then(|ns| ns.run(f))
        .unwrap_or_else(|e| panic!("entering netns {name}: {e}"))
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

/// `ip netns exec NS ARGS…` (the iproute2 way in, to prove the namespaces are iproute2-compatible).
pub fn ns_exec(ns: &str, args: &[&str]) -> Output {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}

/// `ip netns exec NS ARGS…` succeeded.
pub fn ns_ok(ns: &str, args: &[&str]) -> bool {
    ns_exec(ns, args).status.success()
}

/// Interface names in `ip -br link` output, without the `@peer` suffix.
fn link_names(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Interface names in netns `ns` (`ip -br link`), without the `@peer` suffix.
pub fn links(ns: &str) -> Vec<String> {
    link_names(ip_n(ns, &["-br", "link"]).as_bytes())
}

/// Interface names in the root namespace.
pub fn root_links() -> Vec<String> {
    link_names(&run(Command::new("ip").args(["-br", "link"])).stdout)
}

/// Whether netns `ns` has an interface `ifname`.
pub fn has_link(ns: &str, ifname: &str) -> bool {
    run(Command::new("ip").args(["-n", ns, "link", "show", "dev", ifname]))
        .status
        .success()
}

/// Whether `ifname` in netns `ns` has an XDP program attached.
pub fn xdp_attached(ns: &str, ifname: &str) -> bool {
    ip_n(ns, &["link", "show", "dev", ifname]).contains("prog/xdp")
}

/// `ip netns list` names, as iproute2 sees them.
pub fn ip_netns_list() -> Vec<String> {
    let o = run(Command::new("ip").args(["netns", "list"]));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Namespaces whose name starts with `{prefix}-`, sorted.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    let mut v: Vec<String> = ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect();
    v.sort();
    v
}

/// `ping -c1 -W1 ip` from `ns`, up to `tries` times (the first may wait for ARP).
pub fn ping(ns: &str, ip: &str, tries: u32) -> bool {
    (0..tries).any(|_| ns_ok(ns, &["ping", "-c1", "-W1", ip]))
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
