//! The environment a run is recorded with.

use std::collections::BTreeMap;

use super::ceiling::{BATCH, FRAMES, FRAME_SIZE};
use super::report::{AfXdpEnv, Environment};

static CARGO_LOCK: &str = include_str!("../../../Cargo.lock");
/// Crates whose versions shape the figures.
const CRATES: [&str; 8] = [
    "xsk-rs",
    "libxdp-sys",
    "aya",
    "hdrhistogram",
    "criterion",
    "plotters",
    "rtnetlink",
    "indicatif",
];

pub const CPU_METHOD: &str = "Latency: one UDP request/response at a time from container 1, timed with a monotonic clock around send/recv; \
answers that miss the timeout count as lost and are never timed. Throughput: blocking UDP senders in container 1 (one thread per flow) \
send as fast as the socket takes datagrams for a fixed time; receivers count datagrams and UDP payload bytes. CPU per packet = \
the time every CPU of the machine was busy over the cell (/proc/stat: user, nice, system, irq and softirq; not idle, iowait or steal) / \
datagrams received. Beside it, as a breakdown that overlaps and is never summed: the sender and receiver threads' user+system time \
(getrusage(RUSAGE_THREAD)), the system-wide softirq time (/proc/stat) and the switching threads' time (the ceiling forwarder's own \
getrusage, mvdp's `mvdp-worker-N` threads from /proc/<pid>/task/*/stat, every thread of ovs-vswitchd from /proc/<pid>/stat). Without \
IRQ time accounting (tick-based, as on this VM's kernel) softirq work run inline in a thread's context (the end of a send, a TX kick) is \
charged to that thread and to the softirq column alike; the sum of the four counted up to 2.8 CPUs on a 2-CPU machine. The load threads (echo servers, client, senders, receivers) are pinned alike for every backend (config.cpus); \
while other backends are measured, OVS's vswitchd threads run under SCHED_IDLE with the PMD resting, mvdp-busy's worker polls \
adaptively (asleep: no traffic reaches it), mvdp-colocated's worker (pinned to the first load CPU, no spin) sleeps until a frame comes, and the ceiling forwarder looks at its rings every 50 ms, so no idle switch spins. The busy \
time is machine-wide, so it includes whatever else ran meanwhile (an upper bound on a shared VM).";

pub fn crate_versions() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut name: Option<&str> = None;
    for line in CARGO_LOCK.lines() {
        if let Some(n) = line.strip_prefix("name = \"") {
            name = n.strip_suffix('"');
        } else if let Some(v) = line.strip_prefix("version = \"") {
            if let (Some(n), Some(v)) = (name.take(), v.strip_suffix('"')) {
                if CRATES.contains(&n) {
                    out.insert(n.to_string(), v.to_string());
                }
            }
        }
    }
    out
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// UTC now as RFC 3339 (civil-from-days, no time zone database needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// OVS's version and how the bench runs it, when it is installed.
fn ovs_description() -> Option<String> {
    crate::lab::ovs::ovs_programs().ok()?;
    let out = std::process::Command::new(crate::lab::ovs::find_program("ovs-vswitchd")?)
        .arg("--version")
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("ovs-vswitchd (version unknown)")
        .to_string();
    Some(format!(
        "{version}: netdev (userspace) bridge, NORMAL action; the parent and container veths as afxdp \
         (PMD) or afxdp-nonpmd ports, xdp-mode=native, n_rxq=1"
    ))
}

pub fn collect(command_line: String) -> Environment {
    Environment {
        date_utc: utc_now(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        cpu_model: cpu_model(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_line,
        mvdp_version: env!("CARGO_PKG_VERSION").to_string(),
        crate_versions: crate_versions(),
        af_xdp: AfXdpEnv {
            mvdp: {
                let o = mvdp_engine::runtime::RuntimeOptions::default();
                format!(
                    "demux on the parent and port_redirect on the port veths (native XDP, BPF links), copy bind, \
                     batch {}, {} UMEM frames of {} B, {} worker(s), {} poll",
                    o.batch,
                    o.frames,
                    o.frame_size,
                    o.workers,
                    super::topology::mvdp_poll().name()
                )
            },
            xdp_program: "ceiling: ebpf port_redirect (ingress ifindex -> XSKMAP slot) on the container veths' host ends".into(),
            xdp_attach_mode: "native (driver), BPF link".into(),
            bind_mode: "copy".into(),
            batch_size: BATCH,
            frame_size: FRAME_SIZE,
            umem_frames: FRAMES,
            ovs: ovs_description(),
        },
        cpu_method: CPU_METHOD.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_lock_file() {
        let v = crate_versions();
        assert_eq!(v.get("xsk-rs").map(String::as_str), Some("0.11.0"));
        assert!(v.contains_key("hdrhistogram"), "{v:?}");
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(
            s.starts_with("20") && s.ends_with('Z') && s.as_bytes()[10] == b'T',
            "{s}"
        );
    }
}
