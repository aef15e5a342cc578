//! The soak's traffic: unicast round trips between pairs of containers and a trickle of
//! broadcasts, each on a thread of its own, counting what came back. Every thread holds still
//! while the soak is paused (so the daemon's books can be read at rest) and stops on drop.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use mvdp_control::NetNs;

use crate::bench::udp::{socket_in, EchoServer, RttClient};

/// How long a round trip may take before it counts as lost (a restart loses a few).
const RTT_TIMEOUT: Duration = Duration::from_millis(200);
/// Broadcasts per burst, and the pause between bursts (about 2,000 a second).
const BURST: u32 = 20;
const BURST_GAP: Duration = Duration::from_millis(10);

/// What the traffic threads counted so far.
#[derive(Debug, Default)]
pub struct Counts {
    pub rtt_ok: AtomicU64,
    pub rtt_lost: AtomicU64,
    pub broadcasts: AtomicU64,
}

impl Counts {
    pub fn read(&self) -> (u64, u64, u64) {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (r(&self.rtt_ok), r(&self.rtt_lost), r(&self.broadcasts))
    }
}

/// The running traffic.
pub struct Traffic {
    pub counts: Arc<Counts>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _echoes: Vec<EchoServer>,
}

/// One container as a traffic end: its namespace and address.
pub struct End {
    pub ns: NetNs,
    pub ip: Ipv4Addr,
}

impl Traffic {
    /// Round trips from each pair's first end to its second (which echoes), and broadcasts from
    /// `storm` to `broadcast`.
    pub fn start(pairs: &[(End, End)], storm: &End, broadcast: Ipv4Addr) -> Result<Traffic> {
        let mut t = Traffic {
            counts: Arc::new(Counts::default()),
            paused: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            _echoes: Vec::new(),
        };
        for (a, b) in pairs {
            t._echoes.push(EchoServer::start(&b.ns, b.ip)?);
            let client = RttClient::new(&a.ns, a.ip, b.ip, 64, RTT_TIMEOUT)?;
            let mut client = client;
            t.spawn("mvdp-soak-rtt", move |counts| rtt_loop(&mut client, counts))?;
        }
        let sock = socket_in(&storm.ns, SocketAddrV4::new(storm.ip, 0))?;
        sock.set_broadcast(true).context("SO_BROADCAST")?;
        let to = SocketAddrV4::new(broadcast, 9);
        t.spawn("mvdp-soak-bcast", move |counts| {
            let buf = [0xb5u8; 64];
            for _ in 0..BURST {
                if sock.send_to(&buf, to).is_ok() {
                    counts.broadcasts.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(BURST_GAP);
        })?;
        Ok(t)
    }

    /// Runs `step` over and over on a thread until stopped, holding still while paused.
    fn spawn(&mut self, name: &str, mut step: impl FnMut(&Counts) + Send + 'static) -> Result<()> {
        let (counts, paused, stop) = (self.counts.clone(), self.paused.clone(), self.stop.clone());
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if paused.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    step(&counts);
                }
            })
            .with_context(|| format!("starting {name}"))?;
        self.threads.push(h);
        Ok(())
    }

    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::Relaxed);
    }
}

fn rtt_loop(client: &mut RttClient, counts: &Counts) {
    match client.round_trip() {
        Ok(_) => counts.rtt_ok.fetch_add(1, Ordering::Relaxed),
        Err(_) => counts.rtt_lost.fetch_add(1, Ordering::Relaxed),
    };
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}
