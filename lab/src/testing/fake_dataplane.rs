//! A recording fake [`Dataplane`]: the daemon's tests drive the real daemon on a real kernel and
//! check what it asked of the dataplane. Clones share the record and the settings.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use mvdp_switch::plane::{
    Dataplane, DataplaneError, DataplaneStats, ParentHandle, PortConfig, PortHandle,
};
use mvdp_switch::{Mac, McFilter};

/// One call the daemon made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Attach(String),
    Detach(u16),
    AddPort(PortConfig),
    RemovePort(u32),
    SetUp(u32, bool),
    SetMac(u32, [u8; 6]),
    SetMulticast(u32, McFilter),
}

/// Parents get handles 0, 1, ...; ports 100 + the same counter (so 101 for the first port after
/// one parent). Refuses ports while [`FakeDataplane::refuse_ports`] says so, and MACs it was told
/// are taken (as the runtime refuses a MAC another port of the network has).
#[derive(Clone, Default)]
pub struct FakeDataplane {
    calls: Arc<Mutex<Vec<Call>>>,
    refuse_ports: Arc<AtomicBool>,
    taken_macs: Arc<Mutex<Vec<[u8; 6]>>>,
    next: Arc<AtomicU32>,
}

impl FakeDataplane {
    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    /// The calls so far, forgetting them.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    /// Forgets the calls so far.
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear()
    }
    /// Refuse every `add_port` from now on (`true`), or accept them again.
    pub fn refuse_ports(&self, on: bool) {
        self.refuse_ports.store(on, Ordering::Relaxed);
    }
    /// Refuse `mac` in `set_port_mac` (the call is still recorded).
    pub fn refuse_mac(&self, mac: [u8; 6]) {
        self.taken_macs.lock().unwrap().push(mac);
    }
    fn rec(&self, c: Call) {
        self.calls.lock().unwrap().push(c)
    }
}

impl Dataplane for FakeDataplane {
    fn attach_parent(&mut self, ifname: &str) -> Result<ParentHandle, DataplaneError> {
        self.rec(Call::Attach(ifname.into()));
        Ok(ParentHandle(
            self.next.fetch_add(1, Ordering::Relaxed) as u16
        ))
    }
    fn detach_parent(&mut self, p: ParentHandle) -> Result<(), DataplaneError> {
        self.rec(Call::Detach(p.0));
        Ok(())
    }
    fn add_port(&mut self, port: &PortConfig) -> Result<PortHandle, DataplaneError> {
        if self.refuse_ports.load(Ordering::Relaxed) {
            return Err(DataplaneError::Refused("the fake refuses ports".into()));
        }
        self.rec(Call::AddPort(port.clone()));
        Ok(PortHandle(100 + self.next.fetch_add(1, Ordering::Relaxed)))
    }
    fn remove_port(&mut self, p: PortHandle) -> Result<(), DataplaneError> {
        self.rec(Call::RemovePort(p.0));
        Ok(())
    }
    fn set_port_up(&mut self, p: PortHandle, up: bool) -> Result<(), DataplaneError> {
        self.rec(Call::SetUp(p.0, up));
        Ok(())
    }
    fn set_port_mac(&mut self, p: PortHandle, m: Mac) -> Result<(), DataplaneError> {
        self.rec(Call::SetMac(p.0, m.0));
        if self.taken_macs.lock().unwrap().contains(&m.0) {
            return Err(DataplaneError::Refused("MAC in use".into()));
        }
        Ok(())
    }
    fn set_ports_multicast(
        &mut self,
        ports: &[(PortHandle, McFilter)],
    ) -> Result<(), DataplaneError> {
        for (p, f) in ports {
            self.rec(Call::SetMulticast(p.0, *f));
        }
        Ok(())
    }
    fn stats(&self) -> DataplaneStats {
        DataplaneStats::default()
    }
}
