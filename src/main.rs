//! `mvdp`: the command-line tool, and the CNI plugin when run with `CNI_COMMAND` set. Argument
//! parsing and printing only; the daemon, the plugin, the dataplane and the lab live in their
//! crates (see README, *Where things are*).

#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mvdp",
    version,
    about = "Kernel-bypass macvlan: XDP demux + AF_XDP userspace switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build or remove the network-namespace lab (wire switch, external host, host, containers).
    #[command(subcommand)]
    Lab(cmd::lab::LabCmd),
    /// Attach the XDP demux to a throwaway lab's parent NIC, send traffic, show where it went.
    Demo(cmd::demo::DemoArgs),
    /// Run the dataplane daemon in the foreground (control socket, networks, ports).
    Daemon(cmd::daemon::DaemonArgs),
    /// Create, list, inspect and remove networks (Docker's vocabulary).
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Add, list and remove ports: a container's (or the host's) interface on a network.
    #[command(subcommand)]
    Port(cmd::port::PortCmd),
    /// Per-port and per-network counters, drops by reason, UMEM frame accounting.
    Stats(cmd::stats::StatsArgs),
    /// Compare mvdp, kernel macvlan, the Linux bridge and OVS AF_XDP (latency, throughput, CPU per packet) on netns labs.
    Bench(cmd::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    // Run by a container runtime as the CNI plugin `mvdp` (no arguments, CNI_* in the environment).
    if cmd::cni::invoked_as_plugin() {
        return cmd::cni::run();
    }
    let cli = Cli::parse();
    // The bench runs mvdp's daemon in-process; its per-port log lines would bury the progress bar.
    let default_level = match cli.command {
        Command::Bench(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MVDP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Lab(c) => cmd::lab::run(c),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Daemon(a) => cmd::daemon::run(a),
        Command::Network(c) => cmd::network::run(c),
        Command::Port(c) => cmd::port::run(c),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mvdp: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
