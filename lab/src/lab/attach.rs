//! Attaching a built lab's containers with the lab's own backends (kernel macvlan, a Linux bridge)
//! or with plain veths to the first host.

use std::net::IpAddr;

use super::addressing::*;
use super::built::{ContainerLink, Lab};
use mvdp_control::error::Result;
use mvdp_control::netlink::{MacvlanOptions, Netlink};
use mvdp_switch::Mode;

impl Lab {
    /// `container_veths(true)`: a veth per container between the first host and the container.
    pub(super) fn attach_veths(&mut self) -> Result<()> {
        for i in 0..self.containers.len() {
            let spec = self.containers[i].veth_spec();
            self.add_container_veth(0, self.containers[i].n, &spec)?;
            self.containers[i].veth = true;
            self.containers[i].link = ContainerLink::Veth;
        }
        Ok(())
    }

    /// [`Backend::Macvlan`]: each container's `eth0` is a macvlan child of the first host's parent,
    /// created straight into the container's namespace.
    pub(super) fn attach_macvlans(&mut self, mode: Mode) -> Result<()> {
        let host = &self.hosts[0];
        let host_nl = Netlink::in_netns(&host.ns)?;
        let mut parent_mac = host.parent_mac;
        for c in &mut self.containers {
            let mut o = MacvlanOptions::new(mode);
            o.netns = Some(&c.ns);
            o.mtu = c.mtu;
            if mode != Mode::Passthru {
                o.mac = Some(c.mac);
            }
            host_nl.add_macvlan(&c.ifname, &host.parent_ifname, &o)?;
            let nl = Netlink::in_netns(&c.ns)?;
            if mode == Mode::Passthru {
                // The kernel gives a passthru port the parent's MAC whatever was asked, and a MAC set on
                // the port afterwards is set on the parent: the parent ends up with the container's MAC.
                nl.set_mac(&c.ifname, c.mac)?;
                parent_mac = c.mac;
            }
            nl.add_address(&c.ifname, IpAddr::V4(c.ip), LAB_PREFIX_LEN)?;
            nl.set_up(&c.ifname)?;
            c.link = ContainerLink::Macvlan;
        }
        self.hosts[0].parent_mac = parent_mac;
        Ok(())
    }

    /// [`Backend::Bridge`]: a Linux bridge in the host holding the parent and one veth per container. The
    /// host's IP moves to the bridge (an enslaved port's own address stops working), and the bridge keeps
    /// the parent's MAC so the host looks the same from the wire.
    pub(super) fn attach_bridge(&mut self) -> Result<()> {
        let host = &self.hosts[0];
        let nl = Netlink::in_netns(&host.ns)?;
        nl.add_bridge(HOST_BRIDGE)?;
        nl.set_mac(HOST_BRIDGE, host.parent_mac)?;
        nl.set_master(&host.parent_ifname, HOST_BRIDGE)?;
        nl.del_address(&host.parent_ifname, IpAddr::V4(host.ip), LAB_PREFIX_LEN)?;
        nl.add_address(HOST_BRIDGE, IpAddr::V4(host.ip), LAB_PREFIX_LEN)?;
        nl.set_up(HOST_BRIDGE)?;
        self.hosts[0].bridge = Some(HOST_BRIDGE.to_string());
        for i in 0..self.containers.len() {
            let spec = self.containers[i].veth_spec();
            self.add_container_veth(1, self.containers[i].n, &spec)?;
            nl.set_master(&spec.host_ifname, HOST_BRIDGE)?;
            self.containers[i].link = ContainerLink::Veth;
        }
        Ok(())
    }
}
