//! A million frames forwarded while a port is added and removed 100 times: no UMEM frame is lost
//! (the frame books balance, and once traffic stops every frame is back in the free pool or a fill
//! ring).

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, in_netns, ip_n, ping, require_root, unique_prefix, DaemonLab, BIN};

const FRAMES: u64 = 1_000_000;
const CYCLES: u32 = 100;

#[test]
fn no_umem_frame_is_lost_under_traffic_and_port_churn() {
    require_root!("no_umem_frame_is_lost_under_traffic_and_port_churn");
    let d = DaemonLab::start(BIN, &unique_prefix("echurn"), 2, false);
    d.create_lan("198.18.0.32/28");
    d.add_port("lan", 1, "198.18.0.32");
    assert!(ping(&d.c(1), "198.18.0.254", 3));

    // c1 blasts small UDP datagrams at the external host until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sock = in_netns(&d.c(1), || UdpSocket::bind("198.18.0.32:0").expect("bind"));
    let blaster = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let payload = [0x5au8; 64];
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..256 {
                    // ENOBUFS under pressure is expected; the switch's counters say what got through.
                    let _ = sock.send_to(&payload, "198.18.0.254:9");
                }
            }
        })
    };
    let rx_of_c1 = || -> u64 {
        let s = d.json(&["stats", "--json"]);
        s["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == 0)
            .map(|p| p["rx_frames"].as_u64().unwrap())
            .unwrap()
    };

    let c2 = d.c(2);
    let t0 = Instant::now();
    for i in 0..CYCLES {
        let p = d.json(&["port", "add", "lan", "--netns", &c2, "--json"]);
        assert_eq!(p["state"], "up", "cycle {i}");
        d.ok(&["port", "rm", "lan", &c2]);
    }
    eprintln!("{CYCLES} port add/rm cycles in {:?}", t0.elapsed());
    let end = Instant::now() + Duration::from_secs(60);
    while rx_of_c1() < FRAMES {
        assert!(
            Instant::now() < end,
            "fewer than {FRAMES} frames forwarded in time"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    blaster.join().unwrap();
    eprintln!("{FRAMES} frames from c1 forwarded after {:?}", t0.elapsed());

    let umem = || d.json(&["stats", "--json"])["umem"].clone();
    let u = umem();
    assert_eq!(u["balanced"], true, "{u}");
    assert!(u["total"].as_u64().unwrap() > 0, "{u}");
    assert!(
        eventually(5, || {
            let u = umem();
            u["balanced"] == true
                && u["tx_in_flight"] == 0
                && u["in_transit"] == 0
                && u["free"].as_u64().unwrap() + u["fill"].as_u64().unwrap()
                    == u["total"].as_u64().unwrap()
        }),
        "frames still out after traffic stopped: {}",
        umem()
    );
    assert!(ping(&d.c(1), "198.18.0.254", 3), "forwarding still works");

    // `port rm` answers before the veth is deleted: a port added again into the same netns at
    // once gets the container end's name and forwards, while the old pair is still going.
    d.add_port("lan", 2, "198.18.0.40");
    d.ok(&["port", "rm", "lan", &c2]);
    d.add_port("lan", 2, "198.18.0.40");
    assert!(
        ping(&d.c(2), "198.18.0.32", 3),
        "a port added again at once forwards"
    );
    assert!(
        eventually(5, || {
            d.json(&["stats", "--json"])["veths_deleting"] == 0
                && !ip_n(&c2, &["link", "show"]).contains("mvdprm")
        }),
        "removed ports' veths left behind: {}",
        ip_n(&c2, &["link", "show"])
    );
}
