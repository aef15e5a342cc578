//! The real forwarding plane: XDP demux on each parent, one shared UMEM, AF_XDP sockets on the
//! parents' queues and the ports' veths, and the switch workers. Implements
//! [`mvdp_switch::plane::Dataplane`] for the daemon.
//!
//! Everything happens in the calling thread's network namespace (the daemon's).
//! Order of operations is chosen so a frame never meets half-made state: a port's socket is
//! handed to its worker and published before any XDP program sends it frames, and on removal the
//! programs stop sending before the socket goes.

mod tap;

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::engine::{
    AddDeviceError, DevRef, DeviceStats, Engine, EngineConfig, FillBudget, FramePromises,
    FramesExhausted, HopCounters, Keepsake, Snapshot, MAX_DEVICES_PER_WORKER,
};
use crate::xsk::{SocketConfig, XskSocket};
use mvdp_ebpf::{Demux, FloodTap, ModePolicy, PortRedirect};
use mvdp_switch::plane::{
    Capacity, Dataplane, DataplaneError, DataplaneStats, ParentHandle, ParentStats, PortConfig,
    PortHandle, PortStats, XskCounters,
};
use mvdp_switch::{
    DropReason, FloodRate, Ingress, Mac, McFilter, Mode, NetworkSpec, ParentId, PortSpec,
    TablesBuilder,
};

pub use crate::engine::{PollMode, PollSwitch};

/// UMEM frame sizes the runtime can use. 2 KiB halves the UMEM's memory and fits a 1,500-byte
/// MTU; 4 KiB carries MTUs up to 3,790.
pub const FRAME_SIZES: [u32; 2] = [2048, 4096];

/// Largest MTU a port (and its parent) may have with `frame_size` frames: what the kernel copies
/// into a frame is the frame less its XDP headroom (256 B); an Ethernet header and an 802.1Q tag
/// ride on top of the MTU, and 32 bytes stay free for XDP metadata.
pub const fn max_mtu(frame_size: u32) -> u32 {
    frame_size - crate::xsk::XDP_PACKET_HEADROOM - 14 - 4 - 32
}

/// Chunks a parent queue's fill ring keeps when idle, and the most it grows to under load.
const PARENT_FILL: FillBudget = FillBudget {
    min: 512,
    max: 4096,
};
/// A port's: an idle port holds a few frames' worth, so a thousand idle ports take half the
/// default UMEM; a port under load grows towards the most its fill ring holds (the engine's
/// adaptive fill), from frames nobody else needs.
pub const PORT_FILL: FillBudget = FillBudget { min: 8, max: 2048 };

// Checked at compile time: a fill target beyond its fill ring could never be reached, and a
// burst a port's full fill ring takes in must fit on its RX ring, or it is dropped there instead.
const _: () = {
    assert!(PORT_FILL.min < PORT_FILL.max && PARENT_FILL.min < PARENT_FILL.max);
    assert!(PORT_FILL.max <= SocketConfig::PORT.fill_size);
    assert!(PORT_FILL.max <= SocketConfig::PORT.rx_size);
    assert!(PARENT_FILL.max <= SocketConfig::PARENT.fill_size);
};
/// Most rx queues of a parent the switch serves (the XSKMAP's width).
const MAX_QUEUES: u32 = mvdp_ebpf::abi::MAX_QUEUES;

#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Worker threads; ports are sharded across them.
    pub workers: usize,
    pub poll: PollMode,
    pub xdp_mode: ModePolicy,
    /// UMEM frames shared by every socket.
    pub frames: u32,
    /// Bytes per UMEM frame, one of FRAME_SIZES; bounds the MTU (`max_mtu`).
    pub frame_size: u32,
    /// Descriptors handled per ring per turn.
    pub batch: usize,
    /// Adaptive poll: how long a worker keeps spinning after its last frame before it sleeps.
    pub spin: std::time::Duration,
    /// CPUs the workers are pinned to, worker i to the i-th (round robin); empty: not pinned.
    pub cpus: Vec<usize>,
    /// Each port's cap on broadcasts/multicasts per second, on top of its share per turn.
    pub flood_rate: FloodRate,
    /// Hop tracing: the XDP programs stamp frames and one batch in this many is followed
    /// through the worker (0: off, and the programs carry no stamping at all).
    pub trace_hops: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            workers: 1,
            poll: PollMode::Adaptive,
            xdp_mode: ModePolicy::NativeOrGeneric,
            frames: 16384,
            frame_size: 2048,
            batch: 64,
            spin: EngineConfig::default().spin,
            cpus: Vec::new(),
            flood_rate: FloodRate::DEFAULT,
            trace_hops: 0,
        }
    }
}

struct ParentState {
    ifname: String,
    demux: Demux,
    /// Per rx queue: the device and its socket's fd (for the demux's XSKMAP).
    queues: Vec<(DevRef, RawFd, Arc<DeviceStats>)>,
    tap_worker: u16,
}

struct PortState {
    cfg: PortConfig,
    dev: DevRef,
    /// Its socket's fd, valid while the device is registered (for XDP_STATISTICS).
    fd: RawFd,
    ifindex: u32,
    up: bool,
    /// The groups its container listens to.
    multicast: McFilter,
    /// Its demux entries are in place (so removing them cannot disturb another port's).
    programmed: bool,
    stats: Arc<DeviceStats>,
}

pub struct Runtime {
    opts: RuntimeOptions,
    engine: Engine,
    redirect: Option<PortRedirect>,
    parents: BTreeMap<u16, ParentState>,
    ports: BTreeMap<u32, PortState>,
}

impl Runtime {
    /// Ports served and how many more fit: each needs a demux slot and its fill floor.
    pub fn capacity(&self) -> Capacity {
        let p = self.engine.promises();
        let ports = self.ports.len() as u64;
        let by_frames = p.more_devices(PORT_FILL.min);
        let by_slots = u64::from(mvdp_ebpf::abi::MAX_SLOTS).saturating_sub(ports);
        let limited_by = if by_frames <= by_slots {
            "UMEM frames (mvdp daemon --frames)"
        } else {
            "port slots in the XDP demux (a build-time limit)"
        };
        Capacity {
            ports,
            max_ports: ports + by_frames.min(by_slots),
            limited_by: limited_by.into(),
            frames_promised: p.promised,
            frames_reserve: p.reserve,
        }
    }
}

impl Runtime {
    /// Every check a new port must pass before anything is made for it; its veth's ifindex and
    /// the demux slot it gets.
    fn admit_port(&self, cfg: &PortConfig) -> Result<(u32, u32), DataplaneError> {
        self.parent(cfg.parent)?;
        if cfg.vlan > 4094 {
            return Err(DataplaneError::VlanOutOfRange(cfg.vlan));
        }
        if !cfg.mac.is_valid_unicast() {
            return Err(DataplaneError::NotUnicast(cfg.mac));
        }
        if let Some(other) = self
            .ports
            .values()
            .find(|p| p.cfg.parent == cfg.parent && p.cfg.vlan == cfg.vlan && p.cfg.mac == cfg.mac)
        {
            return Err(DataplaneError::MacInUse {
                mac: cfg.mac,
                port: other.cfg.veth_ifname.clone(),
            });
        }
        let ifindex = nix::net::if_::if_nametoindex(cfg.veth_ifname.as_str())
            .map_err(|_| DataplaneError::NoSuchInterface(cfg.veth_ifname.clone()))?;
        let slot = self.free_slot()?;
        self.check_with(cfg)?;
        check_room(
            self.engine.promises(),
            format!("port {}", cfg.veth_ifname),
            1,
            PORT_FILL.min,
        )?;
        Ok((ifindex, slot))
    }
}

/// Pins worker i to `cpus[i % cpus.len()]` (a dedicated core for a busy-polling worker, kept
/// apart from the load, as OVS pins its PMD threads).
fn pin_workers(engine: &Engine, cpus: &[usize]) -> std::io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    for (i, tid) in engine.worker_tids().into_iter().enumerate() {
        let cpu = cpus[i % cpus.len()];
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu)
            .and_then(|_| {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid as i32), &set)
            })
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("pinning worker {i} to CPU {cpu}: {e}"),
                )
            })?;
        tracing::info!(worker = i, cpu, "worker pinned");
    }
    Ok(())
}

/// The refusal for a socket the UMEM cannot stock.
fn umem_full(what: impl Into<String>, e: FramesExhausted) -> DataplaneError {
    let p = e.promises;
    DataplaneError::UmemFull {
        what: what.into(),
        total: p.total,
        promised: p.promised,
        sockets: p.devices,
        reserve: p.reserve,
        needed: e.needed,
    }
}

fn device_error(what: String, e: AddDeviceError) -> DataplaneError {
    match e {
        AddDeviceError::Frames(f) => umem_full(what, f),
        AddDeviceError::Io(e) => DataplaneError::system(format!("handing {what} to a worker"), e),
    }
}

/// Refuses, before anything is made, `sockets` more sockets of fill floor `min`.
fn check_room(
    p: FramePromises,
    what: impl Into<String>,
    sockets: u32,
    min: u32,
) -> Result<(), DataplaneError> {
    let needed = u64::from(sockets) * u64::from(min);
    if p.room() < needed {
        return Err(umem_full(
            what,
            FramesExhausted {
                promises: p,
                needed,
            },
        ));
    }
    Ok(())
}

fn reflects_to_self(mode: Mode) -> bool {
    matches!(mode, Mode::Private | Mode::Passthru | Mode::Source)
}

impl Runtime {
    /// Maps the UMEM and starts the workers. Needs root (CAP_NET_ADMIN, CAP_BPF).
    pub fn new(opts: RuntimeOptions) -> std::io::Result<Runtime> {
        let engine = Engine::new(EngineConfig {
            workers: opts.workers,
            poll: opts.poll,
            frames: opts.frames,
            frame_size: opts.frame_size,
            batch: opts.batch,
            spin: opts.spin,
            flood_rate: opts.flood_rate,
            trace_hops: opts.trace_hops,
        })
        .map_err(|e| std::io::Error::new(e.kind(), format!("starting the AF_XDP engine: {e}")))?;
        pin_workers(&engine, &opts.cpus)?;
        Ok(Runtime {
            opts,
            engine,
            redirect: None,
            parents: BTreeMap::new(),
            ports: BTreeMap::new(),
        })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.opts
    }

    /// The largest MTU this runtime's frames carry (see `max_mtu`).
    pub fn max_mtu(&self) -> u32 {
        max_mtu(self.engine.umem().frame_size())
    }

    /// Switches the workers between busy and adaptive polling while they run.
    pub fn poll_switch(&self) -> PollSwitch {
        self.engine.poll_switch()
    }

    /// Kernel thread ids of the switch's worker threads (for CPU accounting).
    pub fn worker_tids(&self) -> Vec<u32> {
        self.engine.worker_tids()
    }

    /// Rebuilds the forwarding tables from the ports and hands them to the workers.
    fn publish(&mut self) -> Result<(), DataplaneError> {
        let mut b = TablesBuilder::new();
        let mut networks = BTreeMap::new();
        let mut port_dev = Vec::new();
        let mut port_ids = BTreeMap::new();
        for (slot, p) in &self.ports {
            let key = (p.cfg.parent.0, p.cfg.vlan, p.cfg.mode as u8);
            let net = *networks.entry(key).or_insert_with(|| {
                b.add_network(NetworkSpec::new(
                    ParentId(p.cfg.parent.0),
                    p.cfg.vlan,
                    p.cfg.mode,
                ))
            });
            let mut spec = PortSpec::new(net, p.cfg.mac);
            spec.up = p.up;
            spec.multicast = p.multicast;
            let id = b.add_port(spec);
            port_ids.insert(*slot, id);
            port_dev.push(p.dev);
        }
        let tables = b.build()?;
        let max_parent = self.parents.keys().max().map_or(0, |m| *m as usize + 1);
        let mut parent_tx = vec![None; max_parent];
        let mut ingress = vec![Vec::new(); self.engine.workers()];
        let mut set = |dev: DevRef, ing: Ingress| {
            let rows: &mut Vec<Option<Ingress>> = &mut ingress[dev.worker as usize];
            let i = dev.index as usize;
            if rows.len() <= i {
                rows.resize((i + 1).min(MAX_DEVICES_PER_WORKER), None);
            }
            if let Some(r) = rows.get_mut(i) {
                *r = Some(ing);
            }
        };
        for (id, p) in &self.parents {
            parent_tx[*id as usize] = p.queues.first().map(|q| q.0);
            for (dev, _, _) in &p.queues {
                set(*dev, Ingress::Wire(ParentId(*id)));
            }
        }
        for (slot, p) in &self.ports {
            set(p.dev, Ingress::Port(port_ids[slot]));
        }
        self.engine
            .publish(Snapshot {
                tables,
                port_dev,
                parent_tx,
                ingress,
            })
            .map_err(|e| DataplaneError::system("handing new tables to the workers", e))
    }

    fn parent(&self, h: ParentHandle) -> Result<&ParentState, DataplaneError> {
        self.parents
            .get(&h.0)
            .ok_or(DataplaneError::UnknownParent(h))
    }

    fn remove_devices(&mut self, devs: &[DevRef]) {
        for d in devs {
            if let Err(e) = self.engine.remove_device(*d, None) {
                tracing::error!(error = %e, "removing a device from its worker");
            }
        }
    }

    fn rx_queues(ifname: &str) -> u32 {
        let n = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count() as u32
            })
            .unwrap_or(1);
        n.clamp(1, MAX_QUEUES)
    }

    /// Lowest free port slot.
    fn free_slot(&self) -> Result<u32, DataplaneError> {
        (0..mvdp_ebpf::abi::MAX_SLOTS)
            .find(|s| !self.ports.contains_key(s))
            .ok_or(DataplaneError::Capacity {
                what: "port slots in the XDP demux",
                limit: u64::from(mvdp_ebpf::abi::MAX_SLOTS),
            })
    }

    /// Whether the ports plus `extra` make valid tables (duplicate MACs, passthru alone, ...).
    fn check_with(&self, extra: &PortConfig) -> Result<(), DataplaneError> {
        let mut b = TablesBuilder::new();
        let mut networks = BTreeMap::new();
        for cfg in self.ports.values().map(|p| &p.cfg).chain([extra]) {
            let key = (cfg.parent.0, cfg.vlan, cfg.mode as u8);
            let net = *networks.entry(key).or_insert_with(|| {
                b.add_network(NetworkSpec::new(ParentId(cfg.parent.0), cfg.vlan, cfg.mode))
            });
            b.add_port(PortSpec::new(net, cfg.mac));
        }
        b.build()?;
        Ok(())
    }

    /// Whether the port's MAC belongs in the demux: up, or passthru (which owns the wire even down).
    fn hashed(&self, slot: u32) -> bool {
        self.ports
            .get(&slot)
            .is_some_and(|p| p.up || p.cfg.mode == Mode::Passthru)
    }

    /// The demux entries of one port on its parent.
    fn program_demux(&mut self, slot: u32) -> Result<(), DataplaneError> {
        let p = self.ports.get_mut(&slot).expect("caller checked");
        p.programmed = true;
        let cfg = p.cfg.clone();
        let parent = self
            .parents
            .get_mut(&cfg.parent.0)
            .ok_or(DataplaneError::UnknownParent(cfg.parent))?;
        for (q, (_, fd, _)) in parent.queues.iter().enumerate() {
            parent
                .demux
                .set_socket(slot, q as u32, *fd)
                .map_err(|e| DataplaneError::system("pointing the demux at a port's socket", e))?;
        }
        parent
            .demux
            .insert_port(cfg.vlan, cfg.mac.0, slot, reflects_to_self(cfg.mode))
            .map_err(|e| DataplaneError::system("adding a port's MAC to the demux", e))?;
        if cfg.mode == Mode::Passthru {
            parent
                .demux
                .set_passthru(Some((slot, cfg.vlan)))
                .map_err(|e| DataplaneError::system("setting the demux to passthru", e))?;
        }
        Ok(())
    }

    fn unprogram_demux(&mut self, slot: u32) {
        let Some(p) = self.ports.get_mut(&slot).filter(|p| p.programmed) else {
            return;
        };
        p.programmed = false;
        let cfg = p.cfg.clone();
        if let Some(parent) = self.parents.get_mut(&cfg.parent.0) {
            let _ = parent.demux.remove_port(cfg.vlan, cfg.mac.0);
            if cfg.mode == Mode::Passthru {
                let _ = parent.demux.set_passthru(None);
            }
            for q in 0..parent.queues.len() {
                let _ = parent.demux.clear_socket(slot, q as u32);
            }
        }
    }
}

impl Dataplane for Runtime {
    fn attach_parent(&mut self, ifname: &str) -> Result<ParentHandle, DataplaneError> {
        if self.parents.values().any(|p| p.ifname == ifname) {
            return Err(DataplaneError::AlreadyAttached(ifname.into()));
        }
        let id = (0..u16::MAX)
            .find(|i| !self.parents.contains_key(i))
            .ok_or(DataplaneError::Capacity {
                what: "parents",
                limit: u64::from(u16::MAX),
            })?;
        let traced = self.opts.trace_hops > 0;
        let demux =
            Demux::attach_traced(ifname, self.opts.xdp_mode, traced).map_err(|e| match e {
                mvdp_ebpf::DemuxError::NoSuchInterface(n) => DataplaneError::NoSuchInterface(n),
                other => {
                    DataplaneError::system(format!("attaching the XDP demux to {ifname}"), other)
                }
            })?;
        let tap = FloodTap::open(ifname)
            .map_err(|e| DataplaneError::system(format!("opening the flood tap on {ifname}"), e))?;
        tap.hold_promisc()
            .map_err(|e| DataplaneError::system(format!("making {ifname} promiscuous"), e))?;
        let rx_queues = Self::rx_queues(ifname);
        check_room(
            self.engine.promises(),
            format!("parent {ifname}"),
            rx_queues,
            PARENT_FILL.min,
        )?;
        let mut queues = Vec::new();
        for q in 0..rx_queues {
            let sock = match XskSocket::new(self.engine.umem(), ifname, q, SocketConfig::PARENT) {
                Ok(s) => s,
                Err(e) => {
                    let devs: Vec<_> = queues.iter().map(|(d, _, _)| *d).collect();
                    self.remove_devices(&devs);
                    return Err(DataplaneError::system(
                        format!("binding an AF_XDP socket to {ifname} queue {q}"),
                        e,
                    ));
                }
            };
            let fd = sock.fd();
            let worker = self.engine.worker_for(q);
            match self.engine.add_device(worker, sock, PARENT_FILL) {
                Ok((dev, stats)) => queues.push((dev, fd, stats)),
                Err(e) => {
                    let devs: Vec<_> = queues.iter().map(|(d, _, _)| *d).collect();
                    self.remove_devices(&devs);
                    return Err(device_error(format!("{ifname} queue {q}"), e));
                }
            }
        }
        let tap_worker = queues[0].0.worker;
        if let Err(e) =
            self.engine
                .add_flood_source(tap_worker, ParentId(id), Box::new(tap::Tap(tap)))
        {
            let devs: Vec<_> = queues.iter().map(|(d, _, _)| *d).collect();
            self.remove_devices(&devs);
            return Err(DataplaneError::system(
                format!("handing {ifname}'s flood tap to a worker"),
                e,
            ));
        }
        tracing::info!(
            parent = ifname,
            xdp = demux.mode().as_str(),
            queues = queues.len(),
            "attached"
        );
        self.parents.insert(
            id,
            ParentState {
                ifname: ifname.into(),
                demux,
                queues,
                tap_worker,
            },
        );
        self.publish()?;
        Ok(ParentHandle(id))
    }

    fn detach_parent(&mut self, parent: ParentHandle) -> Result<(), DataplaneError> {
        self.parent(parent)?;
        if self.ports.values().any(|p| p.cfg.parent == parent) {
            return Err(DataplaneError::ParentHasPorts);
        }
        let p = self.parents.remove(&parent.0).expect("checked above");
        // The demux goes first (link dropped): frames stop arriving in the sockets.
        drop(p.demux);
        let _ = self
            .engine
            .remove_flood_source(p.tap_worker, ParentId(parent.0));
        self.publish()?;
        let devs: Vec<_> = p.queues.iter().map(|(d, _, _)| *d).collect();
        self.remove_devices(&devs);
        // Attaching the parent again binds its queues again, which the kernel refuses while the
        // old sockets are still bound: wait for them here (a parent detach is rare).
        self.engine.settle();
        tracing::info!(parent = p.ifname, "detached");
        Ok(())
    }

    fn add_port(&mut self, cfg: &PortConfig) -> Result<PortHandle, DataplaneError> {
        let (ifindex, slot) = self.admit_port(cfg)?;
        let sock = XskSocket::new(self.engine.umem(), &cfg.veth_ifname, 0, SocketConfig::PORT)
            .map_err(|e| {
                DataplaneError::system(
                    format!("binding an AF_XDP socket to {}", cfg.veth_ifname),
                    e,
                )
            })?;
        let fd = sock.fd();
        let worker = self.engine.worker_for(slot);
        let (dev, stats) = self
            .engine
            .add_device(worker, sock, PORT_FILL)
            .map_err(|e| device_error(cfg.veth_ifname.clone(), e))?;
        self.ports.insert(
            slot,
            PortState {
                cfg: cfg.clone(),
                dev,
                fd,
                ifindex,
                up: true,
                multicast: McFilter::ALL,
                programmed: false,
                stats,
            },
        );
        let undo = |rt: &mut Runtime, e: DataplaneError| {
            rt.unprogram_demux(slot);
            if let Some(r) = rt.redirect.as_mut() {
                r.detach(ifindex);
            }
            rt.ports.remove(&slot);
            let _ = rt.publish();
            rt.remove_devices(&[dev]);
            Err(e)
        };
        if let Err(e) = self.publish() {
            return undo(self, e);
        }
        if self.redirect.is_none() {
            let rate = self.opts.flood_rate;
            let loaded = PortRedirect::load_traced(self.opts.trace_hops > 0).and_then(|mut r| {
                r.set_flood_cap(u64::from(rate.pps), u64::from(rate.burst))?;
                Ok(r)
            });
            match loaded {
                Ok(r) => self.redirect = Some(r),
                Err(e) => {
                    return undo(
                        self,
                        DataplaneError::system("loading the ports' XDP program", e),
                    )
                }
            }
        }
        let attached = self.redirect.as_mut().expect("loaded above").attach(
            &cfg.veth_ifname,
            slot,
            fd,
            cfg.mode != Mode::Passthru,
        );
        if let Err(e) = attached {
            let op = format!("attaching the port program to {}", cfg.veth_ifname);
            return undo(self, DataplaneError::system(op, e));
        }
        if let Err(e) = self.program_demux(slot) {
            return undo(self, e);
        }
        tracing::info!(port = cfg.veth_ifname, slot, mac = %cfg.mac, vlan = cfg.vlan, mode = cfg.mode.name(), "port added");
        Ok(PortHandle(slot))
    }

    fn remove_port(&mut self, port: PortHandle) -> Result<(), DataplaneError> {
        let slot = port.0;
        let Some(p) = self.ports.get(&slot) else {
            return Err(DataplaneError::UnknownPort(port));
        };
        let (ifindex, dev) = (p.ifindex, p.dev);
        self.unprogram_demux(slot);
        // The veth's XDP program stays attached until the socket is closed, dropping what
        // arrives meanwhile (its slot is gone); detaching waits for the kernel, off this thread.
        let link = self.redirect.as_mut().and_then(|r| r.detach(ifindex));
        let p = self.ports.remove(&slot).expect("checked above");
        self.publish()?;
        let keep = link.map(|l| Box::new(l) as Keepsake);
        if let Err(e) = self.engine.remove_device(dev, keep) {
            tracing::error!(error = %e, "removing a device from its worker");
        }
        tracing::info!(port = p.cfg.veth_ifname, slot, "port removed");
        Ok(())
    }

    fn set_port_up(&mut self, port: PortHandle, up: bool) -> Result<(), DataplaneError> {
        let p = self
            .ports
            .get_mut(&port.0)
            .ok_or(DataplaneError::UnknownPort(port))?;
        if p.up != up {
            p.up = up;
            self.publish()?;
            // The kernel unhashes a down macvlan: frames for its MAC go to the host stack again,
            // which only the demux can do (XDP_PASS). A down passthru port still owns all
            // unicast and drops it.
            if self.hashed(port.0) {
                self.program_demux(port.0)?;
            } else {
                self.unprogram_demux(port.0);
            }
        }
        Ok(())
    }

    fn set_ports_multicast(
        &mut self,
        ports: &[(PortHandle, McFilter)],
    ) -> Result<(), DataplaneError> {
        // All or nothing: an unknown port refuses the whole call before anything changes.
        if let Some((h, _)) = ports.iter().find(|(h, _)| !self.ports.contains_key(&h.0)) {
            return Err(DataplaneError::UnknownPort(*h));
        }
        let mut changed = false;
        for (h, f) in ports {
            let p = self.ports.get_mut(&h.0).expect("checked above");
            changed |= p.multicast != *f;
            p.multicast = *f;
        }
        if changed {
            self.publish()?;
        }
        Ok(())
    }

    fn set_port_mac(&mut self, port: PortHandle, mac: Mac) -> Result<(), DataplaneError> {
        if !mac.is_valid_unicast() {
            return Err(DataplaneError::NotUnicast(mac));
        }
        let slot = port.0;
        let old = self
            .ports
            .get(&slot)
            .ok_or(DataplaneError::UnknownPort(port))?
            .cfg
            .mac;
        self.unprogram_demux(slot);
        self.ports.get_mut(&slot).expect("checked").cfg.mac = mac;
        let hashed = self.hashed(slot);
        let res = self.publish().and_then(|_| {
            if hashed {
                self.program_demux(slot)
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            self.unprogram_demux(slot);
            self.ports.get_mut(&slot).expect("checked").cfg.mac = old;
            let _ = self.publish();
            if hashed {
                let _ = self.program_demux(slot);
            }
            return Err(e);
        }
        Ok(())
    }

    fn stats(&self) -> DataplaneStats {
        let mut out = DataplaneStats {
            workers: self.engine.workers(),
            poll_mode: self.engine.poll_switch().get().name().into(),
            flood_rate: Some(self.opts.flood_rate),
            ..Default::default()
        };
        for p in self.parents.values() {
            let mut ps = ParentStats {
                xdp_mode: p.demux.mode().as_str().into(),
                rx_queues: p.queues.len() as u32,
                ..Default::default()
            };
            if let Ok(c) = p.demux.counters() {
                ps.xdp = c.iter().map(|(k, v)| (k.to_string(), v)).collect();
            }
            for (_, fd, s) in &p.queues {
                let c = s.read();
                ps.rx_frames += c.rx_frames;
                ps.tx_frames += c.tx_frames;
                add_xsk(&mut ps.xsk, *fd);
            }
            out.parents.insert(p.ifname.clone(), ps);
        }
        let workers = self.engine.worker_stats();
        for (name, parent_tapped) in self.parents.values().map(|p| {
            let tapped = workers
                .get(p.tap_worker as usize)
                .map_or(0, |w| w.tapped.load(std::sync::atomic::Ordering::Relaxed));
            (p.ifname.clone(), tapped)
        }) {
            if let Some(ps) = out.parents.get_mut(&name) {
                ps.flood_frames = parent_tapped;
            }
        }
        let mut capped = 0;
        for (slot, p) in &self.ports {
            let mut c = p.stats.read();
            // What the port program dropped over the flood cap never reached a worker.
            let early = self
                .redirect
                .as_ref()
                .map_or(0, |r| r.flood_cap_dropped(*slot));
            c.flood_dropped += early;
            capped += early;
            out.ports.insert(
                *slot,
                PortStats {
                    traffic: c,
                    xsk: {
                        let mut x = XskCounters::default();
                        add_xsk(&mut x, p.fd);
                        x
                    },
                },
            );
        }
        for r in DropReason::ALL {
            let n: u64 = workers
                .iter()
                .map(|w| w.drops[r.index()].load(std::sync::atomic::Ordering::Relaxed))
                .sum();
            out.drops.insert(r.name().into(), n);
        }
        *out.drops
            .entry(DropReason::FloodRate.name().into())
            .or_default() += capped;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let no_chunk = workers.iter().map(|w| ld(&w.no_chunk)).sum();
        let handoff_full = workers.iter().map(|w| ld(&w.handoff_full)).sum();
        out.drops.insert("no_free_frame".into(), no_chunk);
        out.drops.insert("handoff_full".into(), handoff_full);
        out.late_turns = workers.iter().map(|w| ld(&w.late_turns)).sum();
        out.unwatched = workers.iter().map(|w| ld(&w.unwatched)).sum();
        out.longest_turn_us = workers
            .iter()
            .map(|w| ld(&w.longest_turn_us))
            .max()
            .unwrap_or(0);
        out.umem = self.engine.accounting();
        out.capacity = self.capacity();
        out.hops = HopCounters::stats(workers.iter().map(|w| &w.hops), self.opts.trace_hops);
        out
    }
}

fn add_xsk(into: &mut XskCounters, fd: RawFd) {
    if let Ok(st) = crate::xsk::xsk_statistics(fd) {
        into.rx_dropped += st.rx_dropped;
        into.rx_ring_full += st.rx_ring_full;
        into.fill_ring_empty += st.rx_fill_ring_empty;
        into.tx_invalid += st.tx_invalid_descs;
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Programs first, so nothing is redirected into sockets that are going away.
        let slots: Vec<u32> = self.ports.keys().copied().collect();
        for s in slots {
            let _ = self.remove_port(PortHandle(s));
        }
        let parents: Vec<u16> = self.parents.keys().copied().collect();
        for p in parents {
            let _ = self.detach_parent(ParentHandle(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mtu_limit_follows_the_frame_size() {
        // A 1,500-byte MTU (the common parent) fits 2 KiB frames with a tag pushed in place.
        assert!(max_mtu(2048) >= 1500);
        assert!(max_mtu(4096) > 3500);
        for fs in FRAME_SIZES {
            let frame = max_mtu(fs) + 14 + 4;
            assert!(frame + crate::xsk::XDP_PACKET_HEADROOM < fs, "{fs}");
        }
    }
}
