//! NIC offload switches the lab and the daemon need (802.1Q tag offload, TX checksum offload).
//!
//! [`set_offloads`] (and [`set_offloads_at`], the same for a namespace given by path) is the one place
//! the crate runs a program to change the network: NIC features are
//! set with ETHTOOL_MSG_FEATURES_SET (or the older SIOCETHTOOL ioctl), and the rust-netlink `ethtool`
//! crate can only *read* features, so it runs the `ethtool` binary (Debian package `ethtool`), inside
//! the namespace with [`NetNs::command`]. Everything else goes through [`crate::netlink`].

use std::process::Command;

use crate::error::{Error, Result};
use crate::names::validate_ifname;
use crate::netns::NetNs;

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

/// Turns `offloads` on or off on `ifname`, with one `ethtool -K` run: in `ns` (a `&NetNs`), or in the
/// calling thread's namespace when `ns` is `None`.
pub fn set_offloads<'a>(
    ns: impl Into<Option<&'a NetNs>>,
    ifname: &str,
    offloads: &[(Offload, bool)],
) -> Result<()> {
    let ns = ns.into();
    let cmd = match ns {
        Some(ns) => ns.command("ethtool"),
        None => Command::new("ethtool"),
    };
    let place = ns
        .map(|ns| format!(" in netns {}", ns.name()))
        .unwrap_or_default();
    ethtool_k(cmd, &place, ifname, offloads)
}

/// [`set_offloads`] in the namespace whose file is `netns_path` (`/run/netns/NAME` or
/// `/proc/PID/ns/net`, which `ip netns exec` cannot name): `nsenter --net=PATH ethtool -K ...`.
pub fn set_offloads_at(netns_path: &str, ifname: &str, offloads: &[(Offload, bool)]) -> Result<()> {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={netns_path}")).arg("ethtool");
    ethtool_k(cmd, &format!(" in netns {netns_path}"), ifname, offloads)
}

/// Runs `cmd` (ethtool, or a wrapper that runs it in a namespace) with `-K ifname feature on|off...`.
fn ethtool_k(
    mut cmd: Command,
    place: &str,
    ifname: &str,
    offloads: &[(Offload, bool)],
) -> Result<()> {
    validate_ifname(ifname)?;
    if offloads.is_empty() {
        return Ok(());
    }
    cmd.arg("-K").arg(ifname);
    for (o, on) in offloads {
        cmd.arg(o.ethtool_name())
            .arg(if *on { "on" } else { "off" });
    }
    let list = offloads
        .iter()
        .map(|(o, on)| format!("{} {}", o.ethtool_name(), if *on { "on" } else { "off" }))
        .collect::<Vec<_>>()
        .join(", ");
    run_checked(
        cmd,
        &format!("setting offloads ({list}) on {ifname}{place}"),
    )
}

fn run_checked(mut cmd: Command, op: &str) -> Result<()> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Command {
                op: op.to_string(),
                command: command.clone(),
                status: "not found".into(),
                stderr: "ethtool is not installed (apt-get install ethtool)".into(),
            }
        } else {
            Error::io(format!("{op}: running `{command}`"), e)
        }
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            op: op.to_string(),
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
