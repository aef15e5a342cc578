//! A port's multicast filter: which group addresses its container's interface listens to.
//!
//! Kernel macvlan hands a broadcast or multicast to a macvlan only when the destination hashes
//! into that macvlan's `mc_filter`, a 256-bit set built from the device's multicast list (every
//! bit when it is promiscuous or ALLMULTI; the broadcast address always). So on a host of a
//! thousand containers a router solicitation (to ff02::2, which hosts do not join) or an MLD
//! report reaches the wire and almost no container, and a neighbour solicitation reaches the one
//! container whose solicited-node group it names. This is the same set, with the same accuracy:
//! a group outside the list reaches a port only when it shares a bucket with one in the list.
//!
//! The decision hashes a frame's destination once ([`McBucket::of`]); the flood loop then tests
//! one bit per port. Which groups a port listens to is the control plane's business.

use crate::mac::Mac;

/// Buckets in a filter: the kernel's `MACVLAN_MC_FILTER_SZ`.
pub const BUCKETS: usize = 256;

/// The bucket a group address falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct McBucket(pub u8);

impl McBucket {
    /// A multiplicative hash of the whole address, top bits: group addresses differ mostly in
    /// their last bytes (33:33:ff:xx:xx:xx, 01:00:5e:xx:xx:xx), which all feed the top byte.
    #[inline]
    pub const fn of(group: Mac) -> McBucket {
        McBucket::of_packed(group.to_u64())
    }

    /// [`McBucket::of`] an address packed as [`Mac::to_u64`] does (how a parsed header holds it).
    #[inline]
    pub const fn of_packed(group: u64) -> McBucket {
        McBucket((group.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
    }
}

/// The groups a port receives, as a set of buckets.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct McFilter([u64; BUCKETS / 64]);

impl McFilter {
    /// Every group: a promiscuous or ALLMULTI interface, or one whose list is not known (yet).
    pub const ALL: McFilter = McFilter([u64::MAX; BUCKETS / 64]);

    /// The broadcast address and `groups`, as the kernel's `macvlan_set_mac_lists` builds it.
    pub fn of_groups(groups: impl IntoIterator<Item = Mac>) -> McFilter {
        let mut f = McFilter([0; BUCKETS / 64]);
        f.insert(Mac::BROADCAST);
        for g in groups {
            f.insert(g);
        }
        f
    }

    fn insert(&mut self, group: Mac) {
        let b = McBucket::of(group).0 as usize;
        self.0[b / 64] |= 1 << (b % 64);
    }

    /// Whether a frame to a group in bucket `b` is handed to this port.
    #[inline]
    pub const fn passes(&self, b: McBucket) -> bool {
        let b = b.0 as usize;
        self.0[b / 64] & (1 << (b % 64)) != 0
    }

    pub fn is_all(&self) -> bool {
        *self == McFilter::ALL
    }
}

impl Default for McFilter {
    /// A port starts open: until its list is read it receives every group, as before filters.
    fn default() -> McFilter {
        McFilter::ALL
    }
}

impl std::fmt::Debug for McFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_all() {
            return f.write_str("McFilter(all)");
        }
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "McFilter({n} buckets)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    #[test]
    fn broadcast_always_passes() {
        assert!(McFilter::of_groups([]).passes(McBucket::of(Mac::BROADCAST)));
        assert!(McFilter::ALL.passes(McBucket::of(Mac::BROADCAST)));
    }

    #[test]
    fn listed_groups_pass_and_others_mostly_do_not() {
        let own = mac("33:33:ff:31:bf:93");
        let f = McFilter::of_groups([mac("33:33:00:00:00:01"), mac("01:00:5e:00:00:01"), own]);
        assert!(f.passes(McBucket::of(own)));
        assert!(f.passes(McBucket::of(mac("33:33:00:00:00:01"))));
        assert!(!f.is_all());
        // What a host's stack sends but does not listen to: router solicitations, MLDv2 and
        // IGMPv3 reports, other hosts' solicited-node groups.
        let rs = mac("33:33:00:00:00:02");
        let mld = mac("33:33:00:00:00:16");
        let igmp = mac("01:00:5e:00:00:16");
        for g in [rs, mld, igmp] {
            assert!(!f.passes(McBucket::of(g)), "{g} shares a bucket");
        }
        // Over many solicited-node groups, about 4 in 256 share a bucket with the 4 listed.
        let leaked = (0..4096u32)
            .map(|i| {
                let b = i.to_be_bytes();
                Mac([0x33, 0x33, 0xff, b[1], b[2], b[3]])
            })
            .filter(|&g| g != own && f.passes(McBucket::of(g)))
            .count();
        assert!(leaked < 4096 * 8 / 256, "{leaked} of 4096 leaked");
    }

    #[test]
    fn the_hash_spreads_solicited_node_groups() {
        let mut seen = [false; BUCKETS];
        for i in 0..1024u32 {
            let b = i.to_be_bytes();
            seen[McBucket::of(Mac([0x33, 0x33, 0xff, b[1], b[2], b[3]])).0 as usize] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() > 200);
    }

    #[test]
    fn all_passes_everything() {
        for b in 0..=255u8 {
            assert!(McFilter::ALL.passes(McBucket(b)));
        }
        assert!(McFilter::default().is_all());
    }
}
