//! Typed rtnetlink operations, bound to one network namespace.
//!
//! A [`Netlink`] owns a NETLINK_ROUTE socket that was opened inside its namespace (so every request acts
//! there, from whatever thread calls it) and a tokio current-thread runtime that drives it; every method
//! is synchronous. Built on `rtnetlink` 0.24 / `netlink-packet-route` 0.34: nothing here runs `ip`.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoMacVlan, InfoPortData, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage, MacVlanFlags, MacVlanMacAddressMode, MacVlanMode,
};
use netlink_packet_route::route::RouteScope;
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkMacVlan, LinkMessageBuilder, LinkUnspec,
    LinkVeth, RouteMessageBuilder,
};

use crate::error::{rtnl_to_io, Error, Result};
use crate::names::validate_ifname;
use crate::netns::NetNs;
use mvdp_switch::{Mac, Mode};

/// What a link lookup returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// IFF_RUNNING (operationally up).
    pub running: bool,
    /// IFF_LOWER_UP: carrier as the flags report it.
    pub lower_up: bool,
    pub promisc: bool,
    /// IFLA_CARRIER.
    pub carrier: bool,
    /// IFLA_INFO_KIND: "veth", "bridge", "macvlan", ... (`None` for plain devices such as `lo`).
    pub kind: Option<String>,
    /// Index of the bridge (or other controller) this link is enslaved to.
    pub master: Option<u32>,
    /// IFLA_LINK: the peer (veth) or parent (macvlan) ifindex, possibly in another namespace.
    pub link: Option<u32>,
    /// Bridge port hairpin flag, when this link is a bridge port.
    pub hairpin: Option<bool>,
    /// Macvlan mode, when this link is a macvlan.
    pub macvlan_mode: Option<Mode>,
    /// Macvlan nopromisc flag, when this link is a macvlan.
    pub macvlan_nopromisc: Option<bool>,
    /// Macvlan broadcast queue length, when the kernel reports it.
    pub macvlan_bcqueuelen: Option<u32>,
    /// Macvlan source-mode allowed MAC count, when the kernel reports it.
    pub macvlan_macaddr_count: Option<u32>,
}

/// The kernel's netlink spelling of a macvlan mode.
fn mode_to_nl(mode: Mode) -> MacVlanMode {
    match mode {
        Mode::Bridge => MacVlanMode::Bridge,
        Mode::Private => MacVlanMode::Private,
        Mode::Vepa => MacVlanMode::Vepa,
        Mode::Passthru => MacVlanMode::Passthrough,
        Mode::Source => MacVlanMode::Source,
    }
}

fn mode_from_nl(m: MacVlanMode) -> Option<Mode> {
    Some(match m {
        MacVlanMode::Bridge => Mode::Bridge,
        MacVlanMode::Private => Mode::Private,
        MacVlanMode::Vepa => Mode::Vepa,
        MacVlanMode::Passthrough => Mode::Passthru,
        MacVlanMode::Source => Mode::Source,
        _ => return None,
    })
}

/// One end of a veth pair: name, and optionally the namespace it is created in (default: the namespace of
/// the [`Netlink`] doing the request), its MAC and MTU.
#[derive(Debug, Clone, Copy)]
pub struct VethEnd<'a> {
    pub name: &'a str,
    pub netns: Option<&'a NetNs>,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
}

impl<'a> VethEnd<'a> {
    pub fn new(name: &'a str) -> Self {
        VethEnd {
            name,
            netns: None,
            mac: None,
            mtu: None,
        }
    }
    pub fn netns(mut self, ns: &'a NetNs) -> Self {
        self.netns = Some(ns);
        self
    }
    pub fn mac(mut self, mac: Mac) -> Self {
        self.mac = Some(mac);
        self
    }
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
}

/// Options for a kernel macvlan link.
#[derive(Debug, Clone, Copy)]
pub struct MacvlanOptions<'a> {
    pub mode: Mode,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    /// MACVLAN_FLAG_NOPROMISC: do not put the parent in promiscuous mode (passthru only in the kernel).
    pub nopromisc: bool,
    /// IFLA_MACVLAN_BC_QUEUE_LEN (kernel default 1000).
    pub bcqueuelen: Option<u32>,
    /// Create the macvlan directly in this namespace (the parent is looked up in the requester's namespace).
    pub netns: Option<&'a NetNs>,
}

impl MacvlanOptions<'_> {
    pub fn new(mode: Mode) -> Self {
        MacvlanOptions {
            mode,
            mac: None,
            mtu: None,
            nopromisc: false,
            bcqueuelen: None,
            netns: None,
        }
    }
}

/// Changes to a source-mode macvlan's allowed source MAC list (`ip link set ... type macvlan macaddr ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceMacOp {
    Add(Mac),
    Del(Mac),
    Flush,
    /// Replace the whole list.
    Set(Vec<Mac>),
}

/// A netlink (rtnetlink) connection bound to one network namespace.
pub struct Netlink {
    netns: String,
    handle: rtnetlink::Handle,
    // Declared after `handle` so the connection task is dropped with the runtime last.
    rt: tokio::runtime::Runtime,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// A connection in the calling thread's current network namespace (shown as "current" in errors).
    pub fn current() -> Result<Netlink> {
        Self::connect("current".to_string())
    }

    /// A connection inside `ns`: the socket is opened on a thread that entered `ns`, then used from here.
    pub fn in_netns(ns: &NetNs) -> Result<Netlink> {
        let name = ns.name().to_string();
        ns.run(move || Self::connect(name))?
    }

    fn connect(netns: String) -> Result<Netlink> {
        let op = || "opening rtnetlink socket".to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::Netlink {
                op: op(),
                netns: netns.clone(),
                source: e,
            })?;
        let handle = {
            // The socket registers with this runtime's reactor; the runtime can then move to any thread.
            let _guard = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::Netlink {
                op: op(),
                netns: netns.clone(),
                source: e,
            })?;
            rt.spawn(conn);
            handle
        };
        Ok(Netlink { netns, handle, rt })
    }

    /// The namespace name this connection acts in.
    pub fn netns_name(&self) -> &str {
        &self.netns
    }

    fn block<T>(
        &self,
        op: impl FnOnce() -> String,
        fut: impl Future<Output = std::result::Result<T, rtnetlink::Error>>,
    ) -> Result<T> {
        self.rt.block_on(fut).map_err(|e| Error::Netlink {
            op: op(),
            netns: self.netns.clone(),
            source: rtnl_to_io(e),
        })
    }

    // ---- lookups -------------------------------------------------------------------------------------

    /// Looks a link up by name; `Ok(None)` when it does not exist.
    pub fn try_link(&self, name: &str) -> Result<Option<Link>> {
        validate_ifname(name)?;
        let h = self.handle.clone();
        let res = self
            .rt
            .block_on(async move { h.link().get().match_name(name).execute().try_next().await });
        match res {
            Ok(Some(msg)) => Ok(Some(parse_link(&msg))),
            Ok(None) => Ok(None),
            Err(e) => {
                let io = rtnl_to_io(e);
                if io.raw_os_error() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(Error::Netlink {
                        op: format!("looking up link {name}"),
                        netns: self.netns.clone(),
                        source: io,
                    })
                }
            }
        }
    }

    /// Looks a link up by name; [`Error::LinkNotFound`] when it does not exist.
    pub fn link(&self, name: &str) -> Result<Link> {
        self.try_link(name)?.ok_or_else(|| Error::LinkNotFound {
            name: name.to_string(),
            netns: self.netns.clone(),
        })
    }

    /// Every link in the namespace, in ifindex order.
    pub fn links(&self) -> Result<Vec<Link>> {
        let h = self.handle.clone();
        let msgs = self.block(|| "listing links".to_string(), async move {
            h.link().get().execute().try_collect::<Vec<_>>().await
        })?;
        Ok(msgs.iter().map(parse_link).collect())
    }

    fn index(&self, name: &str) -> Result<u32> {
        Ok(self.link(name)?.index)
    }

    // ---- creation / deletion -------------------------------------------------------------------------

    /// Creates a veth pair. Each end is created directly in its namespace (`netns` of the end, default this
    /// connection's), so no link ever appears anywhere else, even transiently. Both ends start down.
    pub fn add_veth(&self, local: VethEnd<'_>, peer: VethEnd<'_>) -> Result<()> {
        validate_ifname(local.name)?;
        validate_ifname(peer.name)?;
        let mut p = LinkUnspec::new_with_name(peer.name);
        if let Some(ns) = peer.netns {
            p = p.setns_by_fd(ns.fd().as_raw_fd());
        }
        if let Some(mac) = peer.mac {
            p = p.address(mac.octets().to_vec());
        }
        if let Some(mtu) = peer.mtu {
            p = p.mtu(mtu);
        }
        let mut b = LinkVeth::new(local.name, peer.name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())));
        if let Some(ns) = local.netns {
            b = b.setns_by_fd(ns.fd().as_raw_fd());
        }
        if let Some(mac) = local.mac {
            b = b.address(mac.octets().to_vec());
        }
        if let Some(mtu) = local.mtu {
            b = b.mtu(mtu);
        }
        let msg = b.build();
        let h = self.handle.clone();
        let where_ = |e: &VethEnd<'_>| {
            e.netns
                .map(|n| format!(" (in {})", n.name()))
                .unwrap_or_default()
        };
        self.block(
            || {
                format!(
                    "creating veth {}{}/{}{}",
                    local.name,
                    where_(&local),
                    peer.name,
                    where_(&peer)
                )
            },
            async move { h.link().add(msg).execute().await },
        )
    }

    /// Creates a Linux bridge (STP off, multicast snooping off so it floods multicast like a dumb switch).
    /// It starts down.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        validate_ifname(name)?;
        let msg = LinkMessageBuilder::<LinkBridge>::new(name)
            .mcast_snooping(false)
            .build();
        let h = self.handle.clone();
        self.block(|| format!("creating bridge {name}"), async move {
            h.link().add(msg).execute().await
        })
    }

    /// Creates a kernel macvlan `name` on `parent` (a link in this connection's namespace). Starts down.
    pub fn add_macvlan(&self, name: &str, parent: &str, opts: &MacvlanOptions<'_>) -> Result<()> {
        validate_ifname(name)?;
        let parent_index = self.index(parent)?;
        let mut b = LinkMacVlan::new(name, parent_index, mode_to_nl(opts.mode));
        if opts.nopromisc {
            b = b.append_info_data(InfoMacVlan::Flags(MacVlanFlags::NoPromisc));
        }
        if let Some(q) = opts.bcqueuelen {
            b = b.append_info_data(InfoMacVlan::BcQueueLen(q));
        }
        if let Some(mac) = opts.mac {
            b = b.address(mac.octets().to_vec());
        }
        if let Some(mtu) = opts.mtu {
            b = b.mtu(mtu);
        }
        if let Some(ns) = opts.netns {
            b = b.setns_by_fd(ns.fd().as_raw_fd());
        }
        let msg = b.build();
        let h = self.handle.clone();
        let mode = opts.mode;
        let dest = opts
            .netns
            .map(|n| format!(" (in {})", n.name()))
            .unwrap_or_default();
        self.block(
            || format!("creating macvlan {name}{dest} mode {mode} on {parent}"),
            async move { h.link().add(msg).execute().await },
        )
    }

    /// Edits the allowed source MACs of a source-mode macvlan.
    pub fn macvlan_source_macs(&self, name: &str, op: &SourceMacOp) -> Result<()> {
        let index = self.index(name)?;
        let data = match op {
            SourceMacOp::Add(m) => vec![
                InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Add),
                InfoMacVlan::MacAddr(m.0),
            ],
            SourceMacOp::Del(m) => vec![
                InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Del),
                InfoMacVlan::MacAddr(m.0),
            ],
            SourceMacOp::Flush => vec![InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Flush)],
            SourceMacOp::Set(list) => vec![
                InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set),
                InfoMacVlan::MacAddrData(list.iter().map(|m| InfoMacVlan::MacAddr(m.0)).collect()),
            ],
        };
        let msg = LinkMessageBuilder::<LinkMacVlan>::new_with_info_kind(InfoKind::MacVlan)
            .index(index)
            .set_info_data(InfoData::MacVlan(data))
            .build();
        let h = self.handle.clone();
        self.block(
            || format!("changing source MACs of macvlan {name} ({op:?})"),
            async move { h.link().change(msg).execute().await },
        )
    }

    /// Deletes a link (for a veth, both ends go).
    pub fn del_link(&self, name: &str) -> Result<()> {
        let index = self.index(name)?;
        let h = self.handle.clone();
        self.block(|| format!("deleting link {name}"), async move {
            h.link().del(index).execute().await
        })
    }

    // ---- link attributes -----------------------------------------------------------------------------

    fn change(
        &self,
        name: &str,
        what: &str,
        f: impl FnOnce(LinkMessageBuilder<LinkUnspec>) -> LinkMessageBuilder<LinkUnspec>,
    ) -> Result<()> {
        let index = self.index(name)?;
        let msg = f(LinkUnspec::new_with_index(index)).build();
        let h = self.handle.clone();
        self.block(|| format!("{what} {name}"), async move {
            h.link().change(msg).execute().await
        })
    }

    pub fn set_up(&self, name: &str) -> Result<()> {
        self.change(name, "setting up", |b| b.up())
    }

    pub fn set_down(&self, name: &str) -> Result<()> {
        self.change(name, "setting down", |b| b.down())
    }

    pub fn set_promisc(&self, name: &str, on: bool) -> Result<()> {
        self.change(
            name,
            if on {
                "setting promisc on"
            } else {
                "setting promisc off"
            },
            |b| b.promiscuous(on),
        )
    }

    pub fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        self.change(name, &format!("setting mtu {mtu} on"), |b| b.mtu(mtu))
    }

    pub fn set_mac(&self, name: &str, mac: Mac) -> Result<()> {
        self.change(name, &format!("setting address {mac} on"), |b| {
            b.address(mac.octets().to_vec())
        })
    }

    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        self.change(name, &format!("renaming to {new_name}:"), |b| {
            b.name(new_name)
        })
    }

    /// Moves a link into another namespace (it arrives down and loses its addresses, as always).
    pub fn set_netns(&self, name: &str, ns: &NetNs) -> Result<()> {
        let fd = ns.fd().as_raw_fd();
        self.change(name, &format!("moving to netns {}:", ns.name()), |b| {
            b.setns_by_fd(fd)
        })
    }

    /// Enslaves `port` to `bridge`.
    pub fn set_master(&self, port: &str, bridge: &str) -> Result<()> {
        let master = self.index(bridge)?;
        self.change(port, &format!("enslaving to {bridge}:"), |b| {
            b.controller(master)
        })
    }

    /// Releases `port` from its bridge.
    pub fn set_nomaster(&self, port: &str) -> Result<()> {
        self.change(port, "releasing from its master:", |b| b.nocontroller())
    }

    /// Sets the bridge-port hairpin flag (`ip link set PORT type bridge_slave hairpin on|off`): frames may
    /// leave through the port they came in on (802.1Qbg reflective relay, what VEPA needs from the switch).
    pub fn set_hairpin(&self, port: &str, on: bool) -> Result<()> {
        let index = self.index(port)?;
        let msg = LinkBridgePort::new(index).hairpin(on).build();
        let h = self.handle.clone();
        self.block(
            || {
                format!(
                    "setting hairpin {} on bridge port {port}",
                    if on { "on" } else { "off" }
                )
            },
            async move { h.link().set_port(msg).execute().await },
        )
    }

    // ---- addresses and routes ------------------------------------------------------------------------

    pub fn add_address(&self, name: &str, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let index = self.index(name)?;
        let h = self.handle.clone();
        self.block(
            || format!("adding address {ip}/{prefix_len} to {name}"),
            async move { h.address().add(index, ip, prefix_len).execute().await },
        )
    }

    pub fn del_address(&self, name: &str, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let index = self.index(name)?;
        let msg = match ip {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
        };
        let h = self.handle.clone();
        self.block(
            || format!("deleting address {ip}/{prefix_len} from {name}"),
            async move { h.address().del(msg).execute().await },
        )
    }

    /// The addresses on a link, as (address, prefix length).
    pub fn addresses(&self, name: &str) -> Result<Vec<(IpAddr, u8)>> {
        let index = self.index(name)?;
        let h = self.handle.clone();
        let msgs: Vec<AddressMessage> =
            self.block(|| format!("listing addresses of {name}"), async move {
                h.address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect()
                    .await
            })?;
        Ok(msgs
            .iter()
            .filter_map(|m| {
                // IFA_LOCAL is the interface's own address on point-to-point links; prefer it, like ip does.
                let local = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let addr = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                local.or(addr).map(|ip| (ip, m.header.prefix_len))
            })
            .collect())
    }

    /// Adds an IPv4 default route via `gateway` (optionally out of `dev`).
    pub fn add_default_route(&self, gateway: Ipv4Addr, dev: Option<&str>) -> Result<()> {
        self.add_route(Ipv4Addr::UNSPECIFIED, 0, Some(gateway), dev)
    }

    /// Adds an IPv4 route to `dest/prefix_len`, via `gateway` and/or out of `dev` (at least one of them).
    pub fn add_route(
        &self,
        dest: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
        dev: Option<&str>,
    ) -> Result<()> {
        if gateway.is_none() && dev.is_none() {
            return Err(Error::invalid(
                "route",
                format!("{dest}/{prefix_len}"),
                "needs a gateway or a device",
            ));
        }
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new();
        if prefix_len > 0 {
            b = b.destination_prefix(dest, prefix_len);
        }
        if let Some(gw) = gateway {
            b = b.gateway(gw);
        } else {
            b = b.scope(RouteScope::Link);
        }
        if let Some(dev) = dev {
            b = b.output_interface(self.index(dev)?);
        }
        let msg = b.build();
        let h = self.handle.clone();
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        let out = dev.map(|d| format!(" dev {d}")).unwrap_or_default();
        self.block(
            || format!("adding route {dest}/{prefix_len}{via}{out}"),
            async move { h.route().add(msg).execute().await },
        )
    }
}

fn parse_link(msg: &LinkMessage) -> Link {
    let flags = msg.header.flags;
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        lower_up: flags.contains(LinkFlags::LowerUp),
        promisc: flags.contains(LinkFlags::Promisc),
        carrier: false,
        kind: None,
        master: None,
        link: None,
        hairpin: None,
        macvlan_mode: None,
        macvlan_nopromisc: None,
        macvlan_bcqueuelen: None,
        macvlan_macaddr_count: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(a);
                link.mac = Some(Mac(m));
            }
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Carrier(c) => link.carrier = *c != 0,
            LinkAttribute::Controller(c) if *c != 0 => link.master = Some(*c),
            LinkAttribute::Link(l) if *l != 0 => link.link = Some(*l),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::MacVlan(data)) => {
                            for d in data {
                                match d {
                                    InfoMacVlan::Mode(m) => link.macvlan_mode = mode_from_nl(*m),
                                    InfoMacVlan::Flags(f) => {
                                        link.macvlan_nopromisc =
                                            Some(f.contains(MacVlanFlags::NoPromisc))
                                    }
                                    InfoMacVlan::BcQueueLen(q) => {
                                        link.macvlan_bcqueuelen = Some(*q)
                                    }
                                    InfoMacVlan::MacAddrCount(c) => {
                                        link.macvlan_macaddr_count = Some(*c)
                                    }
                                    _ => {}
                                }
                            }
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            for p in port {
                                if let InfoBridgePort::HairpinMode(h) = p {
                                    link.hairpin = Some(*h);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macvlan_modes_parse_and_print() {
        for m in Mode::ALL {
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
            assert_eq!(mode_from_nl(mode_to_nl(m)), Some(m));
        }
        assert!("passthrough".parse::<Mode>().is_err());
    }

    #[test]
    fn parse_link_reads_the_fields() {
        let msg = LinkUnspec::new_with_name("eth1")
            .index(7)
            .up()
            .address(vec![2, 0, 0, 0, 0, 1])
            .mtu(1500)
            .append_extra_attribute(LinkAttribute::Carrier(1))
            .build();
        let l = parse_link(&msg);
        assert_eq!(
            (l.index, l.name.as_str(), l.mtu, l.up, l.carrier),
            (7, "eth1", 1500, true, true)
        );
        assert_eq!(l.mac, Some(Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(l.kind, None);
    }
}
