//! One case per mode per row of the forwarding table, each checked against
//! what drivers/net/macvlan.c does (function named in the case).

mod common;

use common::*;
use mvdp_switch::*;

const VLAN: u16 = 10;

/// Parent 0, VLAN 10, one network of `mode` with ports 0..n (MAC 02::0i+1).
fn lab(mode: Mode, n: u8) -> Tables {
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), VLAN, mode));
    for i in 0..n {
        b.add_port(PortSpec::new(net, port_mac(i + 1)));
    }
    b.build().unwrap()
}

#[derive(Clone, Copy, Debug)]
enum From {
    Port(u32),
    Wire,
}

#[derive(Clone, Copy, Debug)]
enum A {
    P(u32),
    Ext,
    Host,
    Bcast,
    Mcast,
}

fn addr(a: A) -> Mac {
    match a {
        A::P(i) => port_mac(i as u8 + 1),
        A::Ext => EXT,
        A::Host => HOST,
        A::Bcast => Mac::BROADCAST,
        A::Mcast => MCAST,
    }
}

use Dest::{Host, Port as P, Wire};

struct Case {
    row: &'static str,
    kernel: &'static str,
    from: From,
    dst: A,
    src: A,
    expect: Outcome,
}

fn check(mode: Mode, ports: u8, cases: &[Case]) {
    let t = lab(mode, ports);
    for c in cases {
        let (ingress, tci) = match c.from {
            From::Port(i) => (Ingress::Port(PortId(i)), None),
            From::Wire => (Ingress::Wire(ParentId(0)), Some(VLAN)),
        };
        let f = eth(addr(c.dst), addr(c.src), tci, 0x0800);
        let got = run(&t, ingress, &f);
        assert_eq!(
            got,
            c.expect,
            "{} mode, row {:?} (kernel: {})",
            mode.name(),
            c.row,
            c.kernel
        );
    }
}

fn case(
    row: &'static str,
    kernel: &'static str,
    from: From,
    dst: A,
    src: A,
    expect: Outcome,
) -> Case {
    Case {
        row,
        kernel,
        from,
        dst,
        src,
        expect,
    }
}

#[test]
fn bridge_mode() {
    check(
        Mode::Bridge,
        3,
        &[
            case(
                "P1 -> P2",
                "macvlan_queue_xmit: dest is a bridge port -> dev_forward_skb",
                From::Port(0),
                A::P(1),
                A::P(0),
                to(&[P(1)]),
            ),
            case(
                "P1 -> unknown",
                "macvlan_queue_xmit: no dest -> xmit_world",
                From::Port(0),
                A::Ext,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 -> host MAC",
                "the parent's MAC is not hashed -> xmit_world",
                From::Port(0),
                A::Host,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast",
                "macvlan_broadcast(MACVLAN_MODE_BRIDGE) + xmit_world",
                From::Port(0),
                A::Bcast,
                A::P(0),
                to(&[P(1), P(2), Wire]),
            ),
            case(
                "P1 multicast",
                "same as broadcast",
                From::Port(0),
                A::Mcast,
                A::P(0),
                to(&[P(1), P(2), Wire]),
            ),
            case(
                "P1 broadcast reflected",
                "handle_frame: src is BRIDGE -> multicast_rx floods VEPA only; PASS",
                From::Wire,
                A::Bcast,
                A::P(0),
                to(&[Host]),
            ),
            case(
                "wire -> P2",
                "handle_frame: hash lookup of h_dest",
                From::Wire,
                A::P(1),
                A::Ext,
                to(&[P(1)]),
            ),
            case(
                "wire broadcast",
                "multicast_rx(src NULL): all modes; PASS",
                From::Wire,
                A::Bcast,
                A::Ext,
                to(&[P(0), P(1), P(2), Host]),
            ),
            case(
                "wire multicast",
                "same as broadcast",
                From::Wire,
                A::Mcast,
                A::Ext,
                to(&[P(0), P(1), P(2), Host]),
            ),
            case(
                "wire -> no port",
                "no vlan -> RX_HANDLER_PASS",
                From::Wire,
                A::Host,
                A::Ext,
                to(&[Host]),
            ),
            case(
                "P1 -> P1",
                "dest is the sender, a bridge port -> dev_forward_skb back to it",
                From::Port(0),
                A::P(0),
                A::P(0),
                to(&[P(0)]),
            ),
        ],
    );
}

#[test]
fn vepa_mode() {
    check(
        Mode::Vepa,
        3,
        &[
            case(
                "P1 -> P2",
                "macvlan_queue_xmit: not bridge -> xmit_world",
                From::Port(0),
                A::P(1),
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 -> P2 hairpinned",
                "handle_frame: unicast by h_dest, no source check",
                From::Wire,
                A::P(1),
                A::P(0),
                to(&[P(1)]),
            ),
            case(
                "P1 -> unknown",
                "xmit_world",
                From::Port(0),
                A::Ext,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 -> host MAC",
                "xmit_world",
                From::Port(0),
                A::Host,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast",
                "xmit_world only",
                From::Port(0),
                A::Bcast,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast reflected",
                "multicast_rx: src VEPA -> VEPA|BRIDGE except src; PASS",
                From::Wire,
                A::Bcast,
                A::P(0),
                to(&[P(1), P(2), Host]),
            ),
            case(
                "wire -> P2",
                "hash lookup of h_dest",
                From::Wire,
                A::P(1),
                A::Ext,
                to(&[P(1)]),
            ),
            case(
                "wire broadcast",
                "multicast_rx(src NULL); PASS",
                From::Wire,
                A::Bcast,
                A::Ext,
                to(&[P(0), P(1), P(2), Host]),
            ),
            case(
                "wire -> no port",
                "RX_HANDLER_PASS",
                From::Wire,
                A::Host,
                A::Ext,
                to(&[Host]),
            ),
        ],
    );
}

#[test]
fn private_mode() {
    check(
        Mode::Private,
        3,
        &[
            case(
                "P1 -> P2",
                "xmit_world",
                From::Port(0),
                A::P(1),
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 -> P2 hairpinned",
                "handle_frame: unicast has no source check",
                From::Wire,
                A::P(1),
                A::P(0),
                to(&[P(1)]),
            ),
            case(
                "P1 -> unknown",
                "xmit_world",
                From::Port(0),
                A::Ext,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast",
                "xmit_world only",
                From::Port(0),
                A::Bcast,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast reflected",
                "src not VEPA/BRIDGE -> forward to original port, CONSUMED",
                From::Wire,
                A::Bcast,
                A::P(0),
                to(&[P(0)]),
            ),
            case(
                "wire -> P2",
                "hash lookup of h_dest",
                From::Wire,
                A::P(1),
                A::Ext,
                to(&[P(1)]),
            ),
            case(
                "wire broadcast",
                "multicast_rx(src NULL) includes PRIVATE; PASS",
                From::Wire,
                A::Bcast,
                A::Ext,
                to(&[P(0), P(1), P(2), Host]),
            ),
            case(
                "wire -> no port",
                "RX_HANDLER_PASS",
                From::Wire,
                A::Host,
                A::Ext,
                to(&[Host]),
            ),
        ],
    );
}

#[test]
fn passthru_mode() {
    check(
        Mode::Passthru,
        1,
        &[
            case(
                "P1 -> unknown",
                "xmit_world",
                From::Port(0),
                A::Ext,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 -> host MAC",
                "xmit_world",
                From::Port(0),
                A::Host,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast",
                "xmit_world",
                From::Port(0),
                A::Bcast,
                A::P(0),
                to(&[Wire]),
            ),
            case(
                "P1 broadcast reflected",
                "src PASSTHRU -> forward to original port, CONSUMED",
                From::Wire,
                A::Bcast,
                A::P(0),
                to(&[P(0)]),
            ),
            case(
                "wire -> P1",
                "passthru: first vlan takes all unicast",
                From::Wire,
                A::P(0),
                A::Ext,
                to(&[P(0)]),
            ),
            case(
                "wire -> other MAC",
                "passthru: first vlan takes all unicast",
                From::Wire,
                A::Host,
                A::Ext,
                to(&[P(0)]),
            ),
            case(
                "wire broadcast",
                "multicast_rx(src NULL) includes PASSTHRU; PASS",
                From::Wire,
                A::Bcast,
                A::Ext,
                to(&[P(0), Host]),
            ),
            case(
                "P1 any source",
                "passthru is exempt from the source check (ours)",
                From::Port(0),
                A::Ext,
                A::Ext,
                to(&[Wire]),
            ),
        ],
    );
}

#[test]
fn ports_that_are_down() {
    // Down macvlans are unhashed (macvlan_stop -> macvlan_hash_del).
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), VLAN, Mode::Bridge));
    let p1 = b.add_port(PortSpec::new(net, port_mac(1)));
    let p2 = b.add_port(PortSpec {
        up: false,
        ..PortSpec::new(net, port_mac(2))
    });
    let p3 = b.add_port(PortSpec::new(net, port_mac(3)));
    let t = b.build().unwrap();
    let wire = Ingress::Wire(ParentId(0));
    // Unicast to a down port's MAC finds nothing: the host gets it.
    assert_eq!(
        run(&t, wire, &eth(port_mac(2), EXT, Some(VLAN), 0x800)),
        to(&[Host])
    );
    // Floods skip it.
    assert_eq!(
        run(&t, wire, &eth(Mac::BROADCAST, EXT, Some(VLAN), 0x800)),
        to(&[P(p1.0), P(p3.0), Host])
    );
    // A sibling's unicast to it leaves on the wire.
    assert_eq!(
        run(
            &t,
            Ingress::Port(p1),
            &eth(port_mac(2), port_mac(1), None, 0x800)
        ),
        to(&[Wire])
    );
    // The down port itself sends nothing.
    assert_eq!(
        run(&t, Ingress::Port(p2), &eth(EXT, port_mac(2), None, 0x800)),
        Outcome::Drop(DropReason::PortDown)
    );

    // Passthru takes all unicast even when down, and drops it (kfree_skb).
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Passthru));
    b.add_port(PortSpec {
        up: false,
        ..PortSpec::new(net, port_mac(1))
    });
    let t = b.build().unwrap();
    assert_eq!(
        run(&t, wire, &eth(EXT, HOST, None, 0x800)),
        Outcome::Drop(DropReason::PortDown)
    );
    assert_eq!(
        run(&t, wire, &eth(Mac::BROADCAST, HOST, None, 0x800)),
        to(&[Host])
    );
}

/// `macvlan_broadcast` hands a group frame only to macvlans whose `mc_filter` has its hash:
/// the groups their device listens to, and broadcast always; ALLMULTI/promiscuous ones get all.
#[test]
fn multicast_reaches_the_ports_that_listen() {
    use Dest::*;
    let joined = Mac([0x33, 0x33, 0xff, 0, 0, 0x02]);
    let router_solicit = Mac([0x33, 0x33, 0, 0, 0, 0x02]);
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), VLAN, Mode::Bridge));
    let listener = |groups: &[Mac]| McFilter::of_groups(groups.iter().copied());
    let p1 = b.add_port(PortSpec {
        multicast: listener(&[]),
        ..PortSpec::new(net, port_mac(1))
    });
    let p2 = b.add_port(PortSpec {
        multicast: listener(&[joined]),
        ..PortSpec::new(net, port_mac(2))
    });
    let p3 = b.add_port(PortSpec {
        multicast: McFilter::ALL,
        ..PortSpec::new(net, port_mac(3))
    });
    let t = b.build().unwrap();
    let wire = Ingress::Wire(ParentId(0));
    // From the wire: the listener and the ALLMULTI port; the host always.
    assert_eq!(
        run(&t, wire, &eth(joined, EXT, Some(VLAN), 0x86dd)),
        to(&[P(p2.0), P(p3.0), Host])
    );
    assert_eq!(
        run(&t, wire, &eth(router_solicit, EXT, Some(VLAN), 0x86dd)),
        to(&[P(p3.0), Host])
    );
    // Broadcast passes every filter.
    assert_eq!(
        run(&t, wire, &eth(Mac::BROADCAST, EXT, Some(VLAN), 0x806)),
        to(&[P(p1.0), P(p2.0), P(p3.0), Host])
    );
    // From a bridge port: the same filter on its siblings, and the wire as before.
    assert_eq!(
        run(
            &t,
            Ingress::Port(p1),
            &eth(joined, port_mac(1), None, 0x86dd)
        ),
        to(&[P(p2.0), P(p3.0), Wire])
    );
    assert_eq!(
        run(
            &t,
            Ingress::Port(p2),
            &eth(router_solicit, port_mac(2), None, 0x86dd)
        ),
        to(&[P(p3.0), Wire])
    );
}

/// VEPA and bridge ports on one segment: the mode masks decide.
#[test]
fn mixed_modes_on_one_segment() {
    let mut b = TablesBuilder::new();
    let br = b.add_network(NetworkSpec::new(ParentId(0), VLAN, Mode::Bridge));
    let ve = b.add_network(NetworkSpec::new(ParentId(0), VLAN, Mode::Vepa));
    let pr = b.add_network(NetworkSpec::new(ParentId(0), VLAN, Mode::Private));
    let b1 = b.add_port(PortSpec::new(br, port_mac(1)));
    let b2 = b.add_port(PortSpec::new(br, port_mac(2)));
    let v1 = b.add_port(PortSpec::new(ve, port_mac(3)));
    let v2 = b.add_port(PortSpec::new(ve, port_mac(4)));
    let r1 = b.add_port(PortSpec::new(pr, port_mac(5)));
    let t = b.build().unwrap();
    let wire = Ingress::Wire(ParentId(0));
    let bc = |src| eth(Mac::BROADCAST, src, Some(VLAN), 0x800);
    // Bridge port's broadcast: other BRIDGE ports only, plus the wire.
    assert_eq!(
        run(
            &t,
            Ingress::Port(b1),
            &eth(Mac::BROADCAST, port_mac(1), None, 0x800)
        ),
        to(&[P(b2.0), Wire])
    );
    // Bridge unicast to a VEPA port is not local (dest->mode != BRIDGE).
    assert_eq!(
        run(
            &t,
            Ingress::Port(b1),
            &eth(port_mac(3), port_mac(1), None, 0x800)
        ),
        to(&[Wire])
    );
    // Reflected bridge broadcast: VEPA ports only.
    assert_eq!(
        run(&t, wire, &bc(port_mac(1))),
        to(&[P(v1.0), P(v2.0), Host])
    );
    // Reflected VEPA broadcast: VEPA|BRIDGE except the source, not PRIVATE.
    assert_eq!(
        run(&t, wire, &bc(port_mac(3))),
        to(&[P(b1.0), P(b2.0), P(v2.0), Host])
    );
    // Reflected private broadcast: back to its sender only.
    assert_eq!(run(&t, wire, &bc(port_mac(5))), to(&[P(r1.0)]));
    // Outside broadcast: everyone.
    assert_eq!(
        run(&t, wire, &bc(EXT)),
        to(&[P(b1.0), P(b2.0), P(v1.0), P(v2.0), P(r1.0), Host])
    );
}

#[test]
fn source_mode() {
    let other = Mac([0x02, 0, 0, 0, 0xee, 0x02]);
    for nodst in [false, true] {
        let mut b = TablesBuilder::new();
        let br = b.add_network(NetworkSpec::new(ParentId(0), VLAN, Mode::Bridge));
        let src = b.add_network(NetworkSpec {
            nodst,
            ..NetworkSpec::new(ParentId(0), VLAN, Mode::Source)
        });
        let b1 = b.add_port(PortSpec::new(br, port_mac(1)));
        let b2 = b.add_port(PortSpec::new(br, port_mac(2)));
        let s1 = b.add_port(PortSpec {
            allowed_sources: vec![EXT, port_mac(1)],
            ..PortSpec::new(src, port_mac(9))
        });
        let t = b.build().unwrap();
        let wire = Ingress::Wire(ParentId(0));
        let f = |d, s| eth(d, s, Some(VLAN), 0x800);
        let (uni, bc, local) = if nodst {
            // macvlan_forward_source returned consume: kfree_skb, CONSUMED.
            (to(&[P(s1.0)]), to(&[P(s1.0)]), to(&[P(s1.0)]))
        } else {
            (
                to(&[P(b1.0), P(s1.0)]),
                to(&[P(b1.0), P(b2.0), P(s1.0), Host]),
                to(&[P(b2.0), P(s1.0)]),
            )
        };
        assert_eq!(run(&t, wire, &f(port_mac(1), EXT)), uni, "nodst={nodst}");
        // Source-mode ports are not in macvlan_broadcast's masks.
        assert_eq!(run(&t, wire, &f(Mac::BROADCAST, EXT)), bc, "nodst={nodst}");
        // Bridge-local unicast goes through the lower device's rx handler.
        assert_eq!(
            run(
                &t,
                Ingress::Port(b1),
                &eth(port_mac(2), port_mac(1), None, 0x800)
            ),
            local,
            "nodst={nodst}"
        );
        // Unlisted sources are untouched.
        assert_eq!(run(&t, wire, &f(port_mac(1), other)), to(&[P(b1.0)]));
        // A source-mode port's own MAC is not a destination: RX_HANDLER_PASS.
        assert_eq!(run(&t, wire, &f(port_mac(9), other)), to(&[Host]));
        // It transmits to the wire like every non-bridge mode.
        assert_eq!(
            run(
                &t,
                Ingress::Port(s1),
                &eth(port_mac(1), port_mac(9), None, 0x800)
            ),
            to(&[Wire])
        );
        // Its own broadcast reflected: back to it only.
        assert_eq!(
            run(&t, wire, &f(Mac::BROADCAST, port_mac(9))),
            to(&[P(s1.0)])
        );
    }
}

#[test]
fn nodst_listener_down_consumes_everything() {
    let mut b = TablesBuilder::new();
    let br = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Bridge));
    let src = b.add_network(NetworkSpec {
        nodst: true,
        ..NetworkSpec::new(ParentId(0), 0, Mode::Source)
    });
    b.add_port(PortSpec::new(br, port_mac(1)));
    b.add_port(PortSpec {
        up: false,
        allowed_sources: vec![EXT],
        ..PortSpec::new(src, port_mac(9))
    });
    let t = b.build().unwrap();
    assert_eq!(
        run(
            &t,
            Ingress::Wire(ParentId(0)),
            &eth(port_mac(1), EXT, None, 0x800)
        ),
        Outcome::Drop(DropReason::SourceNodst)
    );
}

#[test]
fn pause_frames_are_never_replicated() {
    let t = lab(Mode::Bridge, 3);
    let pause = Mac([0x01, 0x80, 0xc2, 0, 0, 0x01]);
    assert_eq!(
        run(
            &t,
            Ingress::Wire(ParentId(0)),
            &eth(pause, EXT, Some(VLAN), 0x8808)
        ),
        to(&[Host])
    );
    assert_eq!(
        run(
            &t,
            Ingress::Port(PortId(0)),
            &eth(pause, port_mac(1), None, 0x8808)
        ),
        to(&[Wire])
    );
}

/// Deliberate differences from the kernel.
#[test]
fn ports_cannot_spoof_or_tag() {
    let t = lab(Mode::Bridge, 2);
    let p = Ingress::Port(PortId(0));
    assert_eq!(
        run(&t, p, &eth(EXT, port_mac(2), None, 0x800)),
        Outcome::Drop(DropReason::SpoofedSource)
    );
    assert_eq!(
        run(&t, p, &eth(EXT, port_mac(1), Some(20), 0x800)),
        Outcome::Drop(DropReason::VlanFromPort)
    );
    assert_eq!(
        run(&t, p, &eth(EXT, port_mac(1), None, 0x88a8)),
        Outcome::Drop(DropReason::VlanFromPort)
    );
    assert_eq!(
        run(&t, p, &eth(EXT, port_mac(1), Some(0), 0x800)),
        Outcome::Drop(DropReason::VlanFromPort)
    );
}

#[test]
fn malformed_frames_are_counted_drops() {
    let t = lab(Mode::Bridge, 2);
    let mut b = FloodBudget::new(&t);
    let mut c = Counters::new(&t);
    let full = eth(port_mac(2), EXT, Some(VLAN), 0x800);
    for (ingress, frame, reason) in [
        (Ingress::Wire(ParentId(0)), &full[..13], DropReason::Runt),
        (
            Ingress::Wire(ParentId(0)),
            &full[..17],
            DropReason::TruncatedTag,
        ),
        (Ingress::Port(PortId(0)), &[][..], DropReason::Runt),
    ] {
        let before = c.dropped(reason);
        assert_eq!(
            decide(&t, ingress, frame, &mut b, &mut c),
            Verdict::Drop(reason)
        );
        assert_eq!(c.dropped(reason), before + 1);
    }
    assert_eq!(c.port(PortId(0)).rx_dropped, 1);
    assert_eq!(c.drops.iter().sum::<u64>(), 3);
}

#[test]
fn vlans_select_segments_and_tags_follow() {
    let mut b = TablesBuilder::new();
    let n0 = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Bridge));
    let n10 = b.add_network(NetworkSpec::new(ParentId(0), 10, Mode::Bridge));
    // The same MAC on two VLANs is fine: different segments.
    let a0 = b.add_port(PortSpec::new(n0, port_mac(1)));
    let a10 = b.add_port(PortSpec::new(n10, port_mac(1)));
    let t = b.build().unwrap();
    let mut bud = FloodBudget::new(&t);
    let mut c = Counters::new(&t);
    let wire = Ingress::Wire(ParentId(0));
    let d = |v| match v {
        Verdict::Deliver(d) => d,
        other => panic!("{other:?}"),
    };
    let v = d(decide(
        &t,
        wire,
        &eth(port_mac(1), EXT, Some(10), 0x800),
        &mut bud,
        &mut c,
    ));
    assert_eq!((v.single_port(), v.tagged, v.vlan), (Some(a10), true, 10));
    let v = d(decide(
        &t,
        wire,
        &eth(port_mac(1), EXT, None, 0x800),
        &mut bud,
        &mut c,
    ));
    assert_eq!((v.single_port(), v.tagged, v.vlan), (Some(a0), false, 0));
    // Priority-tagged (VID 0) belongs to the untagged network and must be popped.
    let v = d(decide(
        &t,
        wire,
        &eth(port_mac(1), EXT, Some(0x6000), 0x800),
        &mut bud,
        &mut c,
    ));
    assert_eq!((v.single_port(), v.tagged), (Some(a0), true));
    // To the wire: the tag to push is the network's VLAN, none for VLAN 0.
    let v = d(decide(
        &t,
        Ingress::Port(a10),
        &eth(EXT, port_mac(1), None, 0x800),
        &mut bud,
        &mut c,
    ));
    assert_eq!((v.wire, v.wire_tci()), (true, Some(10)));
    let v = d(decide(
        &t,
        Ingress::Port(a0),
        &eth(EXT, port_mac(1), None, 0x800),
        &mut bud,
        &mut c,
    ));
    assert_eq!((v.wire, v.wire_tci()), (true, None));
    // No network on VLAN 20, no parent 1.
    assert_eq!(
        decide(
            &t,
            wire,
            &eth(port_mac(1), EXT, Some(20), 0x800),
            &mut bud,
            &mut c
        ),
        Verdict::Drop(DropReason::UnknownVlan)
    );
    assert_eq!(
        decide(
            &t,
            Ingress::Wire(ParentId(1)),
            &eth(port_mac(1), EXT, None, 0x800),
            &mut bud,
            &mut c
        ),
        Verdict::Drop(DropReason::UnknownIngress)
    );
    assert_eq!(
        decide(
            &t,
            Ingress::Port(PortId(7)),
            &eth(EXT, port_mac(1), None, 0x800),
            &mut bud,
            &mut c
        ),
        Verdict::Drop(DropReason::UnknownIngress)
    );
}

#[test]
fn flood_path_never_hands_the_host_a_second_copy() {
    let t = lab(Mode::Vepa, 2);
    let fl = Ingress::WireFlood(ParentId(0));
    assert_eq!(
        run(&t, fl, &eth(Mac::BROADCAST, EXT, Some(VLAN), 0x800)),
        to(&[P(0), P(1)])
    );
    let t = lab(Mode::Vepa, 1);
    // Reflected from the only port: nothing left but the host, which has it.
    assert_eq!(
        run(&t, fl, &eth(Mac::BROADCAST, port_mac(1), Some(VLAN), 0x800)),
        Outcome::Drop(DropReason::NoReceiver)
    );
}

#[test]
fn flood_budget_bounds_replication_but_not_unicast() {
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec {
        bc_queue_len: 2,
        ..NetworkSpec::new(ParentId(0), 0, Mode::Bridge)
    });
    let p1 = b.add_port(PortSpec::new(net, port_mac(1)));
    let p2 = b.add_port(PortSpec::new(net, port_mac(2)));
    let t = b.build().unwrap();
    let mut bud = FloodBudget::new(&t);
    let mut c = Counters::new(&t);
    let wire = Ingress::Wire(ParentId(0));
    let bc = eth(Mac::BROADCAST, EXT, None, 0x800);
    let uni = eth(port_mac(1), EXT, None, 0x800);
    for _ in 0..2 {
        let v = decide(&t, wire, &bc, &mut bud, &mut c);
        assert_eq!(outcome(&t, &v), to(&[P(p1.0), P(p2.0), Host]));
    }
    // Spent: the host still gets it (RX_HANDLER_PASS), ports do not.
    let v = decide(&t, wire, &bc, &mut bud, &mut c);
    assert_eq!(outcome(&t, &v), to(&[Host]));
    assert_eq!(c.dropped(DropReason::FloodBudget), 1);
    // From a port, the wire copy still goes.
    let v = decide(
        &t,
        Ingress::Port(p1),
        &eth(Mac::BROADCAST, port_mac(1), None, 0x800),
        &mut bud,
        &mut c,
    );
    assert_eq!(outcome(&t, &v), to(&[Wire]));
    assert_eq!(c.dropped(DropReason::FloodBudget), 2);
    // Unicast is unaffected.
    let v = decide(&t, wire, &uni, &mut bud, &mut c);
    assert_eq!(outcome(&t, &v), to(&[P(p1.0)]));
    bud.refill(&t);
    let v = decide(&t, wire, &bc, &mut bud, &mut c);
    assert_eq!(outcome(&t, &v), to(&[P(p1.0), P(p2.0), Host]));
}

#[test]
fn a_ports_flood_share_bounds_its_storm_not_other_ports() {
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Bridge));
    let p1 = b.add_port(PortSpec::new(net, port_mac(1)));
    let p2 = b.add_port(PortSpec::new(net, port_mac(2)));
    let p3 = b.add_port(PortSpec::new(net, port_mac(3)));
    let t = b.build().unwrap();
    let mut bud = FloodBudget::with_port_share(&t, 3);
    let mut c = Counters::new(&t);
    let storm = eth(Mac::BROADCAST, port_mac(3), None, 0x800);
    for _ in 0..3 {
        let v = decide(&t, Ingress::Port(p3), &storm, &mut bud, &mut c);
        assert_eq!(outcome(&t, &v), to(&[P(p1.0), P(p2.0), Wire]));
    }
    // Port 3's share is spent: the rest of its storm is dropped whole, and counted on it.
    for _ in 0..5 {
        let v = decide(&t, Ingress::Port(p3), &storm, &mut bud, &mut c);
        assert_eq!(v, Verdict::Drop(DropReason::FloodShare));
    }
    assert_eq!(c.dropped(DropReason::FloodShare), 5);
    assert_eq!(c.port(p3).flood_dropped, 5);
    assert_eq!(c.port(p3).rx_dropped, 5);
    // Port 1's broadcast has its own share, and unicast between 1 and 2 no share at all.
    let v = decide(
        &t,
        Ingress::Port(p1),
        &eth(Mac::BROADCAST, port_mac(1), None, 0x800),
        &mut bud,
        &mut c,
    );
    assert_eq!(outcome(&t, &v), to(&[P(p2.0), P(p3.0), Wire]));
    for _ in 0..10 {
        let v = decide(
            &t,
            Ingress::Port(p1),
            &eth(port_mac(2), port_mac(1), None, 0x800),
            &mut bud,
            &mut c,
        );
        assert_eq!(outcome(&t, &v), to(&[P(p2.0)]));
    }
    assert_eq!(c.port(p1).flood_dropped, 0);
    // The next refill (the engine's next turn) gives port 3 its share again.
    bud.refill(&t);
    let v = decide(&t, Ingress::Port(p3), &storm, &mut bud, &mut c);
    assert_eq!(outcome(&t, &v), to(&[P(p1.0), P(p2.0), Wire]));
}

#[test]
fn a_ports_flood_rate_caps_its_storm_across_turns_and_counts_it_on_the_port() {
    use std::time::Duration;
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Bridge));
    let p1 = b.add_port(PortSpec::new(net, port_mac(1)));
    let p2 = b.add_port(PortSpec::new(net, port_mac(2)));
    let p3 = b.add_port(PortSpec::new(net, port_mac(3)));
    let t = b.build().unwrap();
    // 100/s in bursts of 6: port 3's first two turns get their share (4) then the bucket's rest.
    let rate = FloodRate::new(100, 6).unwrap();
    let mut bud = FloodBudget::with_rate(&t, rate, Duration::ZERO);
    let mut c = Counters::new(&t);
    let storm = eth(Mac::BROADCAST, port_mac(3), None, 0x800);
    let mut verdicts = Vec::new();
    for turn in 0..3 {
        bud.refill(&t);
        bud.set_clock(Duration::from_micros(turn)); // microseconds apart: no refill
        for _ in 0..10 {
            verdicts.push(decide(&t, Ingress::Port(p3), &storm, &mut bud, &mut c));
        }
    }
    let delivered = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Deliver(_)))
        .count();
    assert_eq!(delivered, 6, "the burst, in shares of 4 per turn");
    assert_eq!(
        c.dropped(DropReason::FloodShare),
        6,
        "turn 1: 4 went, 6 over the share"
    );
    assert_eq!(
        c.dropped(DropReason::FloodRate),
        8 + 10,
        "turn 2: the bucket's last 2 went; turn 3: it is empty"
    );
    assert_eq!(
        c.port(p3).flood_dropped,
        24,
        "both reasons, on the storming port"
    );
    assert_eq!(c.port(p3).rx_dropped, 24);
    // Another port's broadcast has its own bucket; unicast takes none.
    let v = decide(
        &t,
        Ingress::Port(p1),
        &eth(Mac::BROADCAST, port_mac(1), None, 0x800),
        &mut bud,
        &mut c,
    );
    assert_eq!(outcome(&t, &v), to(&[P(p2.0), P(p3.0), Wire]));
    for _ in 0..10 {
        let v = decide(
            &t,
            Ingress::Port(p3),
            &eth(port_mac(2), port_mac(3), None, 0x800),
            &mut bud,
            &mut c,
        );
        assert_eq!(
            outcome(&t, &v),
            to(&[P(p2.0)]),
            "unicast from the storming port"
        );
    }
    assert_eq!(c.port(p1).flood_dropped, 0);
    assert_eq!(c.port(p2).flood_dropped, 0);
    // 10 ms later port 3 has one broadcast again (100/s), not a share's worth.
    bud.refill(&t);
    bud.set_clock(Duration::from_millis(10) + Duration::from_micros(2));
    let v = decide(&t, Ingress::Port(p3), &storm, &mut bud, &mut c);
    assert_eq!(outcome(&t, &v), to(&[P(p1.0), P(p2.0), Wire]));
    let v = decide(&t, Ingress::Port(p3), &storm, &mut bud, &mut c);
    assert_eq!(v, Verdict::Drop(DropReason::FloodRate));
}

#[test]
fn batch_counts_and_bounds() {
    let t = lab(Mode::Bridge, 2);
    let mut bud = FloodBudget::new(&t);
    let mut c = Counters::new(&t);
    let frames = [
        eth(port_mac(2), port_mac(1), None, 0x800),
        eth(EXT, port_mac(1), None, 0x800),
        eth(EXT, EXT, None, 0x800),
    ];
    let mut v = [Verdict::default(); 2];
    let n = decide_batch(
        &t,
        Ingress::Port(PortId(0)),
        &frames,
        &mut v,
        &mut bud,
        &mut c,
    );
    assert_eq!(n, 2);
    assert_eq!((c.frames, c.to_port, c.to_wire), (2, 1, 1));
    let mut v = [Verdict::default(); 8];
    let n = decide_batch(
        &t,
        Ingress::Port(PortId(0)),
        &frames,
        &mut v,
        &mut bud,
        &mut c,
    );
    assert_eq!(n, 3);
    assert_eq!(
        c.port(PortId(0)),
        PortCounters {
            rx_frames: 5,
            rx_dropped: 1,
            ..PortCounters::default()
        }
    );
    assert_eq!(c.dropped(DropReason::SpoofedSource), 1);
}

#[test]
fn builder_refuses_bad_configs() {
    let bridge = |vlan| NetworkSpec::new(ParentId(0), vlan, Mode::Bridge);
    let err = |f: &dyn Fn(&mut TablesBuilder)| {
        let mut b = TablesBuilder::new();
        f(&mut b);
        b.build().unwrap_err()
    };
    assert!(matches!(
        err(&|b| {
            b.add_network(bridge(4095));
        }),
        BuildError::VlanOutOfRange { vlan: 4095, .. }
    ));
    assert!(matches!(
        err(&|b| {
            b.add_network(NetworkSpec::new(ParentId(MAX_PARENTS_T), 0, Mode::Bridge));
        }),
        BuildError::ParentOutOfRange { .. }
    ));
    assert!(matches!(
        err(&|b| {
            let n = b.add_network(bridge(1));
            let v = b.add_network(NetworkSpec::new(ParentId(0), 1, Mode::Vepa));
            b.add_port(PortSpec::new(n, port_mac(1)));
            b.add_port(PortSpec::new(v, port_mac(1)));
        }),
        BuildError::DuplicateMac {
            first: PortId(0),
            second: PortId(1),
            vlan: 1,
            ..
        }
    ));
    assert!(matches!(
        err(&|b| {
            let n = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Passthru));
            b.add_port(PortSpec::new(n, port_mac(1)));
            b.add_port(PortSpec::new(n, port_mac(2)));
        }),
        BuildError::PassthruPortCount { ports: 2, .. }
    ));
    assert!(matches!(
        err(&|b| {
            b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Passthru));
        }),
        BuildError::PassthruPortCount { ports: 0, .. }
    ));
    assert!(matches!(
        err(&|b| {
            let n = b.add_network(NetworkSpec::new(ParentId(0), 3, Mode::Passthru));
            b.add_network(bridge(3));
            b.add_port(PortSpec::new(n, port_mac(1)));
        }),
        BuildError::PassthruNotAlone { vlan: 3, .. }
    ));
    assert!(matches!(
        err(&|b| {
            let n = b.add_network(bridge(0));
            b.add_port(PortSpec::new(n, Mac::BROADCAST));
        }),
        BuildError::InvalidMac { .. }
    ));
    assert!(matches!(
        err(&|b| {
            b.add_port(PortSpec::new(NetworkId(3), port_mac(1)));
        }),
        BuildError::UnknownNetwork { .. }
    ));
    assert!(matches!(
        err(&|b| {
            let n = b.add_network(bridge(0));
            b.add_port(PortSpec {
                allowed_sources: vec![EXT],
                ..PortSpec::new(n, port_mac(1))
            });
        }),
        BuildError::SourcesOutsideSourceMode { .. }
    ));
    assert!(matches!(
        err(&|b| {
            let n = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Source));
            b.add_port(PortSpec {
                allowed_sources: vec![MCAST],
                ..PortSpec::new(n, port_mac(1))
            });
        }),
        BuildError::InvalidSourceMac { .. }
    ));
    assert!(matches!(
        err(&|b| {
            b.add_network(NetworkSpec {
                nodst: true,
                ..bridge(0)
            });
        }),
        BuildError::NodstOutsideSourceMode { .. }
    ));
    // Errors read well.
    let e = err(&|b| {
        b.add_network(bridge(5000));
    });
    assert!(e.to_string().contains("VLAN 5000 out of range"), "{e}");
}

const MAX_PARENTS_T: u16 = mvdp_switch::table::MAX_PARENTS;
