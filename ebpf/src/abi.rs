//! Rust mirrors of `bpf/mvdp_abi.h`: the map layouts shared with the XDP program.
//!
//! Sizes and offsets are checked at compile time; the constants are checked against the
//! header by a unit test, so the two sides cannot drift apart silently.

use std::mem::{offset_of, size_of};

/// Rx queues per parent the XSKMAP has room for.
pub const MAX_QUEUES: u32 = 64;
/// Port slots (rows of the XSKMAP).
pub const MAX_SLOTS: u32 = 1024;
/// Entries of the XSKMAP: one per (slot, rx queue).
pub const XSKS_ENTRIES: u32 = MAX_QUEUES * MAX_SLOTS;
/// Entries of the (VLAN, MAC) -> slot hash map.
pub const MAX_PORTS: u32 = 4096;
/// `Config::flags`: deliver every unicast frame of `passthru_vlan` to `passthru_slot`.
pub const CFG_PASSTHRU: u32 = 1;
/// `PortVal::flags`: a group frame from the wire whose source is this port (the wire reflecting
/// the port's own flood) goes back to this port only, with no host copy — kernel macvlan's rule
/// for private, passthru and source ports.
pub const PORT_F_REFLECT_TO_SELF: u32 = 1;

/// Indexes of the port program's `port_counters` map.
pub const PORT_CNT_REDIRECT: u32 = 0;
pub const PORT_CNT_NO_PORT: u32 = 1;
pub const PORT_CNT_NO_SOCKET: u32 = 2;
pub const PORT_CNT_FLOOD_CAP: u32 = 3;
pub const PORT_COUNTERS: u32 = 4;

/// `struct mvdp_hop_meta`: the XDP metadata of a traced frame, right before its data.
pub const HOP_MAGIC: u32 = 0x6d76_6470;
/// Its size; its layout is `magic: u32, pad: u32, xdp_ns: u64` (host byte order).
pub const HOP_META_LEN: usize = 16;

/// Key of the `ports` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortKey {
    /// Destination MAC, wire order.
    pub mac: [u8; 6],
    /// 802.1Q VLAN id, 0 = untagged.
    pub vlan: u16,
}

/// Value of the `ports` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortVal {
    pub slot: u32,
    pub flags: u32,
}

/// The single entry of the `config` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub flags: u32,
    pub passthru_slot: u32,
    pub passthru_vlan: u16,
    pub pad0: u16,
    pub pad1: u32,
}

/// The single entry of the port program's `port_flood_cap` map (`struct mvdp_flood_cap`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodCap {
    /// Group frames per second a port may send; 0 = no cap.
    pub pps: u64,
    pub burst: u64,
}

/// A port's bucket in `port_flood_buckets` (`struct mvdp_flood_bucket`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodBucket {
    pub stamp_ns: u64,
    /// Frame-nanoseconds: a frame costs 10^9.
    pub credit: u64,
    /// Group frames the port program dropped over the cap.
    pub dropped: u64,
    /// `FLOOD_F_*`.
    pub flags: u64,
}

/// `FloodBucket::flags`: the port is not capped (passthru).
pub const FLOOD_F_EXEMPT: u64 = 1;

const _: () = {
    assert!(size_of::<FloodCap>() == 16);
    assert!(offset_of!(FloodCap, burst) == 8);
    assert!(size_of::<FloodBucket>() == 32);
    assert!(offset_of!(FloodBucket, flags) == 24);
    assert!(offset_of!(FloodBucket, credit) == 8);
    assert!(offset_of!(FloodBucket, dropped) == 16);
    assert!(size_of::<PortKey>() == 8);
    assert!(offset_of!(PortKey, mac) == 0);
    assert!(offset_of!(PortKey, vlan) == 6);
    assert!(size_of::<PortVal>() == 8);
    assert!(offset_of!(PortVal, slot) == 0);
    assert!(offset_of!(PortVal, flags) == 4);
    assert!(size_of::<Config>() == 16);
    assert!(offset_of!(Config, passthru_slot) == 4);
    assert!(offset_of!(Config, passthru_vlan) == 8);
    assert!(offset_of!(Config, pad1) == 12);
};

// SAFETY: all three are repr(C) with no implicit padding (checked above) and every bit
// pattern is a valid value, which is what aya's Pod requires to copy them to and from maps.
unsafe impl aya::Pod for PortKey {}
// SAFETY: as above.
unsafe impl aya::Pod for PortVal {}
// SAFETY: as above.
unsafe impl aya::Pod for Config {}
// SAFETY: as above (u64 fields only, sizes checked above).
unsafe impl aya::Pod for FloodCap {}
// SAFETY: as above.
unsafe impl aya::Pod for FloodBucket {}

/// Per-CPU counters kept by the program, indexed as in `enum mvdp_counter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Counter {
    Rx = 0,
    Redirect = 1,
    PassHost = 2,
    PassGroup = 3,
    PassQinq = 4,
    DropRunt = 5,
    DropTruncVlan = 6,
    DropNoSocket = 7,
    DropBadQueue = 8,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Counter::Rx,
        Counter::Redirect,
        Counter::PassHost,
        Counter::PassGroup,
        Counter::PassQinq,
        Counter::DropRunt,
        Counter::DropTruncVlan,
        Counter::DropNoSocket,
        Counter::DropBadQueue,
    ];

    /// Stable name for stats output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Rx => "rx",
            Counter::Redirect => "redirect",
            Counter::PassHost => "pass_host",
            Counter::PassGroup => "pass_group",
            Counter::PassQinq => "pass_qinq",
            Counter::DropRunt => "drop_runt",
            Counter::DropTruncVlan => "drop_trunc_vlan",
            Counter::DropNoSocket => "drop_no_socket",
            Counter::DropBadQueue => "drop_bad_queue",
        }
    }
}

/// `MVDP_CNT__MAX`.
pub const COUNTERS: u32 = Counter::ALL.len() as u32;

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../bpf/mvdp_abi.h");

    fn define(name: &str) -> String {
        HEADER
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} not defined in mvdp_abi.h"))
            .trim()
            .to_string()
    }

    fn enum_value(name: &str) -> u32 {
        HEADER
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} not in enum mvdp_counter"))
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn constants_match_the_c_header() {
        assert_eq!(define("MVDP_MAX_QUEUES"), MAX_QUEUES.to_string());
        assert_eq!(define("MVDP_MAX_SLOTS"), MAX_SLOTS.to_string());
        assert_eq!(define("MVDP_MAX_PORTS"), MAX_PORTS.to_string());
        assert_eq!(define("MVDP_CFG_PASSTHRU"), "(1u << 0)");
        assert_eq!(CFG_PASSTHRU, 1 << 0);
        assert_eq!(define("MVDP_PORT_F_REFLECT_TO_SELF"), "(1u << 0)");
        assert_eq!(PORT_F_REFLECT_TO_SELF, 1 << 0);
    }

    #[test]
    fn counters_match_the_c_enum() {
        let c_names = [
            "MVDP_CNT_RX",
            "MVDP_CNT_REDIRECT",
            "MVDP_CNT_PASS_HOST",
            "MVDP_CNT_PASS_GROUP",
            "MVDP_CNT_PASS_QINQ",
            "MVDP_CNT_DROP_RUNT",
            "MVDP_CNT_DROP_TRUNC_VLAN",
            "MVDP_CNT_DROP_NO_SOCKET",
            "MVDP_CNT_DROP_BAD_QUEUE",
        ];
        for (c, name) in Counter::ALL.iter().zip(c_names) {
            assert_eq!(*c as u32, enum_value(name), "{name}");
        }
        assert_eq!(COUNTERS, enum_value("MVDP_CNT__MAX"));
        assert_eq!(PORT_CNT_REDIRECT, enum_value("MVDP_PORT_CNT_REDIRECT"));
        assert_eq!(PORT_CNT_NO_PORT, enum_value("MVDP_PORT_CNT_NO_PORT"));
        assert_eq!(PORT_CNT_NO_SOCKET, enum_value("MVDP_PORT_CNT_NO_SOCKET"));
        assert_eq!(PORT_CNT_FLOOD_CAP, enum_value("MVDP_PORT_CNT_FLOOD_CAP"));
        assert_eq!(PORT_COUNTERS, enum_value("MVDP_PORT_COUNTERS"));
    }
}
