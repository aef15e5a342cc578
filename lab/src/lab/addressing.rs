//! The lab's addressing: names, addresses and MACs every lab uses, and the offloads of its links.

use std::net::Ipv4Addr;

use mvdp_control::offload::Offload;
use mvdp_switch::Mac;

/// The lab's subnet, 198.18.0.0/24 (RFC 2544 benchmarking range).
pub const LAB_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
pub const LAB_PREFIX_LEN: u8 = 24;
/// The external host's address.
pub const EXT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The wire switch's bridge name.
pub const BRIDGE: &str = "br0";
/// The host's bridge with [`Backend::Bridge`](crate::Backend::Bridge) (holds the parent and the containers' veths, and the host IP).
pub const HOST_BRIDGE: &str = "br0";
/// The external host's interface (in `{prefix}-ext`).
pub const EXT_IFNAME: &str = "eth0";
/// The wire bridge's port towards the external host.
pub const EXT_WIRE_PORT: &str = "wext";
/// The parent NIC's name in every host namespace.
pub const PARENT_IFNAME: &str = "eth1";
/// The interface name on the container side of container veths.
pub const CONTAINER_IFNAME: &str = "eth0";
/// Most containers a lab builds (keeps container IPs inside 198.18.0.10..=198.18.0.209).
pub const MAX_CONTAINERS: u32 = 200;
/// Most hosts a lab builds.
pub const MAX_HOSTS: u32 = 8;

/// IP of host `n` (1-based): 198.18.0.n.
pub fn host_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n as u8)
}
/// MAC of host `n`'s parent NIC.
pub fn host_mac(n: u32) -> Mac {
    Mac::lab(0, 0, n as u8)
}
/// Default IP of container `n` (1-based): 198.18.0.(9+n).
pub fn container_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, (9 + n) as u8)
}
/// Default MAC of container `n`.
pub fn container_mac(n: u32) -> Mac {
    Mac::lab(0, 1, n as u8)
}
/// The external host's MAC.
pub const EXT_MAC: Mac = Mac::lab(0, 0, 0xfe);

/// Transmit 802.1Q/802.1ad tags in frame data, not as offload metadata (wire ports, external host).
pub(super) const TAGS_IN_DATA_TX: &[(Offload, bool)] =
    &[(Offload::TxVlan, false), (Offload::TxVlanStag, false)];
/// What a real wire carries: complete frames. Stacks that transmit onto the lab's wire (the external
/// host, each host's parent) finish checksums themselves, as a NIC would before the wire; a veth would
/// otherwise hand CHECKSUM_PARTIAL frames across, which XDP (and so AF_XDP) sees unfinished.
pub(super) const WIRE_TX: &[(Offload, bool)] = &[
    (Offload::TxVlan, false),
    (Offload::TxVlanStag, false),
    (Offload::TxChecksum, false),
];
/// Keep received tags in frame data (parents).
pub(super) const TAGS_IN_DATA_RX: &[(Offload, bool)] =
    &[(Offload::RxVlan, false), (Offload::RxVlanStag, false)];

/// True for addresses a lab may use: inside 198.18.0.0/24, not the network or broadcast address.
pub fn is_lab_ip(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 198 && o[1] == 18 && o[2] == 0 && o[3] != 0 && o[3] != 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_addressing_stays_in_the_benchmark_range() {
        for n in 1..=MAX_CONTAINERS {
            assert!(is_lab_ip(container_ip(n)));
            assert!(container_mac(n).is_valid_unicast());
        }
        for n in 1..=MAX_HOSTS {
            assert!(is_lab_ip(host_ip(n)));
        }
        assert!(is_lab_ip(EXT_IP));
        assert!(!is_lab_ip(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!is_lab_ip(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(!is_lab_ip(Ipv4Addr::new(198, 18, 0, 255)));
    }
}
