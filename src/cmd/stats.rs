//! `mvdp stats`: per-port and per-network counters, drops by reason, UMEM frame accounting.

use anyhow::Result;
use clap::Args;
use mvdp_control::daemon::api::StatsReply;
use mvdp_control::daemon::Request;

use super::daemon::SocketArg;

#[derive(Args)]
pub struct StatsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sock: SocketArg,
}

pub fn run(a: StatsArgs) -> Result<()> {
    let v = a.sock.call(&Request::Stats {})?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let s: StatsReply = serde_json::from_value(v)?;
    println!(
        "workers {}, poll mode {}, flood rate per port {}",
        s.workers,
        if s.poll_mode.is_empty() {
            "-"
        } else {
            &s.poll_mode
        },
        s.flood_rate.map_or("-".to_string(), |r| r.to_string())
    );
    println!(
        "worker turns of 1 ms or more {} (longest {} µs), hot sockets taken off epoll {}",
        s.late_turns, s.longest_turn_us, s.unwatched
    );
    let head = format!(
        "{:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10}",
        "RX-FRAMES", "RX-BYTES", "TX-FRAMES", "TX-BYTES", "RX-DROP", "TX-DROP", "STORM-DROP"
    );
    println!("\nNETWORK          PORTS {head}");
    for n in &s.networks {
        let t = &n.traffic;
        println!(
            "{:<16} {:>5} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10}",
            n.name,
            n.ports,
            t.rx_frames,
            t.rx_bytes,
            t.tx_frames,
            t.tx_bytes,
            t.rx_dropped,
            t.tx_dropped,
            t.flood_dropped
        );
    }
    println!("\nPORT NETWORK      HOST-IF  NETNS            {head}");
    for p in &s.ports {
        let t = &p.traffic;
        println!(
            "{:<4} {:<12} {:<8} {:<16} {:>12} {:>14} {:>12} {:>14} {:>10} {:>10} {:>10}",
            p.id,
            p.network,
            p.host_ifname,
            p.netns.as_deref().unwrap_or("(host)"),
            t.rx_frames,
            t.rx_bytes,
            t.tx_frames,
            t.tx_bytes,
            t.rx_dropped,
            t.tx_dropped,
            t.flood_dropped
        );
    }
    println!("\ndrops by reason:");
    if s.drops.values().all(|v| *v == 0) {
        println!("  none");
    }
    for (reason, n) in s.drops.iter().filter(|(_, n)| **n > 0) {
        println!("  {reason:<28} {n}");
    }
    let u = &s.umem;
    println!(
        "\nUMEM frames: total {} = free {} + fill {} + tx in flight {} + in transit {}  ({}; frame size {})",
        u.books.total,
        u.books.free,
        u.books.fill,
        u.books.tx_in_flight,
        u.books.in_transit,
        if u.balanced { "balanced" } else { "NOT BALANCED: frames lost" },
        u.books.frame_size
    );
    let c = &s.capacity;
    println!(
        "capacity: {} of {} ports (limited by {}); UMEM frames promised to fill rings {}, kept for frames in flight {}",
        c.ports, c.max_ports, c.limited_by, c.frames_promised, c.frames_reserve
    );
    if s.veths_deleting > 0 {
        println!(
            "removed ports' veths still being deleted: {}",
            s.veths_deleting
        );
    }
    print_hops(&s.hops);
    Ok(())
}

/// Per-hop percentiles of `--trace-hops` (nothing when tracing is off).
fn print_hops(h: &mvdp_switch::hops::HopStats) {
    use mvdp_switch::hops::Hop;
    if h.sample_every == 0 {
        return;
    }
    println!(
        "
hops (one batch in {} followed; {} without an XDP stamp):",
        h.sample_every, h.no_stamp
    );
    println!(
        "  {:<16} {:>10} {:>10} {:>10}",
        "HOP", "SAMPLES", "P50-US", "P99-US"
    );
    let us = |v: Option<u64>| v.map_or("-".to_string(), |n| format!("{:.2}", n as f64 / 1e3));
    for hop in Hop::ALL {
        let Some(x) = h.hop(hop) else { continue };
        println!(
            "  {:<16} {:>10} {:>10} {:>10}",
            hop.name(),
            x.samples,
            us(x.quantile(0.5)),
            us(x.quantile(0.99))
        );
    }
}
