//! Switch-core benchmarks: forwarding decisions per 64-frame batch, frame
//! parsing (hand view vs pnet_packet) and the (VLAN, MAC) table lookup.
//!
//! Run: `cargo bench --bench switch_core`. Throughput is in frames (elements).
//! Each decision bench refills the flood budget per batch, as the fast path does.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mvdp_switch::bench_support::{key, MacMap};
use mvdp_switch::wire::L2Header;
use mvdp_switch::{
    decide_batch, Counters, FloodBudget, Ingress, Mac, Mode, NetworkSpec, ParentId, PortId,
    PortSpec, Ports, Tables, TablesBuilder, Verdict,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 64;
const EXT: Mac = Mac([0x02, 0, 0, 0xee, 0, 1]);

fn mac(vlan_idx: usize, port: usize) -> Mac {
    Mac([
        0x02,
        0x10,
        vlan_idx as u8,
        (port >> 8) as u8,
        port as u8,
        0x01,
    ])
}

fn eth(dst: Mac, src: Mac, tci: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if let Some(t) = tci {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(64, 0);
    f
}

/// `vlans` networks of `mode` on parent 0 (VLAN 0 is untagged when there is
/// one VLAN, else VLANs 100..), `ports` ports each. Ports of VLAN v are
/// `v * ports .. (v + 1) * ports`.
fn topology(mode: Mode, ports: usize, vlans: usize) -> (Tables, Vec<u16>) {
    let mut b = TablesBuilder::new();
    let ids: Vec<u16> = if vlans == 1 {
        vec![0]
    } else {
        (100..100 + vlans as u16).collect()
    };
    for (v, &vid) in ids.iter().enumerate() {
        let net = b.add_network(NetworkSpec::new(ParentId(0), vid, mode));
        for p in 0..ports {
            b.add_port(PortSpec::new(net, mac(v, p)));
        }
    }
    (b.build().expect("valid bench topology"), ids)
}

/// Deterministic spread over 0..n (a full-period LCG), so the batch walks the
/// table rather than hitting one entry.
fn spread(n: usize) -> impl Iterator<Item = usize> {
    let mut x: u64 = 12345;
    std::iter::repeat_with(move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as usize) % n
    })
}

fn run_batches(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    tables: &Tables,
    ingress: Ingress,
    frames: &[Vec<u8>],
    expand_floods: bool,
) {
    let mut budget = FloodBudget::new(tables);
    let mut counters = Counters::new(tables);
    let mut verdicts = [Verdict::default(); BATCH];
    let views: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    c.bench_function(id, |b| {
        b.iter(|| {
            budget.refill(tables);
            let n = decide_batch(
                tables,
                black_box(ingress),
                black_box(&views),
                &mut verdicts,
                &mut budget,
                &mut counters,
            );
            if expand_floods {
                // The caller's share of a flood: walking the destination set.
                let mut copies = 0u32;
                for v in &verdicts[..n] {
                    if let Verdict::Deliver(d) = v {
                        if let Ports::Flood {
                            modes,
                            except,
                            group,
                        } = d.ports
                        {
                            copies +=
                                tables.flood_ports(d.segment, modes, except, group).count() as u32;
                        }
                    }
                }
                black_box(copies);
            }
            black_box(&verdicts);
        })
    });
}

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(BATCH as u64));

    for &(ports, vlans) in &[(2usize, 1usize), (256, 1), (2, 16), (256, 16)] {
        let label = format!("{ports}p_{vlans}v");
        // Bridge: port 0 of VLAN 0 -> its siblings, delivered locally.
        let (t, _) = topology(Mode::Bridge, ports, vlans);
        let frames: Vec<_> = spread(ports - 1)
            .take(BATCH)
            .map(|i| eth(mac(0, i + 1), mac(0, 0), None))
            .collect();
        run_batches(
            &mut g,
            BenchmarkId::new("bridge_unicast", &label),
            &t,
            Ingress::Port(PortId(0)),
            &frames,
            false,
        );

        // Wire -> port: tagged frames to ports spread over every VLAN.
        let (t, ids) = topology(Mode::Bridge, ports, vlans);
        let tci = |v: usize| (ids[v] != 0).then_some(ids[v]);
        let frames: Vec<_> = spread(ports * vlans)
            .take(BATCH)
            .map(|i| eth(mac(i / ports, i % ports), EXT, tci(i / ports)))
            .collect();
        run_batches(
            &mut g,
            BenchmarkId::new("wire_unicast", &label),
            &t,
            Ingress::Wire(ParentId(0)),
            &frames,
            false,
        );

        // VEPA: port -> sibling MAC, which goes to the wire.
        let (t, _) = topology(Mode::Vepa, ports, vlans);
        let frames: Vec<_> = spread(ports - 1)
            .take(BATCH)
            .map(|i| eth(mac(0, i + 1), mac(0, 0), None))
            .collect();
        run_batches(
            &mut g,
            BenchmarkId::new("vepa_unicast", &label),
            &t,
            Ingress::Port(PortId(0)),
            &frames,
            false,
        );

        // Private: same frames, to the wire as well (no local lookup).
        let (t, _) = topology(Mode::Private, ports, vlans);
        run_batches(
            &mut g,
            BenchmarkId::new("private_unicast", &label),
            &t,
            Ingress::Port(PortId(0)),
            &frames,
            false,
        );
    }

    // Passthru: one port per VLAN takes every wire unicast.
    for &vlans in &[1usize, 16] {
        let (t, ids) = topology(Mode::Passthru, 1, vlans);
        let frames: Vec<_> = spread(vlans)
            .zip(spread(1000))
            .take(BATCH)
            .map(|(v, x)| eth(mac(99, x), EXT, (ids[v] != 0).then_some(ids[v])))
            .collect();
        run_batches(
            &mut g,
            BenchmarkId::new("passthru_wire", format!("1p_{vlans}v")),
            &t,
            Ingress::Wire(ParentId(0)),
            &frames,
            false,
        );
    }

    // Broadcast into a bridge network of 8 ports: from the wire and from a
    // port; the decision alone and with the caller's walk of the flood set.
    let (t, _) = topology(Mode::Bridge, 8, 1);
    let wire_bc: Vec<_> = (0..BATCH).map(|_| eth(Mac::BROADCAST, EXT, None)).collect();
    let port_bc: Vec<_> = (0..BATCH)
        .map(|_| eth(Mac::BROADCAST, mac(0, 0), None))
        .collect();
    run_batches(
        &mut g,
        BenchmarkId::new("broadcast_8p", "wire"),
        &t,
        Ingress::Wire(ParentId(0)),
        &wire_bc,
        false,
    );
    run_batches(
        &mut g,
        BenchmarkId::new("broadcast_8p", "wire+walk"),
        &t,
        Ingress::Wire(ParentId(0)),
        &wire_bc,
        true,
    );
    run_batches(
        &mut g,
        BenchmarkId::new("broadcast_8p", "port+walk"),
        &t,
        Ingress::Port(PortId(0)),
        &port_bc,
        true,
    );
    g.finish();
}

/// Half tagged, half untagged, as on a trunk.
fn parse_frames() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| eth(mac(0, i), EXT, (i % 2 == 0).then_some(100 + i as u16)))
        .collect()
}

fn parsing(c: &mut Criterion) {
    let frames = parse_frames();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("hand_view", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in black_box(&frames) {
                if let Ok(h) = L2Header::parse(f) {
                    acc = acc
                        .wrapping_add(h.dst ^ h.src)
                        .wrapping_add(u64::from(h.vid()) + u64::from(h.ethertype));
                }
            }
            acc
        })
    });
    g.bench_function("pnet_packet", |b| {
        use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
        use pnet_packet::vlan::VlanPacket;
        use pnet_packet::Packet;
        b.iter(|| {
            let mut acc = 0u64;
            for f in black_box(&frames) {
                let Some(e) = EthernetPacket::new(f) else {
                    continue;
                };
                let d = Mac(e.get_destination().octets()).to_u64();
                let s = Mac(e.get_source().octets()).to_u64();
                let (vid, et) = if e.get_ethertype() == EtherTypes::Vlan {
                    match VlanPacket::new(e.payload()) {
                        Some(v) => (v.get_vlan_identifier(), v.get_ethertype().0),
                        None => continue,
                    }
                } else {
                    (0, e.get_ethertype().0)
                };
                acc = acc
                    .wrapping_add(d ^ s)
                    .wrapping_add(u64::from(vid) + u64::from(et));
            }
            acc
        })
    });
    g.finish();
}

/// A multiply-shift hasher for u64 keys, the fairest std HashMap contender.
#[derive(Default)]
struct MulHasher(u64);
impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup_256");
    g.throughput(Throughput::Elements(BATCH as u64));
    let entries: Vec<(u64, u32)> = (0..256)
        .map(|i| (key(0, mac(0, i).to_u64()), i as u32))
        .collect();
    let probes: Vec<u64> = spread(256).take(BATCH).map(|i| entries[i].0).collect();
    let open = MacMap::build(&entries);
    let sip: HashMap<u64, u32> = entries.iter().copied().collect();
    let mul: HashMap<u64, u32, BuildHasherDefault<MulHasher>> = entries.iter().copied().collect();
    g.bench_function("open_addressed", |b| {
        b.iter(|| {
            black_box(&probes)
                .iter()
                .map(|&k| open.get(k).unwrap_or(0))
                .sum::<u32>()
        })
    });
    g.bench_function("std_hashmap_sip", |b| {
        b.iter(|| {
            black_box(&probes)
                .iter()
                .map(|k| sip.get(k).copied().unwrap_or(0))
                .sum::<u32>()
        })
    });
    g.bench_function("std_hashmap_mul", |b| {
        b.iter(|| {
            black_box(&probes)
                .iter()
                .map(|k| mul.get(k).copied().unwrap_or(0))
                .sum::<u32>()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Modest times: the whole run stays at a few minutes on a shared 2-core VM.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = decisions, parsing, lookups
}
criterion_main!(benches);
