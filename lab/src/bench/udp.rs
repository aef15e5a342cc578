//! UDP endpoints the benchmark drives: an echo server, a request/response client timing each
//! round trip, and blast senders/counting receivers for throughput. Sockets are created inside
//! a namespace (they stay bound to it) and then used from ordinary threads.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use mvdp_control::NetNs;

use super::cpu::thread_cpu;

/// UDP port of the echo servers.
pub const ECHO_PORT: u16 = 7007;
/// First UDP port of the throughput receivers (flow i uses this + i).
pub const SINK_PORT: u16 = 9000;
/// How often blocking receives wake up to look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Socket buffers for throughput sockets: large enough that a scheduling hiccup of the
/// receiver on this 2-core VM does not turn straight into drops.
const SOCK_BUF: usize = 4 << 20;

/// Creates a UDP socket bound to `bind` inside `ns`.
pub fn socket_in(ns: &NetNs, bind: SocketAddrV4) -> Result<UdpSocket> {
    ns.run(move || UdpSocket::bind(bind))
        .with_context(|| format!("entering {}", ns.name()))?
        .with_context(|| format!("binding UDP {bind} in {}", ns.name()))
}

fn set_bufs(s: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    // Best effort: the kernel caps these at net.core.{r,w}mem_max anyway.
    let _ = setsockopt(s, sockopt::RcvBuf, &SOCK_BUF);
    let _ = setsockopt(s, sockopt::SndBuf, &SOCK_BUF);
}

/// A thread answering every datagram on `ECHO_PORT` with the same bytes. Stops on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl EchoServer {
    pub fn start(ns: &NetNs, ip: Ipv4Addr) -> Result<EchoServer> {
        let sock = socket_in(ns, SocketAddrV4::new(ip, ECHO_PORT))?;
        sock.set_read_timeout(Some(STOP_POLL))?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("bench-echo".into())
            .spawn(move || {
                // The echo server is load: it runs where every backend's load runs.
                if let Err(e) = super::pinning::pin_load_thread() {
                    tracing::warn!("echo server: {e:#}");
                }
                let mut buf = [0u8; 2048];
                let mut answered = 0u64;
                while !s.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        if sock.send_to(&buf[..n], from).is_ok() {
                            answered += 1;
                        }
                    }
                }
                answered
            })
            .context("spawning the echo thread")?;
        Ok(EchoServer {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the server; returns how many datagrams it answered.
    pub fn stop(mut self) -> u64 {
        self.halt()
    }

    fn halt(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or(0)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Why a round trip produced no sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No matching answer within the timeout.
    Lost,
    /// The socket refused to send (e.g. no route, ENOBUFS).
    SendFailed,
}

/// A connected request/response client: one datagram out with a sequence number, wait for the
/// answer carrying it. Answers to earlier (timed-out) requests are skipped, never timed.
pub struct RttClient {
    sock: UdpSocket,
    buf: Vec<u8>,
    rx: Vec<u8>,
    seq: u64,
    /// Stale answers skipped so far.
    pub late: u64,
    /// With [`RttClient::time_delivery`]: per answer, from the kernel's receive time of its
    /// frame (SO_TIMESTAMPNS: when it entered this netns's stack, i.e. when the switch's TX
    /// reached the veth) to `recv` returning here, as dense counts over `hops::BUCKETS`.
    delivery: Option<Vec<u64>>,
}

impl RttClient {
    /// A client in `ns` (bound to `local`, any port) talking to `server` on [`ECHO_PORT`].
    pub fn new(
        ns: &NetNs,
        local: Ipv4Addr,
        server: Ipv4Addr,
        payload: usize,
        timeout: Duration,
    ) -> Result<RttClient> {
        anyhow::ensure!(
            (8..=1472).contains(&payload),
            "payload {payload} B: must be 8..=1472 (sequence number; one 1500-byte frame)"
        );
        let sock = socket_in(ns, SocketAddrV4::new(local, 0))?;
        sock.connect(SocketAddrV4::new(server, ECHO_PORT))
            .with_context(|| format!("connecting to {server}:{ECHO_PORT}"))?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(RttClient {
            sock,
            buf: vec![0x5a; payload],
            rx: vec![0; 2048],
            seq: 0,
            late: 0,
            delivery: None,
        })
    }

    /// Times the last stretch of every answer from now on: the kernel's receive timestamp of
    /// its frame to `recv` returning (see [`RttClient::take_delivery`]). The kernel then stamps
    /// every frame entering any stack while this socket lives (its timestamps are global), so
    /// only the backend whose hops are traced asks for it.
    pub fn time_delivery(&mut self) -> Result<()> {
        nix::sys::socket::setsockopt(
            &self.sock,
            nix::sys::socket::sockopt::ReceiveTimestampns,
            &true,
        )
        .context("SO_TIMESTAMPNS")?;
        self.delivery = Some(vec![0; mvdp_switch::hops::BUCKETS]);
        Ok(())
    }

    /// What [`RttClient::time_delivery`] counted so far, and starts afresh.
    pub fn take_delivery(&mut self) -> Option<mvdp_switch::hops::HopHistogram> {
        let d = self.delivery.as_mut()?;
        let h = mvdp_switch::hops::HopHistogram::from_counts(d.iter().copied());
        d.fill(0);
        Some(h)
    }

    /// `recv`, and with delivery timing on, the time from the frame's kernel receive stamp.
    fn recv(&mut self) -> std::io::Result<usize> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        let Some(counts) = self.delivery.as_mut() else {
            return self.sock.recv(&mut self.rx);
        };
        let mut iov = [std::io::IoSliceMut::new(&mut self.rx)];
        let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(std::io::Error::from)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let stamp = msg
            .cmsgs()
            .ok()
            .into_iter()
            .flatten()
            .find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
                }
                _ => None,
            });
        if let Some(t) = stamp.filter(|&t| t > 0 && t <= now) {
            counts[mvdp_switch::hops::bucket(now - t)] += 1;
        }
        Ok(msg.bytes)
    }

    /// One round trip: its duration, or why there is none. Never blocks longer than about the
    /// timeout per stale answer received.
    pub fn round_trip(&mut self) -> Result<Duration, Miss> {
        self.seq += 1;
        self.buf[..8].copy_from_slice(&self.seq.to_le_bytes());
        let t0 = Instant::now();
        if self.sock.send(&self.buf).is_err() {
            return Err(Miss::SendFailed);
        }
        loop {
            match self.recv() {
                Ok(n) if n >= 8 && self.rx[..8] == self.seq.to_le_bytes() => {
                    return Ok(t0.elapsed())
                }
                Ok(_) => self.late += 1,
                // Timeout (WouldBlock/TimedOut) or ICMP-refused: the answer is lost either way.
                Err(_) => return Err(Miss::Lost),
            }
        }
    }
}

/// Latency of one cell: a histogram of round trips in nanoseconds plus what went missing.
#[derive(Debug, Clone)]
pub struct RttStats {
    pub hist: Histogram<u64>,
    pub sent: u64,
    pub lost: u64,
    pub send_failed: u64,
    pub late: u64,
}

impl RttStats {
    pub fn new() -> RttStats {
        RttStats {
            // 1 ns .. 60 s at 3 significant digits.
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("static bounds are valid"),
            sent: 0,
            lost: 0,
            send_failed: 0,
            late: 0,
        }
    }

    pub fn merge(&mut self, other: &RttStats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.sent += other.sent;
        self.lost += other.lost;
        self.send_failed += other.send_failed;
        self.late += other.late;
    }
}

impl Default for RttStats {
    fn default() -> Self {
        Self::new()
    }
}

/// `warmup` untimed round trips, then `count` timed ones; `tick` is called every 1000.
pub fn measure_rtt(
    client: &mut RttClient,
    warmup: u64,
    count: u64,
    mut tick: impl FnMut(u64),
) -> RttStats {
    for _ in 0..warmup {
        let _ = client.round_trip();
    }
    let late0 = client.late;
    let mut st = RttStats::new();
    for i in 0..count {
        st.sent += 1;
        match client.round_trip() {
            Ok(d) => {
                let _ = st.hist.record((d.as_nanos() as u64).max(1));
            }
            Err(Miss::Lost) => st.lost += 1,
            Err(Miss::SendFailed) => st.send_failed += 1,
        }
        if (i + 1) % 1000 == 0 {
            tick(1000);
        }
    }
    tick(count % 1000);
    st.late = client.late - late0;
    st
}

/// Makes sure `server` answers from `client_ns` (ARP resolved, path up): up to `wait`.
pub fn wait_reachable(ns: &NetNs, local: Ipv4Addr, server: Ipv4Addr, wait: Duration) -> Result<()> {
    let mut c = RttClient::new(ns, local, server, 64, Duration::from_millis(200))?;
    let end = Instant::now() + wait;
    while Instant::now() < end {
        if c.round_trip().is_ok() {
            return Ok(());
        }
    }
    Err(anyhow!(
        "{server}:{ECHO_PORT} does not answer from {} ({local}) within {wait:?}",
        ns.name()
    ))
}

/// What one throughput cell counted.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub duration: Duration,
    pub sent_pkts: u64,
    pub send_errors: u64,
    pub recv_pkts: u64,
    /// UDP payload bytes received.
    pub recv_bytes: u64,
    pub sender_cpu: Duration,
    pub receiver_cpu: Duration,
}

impl Throughput {
    pub fn merge(&mut self, o: &Throughput) {
        self.duration += o.duration;
        self.sent_pkts += o.sent_pkts;
        self.send_errors += o.send_errors;
        self.recv_pkts += o.recv_pkts;
        self.recv_bytes += o.recv_bytes;
        self.sender_cpu += o.sender_cpu;
        self.receiver_cpu += o.receiver_cpu;
    }
    pub fn pps(&self) -> f64 {
        per_sec(self.recv_pkts, self.duration)
    }
    /// UDP payload goodput.
    pub fn gbps(&self) -> f64 {
        per_sec(self.recv_bytes * 8, self.duration) / 1e9
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// A flow's thread: (packets, bytes or send errors, its CPU time).
type FlowThread = JoinHandle<(u64, u64, Duration)>;

/// Receives on `r` until `stop`: (packets, bytes, CPU time).
fn count_until(r: &UdpSocket, stop: &AtomicBool) -> (u64, u64, Duration) {
    let c0 = thread_cpu();
    let mut buf = [0u8; 2048];
    let (mut pkts, mut bytes) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        // A timeout only wakes the thread to look at the stop flag.
        if let Ok(n) = r.recv(&mut buf) {
            pkts += 1;
            bytes += n as u64;
        }
    }
    (pkts, bytes, thread_cpu() - c0)
}

/// How a sender spaces its datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the socket takes them.
    Flat,
    /// This many datagrams per second per flow, sent in bursts of [`burst_for`] against a
    /// schedule from the flow's start.
    PerSec(f64),
}

impl Pace {
    /// `Some(rate)` paces at `rate` datagrams per second; `None` (or a rate that is not a
    /// positive number) sends as fast as possible.
    pub fn from_rate(rate: Option<f64>) -> Pace {
        match rate {
            Some(r) if r.is_finite() && r > 0.0 => Pace::PerSec(r),
            _ => Pace::Flat,
        }
    }
}

/// Longest burst a paced sender sends back to back: what one clock read covers.
const MAX_BURST: u64 = 32;

/// Datagrams a paced sender sends per clock read at `rate`: about 50 µs worth, so that the
/// schedule is checked often enough to stay smooth at low rates and the clock stays off the
/// per-datagram cost at high ones; 1..=[`MAX_BURST`].
pub fn burst_for(rate: f64) -> u64 {
    ((rate * 50e-6) as u64).clamp(1, MAX_BURST)
}

/// How many datagrams should have gone `elapsed` into a flow paced at `rate` per second.
pub fn due_by(rate: f64, elapsed: Duration) -> u64 {
    (rate * elapsed.as_secs_f64()) as u64
}

/// When (from the flow's start) the `n`th datagram of a flow paced at `rate` per second is due:
/// the earliest `elapsed` with `due_by(rate, elapsed) >= n`.
pub fn due_at(rate: f64, n: u64) -> Duration {
    let mut t = Duration::from_nanos((n as f64 / rate * 1e9).ceil() as u64);
    // The division and `due_by`'s product round differently by a nanosecond or so: settle on
    // the instant `due_by` agrees with, so that waking at it never finds the datagram early.
    const NS: Duration = Duration::from_nanos(1);
    for _ in 0..8 {
        if due_by(rate, t) < n {
            t += NS;
        } else if !t.is_zero() && due_by(rate, t - NS) >= n {
            t -= NS;
        } else {
            break;
        }
    }
    t
}

/// Sends `payload`-byte datagrams on `s` until `deadline` at `pace`: (sent, send errors, CPU
/// time). A paced sender counts failed sends against its schedule too, so a refused datagram is
/// not made up for with a burst.
fn send_until(
    s: &UdpSocket,
    payload: usize,
    pace: Pace,
    deadline: Instant,
) -> (u64, u64, Duration) {
    let c0 = thread_cpu();
    let buf = vec![0xa5u8; payload];
    let (mut sent, mut errs) = (0u64, 0u64);
    let mut send = |n: u64| {
        for _ in 0..n {
            match s.send(&buf) {
                Ok(_) => sent += 1,
                Err(_) => errs += 1,
            }
        }
    };
    match pace {
        Pace::Flat => loop {
            // Checking the clock every 64 sends keeps it off the per-packet cost.
            send(64);
            if Instant::now() >= deadline {
                break;
            }
        },
        Pace::PerSec(rate) => {
            let start = Instant::now();
            let burst = burst_for(rate);
            let mut tried = 0u64;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let due = due_by(rate, now - start);
                if due > tried {
                    // Behind (or on time): at most one burst per clock read, so catching up
                    // after a preemption is spread over several reads.
                    let n = (due - tried).min(burst);
                    send(n);
                    tried += n;
                    continue;
                }
                // Ahead: sleep until the next burst is due. Always a sleep, never a yield loop:
                // under EEVDF every sched_yield pushes the thread's deadline a slice further, so a
                // yielding sender starves behind the receiver sharing its CPU (measured: 1-10 % of
                // the pace on a loaded machine). A sleep's overshoot (the timer slack, ~50 µs) is
                // made up in the next turns' bursts.
                let wake = (start + due_at(rate, tried + burst)).min(deadline);
                std::thread::sleep(wake.saturating_duration_since(now));
            }
        }
    }
    (sent, errs, thread_cpu() - c0)
}

/// The load of a throughput measurement: how many flows of what size, for how long, how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub flows: usize,
    /// UDP payload bytes per datagram.
    pub payload: usize,
    pub duration: Duration,
    /// Each flow's.
    pub pace: Pace,
}

/// `load.flows` senders in `src` (bound to `src_ip`) sending `load.payload`-byte datagrams at
/// as many receivers in `dst` (`dst_ip`, ports from [`SINK_PORT`]) for `load.duration`, one
/// thread each, each flow at `load.pace`. Receivers keep counting for a short drain after the
/// senders stop.
pub fn measure_throughput(
    src: &NetNs,
    src_ip: Ipv4Addr,
    dst: &NetNs,
    dst_ip: Ipv4Addr,
    load: Load,
) -> Result<Throughput> {
    let Load {
        flows,
        payload,
        duration,
        pace,
    } = load;
    let mut sinks = Vec::new();
    let mut sources = Vec::new();
    for i in 0..flows {
        let port = SINK_PORT + i as u16;
        let r = socket_in(dst, SocketAddrV4::new(dst_ip, port))?;
        set_bufs(&r);
        r.set_read_timeout(Some(STOP_POLL))?;
        sinks.push(r);
        let s = socket_in(src, SocketAddrV4::new(src_ip, 0))?;
        set_bufs(&s);
        s.connect(SocketAddrV4::new(dst_ip, port))?;
        sources.push(s);
    }
    let stop_rx = Arc::new(AtomicBool::new(false));
    let receivers: Vec<FlowThread> = sinks
        .into_iter()
        .map(|r| {
            let stop = stop_rx.clone();
            std::thread::spawn(move || count_until(&r, &stop))
        })
        .collect();
    let start = Instant::now();
    let deadline = start + duration;
    let senders: Vec<FlowThread> = sources
        .into_iter()
        .map(|s| std::thread::spawn(move || send_until(&s, payload, pace, deadline)))
        .collect();
    let mut t = Throughput::default();
    for h in senders {
        let (sent, errs, cpu) = h.join().map_err(|_| anyhow!("a sender thread panicked"))?;
        t.sent_pkts += sent;
        t.send_errors += errs;
        t.sender_cpu += cpu;
    }
    t.duration = start.elapsed();
    // Let queued datagrams arrive; they were sent within the window.
    std::thread::sleep(Duration::from_millis(100));
    stop_rx.store(true, Ordering::Relaxed);
    for h in receivers {
        let (pkts, bytes, cpu) = h
            .join()
            .map_err(|_| anyhow!("a receiver thread panicked"))?;
        t.recv_pkts += pkts;
        t.recv_bytes += bytes;
        t.receiver_cpu += cpu;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_counts_what_is_due_and_when() {
        let rate = 100_000.0;
        assert_eq!(due_by(rate, Duration::ZERO), 0);
        assert_eq!(due_by(rate, Duration::from_micros(9)), 0);
        assert_eq!(due_by(rate, Duration::from_micros(10)), 1);
        assert_eq!(due_by(rate, Duration::from_millis(500)), 50_000);
        assert_eq!(due_by(rate, Duration::from_secs(3)), 300_000);
        // A wake-up at due_at(n) finds n due, and not a nanosecond earlier.
        for n in [1, 7, 32, 1000, 123_456] {
            let t = due_at(rate, n);
            assert!(due_by(rate, t) >= n, "{n} at {t:?}");
            assert!(
                due_by(rate, t - Duration::from_nanos(1)) < n,
                "{n} at {t:?}"
            );
        }
        // Odd rates too.
        let rate = 333_333.3;
        for n in [1, 3, 10, 99_999] {
            let t = due_at(rate, n);
            assert!(due_by(rate, t) >= n && due_by(rate, t - Duration::from_nanos(1)) < n);
        }
    }

    #[test]
    fn bursts_cover_about_fifty_microseconds_and_stay_bounded() {
        assert_eq!(burst_for(1.0), 1);
        assert_eq!(burst_for(10_000.0), 1);
        assert_eq!(burst_for(200_000.0), 10);
        assert_eq!(burst_for(1e9), MAX_BURST);
    }

    #[test]
    fn only_a_positive_rate_paces() {
        assert_eq!(Pace::from_rate(None), Pace::Flat);
        assert_eq!(Pace::from_rate(Some(0.0)), Pace::Flat);
        assert_eq!(Pace::from_rate(Some(-5.0)), Pace::Flat);
        assert_eq!(Pace::from_rate(Some(f64::NAN)), Pace::Flat);
        assert_eq!(Pace::from_rate(Some(1e5)), Pace::PerSec(1e5));
    }
}
