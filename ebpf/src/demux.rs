//! Loads the `demux` XDP program, attaches it to a parent NIC through a BPF link, and
//! manages its maps (which (VLAN, MAC) is which port, which socket serves which queue).

use std::os::fd::AsRawFd;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use nix::net::if_::InterfaceFlags;

use crate::abi::{self, Config, Counter, PortKey, PortVal};
use crate::error::DemuxError;

/// The compiled `demux` program (built by build.rs from `bpf/demux.c`).
pub static DEMUX_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demux.o"));

/// How the program ended up attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (veth and most NICs): what AF_XDP needs to be fast.
    Native,
    /// In the generic skb path: works everywhere, slower; see DESIGN.md on TCP over veth.
    Generic,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// Which attach modes to try.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModePolicy {
    /// Native, and generic with a warning when the driver refuses native.
    #[default]
    NativeOrGeneric,
    /// Native only.
    Native,
    /// Generic only.
    Generic,
}

/// Counters summed over all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters([u64; abi::COUNTERS as usize]);

impl Counters {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    /// (name, value) for every counter, in ABI order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Counter::ALL.iter().map(|c| (c.name(), self.get(*c)))
    }
}

/// The demux program attached to one parent interface. Dropping it detaches the program.
///
/// Everything is done in the network namespace of the calling thread: create it on a
/// thread that has entered the parent's namespace.
pub struct Demux {
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
    ports: HashMap<MapData, PortKey, PortVal>,
    xsks: XskMap<MapData>,
    config: Array<MapData, Config>,
    counters: PerCpuArray<MapData, u64>,
    // Field order matters: the link is dropped (detached) before the program is unloaded.
    _link: XdpLink,
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Demux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demux")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Demux {
    /// Loads the program and attaches it to `ifname` through a BPF link, so the kernel
    /// detaches it when this process exits for any reason (a crashed daemon never leaves a
    /// program black-holing the parent). Fails without changing anything when the interface
    /// is missing, is a loopback or not Ethernet, or already has an XDP program.
    pub fn attach(ifname: &str, policy: ModePolicy) -> Result<Demux, DemuxError> {
        Demux::attach_traced(ifname, policy, false)
    }

    /// [`Demux::attach`], with `trace_hops`: the program stamps every frame it redirects with
    /// the time, in the XDP metadata (`mvdp daemon --trace-hops`).
    pub fn attach_traced(
        ifname: &str,
        policy: ModePolicy,
        trace_hops: bool,
    ) -> Result<Demux, DemuxError> {
        let ifindex = check_parent(ifname)?;
        let mut ebpf = crate::object::load(DEMUX_OBJECT, trace_hops)?;
        let prog: &mut Xdp = ebpf
            .program_mut("demux")
            .ok_or_else(|| DemuxError::Load("program `demux` missing from object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| DemuxError::Load(e.to_string()))?;
        prog.load()
            .map_err(|e| DemuxError::Load(verifier_detail(&e)))?;

        let (link_id, mode) = match policy {
            ModePolicy::Native => (
                attach_mode(prog, ifname, ifindex, XdpMode::Driver)?,
                AttachMode::Native,
            ),
            ModePolicy::Generic => (
                attach_mode(prog, ifname, ifindex, XdpMode::Skb)?,
                AttachMode::Generic,
            ),
            ModePolicy::NativeOrGeneric => {
                match attach_mode(prog, ifname, ifindex, XdpMode::Driver) {
                    Ok(id) => (id, AttachMode::Native),
                    Err(
                        e @ (DemuxError::AlreadyAttached { .. } | DemuxError::NoSuchInterface(_)),
                    ) => return Err(e),
                    Err(native_err) => {
                        tracing::warn!(
                            interface = ifname,
                            error = %native_err,
                            "native XDP refused; falling back to generic XDP (slower, and TCP over veth may break)"
                        );
                        (
                            attach_mode(prog, ifname, ifindex, XdpMode::Skb)?,
                            AttachMode::Generic,
                        )
                    }
                }
            }
        };
        let link = prog.take_link(link_id).map_err(|e| DemuxError::Attach {
            ifname: ifname.into(),
            detail: e.to_string(),
        })?;
        // aya falls back to a netlink attach when the kernel refuses BPF links; such an
        // attachment outlives this process, which mvdp never accepts. Its Debug output is
        // the only public way to tell the two link kinds apart.
        if format!("{link:?}").contains("NlLink") {
            drop(link);
            return Err(DemuxError::Attach {
                ifname: ifname.into(),
                detail: "the kernel refused a BPF link for XDP (needs Linux >= 5.9); \
                         refusing a netlink attachment that would survive a crash"
                    .into(),
            });
        }

        let ports = take_map(&mut ebpf, "ports")?;
        let xsks = take_map(&mut ebpf, "xsks")?;
        let config = take_map(&mut ebpf, "config")?;
        let counters = take_map(&mut ebpf, "counters")?;
        Ok(Demux {
            ifname: ifname.into(),
            ifindex,
            mode,
            ports,
            xsks,
            config,
            counters,
            _link: link,
            _ebpf: ebpf,
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Frames for (`vlan`, `mac`) go to the sockets registered for `slot`. With
    /// `reflect_to_self` (private, passthru and source ports), a broadcast or multicast frame
    /// the wire reflects back with this port's MAC as source returns to this port alone.
    pub fn insert_port(
        &mut self,
        vlan: u16,
        mac: [u8; 6],
        slot: u32,
        reflect_to_self: bool,
    ) -> Result<(), DemuxError> {
        check_vlan(vlan)?;
        check_slot(slot)?;
        let flags = if reflect_to_self {
            abi::PORT_F_REFLECT_TO_SELF
        } else {
            0
        };
        self.ports
            .insert(PortKey { mac, vlan }, PortVal { slot, flags }, 0)
            .map_err(|e| DemuxError::Map {
                map: "ports",
                detail: e.to_string(),
            })
    }

    /// Frames for (`vlan`, `mac`) go to the host again.
    pub fn remove_port(&mut self, vlan: u16, mac: [u8; 6]) -> Result<(), DemuxError> {
        self.ports
            .remove(&PortKey { mac, vlan })
            .map_err(|e| DemuxError::Map {
                map: "ports",
                detail: e.to_string(),
            })
    }

    /// The AF_XDP socket `fd` (bound to this parent's rx `queue`) receives `slot`'s frames
    /// arriving on that queue.
    pub fn set_socket(
        &mut self,
        slot: u32,
        queue: u32,
        fd: impl AsRawFd,
    ) -> Result<(), DemuxError> {
        let index = xsk_index(slot, queue)?;
        self.xsks.set(index, fd, 0).map_err(|e| DemuxError::Map {
            map: "xsks",
            detail: e.to_string(),
        })
    }

    pub fn clear_socket(&mut self, slot: u32, queue: u32) -> Result<(), DemuxError> {
        let index = xsk_index(slot, queue)?;
        self.xsks.unset(index).map_err(|e| DemuxError::Map {
            map: "xsks",
            detail: e.to_string(),
        })
    }

    /// `Some((slot, vlan))`: every unicast frame of `vlan` goes to `slot` (macvlan passthru).
    pub fn set_passthru(&mut self, passthru: Option<(u32, u16)>) -> Result<(), DemuxError> {
        let cfg = match passthru {
            Some((slot, vlan)) => {
                check_slot(slot)?;
                check_vlan(vlan)?;
                Config {
                    flags: abi::CFG_PASSTHRU,
                    passthru_slot: slot,
                    passthru_vlan: vlan,
                    ..Config::default()
                }
            }
            None => Config::default(),
        };
        self.config.set(0, cfg, 0).map_err(|e| DemuxError::Map {
            map: "config",
            detail: e.to_string(),
        })
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, DemuxError> {
        let mut out = Counters::default();
        for c in Counter::ALL {
            let per_cpu = self
                .counters
                .get(&(c as u32), 0)
                .map_err(|e| DemuxError::Map {
                    map: "counters",
                    detail: e.to_string(),
                })?;
            out.0[c as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

pub(crate) fn attach_mode(
    prog: &mut Xdp,
    ifname: &str,
    ifindex: u32,
    mode: XdpMode,
) -> Result<aya::programs::xdp::XdpLinkId, DemuxError> {
    prog.attach_to_if_index(ifindex, mode).map_err(|e| {
        let errno = match &e {
            aya::programs::ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
            _ => None,
        };
        match errno {
            Some(libc::EBUSY) | Some(libc::EEXIST) => DemuxError::AlreadyAttached {
                ifname: ifname.into(),
            },
            Some(libc::ENODEV) => DemuxError::NoSuchInterface(ifname.into()),
            _ => DemuxError::Attach {
                ifname: ifname.into(),
                detail: error_chain(&e),
            },
        }
    })
}

/// The interface must exist in this thread's namespace, be Ethernet-like and not loopback.
fn check_parent(ifname: &str) -> Result<u32, DemuxError> {
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|_| DemuxError::NoSuchInterface(ifname.into()))?;
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| DemuxError::Attach {
        ifname: ifname.into(),
        detail: format!("listing interfaces: {e}"),
    })?;
    let mut is_ether = false;
    for a in addrs.filter(|a| a.interface_name == ifname) {
        if a.flags.contains(InterfaceFlags::IFF_LOOPBACK) {
            return Err(DemuxError::NotEthernet {
                ifname: ifname.into(),
                why: "it is a loopback device",
            });
        }
        if let Some(link) = a.address.as_ref().and_then(|s| s.as_link_addr()) {
            is_ether |= link.hatype() == libc::ARPHRD_ETHER && link.addr().is_some();
        }
    }
    if !is_ether {
        return Err(DemuxError::NotEthernet {
            ifname: ifname.into(),
            why: "it has no Ethernet address",
        });
    }
    Ok(ifindex)
}

pub(crate) fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DemuxError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| DemuxError::Load(format!("map `{name}` missing from object")))?;
    T::try_from(map).map_err(|e| DemuxError::Map {
        map: name,
        detail: e.to_string(),
    })
}

fn xsk_index(slot: u32, queue: u32) -> Result<u32, DemuxError> {
    check_slot(slot)?;
    if queue >= abi::MAX_QUEUES {
        return Err(DemuxError::OutOfRange {
            what: "rx queue",
            value: queue,
            max: abi::MAX_QUEUES - 1,
        });
    }
    Ok(slot * abi::MAX_QUEUES + queue)
}

pub(crate) fn check_slot(slot: u32) -> Result<(), DemuxError> {
    if slot >= abi::MAX_SLOTS {
        return Err(DemuxError::OutOfRange {
            what: "port slot",
            value: slot,
            max: abi::MAX_SLOTS - 1,
        });
    }
    Ok(())
}

fn check_vlan(vlan: u16) -> Result<(), DemuxError> {
    if vlan > 4094 {
        return Err(DemuxError::OutOfRange {
            what: "VLAN id",
            value: vlan.into(),
            max: 4094,
        });
    }
    Ok(())
}

pub(crate) fn verifier_detail(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            format!("the kernel refused the program: {io_error}\n{verifier_log}")
        }
        other => error_chain(other),
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
