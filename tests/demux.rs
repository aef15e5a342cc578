//! The XDP demux program on a real parent in a netns lab: frames land in exactly the right
//! AF_XDP socket, the host stack keeps working, a killed loader leaves nothing attached.
//! (Runt and truncated-802.1Q frames cannot cross the lab's Linux bridge, which drops them
//! itself; ebpf/tests/verdicts.rs feeds them to the program directly.)

mod common;

use std::time::Duration;

use common::{eventually, in_netns, ns_ok, require_root, xdp_attached};
use mvdp_ebpf::abi::Counter;
use mvdp_ebpf::{Demux, DemuxError, FloodTap, ModePolicy};
use mvdp_lab::probe::raw::{frame, marker};
use mvdp_lab::probe::xsk::XskProbe;
use mvdp_lab::Lab;

const MAC_A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x0b];
const SRC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x01];

/// Promiscuity held by anyone (a packet-socket membership does not show as the PROMISC flag).
fn promisc(ns: &str, ifname: &str) -> bool {
    let detail = common::ip_n(ns, &["-d", "link", "show", "dev", ifname]);
    let count = detail
        .split_whitespace()
        .skip_while(|w| *w != "promiscuity")
        .nth(1);
    count
        .and_then(|c| c.parse::<u32>().ok())
        .expect("ip -d link shows promiscuity")
        > 0
}

fn send(ifname: &str, frames: &[Vec<u8>]) {
    mvdp_lab::probe::raw::send(ifname, frames).expect("sending probe frames");
}

#[test]
fn frames_land_in_exactly_the_right_socket() {
    require_root!("frames_land_in_exactly_the_right_socket");
    let lab = TestLab::new("dmx1");
    let (got, counters) = in_netns(&lab.host, || {
        let mut demux = Demux::attach(&lab.parent, ModePolicy::Native).expect("attach");
        let mut xsks = XskProbe::new(&lab.parent, 0, 3).expect("probe sockets");
        for (slot, fd) in xsks.fds().into_iter().enumerate() {
            demux.set_socket(slot as u32, 0, fd).unwrap();
        }
        // Slot 0: A untagged. Slot 1: the same MAC on VLAN 100. Slot 2: B on VLAN 200 only,
        // as a private port (reflected group frames come back to it alone).
        demux.insert_port(0, MAC_A, 0, false).unwrap();
        demux.insert_port(100, MAC_A, 1, false).unwrap();
        demux.insert_port(200, MAC_B, 2, true).unwrap();

        std::thread::scope(|s| {
            s.spawn(|| {
                in_netns(&lab.ext, || {
                    send(
                        "eth0",
                        &[
                            frame(MAC_A, SRC, None, "A-untagged"),
                            frame(MAC_A, SRC, Some(100), "A-vlan100"),
                            frame(MAC_A, SRC, Some(0xe064), "A-vlan100-prio7"),
                            frame(MAC_A, SRC, Some(300), "A-vlan300"),
                            frame(MAC_B, SRC, None, "B-untagged"),
                            frame(MAC_B, SRC, Some(200), "B-vlan200"),
                            // The wire reflecting B's and A's own broadcasts (last: the wire
                            // bridge learns the source MACs from them).
                            frame([0xff; 6], MAC_B, Some(200), "B-reflected"),
                            frame([0xff; 6], MAC_A, Some(100), "A-reflected"),
                        ],
                    )
                })
            });
        });
        let got = xsks.drain(Duration::from_millis(500));
        (got, demux.counters().unwrap())
    });
    let names: Vec<Vec<String>> = got
        .iter()
        .map(|s| s.iter().filter_map(|f| marker(f)).collect())
        .collect();
    assert_eq!(names[0], ["A-untagged"], "slot 0 (A, untagged)");
    assert_eq!(
        names[1],
        ["A-vlan100", "A-vlan100-prio7"],
        "slot 1 (A, VLAN 100)"
    );
    assert_eq!(
        names[2],
        ["B-vlan200", "B-reflected"],
        "slot 2 (B, VLAN 200, private)"
    );
    // Frames arrive as they were on the wire, tag included.
    assert_eq!(&got[1][0][12..16], &[0x81, 0x00, 0x00, 100]);
    assert_eq!(counters.get(Counter::Redirect), 5);
    assert_eq!(
        counters.get(Counter::PassGroup),
        1,
        "A's reflection is an ordinary broadcast"
    );
    assert!(
        counters.get(Counter::PassHost) >= 2,
        "A on VLAN 300 and untagged B went to the host: {counters:?}"
    );
}

#[test]
fn unknown_unicast_and_broadcast_reach_the_host_stack_and_the_flood_tap() {
    require_root!("unknown_unicast_and_broadcast_reach_the_host_stack_and_the_flood_tap");
    let lab = TestLab::new("dmx2");
    let (pinged, tapped, counters) = in_netns(&lab.host, || {
        let demux = Demux::attach(&lab.parent, ModePolicy::Native).expect("attach");
        let mut tap = FloodTap::open(&lab.parent).unwrap();
        // The ext host knows no MAC for the host yet: its ping starts with a broadcast ARP.
        let pinged = ns_ok(
            &lab.ext,
            &["ping", "-c", "2", "-W", "1", "-i", "0.2", &lab.host_ip],
        );
        let mut buf = vec![0u8; 2048];
        let mut tapped = Vec::new();
        while let Some(f) = tap.recv(&mut buf).unwrap() {
            tapped.push(buf[f.offset..f.offset + f.len].to_vec());
        }
        (pinged, tapped, demux.counters().unwrap())
    });
    assert!(
        pinged,
        "the host answers ping through the parent while demux is attached"
    );
    let arp_requests = tapped
        .iter()
        .filter(|f| f[0..6] == [0xff; 6] && f[12..14] == [0x08, 0x06])
        .count();
    assert!(
        arp_requests >= 1,
        "the flood tap saw the ARP broadcast; it saw {} frames",
        tapped.len()
    );
    assert!(counters.get(Counter::PassGroup) >= 1, "{counters:?}");
    assert!(
        counters.get(Counter::PassHost) >= 2,
        "the echo requests are unicast for the host: {counters:?}"
    );
    assert_eq!(counters.get(Counter::Redirect), 0);
}

#[test]
fn the_flood_tap_restores_vlan_tags_and_holds_promisc_while_open() {
    require_root!("the_flood_tap_restores_vlan_tags_and_holds_promisc_while_open");
    let lab = TestLab::new("dmx3");
    let tapped = in_netns(&lab.host, || {
        let _demux = Demux::attach(&lab.parent, ModePolicy::Native).expect("attach");
        let mut tap = FloodTap::open(&lab.parent).unwrap();
        assert!(!promisc(&lab.host, &lab.parent));
        tap.hold_promisc().unwrap();
        assert!(
            promisc(&lab.host, &lab.parent),
            "the tap holds the parent promiscuous"
        );
        in_netns(&lab.ext, || {
            let mut qinq = frame([0xff; 6], SRC, Some(0x2064), "bcast-qinq100");
            qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
            send(
                "eth0",
                &[
                    qinq,
                    frame([0xff; 6], SRC, Some(0x2064), "bcast-vlan100"),
                    frame(MAC_A, SRC, None, "unicast"),
                ],
            )
        });
        std::thread::sleep(Duration::from_millis(200));
        let mut buf = vec![0u8; 2048];
        let mut tapped = Vec::new();
        while let Some(f) = tap.recv(&mut buf).unwrap() {
            tapped.push((buf[f.offset..f.offset + f.len].to_vec(), f.vlan));
        }
        drop(tap);
        assert!(
            !promisc(&lab.host, &lab.parent),
            "closing the tap ends promiscuous mode"
        );
        tapped
    });
    // Ours: a probe ethertype behind one tag. Each comes back with its own TPID and TCI.
    let ours: Vec<_> = tapped
        .iter()
        .filter(|(f, _)| f.len() >= 18 && f[16..18] == [0x88, 0xb5])
        .collect();
    assert!(
        tapped
            .iter()
            .all(|(f, _)| marker(f).as_deref() != Some("unicast")),
        "unicast is never tapped"
    );
    assert_eq!(ours.len(), 2, "both broadcasts are tapped: {ours:?}");
    let dot1q = ours
        .iter()
        .find(|(f, _)| f[12..14] == [0x81, 0x00])
        .expect("802.1Q");
    assert_eq!(dot1q.1, Some((0x8100, 0x2064)));
    assert_eq!(&dot1q.0[14..16], &[0x20, 0x64]);
    assert_eq!(marker(&dot1q.0).as_deref(), Some("bcast-vlan100"));
    let qinq = ours
        .iter()
        .find(|(f, _)| f[12..14] == [0x88, 0xa8])
        .expect("802.1ad kept as 802.1ad");
    assert_eq!(qinq.1, Some((0x88a8, 0x2064)));
}

#[test]
fn bad_parents_are_refused_and_change_nothing() {
    require_root!("bad_parents_are_refused_and_change_nothing");
    let lab = TestLab::new("dmx4");
    in_netns(&lab.host, || {
        let missing = Demux::attach("nosuch0", ModePolicy::NativeOrGeneric).unwrap_err();
        assert!(
            matches!(missing, DemuxError::NoSuchInterface(_)),
            "{missing}"
        );
        let lo = Demux::attach("lo", ModePolicy::NativeOrGeneric).unwrap_err();
        assert!(matches!(lo, DemuxError::NotEthernet { .. }), "{lo}");
        assert!(lo.to_string().contains("loopback"), "{lo}");

        let first = Demux::attach(&lab.parent, ModePolicy::NativeOrGeneric).expect("attach");
        let second = Demux::attach(&lab.parent, ModePolicy::NativeOrGeneric).unwrap_err();
        assert!(
            matches!(second, DemuxError::AlreadyAttached { .. }),
            "{second}"
        );
        // The first attachment is untouched and still works.
        let before = first.counters().unwrap().get(Counter::Rx);
        assert!(ns_ok(
            &lab.ext,
            &["ping", "-c", "1", "-W", "1", &lab.host_ip]
        ));
        assert!(first.counters().unwrap().get(Counter::Rx) > before);
        assert!(xdp_attached(&lab.host, &lab.parent));
        drop(first);
        assert!(
            eventually(2, || !xdp_attached(&lab.host, &lab.parent)),
            "dropping detaches"
        );
    });
}

/// Re-executed by `a_killed_loader_leaves_no_program_behind` as a child process: attaches
/// demux in the netns it is told and waits to be killed.
#[test]
#[ignore = "helper process for a_killed_loader_leaves_no_program_behind"]
fn child_attach_and_wait() {
    let Ok(spec) = std::env::var("MVDP_TEST_CHILD") else {
        return;
    };
    let (ns, ifname) = spec.split_once(':').unwrap();
    in_netns(ns, || {
        let _demux = Demux::attach(ifname, ModePolicy::Native).expect("attach");
        println!("ATTACHED");
        std::thread::sleep(Duration::from_secs(60));
    });
}

#[test]
fn a_killed_loader_leaves_no_program_behind() {
    require_root!("a_killed_loader_leaves_no_program_behind");
    use std::io::{BufRead, BufReader};
    let lab = TestLab::new("dmx5");
    /// Kills the helper process however this test ends, so it never holds the program on.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_attach_and_wait",
                "--ignored",
                "--nocapture",
            ])
            .env("MVDP_TEST_CHILD", format!("{}:{}", lab.host, lab.parent))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = BufReader::new(child.0.stdout.take().unwrap());
    let attached = out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("ATTACHED"));
    assert!(attached, "the child attached demux");
    assert!(xdp_attached(&lab.host, &lab.parent));
    child.0.kill().unwrap(); // SIGKILL: no destructor, no cleanup of its own
    child.0.wait().unwrap();
    assert!(
        eventually(3, || !xdp_attached(&lab.host, &lab.parent)),
        "the kernel detached the program when its BPF link's owner died"
    );
    assert!(
        ns_ok(&lab.ext, &["ping", "-c", "1", "-W", "1", &lab.host_ip]),
        "the host still answers"
    );
}

/// The standard lab (no containers) under a prefix unique to this process and test, with
/// the names the tests use. Dropping it removes every namespace it made.
struct TestLab {
    _lab: Lab,
    host: String,
    ext: String,
    parent: String,
    host_ip: String,
}

impl TestLab {
    fn new(tag: &str) -> TestLab {
        let lab = Lab::builder(&common::unique_prefix(tag))
            .containers(0)
            .build()
            .expect("building the lab");
        TestLab {
            host: lab.host().name().to_string(),
            ext: lab.ext().name().to_string(),
            parent: lab.parent_ifname().to_string(),
            host_ip: lab.host_ip().to_string(),
            _lab: lab,
        }
    }
}
