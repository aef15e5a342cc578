//! What connects a lab's containers to the host's parent NIC: nothing, kernel macvlan, a Linux bridge,
//! mvdp, or (for `mvdp bench` only) mvdp busy-polling on its own core, Open vSwitch's userspace
//! datapath with AF_XDP ports, and the bare AF_XDP ceiling. The same lab shape with each backend is
//! what the benchmarks and the conformance suite compare; the one enum serves `mvdp lab up`,
//! `mvdp bench` (which adds its own view in `bench::topology`) and the lab records.

use std::fmt;
use std::str::FromStr;

use mvdp_control::error::{Error, Result};
use mvdp_switch::Mode;

/// How a lab's containers reach the parent NIC `eth1` of the (first) host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// Empty container namespaces (only `lo`): the caller attaches them itself.
    #[default]
    None,
    /// One kernel macvlan child of the parent per container, moved into the container as `eth0`.
    Macvlan(Mode),
    /// A Linux bridge in the host namespace holding the parent and one veth per container; the host's IP
    /// moves from the parent to the bridge.
    Bridge,
    /// mvdp ports (veths attached by the mvdp daemon). The lab cannot build these by itself: the daemon
    /// owns them.
    Mvdp(Mode),
    /// `mvdp bench`'s ceiling: a bare AF_XDP forwarder between two container veths (container <->
    /// container only). The bench starts it on a lab built with container veths.
    Ceiling,
    /// `mvdp bench`: mvdp in bridge mode with its worker busy-polling on a core of its own (the load
    /// elsewhere), the configuration OVS's PMD is compared with.
    MvdpBusy,
    /// `mvdp bench`: Open vSwitch's userspace (`netdev`) datapath, the parent and the container veths
    /// as `afxdp` ports of one bridge with the NORMAL action, polled by a PMD thread on its own core.
    OvsAfxdp,
    /// The same with `afxdp-nonpmd` ports: polled by vswitchd's main thread, no dedicated core.
    OvsAfxdpNonPmd,
    /// `mvdp bench`: mvdp in bridge mode as the `mvdp` backend runs it, with `--trace-hops`: its
    /// round trips are split per hop (latency cells only).
    MvdpTraced,
    /// `mvdp bench`: mvdp-busy (busy poll, worker on its own CPU) with `--trace-hops`.
    MvdpBusyTraced,
    /// `mvdp bench`: the ceiling with the same hop tracing (latency cells only).
    CeilingTraced,
    /// `mvdp bench`: mvdp in bridge mode with its worker on the load's CPU and no spin
    /// (`mvdp daemon --cpu <load CPU> --spin-us 0`): a crossing wakes no other CPU, but the worker
    /// shares that CPU with the senders and receivers.
    MvdpColocated,
}

impl Backend {
    /// The macvlan mode, for the backends that have one.
    pub fn mode(self) -> Option<Mode> {
        match self {
            Backend::Macvlan(m) | Backend::Mvdp(m) => Some(m),
            Backend::None
            | Backend::Bridge
            | Backend::Ceiling
            | Backend::MvdpBusy
            | Backend::MvdpTraced
            | Backend::MvdpBusyTraced
            | Backend::CeilingTraced
            | Backend::MvdpColocated
            | Backend::OvsAfxdp
            | Backend::OvsAfxdpNonPmd => None,
        }
    }

    /// The backend's kind without its mode: "none", "macvlan", "bridge", "mvdp", "ceiling",
    /// "mvdp-busy", "mvdp-colocated", "ovs-afxdp" or "ovs-afxdp-nonpmd" (and the traced ones).
    pub fn kind(self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::Macvlan(_) => "macvlan",
            Backend::Bridge => "bridge",
            Backend::Mvdp(_) => "mvdp",
            Backend::Ceiling => "ceiling",
            Backend::MvdpBusy => "mvdp-busy",
            Backend::MvdpTraced => "mvdp-traced",
            Backend::MvdpBusyTraced => "mvdp-busy-traced",
            Backend::CeilingTraced => "ceiling-traced",
            Backend::MvdpColocated => "mvdp-colocated",
            Backend::OvsAfxdp => "ovs-afxdp",
            Backend::OvsAfxdpNonPmd => "ovs-afxdp-nonpmd",
        }
    }

    /// True for the backends whose switching thread owns a core (busy polling), measured with the
    /// load generators kept off that core.
    pub fn dedicated_core(self) -> bool {
        matches!(
            self,
            Backend::MvdpBusy | Backend::MvdpBusyTraced | Backend::OvsAfxdp
        )
    }

    /// Builds a backend from its kind and an optional mode (default bridge), as the CLI gets them.
    /// A mode given to a backend without modes is refused rather than ignored.
    pub fn from_parts(kind: &str, mode: Option<Mode>) -> Result<Backend> {
        let modeless = |b: Backend| match mode {
            Some(m) => Err(Error::invalid(
                "backend mode",
                m.to_string(),
                format!("the {kind} backend has no modes"),
            )),
            None => Ok(b),
        };
        match kind {
            "none" => modeless(Backend::None),
            "bridge" => modeless(Backend::Bridge),
            "ceiling" => modeless(Backend::Ceiling),
            "mvdp-busy" => modeless(Backend::MvdpBusy),
            "mvdp-traced" => modeless(Backend::MvdpTraced),
            "ceiling-traced" => modeless(Backend::CeilingTraced),
            "mvdp-busy-traced" => modeless(Backend::MvdpBusyTraced),
            "mvdp-colocated" => modeless(Backend::MvdpColocated),
            "ovs-afxdp" => modeless(Backend::OvsAfxdp),
            "ovs-afxdp-nonpmd" => modeless(Backend::OvsAfxdpNonPmd),
            "macvlan" => Ok(Backend::Macvlan(mode.unwrap_or(Mode::Bridge))),
            "mvdp" => Ok(Backend::Mvdp(mode.unwrap_or(Mode::Bridge))),
            other => Err(Error::invalid(
                "backend",
                other,
                "expected none, macvlan, bridge, mvdp, ceiling, mvdp-busy, mvdp-traced, mvdp-busy-traced, ceiling-traced, mvdp-colocated, ovs-afxdp or ovs-afxdp-nonpmd",
            )),
        }
    }

    /// Checks that the backend can serve `containers` containers.
    pub fn validate(self, containers: u32) -> Result<()> {
        match self.mode() {
            Some(Mode::Source) => Err(Error::invalid(
                "backend mode",
                "source",
                "source mode only filters by sender MAC and is no container network; use bridge, \
                 private, vepa or passthru",
            )),
            Some(Mode::Passthru) if containers > 1 => Err(Error::invalid(
                "container count",
                containers.to_string(),
                "passthru mode takes the whole parent: at most 1 container",
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Backend {
    /// "none", "bridge", "macvlan:vepa", "mvdp:bridge".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode() {
            Some(m) => write!(f, "{}:{m}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

impl FromStr for Backend {
    type Err = Error;
    /// Parses what `Display` prints ("macvlan" alone means bridge mode).
    fn from_str(s: &str) -> Result<Self> {
        let (kind, mode) = match s.split_once(':') {
            Some((k, m)) => (k, Some(m.parse::<Mode>()?)),
            None => (s, None),
        };
        Backend::from_parts(kind, mode)
    }
}

impl serde::Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_print_and_parse() {
        for b in [
            Backend::None,
            Backend::Bridge,
            Backend::Macvlan(Mode::Vepa),
            Backend::Mvdp(Mode::Passthru),
            Backend::Ceiling,
            Backend::MvdpBusy,
            Backend::MvdpTraced,
            Backend::CeilingTraced,
            Backend::MvdpBusyTraced,
            Backend::MvdpColocated,
            Backend::OvsAfxdp,
            Backend::OvsAfxdpNonPmd,
        ] {
            assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
        }
        assert_eq!(
            "macvlan".parse::<Backend>().unwrap(),
            Backend::Macvlan(Mode::Bridge)
        );
        assert!("bridge:vepa".parse::<Backend>().is_err());
        assert!("ceiling:bridge".parse::<Backend>().is_err());
        assert!("ovs-afxdp:bridge".parse::<Backend>().is_err());
        assert!(Backend::OvsAfxdp.dedicated_core() && Backend::MvdpBusy.dedicated_core());
        assert!(!Backend::OvsAfxdpNonPmd.dedicated_core());
        assert!("ovs".parse::<Backend>().is_err());
        assert!("macvlan:passthrough".parse::<Backend>().is_err());
    }

    #[test]
    fn passthru_takes_one_container_and_source_none() {
        assert!(Backend::Macvlan(Mode::Passthru).validate(1).is_ok());
        let e = Backend::Macvlan(Mode::Passthru).validate(2).unwrap_err();
        assert!(e.to_string().contains("at most 1 container"), "{e}");
        assert!(Backend::Macvlan(Mode::Source).validate(1).is_err());
        assert!(Backend::Bridge.validate(200).is_ok());
    }
}
