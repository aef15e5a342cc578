//! `mvdp daemon`: the control socket in front of the AF_XDP runtime. Also the `--socket` option every
//! client command shares.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mvdp_control::daemon::{
    call, ensure_no_daemon_at, serve, DaemonConfig, Request, DEFAULT_SOCKET,
};

use mvdp_engine::runtime::{PollMode, Runtime, RuntimeOptions, FRAME_SIZES};
use mvdp_switch::FloodRate;

/// How to reach the daemon (every client command).
#[derive(Args, Clone)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long, env = "MVDP_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// `ls` of networks or ports.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sock: SocketArg,
}

impl SocketArg {
    /// One request; the daemon's refusal becomes the error message.
    pub fn call(&self, req: &Request) -> Result<serde_json::Value> {
        Ok(call(&self.socket, req)?)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Poll {
    /// Spin on the rings: lowest latency, one core busy per worker.
    Busy,
    /// Spin briefly after traffic, then sleep in poll(2).
    Adaptive,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum XdpMode {
    /// Native, falling back to generic with a warning.
    Auto,
    Native,
    Generic,
}

#[derive(Args)]
pub struct DaemonArgs {
    /// Where to listen (created mode 0600; its directory is created).
    #[arg(long, env = "MVDP_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where networks and ports are saved, so a restarted daemon picks them up again.
    #[arg(long, default_value = "/var/lib/mvdp")]
    state_dir: PathBuf,
    /// Worker threads forwarding frames; ports are sharded across them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// How workers wait for frames.
    #[arg(long, value_enum, default_value = "adaptive")]
    poll: Poll,
    /// XDP attach mode on parents.
    #[arg(long, value_enum, default_value = "auto")]
    xdp_mode: XdpMode,
    /// UMEM frames shared by all sockets (--frame-size bytes each, pinned in memory). An eighth is kept for frames in flight;
    /// each parent queue is promised 512 and each port 8 (an idle port's fill ring), so the
    /// default serves 1,000 ports with room to spare; under load a port's fill ring grows to
    /// 2,048 from frames nobody else needs. A port the frames cannot cover is refused.
    #[arg(long, env = "MVDP_FRAMES", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(1024..=1_048_576))]
    frames: u32,
    /// Bytes per UMEM frame: 2048 (the default) carries MTUs up to 1742 in half the memory of
    /// 4096, which carries MTUs up to 3790 (jumbo parents). A port above the limit is refused.
    #[arg(long, env = "MVDP_FRAME_SIZE", default_value_t = 2048, value_parser = parse_frame_size)]
    frame_size: u32,
    /// Adaptive poll: microseconds a worker keeps spinning after its last frame before sleeping in
    /// poll(2). Longer trades CPU for fewer wake-ups on request/response traffic.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    spin_us: u64,
    /// CPUs to pin the workers to, like taskset's list (`2`, `1,3`, `2-3`): worker i runs on the
    /// i-th. With `--poll busy`, give a worker a core of its own, away from the containers' load.
    /// With `--spin-us 0`, a worker on the CPU its containers run on shortens their round trips
    /// when cores are few, at the cost of throughput under load (it shares that CPU with them).
    #[arg(long, env = "MVDP_CPU", value_name = "LIST", value_parser = parse_cpu_list)]
    cpu: Option<CpuList>,
    /// Each port's cap on the broadcasts and multicasts it sends, per second, in bursts of up to
    /// BURST (default: a tenth of PPS, at least 4); 0 for unlimited. What is beyond it is dropped
    /// whole and counted on the port (STORM-DROP in `mvdp stats`, reason flood_rate). The default
    /// is far above a container's ARP, neighbour discovery, DHCP and mDNS; raise it (or use 0) for
    /// multicast applications. Passthru ports are exempt.
    #[arg(
        long,
        env = "MVDP_FLOOD_RATE",
        value_name = "PPS[,BURST]",
        default_value = "2000,200"
    )]
    flood_rate: FloodRate,
    /// Also serve Docker's remote network driver protocol (`docker network create -d mvdp`) on
    /// this socket; dockerd finds the default by itself.
    #[arg(long, value_name = "PATH", num_args = 0..=1, require_equals = true,
          default_missing_value = mvdp_control::docker::DEFAULT_PLUGIN_SOCKET)]
    docker_plugin: Option<PathBuf>,
    /// Measure where frames spend their time in the switch: the XDP programs stamp every frame
    /// they redirect with the time, and the worker follows the first frame of one batch in N
    /// (N = 1 when the flag has no value) through RX pickup, decision and TX kick. `mvdp stats`
    /// shows per-hop percentiles. Off by default: then nothing is stamped or read.
    #[arg(long, env = "MVDP_TRACE_HOPS", value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "1", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    trace_hops: Option<u32>,
}

fn parse_frame_size(s: &str) -> std::result::Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if FRAME_SIZES.contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a frame size mvdp can use: 2048 or 4096"
        )),
    }
}

/// A list of CPU numbers.
#[derive(Clone, Debug)]
pub struct CpuList(Vec<usize>);

fn parse_cpu_list(s: &str) -> std::result::Result<CpuList, String> {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("{part:?} is not a CPU number or a range like 2-3"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("{part:?}: a range goes from low to high"));
        }
        cpus.extend(a..=b);
    }
    if let Some(c) = cpus.iter().find(|c| **c >= 1024) {
        return Err(format!("CPU {c} is out of range"));
    }
    if cpus.iter().all(|c| *c >= online) {
        return Err(format!(
            "none of {s:?} is one of this machine's {online} CPUs (0..={})",
            online - 1
        ));
    }
    Ok(CpuList(cpus))
}

pub fn run(a: DaemonArgs) -> Result<()> {
    if !mvdp_control::is_root() {
        bail!("mvdp daemon needs root (XDP, AF_XDP, netlink); run it with sudo");
    }
    ensure_no_daemon_at(&a.socket)?;
    let runtime = Runtime::new(RuntimeOptions {
        workers: a.workers.into(),
        poll: match a.poll {
            Poll::Busy => PollMode::BusyPoll,
            Poll::Adaptive => PollMode::Adaptive,
        },
        xdp_mode: match a.xdp_mode {
            XdpMode::Auto => mvdp_ebpf::ModePolicy::NativeOrGeneric,
            XdpMode::Native => mvdp_ebpf::ModePolicy::Native,
            XdpMode::Generic => mvdp_ebpf::ModePolicy::Generic,
        },
        frames: a.frames,
        frame_size: a.frame_size,
        spin: std::time::Duration::from_micros(a.spin_us),
        cpus: a.cpu.map(|c| c.0).unwrap_or_default(),
        flood_rate: a.flood_rate,
        trace_hops: a.trace_hops.unwrap_or(0),
        ..RuntimeOptions::default()
    })
    .context("starting the AF_XDP runtime")?;
    let max_mtu = runtime.max_mtu();
    let server = serve(
        runtime,
        DaemonConfig {
            state_dir: Some(a.state_dir.clone()),
            max_mtu,
            netns: None,
        },
        &a.socket,
    )?;
    let plugin = match &a.docker_plugin {
        None => None,
        Some(p) => match mvdp_control::docker::serve(server.requester(), p) {
            Ok(plugin) => Some(plugin),
            Err(e) => {
                server.shutdown();
                bail!("Docker plugin socket {}: {e}", p.display());
            }
        },
    };
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("installing the SIGINT/SIGTERM handler")?;
    tracing::info!(socket = %a.socket.display(), state_dir = %a.state_dir.display(), "mvdp daemon running");
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(500)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if server.is_running() => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                drop(plugin);
                server.shutdown();
                bail!("the daemon's control thread died; see the log above");
            }
            _ => break,
        }
    }
    tracing::info!("shutting down");
    drop(plugin);
    server.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        d: DaemonArgs,
    }

    #[test]
    fn the_flood_rate_defaults_to_the_switchs_and_takes_pps_and_burst() {
        let rate = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("daemon").chain(args.iter().copied()))
                .map(|c| c.d.flood_rate)
                .map_err(|e| e.to_string())
        };
        assert_eq!(rate(&[]), Ok(FloodRate::DEFAULT));
        assert_eq!(rate(&["--flood-rate", "0"]), Ok(FloodRate::UNLIMITED));
        assert_eq!(
            rate(&["--flood-rate", "500,50"]),
            Ok(FloodRate::new(500, 50).unwrap())
        );
        let e = rate(&["--flood-rate", "fast"]).unwrap_err();
        assert!(
            e.contains("--flood-rate") && e.contains("PPS[,BURST]"),
            "{e}"
        );
        let e = rate(&["--flood-rate", "100,0"]).unwrap_err();
        assert!(e.contains("burst 0 is out of range"), "{e}");
    }
}
