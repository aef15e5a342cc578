//! The real forwarding plane: XDP demux on each parent, one shared UMEM, AF_XDP sockets on the
//! parents' queues and the ports' veths, and the switch workers. Implements
//! [`mvdp_control::dataplane::Dataplane`] for the daemon.

use mvdp_control::dataplane::{
    Dataplane, DataplaneError, DataplaneStats, ParentHandle, PortConfig, PortHandle,
};
use mvdp_dataplane::Mac;
use mvdp_ebpf::ModePolicy;

/// Largest MTU a port (and its parent) may have: one UMEM frame minus the kernel's XDP headroom, the
/// headroom kept for pushing an 802.1Q tag, and the Ethernet header and tag.
pub const MAX_MTU: u32 = 3500;

/// How workers wait for frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Spin on the rings: lowest latency, one core per worker always busy.
    BusyPoll,
    /// Spin briefly after traffic, then sleep in poll(2): an idle host burns no core.
    #[default]
    Adaptive,
}

#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Worker threads; ports are sharded across them.
    pub workers: usize,
    pub poll: PollMode,
    pub xdp_mode: ModePolicy,
    /// UMEM frames (4 KiB each) shared by every socket.
    pub frames: u32,
    /// Descriptors handled per ring per turn.
    pub batch: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            workers: 1,
            poll: PollMode::Adaptive,
            xdp_mode: ModePolicy::NativeOrGeneric,
            frames: 16384,
            batch: 64,
        }
    }
}

pub struct Runtime {
    opts: RuntimeOptions,
}

impl Runtime {
    pub fn new(opts: RuntimeOptions) -> anyhow::Result<Runtime> {
        Ok(Runtime { opts })
    }
}

fn not_yet() -> DataplaneError {
    DataplaneError::Failed("the AF_XDP runtime is not built yet".into())
}

impl Dataplane for Runtime {
    fn attach_parent(&mut self, _ifname: &str) -> Result<ParentHandle, DataplaneError> {
        Err(not_yet())
    }
    fn detach_parent(&mut self, _parent: ParentHandle) -> Result<(), DataplaneError> {
        Err(not_yet())
    }
    fn add_port(&mut self, _port: &PortConfig) -> Result<PortHandle, DataplaneError> {
        Err(not_yet())
    }
    fn remove_port(&mut self, _port: PortHandle) -> Result<(), DataplaneError> {
        Err(not_yet())
    }
    fn set_port_up(&mut self, _port: PortHandle, _up: bool) -> Result<(), DataplaneError> {
        Err(not_yet())
    }
    fn set_port_mac(&mut self, _port: PortHandle, _mac: Mac) -> Result<(), DataplaneError> {
        Err(not_yet())
    }
    fn stats(&self) -> DataplaneStats {
        DataplaneStats {
            workers: self.opts.workers,
            ..Default::default()
        }
    }
}
