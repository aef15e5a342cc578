//! The port program's flood cap, run in the kernel with BPF_PROG_TEST_RUN: a port's group frames
//! beyond its bucket are dropped and counted, its unicast never is, and a slot's bucket is its
//! own. Root is needed (loading BPF); no network.

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};
use mvdp_ebpf::abi::{PORT_CNT_FLOOD_CAP, PORT_CNT_NO_SOCKET};
use mvdp_ebpf::PORT_OBJECT;

const XDP_DROP: u32 = 1;
/// The loopback device: BPF_PROG_TEST_RUN wants the ingress ifindex of a real device.
const LO: u32 = 1;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: loading BPF programs needs root");
    }
    root
}

struct Port {
    obj: Object,
}

impl Port {
    fn load() -> Port {
        let open = ObjectBuilder::default()
            .open_memory(PORT_OBJECT)
            .expect("open object");
        Port {
            obj: open.load().expect("the kernel accepts the port program"),
        }
    }

    fn update(&self, map: &str, key: &[u8], val: &[u8]) {
        self.obj
            .maps()
            .find(|m| m.name() == map)
            .unwrap_or_else(|| panic!("map {map}"))
            .update(key, val, MapFlags::ANY)
            .unwrap();
    }

    fn lookup(&self, map: &str, key: u32) -> Vec<u8> {
        self.obj
            .maps()
            .find(|m| m.name() == map)
            .unwrap()
            .lookup(&key.to_ne_bytes(), MapFlags::ANY)
            .unwrap()
            .unwrap()
    }

    fn set_cap(&self, pps: u64, burst: u64) {
        let mut v = pps.to_ne_bytes().to_vec();
        v.extend_from_slice(&burst.to_ne_bytes());
        self.update("port_flood_cap", &0u32.to_ne_bytes(), &v);
    }

    /// The ingress device is the port in `slot`.
    fn set_slot(&self, slot: u32) {
        self.update("port_slots", &LO.to_ne_bytes(), &slot.to_ne_bytes());
    }

    fn counter(&self, which: u32) -> u64 {
        self.obj
            .maps()
            .find(|m| m.name() == "port_counters")
            .unwrap()
            .lookup_percpu(&which.to_ne_bytes(), MapFlags::ANY)
            .unwrap()
            .unwrap()
            .iter()
            .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
            .sum()
    }

    fn bucket_dropped(&self, slot: u32) -> u64 {
        let b = self.lookup("port_flood_buckets", slot);
        u64::from_ne_bytes(b[16..24].try_into().unwrap())
    }

    fn run(&self, dst: [u8; 6]) -> u32 {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xfe, 0x08, 0x00]);
        f.resize(64, 0xab);
        let prog = self
            .obj
            .progs_mut()
            .find(|p| p.name() == "port_redirect")
            .unwrap();
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(f.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&LO.to_ne_bytes());
        let input = libbpf_rs::ProgramInput {
            data_in: Some(&f),
            context_in: Some(&mut ctx),
            ..Default::default()
        };
        prog.test_run(input).expect("test run").return_value
    }
}

const BROADCAST: [u8; 6] = [0xff; 6];
const MULTICAST: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const UNICAST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

#[test]
fn group_frames_beyond_the_burst_are_dropped_and_counted_unicast_is_not() {
    if !is_root() {
        return;
    }
    let p = Port::load();
    // One frame a second: nothing refills within the test; a burst of 3.
    p.set_cap(1, 3);
    p.set_slot(7);
    // Within the burst: on to the socket (which a test run lacks: dropped as no_socket).
    for dst in [BROADCAST, MULTICAST, BROADCAST] {
        assert_eq!(p.run(dst), XDP_DROP);
    }
    assert_eq!(p.counter(PORT_CNT_NO_SOCKET), 3);
    assert_eq!(p.counter(PORT_CNT_FLOOD_CAP), 0);
    // Beyond it: dropped by the cap, counted globally and on the port's bucket.
    for dst in [BROADCAST, MULTICAST] {
        assert_eq!(p.run(dst), XDP_DROP);
    }
    assert_eq!(p.counter(PORT_CNT_FLOOD_CAP), 2);
    assert_eq!(p.bucket_dropped(7), 2);
    // Unicast is never capped.
    for _ in 0..10 {
        p.run(UNICAST);
    }
    assert_eq!(p.counter(PORT_CNT_NO_SOCKET), 13);
    assert_eq!(p.counter(PORT_CNT_FLOOD_CAP), 2);

    // Another port has a bucket of its own, full.
    p.set_slot(8);
    p.run(BROADCAST);
    assert_eq!(p.counter(PORT_CNT_FLOOD_CAP), 2);
    assert_eq!(p.bucket_dropped(8), 0);

    // A port marked exempt (passthru) is never capped, its bucket empty or not.
    let mut exempt = vec![0u8; 24];
    exempt.extend_from_slice(&mvdp_ebpf::abi::FLOOD_F_EXEMPT.to_ne_bytes());
    p.update("port_flood_buckets", &9u32.to_ne_bytes(), &exempt);
    p.set_slot(9);
    for _ in 0..10 {
        p.run(BROADCAST);
    }
    assert_eq!(p.counter(PORT_CNT_FLOOD_CAP), 2);
    assert_eq!(p.bucket_dropped(9), 0);

    // No cap: nothing is dropped for it, however many.
    p.set_cap(0, 0);
    p.set_slot(7);
    for _ in 0..10 {
        p.run(BROADCAST);
    }
    assert_eq!(p.counter(PORT_CNT_FLOOD_CAP), 2);
}
