//! `mvdp bench`: see `mvdp_lab::bench` (lab/src/bench/) for what is measured and how.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use mvdp_engine::runtime::PollMode;
use mvdp_lab::bench::density::DensityConfig;
use mvdp_lab::bench::pinning::CpuPlan;
use mvdp_lab::bench::{self, BenchConfig};
use mvdp_lab::Backend;
use mvdp_switch::Mode;

#[derive(Args)]
pub struct BenchArgs {
    /// Smoke-test sizes: a few thousand round trips and half a second per cell (< 2 minutes).
    #[arg(long)]
    quick: bool,
    /// Directory for results.json, summary.md and the SVG plots.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Print results.json on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Backends to compare (the AF_XDP ceiling is measured too unless --no-ceiling): mvdp (adaptive
    /// poll), macvlan, bridge, mvdp-busy (busy poll, worker on its own CPU), mvdp-traced (mvdp with
    /// --trace-hops, latency cells only: where its round trip goes), ceiling-traced (the ceiling
    /// with the same split; mvdp-busy-traced: mvdp-busy with it), mvdp-colocated (adaptive poll
    /// without spin, the worker on the load's CPU: no crossing wakes another CPU), ovs-afxdp (Open
    /// vSwitch userspace datapath, AF_XDP ports, PMD on its own CPU), ovs-afxdp-nonpmd. All by
    /// default; the OVS backends are reported unavailable, with the reason, where OVS is not
    /// installed.
    #[arg(long, value_delimiter = ',', default_value = "mvdp,macvlan,bridge,mvdp-busy,mvdp-colocated,mvdp-traced,mvdp-busy-traced,ceiling-traced,ovs-afxdp,ovs-afxdp-nonpmd", value_parser = bench_backend_kind())]
    backends: Vec<Backend>,
    /// macvlan modes for the mvdp and kernel macvlan backends (bridge, vepa, private, passthru).
    #[arg(long, value_delimiter = ',', default_value = "bridge")]
    modes: Vec<String>,
    /// Round trips per latency cell [default: 100000, --quick: 3000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    round_trips: Option<u64>,
    /// Seconds per throughput cell [default: 5, --quick: 0.5].
    #[arg(long)]
    duration: Option<f64>,
    /// Slices each cell is split into, backends interleaved within each [default: 4, --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: Option<u32>,
    /// Prefix of the labs' names [default: mvb<pid>]; each backend's lab appends a short tag.
    #[arg(long)]
    lab_name: Option<String>,
    /// Skip the AF_XDP ceiling.
    #[arg(long)]
    no_ceiling: bool,
    /// CPUs the load generators (echo servers, clients, senders, receivers) are pinned to, for
    /// every backend alike, or `none`; OVS's PMD and mvdp-busy's worker get the first CPU not in it,
    /// mvdp-colocated's worker the first CPU in it [default: 0 on a machine with 2 or more CPUs].
    #[arg(long)]
    load_cpus: Option<String>,
    /// How mvdp's worker waits: adaptive (spin 50 µs, then sleep in poll) or busy (always spin).
    #[arg(long, default_value = "adaptive", value_parser = poll_mode())]
    mvdp_poll: PollMode,
    /// The density scenario instead: mvdp and kernel macvlan (bridge mode) at each of these port
    /// counts (e.g. 2,64,256,1000; 2..=1024), the busy pair's RTT and pps, port add/remove times,
    /// the daemon's RSS and sampled pairs' reachability [round trips: 2000, --quick: 500;
    /// duration: 1, --quick: 0.3; rounds: 4, --quick: 1].
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["backends", "modes", "no_ceiling"])]
    ports: Vec<u32>,
    /// The broadcast-storm scenario instead: mvdp and kernel macvlan (bridge mode), two containers'
    /// round trips idle and while a third broadcasts as fast as it can [round trips: 20000,
    /// --quick: 2000; rounds: 4, --quick: 2].
    #[arg(long, conflicts_with_all = ["backends", "modes", "no_ceiling", "ports"])]
    storm: bool,
    /// With --storm: the mvdp daemon's `--flood-rate PPS[,BURST]` (0: unlimited) [default: the
    /// daemon's own].
    #[arg(long, value_name = "PPS[,BURST]", requires = "storm")]
    flood_rate: Option<mvdp_switch::FloodRate>,
}

/// `--mvdp-poll`: how mvdp's workers wait.
fn poll_mode() -> impl TypedValueParser<Value = PollMode> {
    PossibleValuesParser::new(["adaptive", "busy"]).map(|p| match p.as_str() {
        "busy" => PollMode::BusyPoll,
        _ => PollMode::Adaptive,
    })
}

/// `--backends`: the kinds compared (macvlan and mvdp in bridge mode until `--modes` says otherwise).
fn bench_backend_kind() -> impl TypedValueParser<Value = Backend> {
    PossibleValuesParser::new([
        "mvdp",
        "macvlan",
        "bridge",
        "mvdp-busy",
        "mvdp-traced",
        "ceiling-traced",
        "mvdp-busy-traced",
        "mvdp-colocated",
        "ovs-afxdp",
        "ovs-afxdp-nonpmd",
    ])
    .map(|k| k.parse::<Backend>().expect("a listed backend kind parses"))
}

pub fn run(args: BenchArgs) -> Result<()> {
    let modes = parse_modes(&args.modes)?;
    mvdp_lab::bench::topology::set_mvdp_poll(args.mvdp_poll);
    if let Some(plan) = cpu_plan(args.load_cpus.as_deref())? {
        mvdp_lab::bench::pinning::set_plan(plan);
    }
    let cfg = config(&args, &modes)?;
    mvdp_lab::install_signal_handler().context("installing the Ctrl-C handler")?;
    let results = bench::run(&cfg)?;
    let files = bench::write_outputs(&results, &args.out)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", results.summary_markdown());
        println!("\nwritten:");
        for f in files {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

/// `--load-cpus`: None keeps the default plan.
fn cpu_plan(given: Option<&str>) -> Result<Option<CpuPlan>> {
    let Some(given) = given else {
        return Ok(None);
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = if given == "none" {
        Vec::new()
    } else {
        let mut v = Vec::new();
        for c in given.split(',') {
            let n: usize = c.trim().parse().map_err(|_| {
                anyhow::anyhow!("--load-cpus: {c:?} is not a CPU number (or give `none`)")
            })?;
            v.push(n);
        }
        v
    };
    Ok(Some(CpuPlan::with_load(load, cpus).context("--load-cpus")?))
}

/// `--modes`, each once, in the order given; source mode is refused.
fn parse_modes(given: &[String]) -> Result<Vec<Mode>> {
    let mut modes = Vec::new();
    for m in given {
        let mode: Mode = m
            .parse()
            .map_err(|e| anyhow::anyhow!("--modes: {m:?}: {e}"))?;
        if mode == Mode::Source {
            bail!("--modes: source mode is not benchmarked (it needs per-port allowed-MAC lists)");
        }
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    if modes.is_empty() {
        bail!("--modes: give at least one mode");
    }
    Ok(modes)
}

/// The backends to measure: each of `--backends` in every mode (the bridge has none), then the
/// ceiling unless `--no-ceiling`.
fn backends(args: &BenchArgs, modes: &[Mode]) -> Result<Vec<Backend>> {
    let mut backends = Vec::new();
    for b in &args.backends {
        match b.mode() {
            Some(_) => {
                for m in modes {
                    backends.push(Backend::from_parts(b.kind(), Some(*m))?);
                }
            }
            None => backends.push(*b),
        }
    }
    if !args.no_ceiling {
        backends.push(Backend::Ceiling);
    }
    backends.dedup();
    if backends.is_empty() {
        bail!("nothing to measure: give --backends or drop --no-ceiling");
    }
    Ok(backends)
}

/// What to run: the quick or full sizes, then what the arguments override.
fn config(args: &BenchArgs, modes: &[Mode]) -> Result<BenchConfig> {
    let run_name = args
        .lab_name
        .clone()
        .unwrap_or_else(|| format!("mvb{}", std::process::id()));
    let mut cfg = BenchConfig::quick(&run_name);
    cfg.backends = backends(args, modes)?;
    if !args.quick {
        cfg.quick = false;
        cfg.round_trips = 100_000;
        cfg.warmup = 2_000;
        cfg.rounds = 4;
        cfg.duration = Duration::from_secs(5);
        cfg.timeout = Duration::from_millis(200);
        cfg.idle_window = Duration::from_secs(2);
    }
    if let Some(n) = args.round_trips {
        cfg.round_trips = n;
    }
    if let Some(r) = args.rounds {
        cfg.rounds = r;
    }
    if let Some(d) = args.duration {
        if !(0.05..=3600.0).contains(&d) {
            bail!("--duration {d}: must be between 0.05 and 3600 seconds");
        }
        cfg.duration = Duration::from_secs_f64(d);
    }
    if !args.ports.is_empty() {
        density(args, &mut cfg)?;
    }
    if args.storm {
        storm(args, &mut cfg)?;
    }
    cfg.command_line = std::env::args().collect::<Vec<_>>().join(" ");
    Ok(cfg)
}

/// `--ports`: the density scenario's backends and sizes (short cells: a few minutes for
/// 2,64,256,1000), its daemon the running `mvdp` binary.
fn density(args: &BenchArgs, cfg: &mut BenchConfig) -> Result<()> {
    if args.mvdp_poll != PollMode::Adaptive {
        bail!("--mvdp-poll: the density scenario runs `mvdp daemon` with its defaults (adaptive poll)");
    }
    let bin = std::env::current_exe().context("finding the mvdp binary")?;
    cfg.density = Some(DensityConfig::new(args.ports.clone(), bin)?);
    cfg.backends = mvdp_lab::bench::density::BACKENDS.to_vec();
    let quick = args.quick;
    cfg.rounds = args.rounds.unwrap_or(if quick { 1 } else { 4 });
    cfg.payloads = vec![mvdp_lab::bench::density::measure::PAYLOAD];
    cfg.flows = vec![1];
    cfg.warmup = 200;
    cfg.round_trips = args.round_trips.unwrap_or(if quick { 500 } else { 2_000 });
    let secs = args.duration.unwrap_or(if quick { 0.3 } else { 1.0 });
    cfg.duration = Duration::from_secs_f64(secs);
    Ok(())
}

/// `--storm`: the storm scenario's backends and sizes, its daemon the running `mvdp` binary.
fn storm(args: &BenchArgs, cfg: &mut BenchConfig) -> Result<()> {
    if args.mvdp_poll != PollMode::Adaptive {
        bail!(
            "--mvdp-poll: the storm scenario runs `mvdp daemon` with its defaults (adaptive poll)"
        );
    }
    let bin = std::env::current_exe().context("finding the mvdp binary")?;
    cfg.storm = Some(mvdp_lab::bench::storm::StormConfig {
        mvdp_bin: bin,
        flood_rate: args.flood_rate,
    });
    cfg.backends = mvdp_lab::bench::storm::BACKENDS.to_vec();
    let quick = args.quick;
    cfg.rounds = args.rounds.unwrap_or(if quick { 2 } else { 4 });
    cfg.payloads = vec![mvdp_lab::bench::density::measure::PAYLOAD];
    cfg.flows = Vec::new();
    cfg.warmup = 100;
    cfg.round_trips = args
        .round_trips
        .unwrap_or(if quick { 2_000 } else { 20_000 });
    Ok(())
}
