//! Typed rtnetlink operations, bound to one network namespace.
//!
//! A [`Netlink`] owns a NETLINK_ROUTE socket that was opened inside its namespace (so every request acts
//! there, from whatever thread calls it) and a tokio current-thread runtime that drives it; every method
//! is synchronous. Built on `rtnetlink` 0.24 / `netlink-packet-route` 0.34: nothing here runs `ip`.
//!
//! This is the one way the crate (the daemon included) reaches the kernel's network configuration:
//! links, addresses, routes, and links of other namespaces through a netns id. The one exception is
//! NIC features, which only `ethtool` can set (see [`crate::offload`]).

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures::{Stream, TryStreamExt};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoMacVlan, InfoPortData, InfoVeth, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MacVlanFlags, MacVlanMacAddressMode,
    MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkBridgePort, LinkMacVlan, LinkMessageBuilder, LinkUnspec,
    LinkVeth, RouteMessageBuilder,
};

use crate::error::{rtnl_to_io, Error, Result};
use crate::names::validate_ifname;
use crate::netns::NetNs;
use mvdp_switch::{Mac, Mode};

/// What a link lookup returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
    /// IFLA_PROMISCUITY: how many users hold the link promiscuous (a sniffer's packet socket
    /// counts here without setting the IFF_PROMISC flag a user sets).
    pub promiscuity: u32,
    /// IFLA_ALLMULTI: the same for ALLMULTI.
    pub allmulti: u32,
    /// IFLA_CARRIER.
    pub carrier: bool,
    /// IFLA_INFO_KIND: "veth", "bridge", "macvlan", ... (`None` for plain devices such as `lo`).
    pub kind: Option<String>,
    /// Index of the bridge (or other controller) this link is enslaved to.
    pub master: Option<u32>,
    /// IFLA_LINK: the peer (veth) or parent (macvlan) ifindex, possibly in another namespace.
    pub link: Option<u32>,
    /// IFLA_LINK_NETNSID: the id, in this link's namespace, of the namespace `link` lives in (absent
    /// when it is this one).
    pub link_netnsid: Option<i32>,
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
    pub netns: Option<BornIn<'a>>,
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
        self.netns = Some(BornIn::Named(ns));
        self
    }
    /// Born in the namespace behind `fd` (a container's, given as a path), called `name` in messages.
    pub fn netns_fd(mut self, fd: BorrowedFd<'a>, name: &'a str) -> Self {
        self.netns = Some(BornIn::Fd { fd, name });
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
        Self::in_netns_fd(ns.fd(), ns.name())
    }

    /// A connection inside the namespace behind `fd` (a container's `/proc/PID/ns/net`, say), called
    /// `name` in errors.
    pub fn in_netns_fd(fd: BorrowedFd<'_>, name: &str) -> Result<Netlink> {
        let owned = name.to_string();
        crate::netns::run_in(fd, name, move || Self::connect(owned))?
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

    /// Collects the replies of a dump request.
    fn dump<T>(
        &self,
        op: impl FnOnce() -> String,
        replies: impl Stream<Item = std::result::Result<T, rtnetlink::Error>>,
    ) -> Result<Vec<T>> {
        self.block(op, replies.try_collect())
    }

    // ---- lookups -------------------------------------------------------------------------------------

    /// Looks a link up by name; `Ok(None)` when it does not exist.
    pub fn try_link(&self, name: &str) -> Result<Option<Link>> {
        validate_ifname(name)?;
        let req = self.handle.link().get().match_name(name);
        self.get_link(req, || format!("looking up link {name}"))
    }

    /// The link at the other end of `link`'s IFLA_LINK (a veth's peer, a macvlan's parent), read in
    /// the namespace it lives in through IFLA_LINK_NETNSID and RTM_GETLINK's IFLA_IF_NETNSID, so no fd
    /// of that namespace is ever held. `Ok(None)` when `link` has no such link or it is gone.
    pub fn peer_of(&self, link: &Link) -> Result<Option<Link>> {
        let Some(index) = link.link else {
            return Ok(None);
        };
        let mut req = self.handle.link().get().match_index(index);
        if let Some(id) = link.link_netnsid {
            req.message_mut()
                .attributes
                .push(LinkAttribute::IfNetnsId(id));
        }
        self.get_link(req, || format!("looking up the peer of {}", link.name))
    }

    /// Runs a one-link RTM_GETLINK; ENODEV (no such link) is `Ok(None)`.
    fn get_link(
        &self,
        req: rtnetlink::LinkGetRequest,
        op: impl FnOnce() -> String,
    ) -> Result<Option<Link>> {
        match self
            .rt
            .block_on(async move { req.execute().try_next().await })
        {
            Ok(msg) => Ok(msg.as_ref().map(parse_link)),
            Err(e) => match rtnl_to_io(e) {
                io if io.raw_os_error() == Some(libc::ENODEV) => Ok(None),
                io => Err(Error::Netlink {
                    op: op(),
                    netns: self.netns.clone(),
                    source: io,
                }),
            },
        }
    }

    /// Looks a link up by name; [`Error::LinkNotFound`] when it does not exist.
    pub fn link(&self, name: &str) -> Result<Link> {
        self.try_link(name)?.ok_or_else(|| Error::LinkNotFound {
            name: name.to_string(),
            netns: self.netns.clone(),
        })
    }

    /// Every link in the namespace, in ifindex order. The kernel leaves out the links' traffic
    /// counters, which nothing here reads: the daemon dumps every port's link five times a second.
    pub fn links(&self) -> Result<Vec<Link>> {
        let req = self
            .handle
            .link()
            .get()
            .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats]);
        // Each message is boiled down to a `Link` as it arrives rather than all kept until the
        // dump ends: a thousand links' full attribute sets are megabytes, five times a second.
        self.dump(
            || "listing links".to_string(),
            req.execute().map_ok(|m| parse_link(&m)),
        )
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
        let p = born(
            LinkUnspec::new_with_name(peer.name),
            peer.netns,
            peer.mac,
            peer.mtu,
        );
        let b = LinkVeth::new(local.name, peer.name)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())));
        let msg = born(b, local.netns, local.mac, local.mtu).build();
        self.block(
            || {
                format!(
                    "creating veth {}{}/{}{}",
                    local.name,
                    in_netns_text(local.netns),
                    peer.name,
                    in_netns_text(peer.netns)
                )
            },
            self.handle.link().add(msg).execute(),
        )
    }

    /// Creates a Linux bridge (STP off, multicast snooping off so it floods multicast like a dumb switch).
    /// It starts down.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        validate_ifname(name)?;
        let msg = LinkMessageBuilder::<LinkBridge>::new(name)
            .mcast_snooping(false)
            .build();
        self.block(
            || format!("creating bridge {name}"),
            self.handle.link().add(msg).execute(),
        )
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
        let msg = born(b, opts.netns.map(BornIn::Named), opts.mac, opts.mtu).build();
        let mode = opts.mode;
        let dest = in_netns_text(opts.netns.map(BornIn::Named));
        self.block(
            || format!("creating macvlan {name}{dest} mode {mode} on {parent}"),
            self.handle.link().add(msg).execute(),
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
        self.block(
            || format!("changing source MACs of macvlan {name} ({op:?})"),
            self.handle.link().change(msg).execute(),
        )
    }

    /// Deletes a link (for a veth, both ends go).
    pub fn del_link(&self, name: &str) -> Result<()> {
        let index = self.index(name)?;
        self.block(
            || format!("deleting link {name}"),
            self.handle.link().del(index).execute(),
        )
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
        self.block(
            || format!("{what} {name}"),
            self.handle.link().change(msg).execute(),
        )
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

    /// Sets a link down and renames it, in one request: its name is free and its routes are gone
    /// when this returns.
    pub fn set_down_and_rename(&self, name: &str, new_name: &str) -> Result<()> {
        validate_ifname(new_name)?;
        self.change(
            name,
            &format!("setting down and renaming to {new_name}:"),
            |b| b.down().name(new_name),
        )
    }

    /// Moves a link into another namespace (it arrives down and loses its addresses, as always).
    pub fn set_netns(&self, name: &str, ns: &NetNs) -> Result<()> {
        self.set_netns_fd(name, ns.fd(), ns.name())
    }

    /// Moves a link into the namespace behind `fd` (called `ns_name` in errors); see [`Self::set_netns`].
    pub fn set_netns_fd(&self, name: &str, fd: BorrowedFd<'_>, ns_name: &str) -> Result<()> {
        let fd = fd.as_raw_fd();
        self.change(name, &format!("moving to netns {ns_name}:"), |b| {
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
        self.block(
            || {
                format!(
                    "setting hairpin {} on bridge port {port}",
                    if on { "on" } else { "off" }
                )
            },
            self.handle.link().set_port(msg).execute(),
        )
    }

    // ---- addresses and routes ------------------------------------------------------------------------

    pub fn add_address(&self, name: &str, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let index = self.index(name)?;
        self.block(
            || format!("adding address {ip}/{prefix_len} to {name}"),
            self.handle.address().add(index, ip, prefix_len).execute(),
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
        self.block(
            || format!("deleting address {ip}/{prefix_len} from {name}"),
            self.handle.address().del(msg).execute(),
        )
    }

    /// The addresses on a link, as (address, prefix length).
    pub fn addresses(&self, name: &str) -> Result<Vec<(IpAddr, u8)>> {
        let index = self.index(name)?;
        let msgs = self.dump(
            || format!("listing addresses of {name}"),
            self.handle
                .address()
                .get()
                .set_link_index_filter(index)
                .execute(),
        )?;
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
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        let out = dev.map(|d| format!(" dev {d}")).unwrap_or_default();
        self.block(
            || format!("adding route {dest}/{prefix_len}{via}{out}"),
            self.handle.route().add(msg).execute(),
        )
    }

    /// Deletes the IPv4 route to `dest/prefix_len` out of `dev` (`ip route del DEST/LEN dev DEV`).
    pub fn del_route(&self, dest: Ipv4Addr, prefix_len: u8, dev: &str) -> Result<()> {
        // As iproute2 sends a deletion: any protocol, scope and type match.
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix_len)
            .output_interface(self.index(dev)?)
            .protocol(RouteProtocol::Unspec)
            .scope(RouteScope::NoWhere)
            .kind(RouteType::Unspec)
            .build();
        self.block(
            || format!("deleting route {dest}/{prefix_len} dev {dev}"),
            self.handle.route().del(msg).execute(),
        )
    }

    /// The IPv4 routes of the main table that leave through `dev`, as (destination, prefix length):
    /// what `ip -4 route show dev DEV` lists (the default route is `0.0.0.0/0`).
    pub fn routes(&self, dev: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
        let index = self.index(dev)?;
        let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs = self.dump(
            || format!("listing routes of {dev}"),
            self.handle.route().get(req).execute(),
        )?;
        Ok(msgs
            .iter()
            .filter(|m| route_table(m) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .filter(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index))
            })
            .map(|m| {
                let dest = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                });
                (
                    dest.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    m.header.destination_prefix_length,
                )
            })
            .collect())
    }
}

/// The namespace a new link is born in, when not the requester's: creating it there directly
/// spares the kernel a later move between namespaces (which waits for an RCU grace period).
#[derive(Debug, Clone, Copy)]
pub enum BornIn<'a> {
    Named(&'a NetNs),
    Fd { fd: BorrowedFd<'a>, name: &'a str },
}

impl BornIn<'_> {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            BornIn::Named(ns) => ns.fd().as_raw_fd(),
            BornIn::Fd { fd, .. } => fd.as_raw_fd(),
        }
    }

    fn name(&self) -> &str {
        match self {
            BornIn::Named(ns) => ns.name(),
            BornIn::Fd { name, .. } => name,
        }
    }
}

/// A new link's namespace (default: the requester's), address and MTU, each when given.
fn born<T>(
    mut b: LinkMessageBuilder<T>,
    netns: Option<BornIn<'_>>,
    mac: Option<Mac>,
    mtu: Option<u32>,
) -> LinkMessageBuilder<T> {
    if let Some(ns) = netns {
        b = b.setns_by_fd(ns.raw_fd());
    }
    if let Some(mac) = mac {
        b = b.address(mac.octets().to_vec());
    }
    if let Some(mtu) = mtu {
        b = b.mtu(mtu);
    }
    b
}

/// " (in NAME)" for a link made in another namespace, for messages.
fn in_netns_text(netns: Option<BornIn<'_>>) -> String {
    netns
        .map(|n| format!(" (in {})", n.name()))
        .unwrap_or_default()
}

/// A route's table: RTA_TABLE when present (ids above 255 only fit there), else the header's.
fn route_table(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table))
}

pub(crate) fn parse_link(msg: &LinkMessage) -> Link {
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
        promiscuity: 0,
        allmulti: 0,
        carrier: false,
        kind: None,
        master: None,
        link: None,
        link_netnsid: None,
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
            LinkAttribute::Promiscuity(n) => link.promiscuity = *n,
            LinkAttribute::AllMulticast(n) => link.allmulti = *n,
            LinkAttribute::Controller(c) if *c != 0 => link.master = Some(*c),
            LinkAttribute::Link(l) if *l != 0 => link.link = Some(*l),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
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

    #[test]
    fn parse_link_reads_where_the_peer_lives() {
        let msg = LinkUnspec::new_with_name("mvp0")
            .index(9)
            .append_extra_attribute(LinkAttribute::Link(4))
            .append_extra_attribute(LinkAttribute::LinkNetNsId(2))
            .build();
        let l = parse_link(&msg);
        assert_eq!((l.link, l.link_netnsid), (Some(4), Some(2)));
    }

    #[test]
    fn a_routes_table_id_above_255_is_read_from_rta_table() {
        let mut m = RouteMessageBuilder::<Ipv4Addr>::new().build();
        assert_eq!(route_table(&m), u32::from(RouteHeader::RT_TABLE_MAIN));
        m.header.table = 252; // RT_TABLE_COMPAT
        m.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(route_table(&m), 1000);
    }
}
