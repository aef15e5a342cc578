//! NIC offload switches the lab and the daemon need (802.1Q tag offload, TX checksum offload),
//! set over ethtool's netlink family by [`crate::ethtool`] (what `ethtool -K` does), in the
//! namespace the interface lives in. The crate runs no program to change the network.

use crate::error::{Error, Result};
use crate::names::validate_ifname;
use std::os::fd::BorrowedFd;

use crate::netns::{run_in, NetNs};

/// A feature toggled with `ethtool -K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// tx-vlan-hw-insert (`txvlan`): off keeps 802.1Q tags in the frame data on transmit, so an XDP
    /// program on the receiving veth sees them.
    TxVlan,
    /// rx-vlan-hw-parse (`rxvlan`): off keeps received tags in the frame (what XDP on a parent needs).
    RxVlan,
    /// tx-vlan-stag-hw-insert: like `TxVlan` for 802.1ad (0x88a8) service tags.
    TxVlanStag,
    /// rx-vlan-stag-hw-parse: like `RxVlan` for 802.1ad service tags.
    RxVlanStag,
    /// tx-checksumming (`tx`): off makes the stack finish checksums in software, so frames leaving a
    /// container are complete on the wire (no CHECKSUM_PARTIAL crossing into AF_XDP).
    TxChecksum,
}

impl Offload {
    /// The kernel's feature names behind the switch (`ethtool -k` shows them); `tx` is every
    /// TX checksum feature, as `ethtool -K IF tx off` means.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Offload::TxVlan => &["tx-vlan-hw-insert"],
            Offload::RxVlan => &["rx-vlan-hw-parse"],
            Offload::TxVlanStag => &["tx-vlan-stag-hw-insert"],
            Offload::RxVlanStag => &["rx-vlan-stag-hw-parse"],
            Offload::TxChecksum => &[
                "tx-checksum-ipv4",
                "tx-checksum-ip-generic",
                "tx-checksum-ipv6",
                "tx-checksum-fcoe-crc",
                "tx-checksum-sctp",
            ],
        }
    }

    /// The `ethtool -K` keyword.
    pub fn ethtool_name(self) -> &'static str {
        match self {
            Offload::TxVlan => "txvlan",
            Offload::RxVlan => "rxvlan",
            Offload::TxVlanStag => "tx-vlan-stag-hw-insert",
            Offload::RxVlanStag => "rx-vlan-stag-hw-parse",
            Offload::TxChecksum => "tx",
        }
    }
}

/// Turns `offloads` on or off on `ifname`, in one request: in `ns` (a `&NetNs`), or in the calling
/// thread's namespace when `ns` is `None`.
pub fn set_offloads<'a>(
    ns: impl Into<Option<&'a NetNs>>,
    ifname: &str,
    offloads: &[(Offload, bool)],
) -> Result<()> {
    let ns = ns.into();
    match ns {
        Some(ns) => ns.run(|| set_here(ifname, offloads, &format!(" in netns {}", ns.name())))?,
        None => set_here(ifname, offloads, ""),
    }
}

/// [`set_offloads`] in the namespace held by `fd` (a container's, which may have no name; `name` is
/// for messages).
pub fn set_offloads_in(
    fd: BorrowedFd<'_>,
    name: &str,
    ifname: &str,
    offloads: &[(Offload, bool)],
) -> Result<()> {
    run_in(fd, name, || {
        set_here(ifname, offloads, &format!(" in netns {name}"))
    })?
}

fn set_here(ifname: &str, offloads: &[(Offload, bool)], place: &str) -> Result<()> {
    validate_ifname(ifname)?;
    if offloads.is_empty() {
        return Ok(());
    }
    let features: Vec<(&str, bool)> = offloads
        .iter()
        .flat_map(|(o, on)| o.features().iter().map(move |f| (*f, *on)))
        .collect();
    let list = offloads
        .iter()
        .map(|(o, on)| format!("{} {}", o.ethtool_name(), if *on { "on" } else { "off" }))
        .collect::<Vec<_>>()
        .join(", ");
    crate::ethtool::set_features(ifname, &features)
        .map_err(|e| Error::io(format!("setting offloads ({list}) on {ifname}{place}"), e))
}
