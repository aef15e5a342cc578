//! Open-addressed hash table from a packed (segment, MAC) key to a small value.
//!
//! Built once per table snapshot and then only read, so it needs no deletion
//! and no resizing. Linear probing over a power-of-two array kept at most half
//! full: a hit is usually the first slot, and every probe sequence ends at an
//! empty slot. Keys and values sit side by side so a lookup touches one cache
//! line. Measured against std's HashMap (SipHash) in benches/switch_core.rs.

/// A key no real entry can have: segment numbers stop below 0xffff
/// (checked by the table builder), so the top 16 bits are never all ones.
const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct MacMap<V = u32> {
    slots: Box<[(u64, V)]>,
    shift: u32,
}

/// Packs a segment number and a MAC (48 bits) into one key.
#[inline]
pub const fn key(segment: u16, mac48: u64) -> u64 {
    ((segment as u64) << 48) | (mac48 & 0xffff_ffff_ffff)
}

impl<V: Copy + Default> MacMap<V> {
    /// Builds from unique keys; a repeated key keeps its first value (the
    /// builder rejects duplicates before getting here).
    pub fn build(entries: &[(u64, V)]) -> MacMap<V> {
        let cap = (entries.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![(EMPTY, V::default()); cap].into_boxed_slice();
        let shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for &(k, v) in entries {
            debug_assert_ne!(k, EMPTY);
            let mut i = Self::slot(k, shift);
            loop {
                let s = &mut slots[i];
                if s.0 == EMPTY {
                    *s = (k, v);
                    break;
                }
                if s.0 == k {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        MacMap { slots, shift }
    }

    #[inline]
    fn slot(k: u64, shift: u32) -> usize {
        // Fibonacci hashing: the multiply spreads the MAC's low (NIC-specific)
        // bits and the segment into the high bits we keep.
        (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
    }

    #[inline]
    pub fn get(&self, k: u64) -> Option<V> {
        let mask = self.slots.len() - 1;
        let mut i = Self::slot(k, self.shift);
        // Bounded so that even a (impossible) full table cannot spin.
        for _ in 0..self.slots.len() {
            let (sk, sv) = *self.slots.get(i)?;
            if sk == EMPTY {
                return None;
            }
            if sk == k {
                return Some(sv);
            }
            i = (i + 1) & mask;
        }
        None
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_put_and_nothing_else() {
        let entries: Vec<(u64, u32)> = (0..1000u32)
            .map(|i| (key((i % 7) as u16, 0x0200_0000_0000 + u64::from(i)), i))
            .collect();
        let m = MacMap::build(&entries);
        assert!(m.capacity() >= 2000);
        for &(k, v) in &entries {
            assert_eq!(m.get(k), Some(v));
        }
        assert_eq!(m.get(key(7, 0x0200_0000_0000)), None);
        assert_eq!(m.get(EMPTY), None);
    }

    #[test]
    fn empty_map_misses() {
        let m = MacMap::<u32>::build(&[]);
        assert_eq!(m.get(key(0, 1)), None);
    }
}
