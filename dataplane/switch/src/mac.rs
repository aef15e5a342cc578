//! Ethernet (MAC) addresses.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// A locally administered unicast address `02:6d:76:a:b:c` ("mv"): what mvdp's labs and tests
    /// give their interfaces.
    pub const fn lab(a: u8, b: u8, c: u8) -> Mac {
        Mac([0x02, 0x6d, 0x76, a, b, c])
    }

    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self == Mac::ZERO
    }

    /// Reads the address out of the first six bytes; `None` if fewer are given.
    #[inline]
    pub fn from_slice(bytes: &[u8]) -> Option<Mac> {
        let b: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(Mac(b))
    }

    /// The group bit (I/G): set for broadcast and every multicast address.
    #[inline]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    #[inline]
    pub fn is_broadcast(self) -> bool {
        self == Mac::BROADCAST
    }

    /// What the kernel's `is_valid_ether_addr` accepts for a device address.
    #[inline]
    pub fn is_valid_unicast(self) -> bool {
        !self.is_multicast() && self != Mac::ZERO
    }

    /// Big-endian packing into the low 48 bits, so table keys can carry a
    /// segment number in the top 16.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    #[inline]
    pub const fn from_u64(v: u64) -> Mac {
        let b = v.to_be_bytes();
        Mac([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a textual MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:00:00:00:00:01")]
pub struct ParseMacError(pub String);

impl FromStr for Mac {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Mac, ParseMacError> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

/// A MAC is written and read as its usual text, `02:00:00:00:00:01`, in JSON and state files.
impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let m: Mac = "02:00:00:aa:bb:cc".parse().unwrap();
        assert_eq!(m.to_u64(), 0x0200_00aa_bbcc);
        assert_eq!(Mac::from_u64(m.to_u64()), m);
        assert_eq!(m.to_string(), "02:00:00:aa:bb:cc");
    }

    #[test]
    fn group_bit() {
        assert!(Mac::BROADCAST.is_multicast());
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap().is_multicast());
        assert!(!"02:00:00:00:00:01".parse::<Mac>().unwrap().is_multicast());
        assert!(!Mac::ZERO.is_valid_unicast());
    }

    #[test]
    fn serde_as_text() {
        let m = Mac::lab(0, 1, 10);
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, "\"02:6d:76:00:01:0a\"");
        assert_eq!(serde_json::from_str::<Mac>(&j).unwrap(), m);
        let e = serde_json::from_str::<Mac>("\"02:00\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid MAC address"), "{e}");
    }

    #[test]
    fn rejects_bad_text() {
        for s in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "zz:00:00:00:00:00",
            "002:0:0:0:0:0",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s}");
        }
    }
}
