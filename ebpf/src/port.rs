//! Loads the `port_redirect` XDP program once and attaches it to the host end of every port's
//! veth, each through its own BPF link, so all a container sends reaches the switch's socket.

use std::collections::HashMap as StdHashMap;
use std::os::fd::AsRawFd;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

use crate::abi;
use crate::demux::{attach_mode, check_slot, error_chain, take_map, verifier_detail};
use crate::error::DemuxError;

/// The compiled `port` program (built by build.rs from `bpf/port.c`).
pub static PORT_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/port.o"));

/// The port program's counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub redirect: u64,
    pub no_port: u64,
    pub no_socket: u64,
    /// Group frames dropped over their port's flood cap, all ports.
    pub flood_cap: u64,
}

/// The loaded program and its attachments. Dropping it detaches every port.
pub struct PortRedirect {
    slots: HashMap<MapData, u32, u32>,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    flood_cap: Array<MapData, abi::FloodCap>,
    flood_buckets: Array<MapData, abi::FloodBucket>,
    // Links go first: detached before the program is unloaded.
    links: StdHashMap<u32, XdpLink>,
    ebpf: Ebpf,
}

impl std::fmt::Debug for PortRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortRedirect")
            .field("attached", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl PortRedirect {
    /// Loads the program; nothing is attached yet. Do it in the namespace of the veths.
    pub fn load() -> Result<PortRedirect, DemuxError> {
        PortRedirect::load_traced(false)
    }

    /// [`PortRedirect::load`], with `trace_hops`: the program stamps every frame it redirects
    /// with the time, in the XDP metadata (`mvdp daemon --trace-hops`).
    pub fn load_traced(trace_hops: bool) -> Result<PortRedirect, DemuxError> {
        let mut ebpf = crate::object::load(PORT_OBJECT, trace_hops)?;
        Self::program(&mut ebpf)?
            .load()
            .map_err(|e| DemuxError::Load(verifier_detail(&e)))?;
        Ok(PortRedirect {
            slots: take_map(&mut ebpf, "port_slots")?,
            xsks: take_map(&mut ebpf, "port_xsks")?,
            counters: take_map(&mut ebpf, "port_counters")?,
            flood_cap: take_map(&mut ebpf, "port_flood_cap")?,
            flood_buckets: take_map(&mut ebpf, "port_flood_buckets")?,
            links: StdHashMap::new(),
            ebpf,
        })
    }

    fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, DemuxError> {
        ebpf.program_mut("port_redirect")
            .ok_or_else(|| DemuxError::Load("program `port_redirect` missing from object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DemuxError::Load(e.to_string()))
    }

    /// Caps the broadcasts and multicasts each port may send: `pps` per second (0 = no cap) in
    /// bursts of up to `burst`; the excess is dropped before it reaches the port's socket.
    pub fn set_flood_cap(&mut self, pps: u64, burst: u64) -> Result<(), DemuxError> {
        self.flood_cap
            .set(0, abi::FloodCap { pps, burst }, 0)
            .map_err(|e| DemuxError::Map {
                map: "port_flood_cap",
                detail: e.to_string(),
            })
    }

    /// Group frames the program dropped over the flood cap for the port in `slot`, since that
    /// port took the slot.
    pub fn flood_cap_dropped(&self, slot: u32) -> u64 {
        self.flood_buckets.get(&slot, 0).map_or(0, |b| b.dropped)
    }

    /// Sends everything arriving on `ifname` to the AF_XDP socket `fd` (bound to its queue 0),
    /// which the switch knows as `slot`. Native XDP only: generic XDP on veth breaks TCP. Its
    /// broadcasts and multicasts are held to the flood cap unless `flood_capped` is false (a
    /// passthru port, which owns the parent).
    pub fn attach(
        &mut self,
        ifname: &str,
        slot: u32,
        fd: impl AsRawFd,
        flood_capped: bool,
    ) -> Result<(), DemuxError> {
        check_slot(slot)?;
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| DemuxError::NoSuchInterface(ifname.into()))?;
        let map_err = |map: &'static str| {
            move |e: aya::maps::MapError| DemuxError::Map {
                map,
                detail: e.to_string(),
            }
        };
        // A full bucket and no drops for the slot's new port.
        let bucket = abi::FloodBucket {
            flags: if flood_capped { 0 } else { abi::FLOOD_F_EXEMPT },
            ..Default::default()
        };
        self.flood_buckets
            .set(slot, bucket, 0)
            .map_err(map_err("port_flood_buckets"))?;
        // Socket first, then the ifindex -> slot entry: a frame never finds a slot without a socket.
        self.xsks.set(slot, fd, 0).map_err(map_err("port_xsks"))?;
        if let Err(e) = self.slots.insert(ifindex, slot, 0) {
            let _ = self.xsks.unset(slot);
            return Err(map_err("port_slots")(e));
        }
        let attached = Self::program(&mut self.ebpf).and_then(|prog| {
            let id = attach_mode(prog, ifname, ifindex, XdpMode::Driver)?;
            prog.take_link(id).map_err(|e| DemuxError::Attach {
                ifname: ifname.into(),
                detail: error_chain(&e),
            })
        });
        let link = match attached {
            Ok(link) if format!("{link:?}").contains("NlLink") => {
                drop(link);
                Err(DemuxError::Attach {
                    ifname: ifname.into(),
                    detail: "the kernel refused a BPF link for XDP".into(),
                })
            }
            other => other,
        };
        match link {
            Ok(link) => {
                self.links.insert(ifindex, link);
                Ok(())
            }
            Err(e) => {
                let _ = self.slots.remove(&ifindex);
                let _ = self.xsks.unset(slot);
                Err(e)
            }
        }
    }

    /// Forgets `ifindex`'s slot (frames arriving from then on are dropped) and hands back its XDP
    /// link: dropping it detaches the program, which waits for the kernel, so the caller picks
    /// the thread.
    pub fn detach(&mut self, ifindex: u32) -> Option<XdpLink> {
        let slot = self.slots.get(&ifindex, 0).ok();
        let _ = self.slots.remove(&ifindex);
        if let Some(slot) = slot {
            let _ = self.xsks.unset(slot);
        }
        self.links.remove(&ifindex)
    }

    pub fn counters(&self) -> Result<PortCounters, DemuxError> {
        let get = |i: u32| -> Result<u64, DemuxError> {
            Ok(self
                .counters
                .get(&i, 0)
                .map_err(|e| DemuxError::Map {
                    map: "port_counters",
                    detail: e.to_string(),
                })?
                .iter()
                .sum())
        };
        Ok(PortCounters {
            redirect: get(abi::PORT_CNT_REDIRECT)?,
            no_port: get(abi::PORT_CNT_NO_PORT)?,
            no_socket: get(abi::PORT_CNT_NO_SOCKET)?,
            flood_cap: get(abi::PORT_CNT_FLOOD_CAP)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated_size(trace_hops: bool) -> u32 {
        let r = PortRedirect::load_traced(trace_hops).expect("the kernel loads port_redirect");
        let prog: &Xdp = r
            .ebpf
            .program("port_redirect")
            .expect("program")
            .try_into()
            .expect("an XDP program");
        prog.info()
            .expect("program info")
            .size_translated()
            .expect("translated size")
    }

    /// Without --trace-hops the stamping is pruned by the verifier (the flag is read-only data
    /// fixed at load), so a daemon without tracing runs a program without it.
    #[test]
    fn the_stamping_is_only_in_the_traced_program() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: loading BPF programs needs root");
            return;
        }
        let (plain, traced) = (translated_size(false), translated_size(true));
        assert!(plain < traced, "untraced {plain} B, traced {traced} B");
    }
}
