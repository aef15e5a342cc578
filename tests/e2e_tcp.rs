//! Bulk TCP through mvdp arrives intact (checksums right across the veths' offloads): 100 MiB between
//! two containers on a bridge network, and 100 MiB from a container to the external host.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{in_netns, ping, require_root, unique_prefix, DaemonLab, BIN};

const BLOCK: usize = 1 << 20;
const BLOCKS: usize = 100;

/// One MiB of pseudo-random bytes; block `i` is sent with `i` in its first 8 bytes, so a lost,
/// repeated or reordered block is caught, not only a flipped bit.
fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn block(p: &[u8], i: usize) -> Vec<u8> {
    let mut b = p.to_vec();
    b[..8].copy_from_slice(&(i as u64).to_le_bytes());
    b
}

/// Sends BLOCKS MiB from `client_ns` to `server_ip:port` in `server_ns`; returns the time taken.
fn transfer(server_ns: &str, server_ip: Ipv4Addr, client_ns: &str) -> Duration {
    let addr = SocketAddr::from((server_ip, 5201));
    let listener = in_netns(server_ns, move || TcpListener::bind(addr).expect("bind"));
    let p = pattern();
    let pr = p.clone();
    let receiver = std::thread::spawn(move || -> usize {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = vec![0u8; BLOCK];
        for i in 0..BLOCKS {
            s.read_exact(&mut buf)
                .unwrap_or_else(|e| panic!("block {i}: {e}"));
            assert!(buf == block(&pr, i), "block {i} arrived corrupted");
        }
        let mut rest = vec![];
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{} extra bytes", rest.len());
        BLOCKS
    });
    let start = Instant::now();
    let mut s = in_netns(client_ns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect")
    });
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    for i in 0..BLOCKS {
        s.write_all(&block(&p, i)).expect("send");
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(receiver.join().expect("receiver"), BLOCKS);
    start.elapsed()
}

#[test]
fn bulk_tcp_arrives_intact_between_containers_and_to_the_wire() {
    require_root!("bulk_tcp_arrives_intact_between_containers_and_to_the_wire");
    let d = DaemonLab::start(BIN, &unique_prefix("etcp"), 2, false);
    d.create_lan("198.18.0.32/28");
    d.add_port("lan", 1, "198.18.0.32");
    d.add_port("lan", 2, "198.18.0.33");
    assert!(ping(&d.c(1), "198.18.0.33", 3));
    let t = transfer(&d.c(2), Ipv4Addr::new(198, 18, 0, 33), &d.c(1));
    eprintln!("container -> container: {BLOCKS} MiB in {t:?}");
    let ext = d.lab.ext().name().to_string();
    // The lab's external host finishes its own checksums, as a NIC before a real wire does (a veth
    // would hand CHECKSUM_PARTIAL frames to the parent's XDP program, which AF_XDP cannot carry).
    let t = transfer(&ext, Ipv4Addr::new(198, 18, 0, 254), &d.c(1));
    eprintln!("container -> external host: {BLOCKS} MiB in {t:?}");
    let stats = d.json(&["stats", "--json"]);
    assert_eq!(stats["umem"]["balanced"], true, "{stats}");
}
