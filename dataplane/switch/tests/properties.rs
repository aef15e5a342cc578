//! Property tests: no input panics; verdicts stay on the frame's VLAN, never
//! return a frame to its sender outside the kernel's own reflection rules, and
//! are deterministic.

mod common;

use common::*;
use mvdp_switch::*;
use proptest::prelude::*;

/// Small pools so that generated configs and frames collide often.
const VLANS: [u16; 5] = [0, 1, 2, 4094, 4095];
fn pool_mac(i: u8) -> Mac {
    match i % 16 {
        0 => Mac::BROADCAST,
        1 => MCAST,
        2 => Mac::ZERO,
        3 => EXT,
        4 => HOST,
        n => port_mac(n - 4),
    }
}

#[derive(Clone, Debug)]
struct Config {
    networks: Vec<(u16, u16, u8, bool, u32)>,
    ports: Vec<(u32, u8, bool, Vec<u8>)>,
}

fn config() -> impl Strategy<Value = Config> {
    let bc = prop_oneof![0u32..3, Just(1000u32)];
    let net = (0u16..3, 0usize..VLANS.len(), 0u8..5, any::<bool>(), bc)
        .prop_map(|(p, v, m, nodst, bc)| (p, VLANS[v], m, nodst, bc));
    let port = (
        any::<u32>(),
        any::<u8>(),
        prop::bool::weighted(0.8),
        prop::collection::vec(any::<u8>(), 0..3),
    );
    (
        prop::collection::vec(net, 0..5),
        prop::collection::vec(port, 0..10),
    )
        .prop_map(|(networks, mut ports)| {
            // Mostly existing networks; now and then one that is not there.
            let n = networks.len() as u32;
            for p in &mut ports {
                if p.0 % 13 != 0 {
                    p.0 %= n.max(1);
                }
            }
            Config { networks, ports }
        })
}

fn build(c: &Config) -> Result<Tables, BuildError> {
    let mut b = TablesBuilder::new();
    for &(parent, vlan, m, nodst, bc) in &c.networks {
        b.add_network(NetworkSpec {
            parent: ParentId(parent),
            vlan,
            mode: Mode::ALL[m as usize % 5],
            nodst,
            bc_queue_len: bc,
        });
    }
    for (net, mac, up, sources) in &c.ports {
        b.add_port(PortSpec {
            network: NetworkId(*net),
            mac: pool_mac(*mac),
            up: *up,
            allowed_sources: sources.iter().map(|&s| pool_mac(s)).collect(),
            multicast: McFilter::ALL,
        });
    }
    b.build()
}

/// A config that builds: repair whatever the builder refuses, keeping most
/// of the generated shape (so tables with ports are common).
fn valid_tables() -> impl Strategy<Value = Tables> {
    config().prop_map(|mut c| loop {
        let e = match build(&c) {
            Ok(t) => return t,
            Err(e) => e,
        };
        match e {
            BuildError::VlanOutOfRange { network, .. } => c.networks[network.0 as usize].1 = 1,
            BuildError::NodstOutsideSourceMode { network } => {
                c.networks[network.0 as usize].3 = false
            }
            BuildError::PassthruNotAlone { network, .. }
            | BuildError::PassthruPortCount { network, .. } => {
                c.networks[network.0 as usize].2 = 2; // bridge
            }
            BuildError::InvalidMac { port, .. }
            | BuildError::UnknownNetwork { port, .. }
            | BuildError::DuplicateMac { second: port, .. } => {
                c.ports.remove(port.0 as usize);
            }
            BuildError::SourcesOutsideSourceMode { port } => c.ports[port.0 as usize].3.clear(),
            BuildError::InvalidSourceMac { port, mac } => {
                c.ports[port.0 as usize].3.retain(|&m| pool_mac(m) != mac)
            }
            other => panic!("generator cannot produce {other}"),
        }
    })
}

/// Frames drawn from what the table knows (its MACs and VLANs) plus outsiders,
/// a port's own MAC as source half the time when it is the ingress, and raw
/// bytes now and then.
fn frame(t: &Tables, ingress: Ingress) -> BoxedStrategy<Vec<u8>> {
    let mut macs: Vec<Mac> = t.ports().map(|(_, p)| p.mac).collect();
    macs.extend([EXT, HOST, Mac::BROADCAST, MCAST, Mac::ZERO]);
    let mut vlans: Vec<u16> = (0..t.segment_count())
        .filter_map(|s| t.segment(SegmentId(s as u16)).map(|s| s.vlan))
        .collect();
    vlans.extend([0, 7, 4095]);
    let own = match ingress {
        Ingress::Port(p) => t.port(p).map(|p| p.mac),
        _ => None,
    };
    let src = prop::sample::select(macs.clone());
    let src = match own {
        Some(m) => prop_oneof![Just(m), src].boxed(),
        None => src.boxed(),
    };
    let tag = match ingress {
        Ingress::Port(_) => prop_oneof![9 => Just(None), 1 => Just(Some(5u16))].boxed(),
        _ => prop::option::weighted(0.8, (prop::sample::select(vlans), any::<u16>()))
            .prop_map(|o| o.map(|(v, hi)| (hi & 0xf000) | v))
            .boxed(),
    };
    let structured = (
        prop::sample::select(macs),
        src,
        tag,
        prop::sample::select(vec![
            0x0800u16, 0x0800, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8808,
        ]),
        0usize..120,
    )
        .prop_map(|(d, s, tci, et, len)| {
            let mut f = eth(d, s, tci, et);
            f.truncate(len);
            f
        });
    prop_oneof![
        6 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..80),
    ]
    .boxed()
}

fn ingress(t: &Tables) -> impl Strategy<Value = Ingress> {
    let ports = t.port_count() as u32 + 1;
    prop_oneof![
        1 => (0u16..4).prop_map(|p| Ingress::Wire(ParentId(p))),
        1 => (0u16..4).prop_map(|p| Ingress::WireFlood(ParentId(p))),
        2 => (0..ports).prop_map(|p| Ingress::Port(PortId(p))),
    ]
}

fn case() -> impl Strategy<Value = (Tables, Ingress, Vec<Vec<u8>>)> {
    valid_tables()
        .prop_flat_map(|t| {
            let i = ingress(&t);
            (Just(t), i)
        })
        .prop_flat_map(|(t, i)| {
            let f = prop::collection::vec(frame(&t, i), 1..40);
            (Just(t), Just(i), f)
        })
}

fn check_invariants(
    t: &Tables,
    ingress: Ingress,
    f: &[u8],
    v: &Verdict,
) -> Result<(), TestCaseError> {
    let Verdict::Deliver(d) = v else {
        return Ok(());
    };
    let h = wire::L2Header::parse(f).expect("a delivered frame parsed");
    let seg = t.segment(d.segment).expect("delivery names a real segment");
    prop_assert_eq!(d.vlan, seg.vlan);
    let dests = destinations(t, d);
    match ingress {
        Ingress::Wire(p) | Ingress::WireFlood(p) => {
            // The frame's VID picks the segment.
            prop_assert_eq!(seg.parent, p);
            prop_assert_eq!(seg.vlan, h.vid());
            prop_assert_eq!(d.tagged, h.tci.is_some());
            prop_assert!(!d.wire, "nothing goes back to the wire it came from");
            if matches!(ingress, Ingress::WireFlood(_)) {
                prop_assert!(!d.host);
            }
            // Reflection: a local port's own broadcast only comes back to it in
            // the modes where macvlan_handle_frame forwards to the original port.
            // (Unless a nodst source-mode port consumed the frame first.)
            let consumed = d.ports == Ports::None && d.taps.is_some() && !d.host;
            if h.dst_is_multicast() && !consumed {
                if let Some(owner) = t.lookup(d.segment, h.src_mac()) {
                    let mode = t.port(owner).unwrap().mode;
                    // Copies through the port set only: a source-mode port may
                    // also tap its own MAC, which is a different rule.
                    let back = match d.ports {
                        Ports::One(p) => p == owner,
                        Ports::Flood {
                            modes,
                            except,
                            group,
                        } => t
                            .flood_ports(d.segment, modes, except, group)
                            .any(|p| p == owner),
                        Ports::None => false,
                    };
                    prop_assert_eq!(back, !matches!(mode, Mode::Vepa | Mode::Bridge));
                }
            }
        }
        Ingress::Port(pid) => {
            let port = t.port(pid).unwrap();
            prop_assert!(port.up);
            prop_assert_eq!(d.segment, port.segment);
            prop_assert!(!d.host, "macvlan never hands a port's frame to the host");
            prop_assert!(!d.tagged);
            prop_assert!(h.tci.is_none());
            if port.mode != Mode::Passthru {
                prop_assert_eq!(h.src_mac(), port.mac);
            }
            if dests.contains(&Dest::Port(pid.0)) {
                // Only a bridge port's unicast to its own MAC (dev_forward_skb).
                prop_assert_eq!(port.mode, Mode::Bridge);
                prop_assert_eq!(h.dst_mac(), port.mac);
            }
        }
    }
    for dst in dests {
        if let Dest::Port(p) = dst {
            let port = t.port(PortId(p)).expect("a real port");
            prop_assert!(port.up, "down ports receive nothing");
            prop_assert_eq!(port.segment, d.segment, "never crosses VLANs");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises it for a long soak.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        // Shrinking a whole table is slow; a bounded shrink still gives a small case.
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_configs_build_or_fail_cleanly(c in config()) {
        let _ = build(&c);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128), p in 0u32..4) {
        let t = Tables::empty();
        let mut b = FloodBudget::new(&t);
        let mut c = Counters::new(&t);
        for ingress in [Ingress::Wire(ParentId(0)), Ingress::WireFlood(ParentId(0)), Ingress::Port(PortId(p))] {
            let v = decide(&t, ingress, &bytes, &mut b, &mut c);
            prop_assert!(matches!(v, Verdict::Drop(_)));
        }
        let mut chunk = bytes.clone();
        let len = chunk.len().saturating_sub(p as usize);
        let _ = wire::push_vlan_tag(&mut chunk, p as usize, len, 7);
        let _ = wire::pop_vlan_tag(&mut chunk, p as usize, len);
        let _ = wire::pop_vlan_tag(&mut chunk, usize::MAX, 2);
    }

    #[test]
    fn verdicts_respect_vlans_reflection_and_liveness((t, ingress, frames) in case()) {
        let mut b = FloodBudget::new(&t);
        let mut c = Counters::new(&t);
        let mut v = vec![Verdict::default(); frames.len()];
        let n = decide_batch(&t, ingress, &frames, &mut v, &mut b, &mut c);
        prop_assert_eq!(n, frames.len());
        prop_assert_eq!(c.frames, n as u64);
        for (f, v) in frames.iter().zip(&v) {
            check_invariants(&t, ingress, f, v)?;
        }
    }

    #[test]
    fn same_input_same_decision((t, ingress, frames) in case()) {
        let run_all = || {
            let mut b = FloodBudget::new(&t);
            let mut c = Counters::new(&t);
            let mut v = vec![Verdict::default(); frames.len()];
            decide_batch(&t, ingress, &frames, &mut v, &mut b, &mut c);
            (v, c)
        };
        let (v1, c1) = run_all();
        let (v2, c2) = run_all();
        prop_assert_eq!(&v1, &v2);
        prop_assert_eq!(c1, c2);
        // Batching is an optimisation only: frame by frame gives the same.
        let mut b = FloodBudget::new(&t);
        let mut c = Counters::new(&t);
        for (f, want) in frames.iter().zip(&v1) {
            prop_assert_eq!(decide(&t, ingress, f, &mut b, &mut c), *want);
        }
    }

    #[test]
    fn push_pop_round_trips(payload in prop::collection::vec(any::<u8>(), 14..100), head in 4usize..64, tci in any::<u16>()) {
        let mut chunk = vec![0u8; head + payload.len()];
        chunk[head..].copy_from_slice(&payload);
        let s = wire::push_vlan_tag(&mut chunk, head, payload.len(), tci).unwrap();
        let h = wire::L2Header::parse(&chunk[s..]).unwrap();
        prop_assert_eq!(h.tci, Some(tci));
        prop_assert_eq!(&chunk[s..s + 12], &payload[..12]);
        let s2 = wire::pop_vlan_tag(&mut chunk, s, payload.len() + 4).unwrap();
        prop_assert_eq!(s2, head);
        prop_assert_eq!(&chunk[s2..], &payload[..]);
    }
}

/// The properties above are only as good as the cases they see: make sure
/// the generators reach every kind of verdict.
#[test]
fn generators_reach_every_verdict_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strat = case();
    let (mut one, mut flood, mut wire, mut host, mut taps) = (0, 0, 0, 0, 0);
    let mut reasons = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let (t, ingress, frames) = strat.new_tree(&mut runner).unwrap().current();
        let mut b = FloodBudget::new(&t);
        let mut c = Counters::new(&t);
        for f in &frames {
            match decide(&t, ingress, f, &mut b, &mut c) {
                Verdict::Drop(r) => {
                    reasons.insert(r.name());
                }
                Verdict::Deliver(d) => {
                    match d.ports {
                        Ports::One(_) => one += 1,
                        Ports::Flood { .. } => flood += 1,
                        Ports::None => {}
                    }
                    wire += d.wire as u32;
                    host += d.host as u32;
                    taps += d.taps.is_some() as u32;
                }
            }
        }
        // Counters also see drops inside a delivery (spent flood budget).
        reasons.extend(c.drop_names().filter(|&(_, n)| n > 0).map(|(r, _)| r));
    }
    println!("one {one} flood {flood} wire {wire} host {host} taps {taps} {reasons:?}");
    for (what, n) in [
        ("one", one),
        ("flood", flood),
        ("wire", wire),
        ("host", host),
        ("taps", taps),
    ] {
        assert!(n > 5, "generator rarely produces {what}: {n}");
    }
    for r in [
        "runt",
        "truncated_tag",
        "spoofed_source",
        "vlan_from_port",
        "unknown_vlan",
        "unknown_ingress",
        "port_down",
        "flood_budget",
    ] {
        assert!(
            reasons.contains(r),
            "generator never produces {r}: {reasons:?}"
        );
    }
}
