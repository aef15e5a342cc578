//! What a port is on the system: the veth pair, the container end moved into its netns and addressed,
//! the host shim and its routes. Every function here either completes or undoes what it made.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::state::Port;
use crate::error::Error;
use crate::netlink::{Netlink, VethEnd};
use crate::netns::{NetNs, NETNS_RUN_DIR};
use crate::offload::{set_offloads, set_offloads_in, Offload};

/// The daemon's own network namespace: the one the process runs in (`None`), or, in tests, a named one
/// the daemon was told to act in.
pub struct HostNs {
    pub ns: Option<NetNs>,
    pub nl: Netlink,
}

impl HostNs {
    pub fn new(ns: Option<NetNs>) -> crate::Result<HostNs> {
        let nl = match &ns {
            Some(ns) => Netlink::in_netns(ns)?,
            None => Netlink::current()?,
        };
        Ok(HostNs { ns, nl })
    }

    /// Runs `f` where the daemon's netns is the current one (sysctls, fresh sockets).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> crate::Result<R> {
        match &self.ns {
            Some(ns) => ns.run(f),
            None => Ok(f()),
        }
    }

    /// Turns `offloads` off on `ifname` (one ethtool netlink request, by [`set_offloads`]).
    pub fn offloads_off(&self, ifname: &str, offloads: &[Offload]) -> crate::Result<()> {
        let list: Vec<(Offload, bool)> = offloads.iter().map(|o| (*o, false)).collect();
        set_offloads(self.ns.as_ref(), ifname, &list)
    }

    /// TX checksum offload off: a frame leaving with CHECKSUM_PARTIAL would cross AF_XDP with its
    /// checksum never filled in.
    pub fn tx_checksum_off(&self, ifname: &str) -> crate::Result<()> {
        self.offloads_off(ifname, &[Offload::TxChecksum])
    }

    /// No IPv6 on the dataplane's veth ends: no router solicitations or DAD frames from them.
    pub fn disable_ipv6(&self, ifname: &str) -> crate::Result<()> {
        let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
        let r = self.run(move || match fs::write(&path, "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()), // kernel without IPv6
            r => r,
        })?;
        r.map_err(|e| Error::Io {
            op: format!("disabling IPv6 on {ifname}"),
            source: e,
        })
    }

    /// Whether `target` is this very namespace (a port's container end cannot live beside its
    /// host end: the daemon's own stack would answer for the container).
    pub fn is(&self, target: &TargetNs) -> bool {
        let ours = match &self.ns {
            Some(ns) => nix::sys::stat::fstat(ns.fd()),
            None => nix::sys::stat::stat("/proc/self/ns/net"),
        };
        match (ours, nix::sys::stat::fstat(target.fd.as_fd())) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    /// Deletes `ip/32 dev shim`; a failure is only worth a warning (the port is gone either way).
    pub fn del_host_route(&self, ip: Ipv4Addr, shim: &str) {
        if let Err(e) = self.nl.del_route(ip, 32, shim) {
            tracing::warn!(%ip, shim, "could not delete the host route to a removed port: {e}");
        }
    }

    /// The addresses `shim` has /32 routes to (the routes towards a network's ports).
    pub fn host_routes(&self, shim: &str) -> crate::Result<Vec<Ipv4Addr>> {
        Ok(self
            .nl
            .routes(shim)?
            .into_iter()
            .filter(|(_, len)| *len == 32)
            .map(|(ip, _)| ip)
            .collect())
    }
}

/// Why a port's `--netns` cannot be used (the messages are the daemon's replies).
#[derive(Debug, thiserror::Error)]
pub enum TargetNsError {
    /// Not a path, and not a valid name for /run/netns.
    #[error(transparent)]
    Name(crate::Error),
    #[error("network namespace {spec} does not exist ({path} not found)")]
    Missing { spec: String, path: String },
    #[error("opening network namespace {spec}: {source}")]
    Open {
        spec: String,
        #[source]
        source: Errno,
    },
    /// The file is there but is no namespace (`source`: why it could not even be checked).
    #[error("{path} is not a network namespace")]
    NotNetns {
        path: String,
        #[source]
        source: Option<Errno>,
    },
}

/// A container's network namespace, given as a name under /run/netns or as a path (/proc/PID/ns/net).
pub struct TargetNs {
    pub display: String,
    fd: OwnedFd,
}

impl TargetNs {
    pub fn open(spec: &str) -> Result<TargetNs, TargetNsError> {
        let path = if spec.contains('/') {
            spec.to_string()
        } else {
            crate::names::validate_netns_name(spec).map_err(TargetNsError::Name)?;
            format!("{NETNS_RUN_DIR}/{spec}")
        };
        let fd = open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => TargetNsError::Missing {
                spec: spec.to_string(),
                path: path.clone(),
            },
            e => TargetNsError::Open {
                spec: spec.to_string(),
                source: e,
            },
        })?;
        match nix::sys::statfs::fstatfs(&fd) {
            Ok(st) if st.filesystem_type() == nix::sys::statfs::NSFS_MAGIC => {}
            r => {
                return Err(TargetNsError::NotNetns {
                    path,
                    source: r.err(),
                })
            }
        }
        Ok(TargetNs {
            display: spec.to_string(),
            fd,
        })
    }

    /// A netlink connection inside this namespace.
    pub fn netlink(&self) -> crate::Result<Netlink> {
        Netlink::in_netns_fd(self.fd.as_fd(), &self.display)
    }
}

/// Creates the port's veth pair and configures both ends. `shim` (the host port's own end) stays in
/// the daemon's netns; otherwise the peer is born in `target` under its final name (a clash with the
/// container's own interfaces fails the creation itself, leaving nothing) and gets TX checksum
/// offload off, the address and a default route via `gateway`. On error everything made is removed.
pub fn create(
    host: &HostNs,
    port: &Port,
    target: Option<&TargetNs>,
    gateway: Option<Ipv4Addr>,
) -> crate::Result<()> {
    let peer = VethEnd::new(&port.ifname).mac(port.mac).mtu(port.mtu);
    let peer = match target {
        Some(t) => peer.netns_fd(t.fd.as_fd(), &t.display),
        None => peer,
    };
    host.nl
        .add_veth(VethEnd::new(&port.host_ifname).mtu(port.mtu), peer)?;
    let rest = || -> crate::Result<()> {
        host.disable_ipv6(&port.host_ifname)?;
        match target {
            // Docker moves, addresses and raises the container end itself.
            None if port.docker => host.tx_checksum_off(&port.ifname)?,
            None => {
                host.tx_checksum_off(&port.ifname)?;
                host.disable_ipv6(&port.ifname)?;
                if let Some(ip) = port.ip {
                    host.nl.add_address(&port.ifname, IpAddr::V4(ip), 32)?;
                }
                host.nl.set_up(&port.ifname)?;
            }
            Some(t) => {
                set_offloads_in(
                    t.fd.as_fd(),
                    &t.display,
                    &port.ifname,
                    &[(Offload::TxChecksum, false)],
                )?;
                let nl = t.netlink()?;
                nl.set_up("lo")?;
                if let Some(ip) = port.ip {
                    nl.add_address(&port.ifname, IpAddr::V4(ip), port.prefix_len)?;
                }
                nl.set_up(&port.ifname)?;
                if let Some(gw) = gateway {
                    nl.add_default_route(gw, Some(&port.ifname))?;
                }
            }
        }
        host.nl.set_up(&port.host_ifname)
    };
    rest().inspect_err(|_| remove(host, port))
}

/// Deletes the port's veth pair (both ends go with the one in the daemon's netns); absent is fine.
pub fn remove(host: &HostNs, port: &Port) {
    delete_veth(&host.nl, &port.host_ifname);
}

/// The name a removed port's container end takes while its veth waits to be deleted.
pub fn set_aside_ifname(id: u32) -> String {
    format!("mvdprm{id}")
}

/// Frees the container end's name in its netns `spec` at once: renamed to
/// [`set_aside_ifname`] and set down (its addresses' routes go with it), for the veth to be
/// deleted later. Absent (the container took it away) counts as done.
pub fn set_aside(spec: &str, port: &Port) -> Result<(), SetAsideError> {
    let nl = TargetNs::open(spec)?.netlink()?;
    if nl.try_link(&port.ifname)?.is_some() {
        nl.set_down_and_rename(&port.ifname, &set_aside_ifname(port.id))?;
    }
    Ok(())
}

/// Why a removed port's container end could not be set aside (its veth is then deleted at once).
#[derive(Debug, thiserror::Error)]
pub enum SetAsideError {
    #[error(transparent)]
    Netns(#[from] TargetNsError),
    #[error(transparent)]
    Netlink(#[from] Error),
}

/// Deletes a veth by its end `ifname`; already gone (its container's netns was deleted, taking
/// the pair with it) is fine.
pub fn delete_veth(nl: &Netlink, ifname: &str) {
    match nl.try_link(ifname) {
        Ok(Some(_)) => {
            if let Err(e) = nl.del_link(ifname) {
                tracing::warn!("removing {ifname}: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("looking up {ifname}: {e}"),
    }
}

/// A random locally administered unicast MAC.
pub fn random_mac() -> mvdp_switch::Mac {
    let mut b = [0u8; 6];
    random_bytes(&mut b);
    b[0] = (b[0] & 0xfc) | 0x02;
    mvdp_switch::Mac(b)
}

pub fn random_bytes(buf: &mut [u8]) {
    use std::io::Read;
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_err()
    {
        // Never expected on Linux; still distinct enough per process and moment.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, x) in buf.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
}
