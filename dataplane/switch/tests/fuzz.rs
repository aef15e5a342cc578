//! Frames at scale through the decision: random bytes, and well-formed frames with random
//! mutations (tags, lengths, group bits, MACs of the table's own ports), over random tables of
//! every mode, from every kind of ingress. Nothing may panic; every frame gets exactly one
//! verdict; the same batch decided twice gets the same verdicts; what is counted adds up.
//!
//! Deterministic (a fixed-seed xorshift), so a failure reproduces. `MVDP_FUZZ_FRAMES` sets how
//! many frames (default 200,000, a couple of seconds); the long run in the README used 10^7.

mod common;

use common::*;
use mvdp_switch::*;

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

const VLANS: [u16; 6] = [0, 1, 100, 200, 4094, 4095];

/// Random tables, with the ports' MACs in `PortId` order and the networks' VLANs.
fn random_tables(r: &mut Rng) -> (Tables, Vec<Mac>, Vec<u16>) {
    loop {
        let mut b = TablesBuilder::new();
        let nets = 1 + r.below(4) as u32;
        let mut vlans = Vec::new();
        for _ in 0..nets {
            let mode = Mode::ALL[r.below(5) as usize];
            let vlan = VLANS[r.below(VLANS.len() as u64) as usize];
            vlans.push(vlan);
            b.add_network(NetworkSpec {
                parent: ParentId(r.below(2) as u16),
                vlan,
                mode,
                nodst: mode == Mode::Source && r.chance(2),
                bc_queue_len: [0, 1, 1000][r.below(3) as usize],
            });
        }
        let mut macs = Vec::new();
        for _ in 0..r.below(12) {
            let mac = port_mac(1 + r.below(200) as u8);
            macs.push(mac);
            b.add_port(PortSpec {
                network: NetworkId(r.below(u64::from(nets)) as u32),
                mac,
                up: !r.chance(5),
                allowed_sources: (0..r.below(3))
                    .map(|_| port_mac(1 + r.below(200) as u8))
                    .collect(),
                multicast: if r.chance(2) {
                    McFilter::ALL
                } else {
                    McFilter::of_groups([Mac([0x33, 0x33, 0, 0, 0, r.below(4) as u8])])
                },
            });
        }
        // The builder refuses some configurations (duplicates, passthru not alone): draw again.
        if let Ok(t) = b.build() {
            return (t, macs, vlans);
        }
    }
}

fn random_mac(r: &mut Rng, known: &[Mac]) -> Mac {
    match r.below(6) {
        0 => Mac::BROADCAST,
        1 => MCAST,
        2 if !known.is_empty() => known[r.below(known.len() as u64) as usize],
        3 => EXT,
        4 => HOST,
        _ => Mac(r.next().to_be_bytes()[..6].try_into().unwrap()),
    }
}

fn random_frame(r: &mut Rng, known: &[Mac]) -> Vec<u8> {
    if r.chance(4) {
        let len = r.below(80) as usize;
        return (0..len).map(|_| r.next() as u8).collect();
    }
    let tci = match r.below(4) {
        0 => Some(VLANS[r.below(VLANS.len() as u64) as usize] | ((r.below(8) as u16) << 13)),
        1 => Some(r.next() as u16),
        _ => None,
    };
    let ethertype = [0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8808][r.below(7) as usize];
    let mut f = eth(random_mac(r, known), random_mac(r, known), tci, ethertype);
    match r.below(5) {
        0 => f.truncate(r.below(f.len() as u64 + 1) as usize),
        1 => {
            let i = r.below(f.len() as u64) as usize;
            f[i] ^= 1 << r.below(8);
        }
        _ => {}
    }
    f
}

/// Most frames made plausible for their ingress, so the decision's interesting paths are
/// reached: a port sends with its own source MAC and no tag, the wire tags with a VLAN the table
/// has. The rest stay as drawn.
fn plausible(
    r: &mut Rng,
    mut f: Vec<u8>,
    ingress: Ingress,
    macs: &[Mac],
    vlans: &[u16],
) -> Vec<u8> {
    if f.len() < 14 || r.chance(4) {
        return f;
    }
    match ingress {
        Ingress::Port(p) => {
            if let Some(m) = macs.get(p.0 as usize) {
                let dst = Mac::from_slice(&f).unwrap_or(EXT);
                let ethertype = u16::from_be_bytes([f[12], f[13]]);
                let ethertype = if matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                    0x0800
                } else {
                    ethertype
                };
                f = eth(dst, *m, None, ethertype);
            }
        }
        _ => {
            let v = vlans[r.below(vlans.len() as u64) as usize];
            let dst = Mac::from_slice(&f).unwrap_or(EXT);
            let src = Mac::from_slice(&f[6..]).unwrap_or(EXT);
            f = eth(dst, src, (v != 0).then_some(v), 0x0800);
        }
    }
    f
}

fn random_ingress(r: &mut Rng, ports: usize) -> Ingress {
    match r.below(3) {
        0 => Ingress::Wire(ParentId(r.below(3) as u16)),
        1 => Ingress::WireFlood(ParentId(r.below(3) as u16)),
        // Now and then a port the table does not have.
        _ => Ingress::Port(PortId(r.below(ports as u64 + 2) as u32)),
    }
}

#[test]
fn random_and_mutated_frames_never_panic_and_get_one_verdict_each() {
    let total: u64 = std::env::var("MVDP_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut r = Rng(0x6d76_6470_6675_7a7a);
    let mut done = 0u64;
    let mut delivered = 0u64;
    while done < total {
        let (tables, macs, vlans) = random_tables(&mut r);
        let mut budget = FloodBudget::new(&tables);
        let mut counters = Counters::new(&tables);
        let mut again_budget = budget.clone();
        let mut again_counters = counters.clone();
        for _ in 0..64 {
            let ingress = random_ingress(&mut r, tables.port_count());
            let n = 1 + r.below(64) as usize;
            let frames: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let f = random_frame(&mut r, &macs);
                    plausible(&mut r, f, ingress, &macs, &vlans)
                })
                .collect();
            let mut v = vec![Verdict::default(); n];
            let got = decide_batch(
                &tables,
                ingress,
                &frames,
                &mut v,
                &mut budget,
                &mut counters,
            );
            assert_eq!(got, n, "one verdict per frame");
            let mut w = vec![Verdict::default(); n];
            decide_batch(
                &tables,
                ingress,
                &frames,
                &mut w,
                &mut again_budget,
                &mut again_counters,
            );
            assert_eq!(v, w, "the same batch decided twice differs");
            delivered += v
                .iter()
                .filter(|x| matches!(x, Verdict::Deliver(_)))
                .count() as u64;
            done += n as u64;
            budget.refill(&tables);
            again_budget.refill(&tables);
        }
        // `flood_budget` counts port copies not made of frames that were still delivered (to
        // the wire, the host), so a frame can add to it and to a frame drop reason.
        let dropped: u64 =
            counters.drops.iter().sum::<u64>() - counters.dropped(DropReason::FloodBudget);
        assert!(dropped <= counters.frames, "more drops than frames");
        assert_eq!(counters, again_counters, "counters of the twin run differ");
    }
    // The generator must reach the interesting paths, not only drop garbage.
    assert!(
        delivered > total / 10,
        "only {delivered} of {total} delivered"
    );
}
