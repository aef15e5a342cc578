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

/// Sends `bytes` of a deterministic pseudo-random stream over TCP from netns `client` to a
/// server in netns `server` listening on `server_ip`; true when every byte arrived intact.
pub fn tcp_transfer_intact(
    server: &str,
    server_ip: std::net::Ipv4Addr,
    client: &str,
    bytes: usize,
) -> bool {
    use std::io::{Read, Write};
    fn stream(seed: u64, buf: &mut [u8]) -> u64 {
        let mut x = seed;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        x
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let srv = s.spawn(move || {
            in_netns(server, move || {
                let l = std::net::TcpListener::bind((server_ip, 5201)).expect("listen");
                tx.send(()).unwrap();
                // Never block forever: a client that cannot connect must fail the test, not hang it.
                l.set_nonblocking(true).unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                let mut c = loop {
                    match l.accept() {
                        Ok((c, _)) => break c,
                        Err(_) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(std::time::Duration::from_millis(10))
                        }
                        Err(_) => return false,
                    }
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                    .unwrap();
                let (mut want, mut got) = (vec![0u8; 65536], vec![0u8; 65536]);
                let (mut seed, mut left) = (0x9e37_79b9_7f4a_7c15u64, bytes);
                while left > 0 {
                    let n = left.min(got.len());
                    if c.read_exact(&mut got[..n]).is_err() {
                        return false;
                    }
                    seed = stream(seed, &mut want[..n]);
                    if want[..n] != got[..n] {
                        return false;
                    }
                    left -= n;
                }
                true
            })
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("server up");
        let sent = in_netns(client, move || {
            let mut c = match std::net::TcpStream::connect_timeout(
                &(server_ip, 5201).into(),
                std::time::Duration::from_secs(5),
            ) {
                Ok(c) => c,
                Err(_) => return false,
            };
            c.set_write_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let mut buf = vec![0u8; 65536];
            let (mut seed, mut left) = (0x9e37_79b9_7f4a_7c15u64, bytes);
            while left > 0 {
                let n = left.min(buf.len());
                seed = stream(seed, &mut buf[..n]);
                if c.write_all(&buf[..n]).is_err() {
                    return false;
                }
                left -= n;
            }
            true
        });
        let ok = srv.join().unwrap_or(false);
        sent && ok
    })
}

/// Sends `count` small UDP datagrams from netns `ns` to `dst` as fast as it can.
pub fn udp_blast(ns: &str, dst: std::net::Ipv4Addr, count: u64) {
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
        let payload = [0x5au8; 18];
        for _ in 0..count {
            let _ = s.send_to(&payload, (dst, 9));
        }
    })
}
