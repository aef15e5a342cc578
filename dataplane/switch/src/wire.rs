//! Zero-copy views over Ethernet and 802.1Q headers, plus in-place tag push/pop.
//!
//! Views borrow the frame bytes and read fields on demand (smoltcp style); the
//! only check is done once in `new_checked`, so field accessors cannot panic.
//! `L2Header::parse` is the one-shot form the decision engine uses: it reads
//! everything a forwarding decision needs in a single bounds check per header.

use crate::mac::Mac;

pub const ETH_HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
/// Destination + source MAC: the bytes that move when a tag is pushed or popped.
const MAC_PAIR_LEN: usize = 12;

/// EtherType values the switch has to recognise.
pub mod ethertype {
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ still emitted by some gear.
    pub const QINQ_LEGACY: u16 = 0x9100;
    /// 802.3x PAUSE: the kernel's macvlan_broadcast never replicates it.
    pub const PAUSE: u16 = 0x8808;

    /// Any EtherType that would make the frame carry a VLAN tag.
    #[inline]
    pub const fn is_tag(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_LEGACY)
    }
}

/// Why a frame could not be parsed or rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame shorter than an Ethernet header")]
    Runt,
    #[error("802.1Q tag cut short")]
    TruncatedTag,
    #[error("no room in the headroom to push a tag")]
    NoHeadroom,
    #[error("frame is not 802.1Q tagged")]
    NotTagged,
    #[error("frame range lies outside its buffer")]
    OutOfBounds,
}

/// An Ethernet II frame over any byte buffer.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer that holds at least an Ethernet header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ETH_HEADER_LEN {
            return Err(WireError::Runt);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline]
    fn header(&self) -> &[u8; ETH_HEADER_LEN] {
        // new_checked guaranteed the length, so the fallback is unreachable;
        // it exists so this path has no panic edge at all.
        self.buffer
            .as_ref()
            .first_chunk::<ETH_HEADER_LEN>()
            .unwrap_or(&[0; ETH_HEADER_LEN])
    }

    #[inline]
    pub fn dst(&self) -> Mac {
        let h = self.header();
        Mac([h[0], h[1], h[2], h[3], h[4], h[5]])
    }

    #[inline]
    pub fn src(&self) -> Mac {
        let h = self.header();
        Mac([h[6], h[7], h[8], h[9], h[10], h[11]])
    }

    /// The outer EtherType (0x8100 for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[12], h[13]])
    }

    /// The 802.1Q tag, if the frame has one and it is complete.
    pub fn vlan_tag(&self) -> Result<Option<VlanTag>, WireError> {
        if self.ethertype() != ethertype::VLAN {
            return Ok(None);
        }
        let b = self.buffer.as_ref();
        match b.get(ETH_HEADER_LEN..ETH_HEADER_LEN + VLAN_TAG_LEN) {
            Some(t) => Ok(Some(VlanTag {
                tci: u16::from_be_bytes([t[0], t[1]]),
                inner_ethertype: u16::from_be_bytes([t[2], t[3]]),
            })),
            None => Err(WireError::TruncatedTag),
        }
    }

    /// Bytes after the Ethernet header (and after the tag, when tagged).
    pub fn payload(&self) -> Result<&[u8], WireError> {
        let off = match self.vlan_tag()? {
            Some(_) => ETH_HEADER_LEN + VLAN_TAG_LEN,
            None => ETH_HEADER_LEN,
        };
        Ok(self.buffer.as_ref().get(off..).unwrap_or(&[]))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// An 802.1Q tag: TCI plus the EtherType it wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub tci: u16,
    pub inner_ethertype: u16,
}

impl VlanTag {
    #[inline]
    pub const fn vid(self) -> u16 {
        self.tci & 0x0fff
    }
    #[inline]
    pub const fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }
}

/// Everything the forwarding decision reads from a frame, parsed in one go.
///
/// MACs are kept packed (`Mac::to_u64`): the table is keyed by the packed
/// form, and two 8-byte loads are much cheaper than twelve byte loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Header {
    /// Destination MAC, packed big-endian into the low 48 bits.
    pub dst: u64,
    /// Source MAC, packed the same way.
    pub src: u64,
    /// TCI of an outer 802.1Q tag. `Some` also for priority-tagged frames (VID 0).
    pub tci: Option<u16>,
    /// The EtherType after the tag, or the outer one when untagged.
    pub ethertype: u16,
}

impl L2Header {
    /// Parses the Ethernet header and an outer 802.1Q tag. Only 0x8100 is
    /// treated as a tag: 802.1ad frames are data to a customer-VLAN switch.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<L2Header, WireError> {
        let Some(h) = frame.first_chunk::<ETH_HEADER_LEN>() else {
            return Err(WireError::Runt);
        };
        // Two overlapping 8-byte loads: bytes 0..8 (dst + 2 bytes of src) and
        // 6..14 (src + EtherType). Whole-array conversions compile to a load
        // and a bswap; rebuilding from single bytes did not.
        let (head, tail) = (h.first_chunk::<8>(), h.last_chunk::<8>());
        let (Some(head), Some(tail)) = (head, tail) else {
            return Err(WireError::Runt);
        };
        let dst = u64::from_be_bytes(*head) >> 16;
        let tail = u64::from_be_bytes(*tail);
        let src = tail >> 16;
        let outer = tail as u16;
        if outer != ethertype::VLAN {
            return Ok(L2Header {
                dst,
                src,
                tci: None,
                ethertype: outer,
            });
        }
        let Some(t) = frame.first_chunk::<{ ETH_HEADER_LEN + VLAN_TAG_LEN }>() else {
            return Err(WireError::TruncatedTag);
        };
        Ok(L2Header {
            dst,
            src,
            tci: Some(u16::from_be_bytes([t[14], t[15]])),
            ethertype: u16::from_be_bytes([t[16], t[17]]),
        })
    }

    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci.map_or(0, |t| t & 0x0fff)
    }

    #[inline]
    pub fn dst_mac(&self) -> Mac {
        Mac::from_u64(self.dst)
    }

    #[inline]
    pub fn src_mac(&self) -> Mac {
        Mac::from_u64(self.src)
    }

    /// The group bit of the destination: broadcast or multicast.
    #[inline]
    pub fn dst_is_multicast(&self) -> bool {
        self.dst & (1 << 40) != 0
    }
}

/// Inserts an 802.1Q tag in place, using headroom before the frame.
///
/// `chunk` is the whole UMEM chunk; the frame occupies `start..start + len`.
/// The MAC pair moves 4 bytes towards the chunk start and the tag fills the gap,
/// so the payload is never touched. Returns the frame's new start (its length
/// grows by 4).
pub fn push_vlan_tag(
    chunk: &mut [u8],
    start: usize,
    len: usize,
    tci: u16,
) -> Result<usize, WireError> {
    let end = start.checked_add(len).ok_or(WireError::OutOfBounds)?;
    if end > chunk.len() {
        return Err(WireError::OutOfBounds);
    }
    if len < ETH_HEADER_LEN {
        return Err(WireError::Runt);
    }
    let new_start = start
        .checked_sub(VLAN_TAG_LEN)
        .ok_or(WireError::NoHeadroom)?;
    chunk.copy_within(start..start + MAC_PAIR_LEN, new_start);
    let tag_at = new_start + MAC_PAIR_LEN;
    let [t0, t1] = ethertype::VLAN.to_be_bytes();
    let [c0, c1] = tci.to_be_bytes();
    if let Some(t) = chunk.get_mut(tag_at..tag_at + VLAN_TAG_LEN) {
        t.copy_from_slice(&[t0, t1, c0, c1]);
    }
    Ok(new_start)
}

/// Removes an outer 802.1Q tag in place: the MAC pair moves 4 bytes forward over
/// the tag. Returns the frame's new start (its length shrinks by 4).
pub fn pop_vlan_tag(chunk: &mut [u8], start: usize, len: usize) -> Result<usize, WireError> {
    let end = start.checked_add(len).ok_or(WireError::OutOfBounds)?;
    let frame = chunk.get(start..end).ok_or(WireError::OutOfBounds)?;
    match L2Header::parse(frame)? {
        L2Header { tci: Some(_), .. } => {}
        _ => return Err(WireError::NotTagged),
    }
    let new_start = start + VLAN_TAG_LEN;
    chunk.copy_within(start..start + MAC_PAIR_LEN, new_start);
    Ok(new_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tagged: Option<u16>) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        if let Some(tci) = tagged {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00, 0xde, 0xad]);
        f
    }

    #[test]
    fn parses_untagged_and_tagged() {
        let h = L2Header::parse(&frame(None)).unwrap();
        assert_eq!((h.tci, h.ethertype, h.vid()), (None, 0x0800, 0));
        let h = L2Header::parse(&frame(Some(0x6000 | 42))).unwrap();
        assert_eq!(
            (h.tci, h.ethertype, h.vid()),
            (Some(0x6000 | 42), 0x0800, 42)
        );
        assert_eq!(h.src_mac(), Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(h.dst_mac(), Mac([2, 0, 0, 0, 0, 2]));
        assert!(!h.dst_is_multicast());
        let mut b = frame(None);
        b[..6].copy_from_slice(&[0xff; 6]);
        assert!(L2Header::parse(&b).unwrap().dst_is_multicast());
        b[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
        assert!(L2Header::parse(&b).unwrap().dst_is_multicast());
    }

    #[test]
    fn short_frames_are_errors() {
        assert_eq!(L2Header::parse(&[0; 13]), Err(WireError::Runt));
        let mut f = frame(Some(5));
        f.truncate(17);
        assert_eq!(L2Header::parse(&f), Err(WireError::TruncatedTag));
        assert!(EthernetFrame::new_checked(&f[..13]).is_err());
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap().vlan_tag(),
            Err(WireError::TruncatedTag)
        );
    }

    #[test]
    fn view_reads_fields() {
        let f = frame(Some(7));
        let v = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(v.dst(), Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(v.ethertype(), ethertype::VLAN);
        assert_eq!(v.vlan_tag().unwrap().unwrap().vid(), 7);
        assert_eq!(v.payload().unwrap(), &[0xde, 0xad]);
    }

    #[test]
    fn push_then_pop_restores_the_frame() {
        let original = frame(None);
        let mut chunk = vec![0u8; 64];
        let start = 32;
        chunk[start..start + original.len()].copy_from_slice(&original);
        let s = push_vlan_tag(&mut chunk, start, original.len(), 100).unwrap();
        assert_eq!(s, start - 4);
        assert_eq!(&chunk[s..s + original.len() + 4], &frame(Some(100))[..]);
        let s2 = pop_vlan_tag(&mut chunk, s, original.len() + 4).unwrap();
        assert_eq!(s2, start);
        assert_eq!(&chunk[s2..s2 + original.len()], &original[..]);
    }

    #[test]
    fn push_needs_headroom_and_pop_needs_a_tag() {
        let f = frame(None);
        let mut chunk = f.clone();
        assert_eq!(
            push_vlan_tag(&mut chunk, 0, f.len(), 1),
            Err(WireError::NoHeadroom)
        );
        assert_eq!(
            pop_vlan_tag(&mut chunk, 0, f.len()),
            Err(WireError::NotTagged)
        );
        assert_eq!(
            pop_vlan_tag(&mut chunk, 4, 100),
            Err(WireError::OutOfBounds)
        );
        assert_eq!(
            push_vlan_tag(&mut chunk, usize::MAX, 2, 1),
            Err(WireError::OutOfBounds)
        );
    }
}
