//! Criterion: one UDP request/response round trip per iteration, container 1 to container 2 (same
//! host) and container 1 to the external host, per backend: kernel macvlan and mvdp in each mode,
//! the Linux bridge, the bare AF_XDP forwarder (ceiling), mvdp-busy (busy poll, its worker on its own
//! CPU) and Open vSwitch's userspace datapath with AF_XDP ports (`ovs-afxdp` with its PMD on its own
//! CPU, `ovs-afxdp-nonpmd`; skipped with a note when OVS is not installed). The client and echo
//! servers are pinned as `mvdp bench` pins them (`config.cpus` there). Payloads 64 and 1400 bytes.
//! Needs root (it builds netns labs); without it, it says why and exits 0.
//!
//! `cargo bench --bench latency` (a filter after `--` selects functions, e.g. `-- macvlan-bridge`).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use mvdp_lab::bench::pinning::{self, LoadPinned};
use mvdp_lab::bench::topology::{Backend, BenchLab, Scenario};
use mvdp_lab::bench::udp::{Miss, RttClient};

const PAYLOADS: [usize; 2] = [64, 1400];
/// A path that loses this many round trips in a row is broken; the bench stops rather than
/// timing timeouts.
const MAX_CONSECUTIVE_LOSSES: u32 = 100;

fn main() {
    if !mvdp_control::is_root() {
        eprintln!(
            "latency bench: skipped: needs root (it builds network-namespace labs with macvlan, bridges and AF_XDP)"
        );
        return;
    }
    if let Err(e) = mvdp_lab::install_signal_handler() {
        eprintln!("latency bench: cannot install the Ctrl-C handler: {e}");
        std::process::exit(1);
    }
    eprintln!("latency bench: {}", pinning::plan().describe());
    let labs = build_labs(&format!("mvcb{}", std::process::id()));
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for sc in Scenario::ALL {
        let mut group = c.benchmark_group(sc.name());
        group.throughput(Throughput::Elements(1));
        for lab in &labs {
            if let Err(why) = lab.backend.supports(sc) {
                let name = lab.backend.name();
                eprintln!("latency bench: {name} {}: n/a: {why}", sc.name());
                continue;
            }
            for payload in PAYLOADS {
                let (cl, sv) = (lab.client(), lab.server(sc));
                let timeout = Duration::from_millis(200);
                let mut client = match RttClient::new(&cl.ns, cl.ip, sv.ip, payload, timeout) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("latency bench: {}: {e:#}", lab.backend.name());
                        std::process::exit(1);
                    }
                };
                let pinned = match LoadPinned::new() {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("latency bench: {e:#}");
                        std::process::exit(1);
                    }
                };
                // A PMD or a busy worker spins only while its own backend is measured.
                lab.set_measuring(true);
                group.bench_function(BenchmarkId::new(lab.backend.name(), payload), |b| {
                    b.iter_custom(|iters| time_round_trips(&mut client, iters, lab.backend))
                });
                lab.set_measuring(false);
                drop(pinned);
            }
        }
        group.finish();
    }
    drop(labs);
    c.final_summary();
}

/// The lab of every available backend under run name `run`; exits when one cannot be built.
fn build_labs(run: &str) -> Vec<BenchLab> {
    let mut labs = Vec::new();
    // The traced backends are for `mvdp bench`'s hop breakdown, which criterion does not report.
    for b in Backend::bench_all().into_iter().filter(|b| !b.traced()) {
        if let Some(why) = b.unavailable() {
            eprintln!("latency bench: {}: skipped: {why}", b.name());
            continue;
        }
        match BenchLab::build(&b.lab_name(run), b) {
            Ok(lab) => labs.push(lab),
            Err(e) => {
                // Labs built so far are removed as `labs` drops.
                eprintln!("latency bench: {}: cannot build its lab: {e:#}", b.name());
                std::process::exit(1);
            }
        }
    }
    labs
}

/// The total time of `iters` answered round trips (lost ones are retried, up to
/// MAX_CONSECUTIVE_LOSSES in a row).
fn time_round_trips(client: &mut RttClient, iters: u64, backend: Backend) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut lost_in_a_row = 0;
    while done < iters {
        match client.round_trip() {
            Ok(d) => {
                total += d;
                done += 1;
                lost_in_a_row = 0;
            }
            Err(Miss::Lost | Miss::SendFailed) => {
                lost_in_a_row += 1;
                assert!(
                    lost_in_a_row < MAX_CONSECUTIVE_LOSSES,
                    "{}: {MAX_CONSECUTIVE_LOSSES} round trips lost in a row",
                    backend.name()
                );
            }
        }
    }
    total
}
