//! A dense host: 256 ports on one network of one daemon. Every port receives (sampled pairs ping
//! each other both ways), the UMEM books balance, and the port beyond capacity is refused with a
//! message that names the knob, leaving nothing half-made; removing a port makes room again.
//! Speed and memory at 1,000 ports are measured by `mvdp bench`, not here.

mod common;

use common::{eventually, links, ping, require_root, unique_prefix, DaemonLab, Namespaces, BIN};

const PORTS: u32 = 256;
/// With 3,072 UMEM frames the daemon keeps 512 for frames in flight and promises 512 to the
/// parent's one rx queue, which leaves 2,048: exactly 256 ports' fill floors of 8 frames.
const FRAMES: &str = "3072";

fn port_ip(ports: &serde_json::Value, ns: &str) -> String {
    let p = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["netns"] == ns)
        .unwrap_or_else(|| panic!("no port in {ns}: {ports}"));
    p["ip"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_network_of_256_ports_serves_every_port_and_refuses_the_next() {
    require_root!("a_network_of_256_ports_serves_every_port_and_refuses_the_next");
    // The daemon reads --frames from its environment, which it inherits from this process.
    std::env::set_var("MVDP_FRAMES", FRAMES);
    let prefix = unique_prefix("dense");
    let d = DaemonLab::start(BIN, &prefix, 0, false);
    let ns = Namespaces::create(&prefix, "d", PORTS as usize + 1);
    d.ok(&[
        "network",
        "create",
        "dense",
        "--parent",
        "eth1",
        "--subnet",
        "198.18.16.0/20",
    ]);
    let mut took = Vec::new();
    for i in 1..=PORTS {
        let t = std::time::Instant::now();
        d.ok(&["port", "add", "dense", "--netns", ns.get(i as usize)]);
        took.push(t.elapsed());
    }
    took.sort();
    eprintln!(
        "{PORTS} port adds: p50 {:?}, p99 {:?}",
        took[took.len() / 2],
        took[took.len() * 99 / 100]
    );
    let stats = d.json(&["stats", "--json"]);
    assert_eq!(stats["capacity"]["ports"], PORTS, "{}", stats["capacity"]);
    assert_eq!(
        stats["capacity"]["max_ports"], PORTS,
        "{}",
        stats["capacity"]
    );

    // One more is refused, naming the limit and the knob, and nothing of it is left.
    let last = ns.get(PORTS as usize + 1);
    let err = d.refused(
        &["port", "add", "dense", "--netns", last],
        "no UMEM frames left",
    );
    assert!(err.contains("--frames"), "{err}");
    assert_eq!(
        links(last),
        vec!["lo".to_string()],
        "nothing half-made in {last}"
    );
    let host_ports = links(&d.host())
        .into_iter()
        .filter(|l| l.starts_with("mvp"))
        .count();
    assert_eq!(host_ports, PORTS as usize, "no extra veth in the host");
    let ports = d.json(&["port", "ls", "--json"]);
    assert_eq!(ports.as_array().unwrap().len(), PORTS as usize);

    // Every sampled pair talks both ways: the first, middle and last ports, added early and late.
    for (a, b) in [
        (1, 2),
        (1, PORTS),
        (64, 200),
        (128, 255),
        (PORTS - 1, PORTS),
    ] {
        let (na, nb) = (ns.get(a as usize), ns.get(b as usize));
        let (ia, ib) = (port_ip(&ports, na), port_ip(&ports, nb));
        assert!(ping(na, &ib, 3), "port {a} -> port {b} ({ib})");
        assert!(ping(nb, &ia, 3), "port {b} -> port {a} ({ia})");
    }
    // Every new container's link-up multicast is flooded to all the other ports: a burst of
    // those must never run the switch out of chunks (the ports last in flood order lost their
    // copies, ARP requests among them, when it did).
    let drops = &d.json(&["stats", "--json"])["drops"];
    assert_eq!(drops["no_free_frame"], 0, "{drops}");
    assert!(
        eventually(5, || d.json(&["stats", "--json"])["umem"]["balanced"]
            == true),
        "UMEM books: {}",
        d.json(&["stats", "--json"])["umem"]
    );

    // Removing a port gives its frames back: the refused one now fits, and receives.
    d.ok(&["port", "rm", "dense", ns.get(1)]);
    d.ok(&["port", "add", "dense", "--netns", last]);
    let ports = d.json(&["port", "ls", "--json"]);
    let (il, i2) = (port_ip(&ports, last), port_ip(&ports, ns.get(2)));
    assert!(ping(last, &i2, 3), "the late port reaches port 2");
    assert!(ping(ns.get(2), &il, 3), "port 2 reaches the late port");
}
