//! Capacity under concurrency: 100 `mvdp port add` calls at once against a daemon whose UMEM
//! serves 64 ports. Each call either succeeds or is refused with the capacity message, exactly 64
//! succeed, every refused container is left untouched, the host holds one veth per served port,
//! the served ports forward, and the daemon keeps answering.

mod common;

use std::process::Output;

use common::{eventually, links, ping, require_root, unique_prefix, DaemonLab, Namespaces, BIN};

const CALLS: usize = 100;
const CAPACITY: usize = 64;
/// 1,536 frames: 512 kept for frames in flight, 512 promised to the parent's queue, and 512 left:
/// 64 ports' fill floors of 8.
const FRAMES: &str = "1536";

#[test]
fn concurrent_port_adds_beyond_capacity_are_refused_cleanly() {
    require_root!("concurrent_port_adds_beyond_capacity_are_refused_cleanly");
    // The daemon reads --frames from its environment, which it inherits from this process.
    std::env::set_var("MVDP_FRAMES", FRAMES);
    let prefix = unique_prefix("cap");
    let d = DaemonLab::start(BIN, &prefix, 0, false);
    let ns = Namespaces::create(&prefix, "k", CALLS);
    d.ok(&[
        "network",
        "create",
        "dense",
        "--parent",
        "eth1",
        "--subnet",
        "198.18.16.0/20",
    ]);
    let outs: Vec<(String, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = ns
            .names()
            .iter()
            .map(|n| s.spawn(|| (n.clone(), d.mvdp(&["port", "add", "dense", "--netns", n]))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut served = Vec::new();
    for (n, o) in &outs {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{n}: {err}");
        if o.status.success() {
            served.push(n.clone());
        } else {
            assert!(
                err.contains("no UMEM frames left") && err.contains("--frames"),
                "{n}: a refusal that is not the capacity's: {err}"
            );
            assert_eq!(links(n), vec!["lo".to_string()], "{n} left half-made");
        }
    }
    assert_eq!(served.len(), CAPACITY, "served ports");
    let host_veths = links(&d.host())
        .into_iter()
        .filter(|l| l.starts_with("mvp"))
        .count();
    assert_eq!(host_veths, CAPACITY, "one host veth per served port");
    let stats = d.json(&["stats", "--json"]);
    assert_eq!(
        stats["capacity"]["ports"], CAPACITY,
        "{}",
        stats["capacity"]
    );
    assert!(
        eventually(5, || d.json(&["stats", "--json"])["umem"]["balanced"]
            == true),
        "UMEM books"
    );
    // The served ports forward: the first and last served reach each other.
    let ports = d.json(&["port", "ls", "--json"]);
    let ip_of = |name: &str| -> String {
        ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["netns"] == name)
            .and_then(|p| p["ip"].as_str())
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (a, b) = (&served[0], &served[CAPACITY - 1]);
    assert!(ping(a, &ip_of(b), 3), "{a} -> {b}");
    assert!(ping(b, &ip_of(a), 3), "{b} -> {a}");
}
