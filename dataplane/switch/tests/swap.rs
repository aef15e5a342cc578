//! Control-plane updates reach the fast path as a new table snapshot swapped in between
//! batches: frames decided after the swap follow the new table, decisions made with the old
//! snapshot are unaffected, and counters carry over.

mod common;

use std::sync::Arc;

use common::*;
use mvdp_switch::*;

fn bridge(ports: &[(u8, bool)]) -> Tables {
    let mut b = TablesBuilder::new();
    let net = b.add_network(NetworkSpec::new(ParentId(0), 0, Mode::Bridge));
    for &(i, up) in ports {
        let mut spec = PortSpec::new(net, port_mac(i));
        spec.up = up;
        b.add_port(spec);
    }
    b.build().unwrap()
}

/// Decides `batch` as sent by port 0 and returns, per frame, the one port it goes to (if any).
fn from_port0(
    t: &Tables,
    batch: &[Vec<u8>; 2],
    budget: &mut FloodBudget,
    counters: &mut Counters,
) -> [Option<PortId>; 2] {
    let mut verdicts = [Verdict::default(); 2];
    let n = decide_batch(
        t,
        Ingress::Port(PortId(0)),
        batch,
        &mut verdicts,
        budget,
        counters,
    );
    assert_eq!(n, 2);
    verdicts.map(|v| match v {
        Verdict::Deliver(d) => d.single_port(),
        Verdict::Drop(_) => None,
    })
}

#[test]
fn a_swapped_in_table_takes_effect_at_the_next_batch_and_counters_carry_over() {
    let old = Arc::new(bridge(&[(1, true), (2, true)]));
    let mut tables = Arc::clone(&old);
    let mut budget = FloodBudget::new(&tables);
    let mut counters = Counters::new(&tables);

    let batch = [
        eth(port_mac(2), port_mac(1), None, 0x0800),
        eth(port_mac(3), port_mac(1), None, 0x0800),
    ];
    let got = from_port0(&tables, &batch, &mut budget, &mut counters);
    assert_eq!(got[0], Some(PortId(1)));
    assert_eq!(
        got[1], None,
        "port 3 does not exist yet: its MAC is the wire's"
    );
    // Per-port counters count what each port sent in.
    assert_eq!(counters.port(PortId(0)).rx_frames, 2);

    // The control plane adds port 3 and takes port 2 down; the fast path swaps between batches.
    tables = Arc::new(bridge(&[(1, true), (2, false), (3, true)]));
    counters.fit(&tables);
    budget.refill(&tables);
    let got = from_port0(&tables, &batch, &mut budget, &mut counters);
    assert_eq!(got[0], None, "a down port's MAC is unknown: to the wire");
    assert_eq!(got[1], Some(PortId(2)));
    assert_eq!(
        counters.port(PortId(0)).rx_frames,
        4,
        "counters carry over the swap"
    );
    assert_eq!(
        counters.port(PortId(2)).rx_frames,
        0,
        "the new port has its own, fresh slot"
    );

    // A worker still holding the old snapshot decides as before: nothing was mutated in place.
    let mut old_counters = Counters::new(&old);
    let mut old_budget = FloodBudget::new(&old);
    let got = from_port0(&old, &batch, &mut old_budget, &mut old_counters);
    assert_eq!(got[0], Some(PortId(1)));
}
