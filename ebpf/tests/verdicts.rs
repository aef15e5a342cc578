//! Fixtures for the demux program: input frame -> verdict and counter, run in the kernel
//! with BPF_PROG_TEST_RUN (through libbpf-rs, which exposes it; aya does not for XDP).
//! No network needed, but root is (loading BPF).

use libbpf_rs::{MapCore, MapFlags, Object, ObjectBuilder};
use mvdp_ebpf::abi::{Counter, COUNTERS};
use mvdp_ebpf::DEMUX_OBJECT;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: loading BPF programs needs root");
    }
    root
}

fn frame(dst: [u8; 6], vlan: Option<u16>, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len.max(18));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&SRC_MAC);
    if let Some(tci) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.resize(len.max(f.len()), 0xab);
    f
}

struct Prog {
    obj: Object,
}

impl Prog {
    fn load() -> Prog {
        let open = ObjectBuilder::default()
            .open_memory(DEMUX_OBJECT)
            .expect("open object");
        Prog {
            obj: open.load().expect("the kernel accepts the demux program"),
        }
    }

    fn map(&self, name: &str) -> libbpf_rs::Map<'_> {
        self.obj
            .maps()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("map {name}"))
    }

    fn add_port(&self, vlan: u16, mac: [u8; 6], slot: u32) {
        self.add_port_flags(vlan, mac, slot, 0)
    }

    fn add_port_flags(&self, vlan: u16, mac: [u8; 6], slot: u32, flags: u32) {
        let mut key = mac.to_vec();
        key.extend_from_slice(&vlan.to_ne_bytes());
        let mut val = slot.to_ne_bytes().to_vec();
        val.extend_from_slice(&flags.to_ne_bytes());
        self.map("ports").update(&key, &val, MapFlags::ANY).unwrap();
    }

    fn set_passthru(&self, slot: u32, vlan: u16) {
        let mut val = 1u32.to_ne_bytes().to_vec();
        val.extend_from_slice(&slot.to_ne_bytes());
        val.extend_from_slice(&vlan.to_ne_bytes());
        val.extend_from_slice(&[0; 6]);
        self.map("config")
            .update(&0u32.to_ne_bytes(), &val, MapFlags::ANY)
            .unwrap();
    }

    /// Runs the program on the first `linear` bytes of `data` (the kernel's test runner takes
    /// at least 14 bytes, and puts the rest beyond `linear` in a fragment the program does not
    /// see: how a runt reaches it).
    fn run_linear(&self, data: &[u8], linear: u32) -> u32 {
        let prog = self.obj.progs_mut().find(|p| p.name() == "demux").unwrap();
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&linear.to_ne_bytes());
        let input = libbpf_rs::ProgramInput {
            data_in: Some(data),
            context_in: Some(&mut ctx),
            ..Default::default()
        };
        prog.test_run(input).expect("test run").return_value
    }

    fn run(&self, data: &[u8]) -> u32 {
        self.run_linear(data, data.len() as u32)
    }

    fn counters(&self) -> [u64; COUNTERS as usize] {
        let mut out = [0u64; COUNTERS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
                .map("counters")
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                .unwrap()
                .unwrap();
            *slot = per_cpu
                .iter()
                .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
                .sum();
        }
        out
    }

    /// Runs one frame and returns (verdict, the one counter besides `rx` that moved).
    fn verdict(&self, data: &[u8]) -> (u32, Counter) {
        self.verdict_linear(data, data.len() as u32)
    }

    fn verdict_linear(&self, data: &[u8], linear: u32) -> (u32, Counter) {
        let before = self.counters();
        let verdict = self.run_linear(data, linear);
        let after = self.counters();
        assert_eq!(
            after[Counter::Rx as usize],
            before[Counter::Rx as usize] + 1
        );
        let moved: Vec<Counter> = Counter::ALL
            .into_iter()
            .filter(|c| *c != Counter::Rx && after[*c as usize] != before[*c as usize])
            .collect();
        assert_eq!(
            moved.len(),
            1,
            "exactly one outcome counter moves, got {moved:?}"
        );
        (verdict, moved[0])
    }
}

#[test]
fn runt_and_truncated_vlan_frames_are_dropped_and_counted() {
    if !is_root() {
        return;
    }
    let p = Prog::load();
    p.add_port(0, PORT_MAC, 0);
    // A frame addressed to a known port, of which the program sees only 8 and 13 bytes.
    let f = frame(PORT_MAC, None, 64);
    assert_eq!(p.verdict_linear(&f, 8), (XDP_DROP, Counter::DropRunt));
    assert_eq!(p.verdict_linear(&f, 13), (XDP_DROP, Counter::DropRunt));
    // 802.1Q ethertype with the tag cut off after 0, 1, 2 and 3 bytes.
    for cut in 14..18 {
        let f = &frame(PORT_MAC, Some(100), 64)[..cut];
        assert_eq!(
            p.verdict(f),
            (XDP_DROP, Counter::DropTruncVlan),
            "{cut}-byte tagged frame"
        );
    }
    // 18 bytes is a whole tag: no longer truncated.
    assert_ne!(
        p.verdict(&frame(PORT_MAC, Some(100), 64)[..18]).1,
        Counter::DropTruncVlan
    );
}

#[test]
fn unicast_for_a_port_is_redirected_only_on_its_own_vlan() {
    if !is_root() {
        return;
    }
    let p = Prog::load();
    p.add_port(0, PORT_MAC, 3);
    p.add_port(100, HOST_MAC, 4);
    // Known port, but no socket in the XSKMAP in a test run: the redirect misses, is
    // dropped and counted as such, which proves the (VLAN, MAC) key matched.
    assert_eq!(
        p.verdict(&frame(PORT_MAC, None, 64)),
        (XDP_DROP, Counter::DropNoSocket)
    );
    // VLAN id 0 is a priority tag: keyed as untagged.
    assert_eq!(
        p.verdict(&frame(PORT_MAC, Some(0x6000), 64)),
        (XDP_DROP, Counter::DropNoSocket)
    );
    // Same MAC on a VLAN the port is not on: the host's.
    assert_eq!(
        p.verdict(&frame(PORT_MAC, Some(100), 64)),
        (XDP_PASS, Counter::PassHost)
    );
    // Priority bits don't change the VLAN id.
    assert_eq!(
        p.verdict(&frame(HOST_MAC, Some(0xe064), 64)),
        (XDP_DROP, Counter::DropNoSocket)
    );
    assert_eq!(
        p.verdict(&frame(HOST_MAC, None, 64)),
        (XDP_PASS, Counter::PassHost)
    );
}

#[test]
fn group_frames_go_to_the_host_and_the_flood_tap_and_qinq_is_not_ours() {
    if !is_root() {
        return;
    }
    let p = Prog::load();
    p.add_port(0, PORT_MAC, 0);
    assert_eq!(
        p.verdict(&frame([0xff; 6], None, 64)),
        (XDP_PASS, Counter::PassGroup)
    );
    assert_eq!(
        p.verdict(&frame([0x01, 0x00, 0x5e, 0, 0, 1], Some(100), 64)),
        (XDP_PASS, Counter::PassGroup)
    );
    let mut qinq = frame(PORT_MAC, Some(100), 64);
    qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
    assert_eq!(p.verdict(&qinq), (XDP_PASS, Counter::PassQinq));
}

#[test]
fn passthru_takes_every_unicast_frame_of_its_vlan_but_not_group_frames() {
    if !is_root() {
        return;
    }
    let p = Prog::load();
    p.set_passthru(7, 100);
    let any_mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    assert_eq!(
        p.verdict(&frame(any_mac, Some(100), 64)),
        (XDP_DROP, Counter::DropNoSocket)
    );
    assert_eq!(
        p.verdict(&frame(any_mac, None, 64)),
        (XDP_PASS, Counter::PassHost)
    );
    assert_eq!(
        p.verdict(&frame([0xff; 6], Some(100), 64)),
        (XDP_PASS, Counter::PassGroup)
    );
    // Plain run without the helper, to keep run() exercised for callers.
    assert_eq!(p.run(&frame(any_mac, Some(200), 64)), XDP_PASS);
}

#[test]
fn a_reflected_group_frame_returns_to_a_reflect_to_self_port_only() {
    if !is_root() {
        return;
    }
    let p = Prog::load();
    let private_port = [0x02, 0, 0, 0, 0, 0x0c];
    p.add_port_flags(100, private_port, 5, mvdp_ebpf::abi::PORT_F_REFLECT_TO_SELF);
    p.add_port(100, PORT_MAC, 6);
    let bcast_from = |src: [u8; 6], vlan: u16| {
        let mut f = frame([0xff; 6], Some(vlan), 64);
        f[6..12].copy_from_slice(&src);
        f
    };
    // From the flagged port on its VLAN: redirected (to a socket that a test run lacks),
    // never passed to the host.
    assert_eq!(
        p.verdict(&bcast_from(private_port, 100)),
        (XDP_DROP, Counter::DropNoSocket)
    );
    // The same source on another VLAN, or an unflagged port: host + flood tap as usual.
    assert_eq!(
        p.verdict(&bcast_from(private_port, 200)),
        (XDP_PASS, Counter::PassGroup)
    );
    assert_eq!(
        p.verdict(&bcast_from(PORT_MAC, 100)),
        (XDP_PASS, Counter::PassGroup)
    );
}
