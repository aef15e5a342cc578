//! IPv4 prefixes and address allocation for networks: no system calls, so every rule is unit tested.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{AddrParseError, Ipv4Addr};
use std::num::ParseIntError;
use std::str::FromStr;

/// Why an IPv4 address or prefix was refused (the texts are the daemon's replies).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{input:?} is not an IPv4 address (IPv6 is not supported yet)")]
    NotIpv4 {
        input: String,
        #[source]
        source: AddrParseError,
    },
    /// The part after `/` is not a number, or is above 32 (`source` is absent then).
    #[error("{input:?}: prefix length must be 0-32")]
    BadPrefixLen {
        input: String,
        #[source]
        source: Option<ParseIntError>,
    },
    #[error("prefix length {0} is above 32")]
    PrefixAbove32(u8),
    #[error("{addr}/{len} has host bits set (the network is {network}/{len})")]
    HostBits {
        addr: Ipv4Addr,
        len: u8,
        network: Ipv4Addr,
    },
    #[error("{0:?} needs a prefix length, like 198.18.0.0/24")]
    NoPrefixLen(String),
}

/// An IPv4 network: an address with its host bits clear, and a prefix length.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl Ipv4Net {
    /// The network `addr/len`; refused when `addr` has host bits set (a typo more often than not).
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Net, CidrError> {
        if len > 32 {
            return Err(CidrError::PrefixAbove32(len));
        }
        let a = u32::from(addr);
        if a & !mask(len) != 0 {
            return Err(CidrError::HostBits {
                addr,
                len,
                network: Ipv4Addr::from(a & mask(len)),
            });
        }
        Ok(Ipv4Net { addr, len })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
    pub fn len(&self) -> u8 {
        self.len
    }
    /// Always false: even a /32 holds one address. (Present because clippy pairs it with `len`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.len))
    }

    /// Whether `ip` may be given to an interface: inside, and (for /30 and wider, where they exist)
    /// neither the network nor the broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.len >= 31 || (ip != self.addr && ip != self.broadcast()))
    }

    /// The first host address, Docker's default gateway (none for /31 and /32).
    pub fn first_host(&self) -> Option<Ipv4Addr> {
        (self.len <= 30).then(|| Ipv4Addr::from(u32::from(self.addr) + 1))
    }

    fn first_last(&self) -> (u32, u32) {
        (u32::from(self.addr), u32::from(self.broadcast()))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (ip, len) = parse_cidr(s)?;
        let len = len.ok_or_else(|| CidrError::NoPrefixLen(s.to_string()))?;
        Ipv4Net::new(ip, len)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = CidrError;
    fn try_from(s: String) -> Result<Self, CidrError> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// Parses `a.b.c.d` or `a.b.c.d/len` (IPv4 only: mvdp networks are IPv4 for now).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, Option<u8>), CidrError> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|e| CidrError::NotIpv4 {
        input: s.to_string(),
        source: e,
    })?;
    let len = match len.map(str::parse::<u8>) {
        None => None,
        Some(Ok(n)) if n <= 32 => Some(n),
        Some(r) => {
            return Err(CidrError::BadPrefixLen {
                input: s.to_string(),
                source: r.err(),
            })
        }
    };
    Ok((ip, len))
}

/// The next address for a new port: the lowest host address of `range` (or the whole subnet) that is
/// not the gateway and not in `used`. `None` when the pool is exhausted.
pub fn next_free(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    gateway: Option<Ipv4Addr>,
    used: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let (first, last) = range.unwrap_or(subnet).first_last();
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| subnet.is_host(*ip) && Some(*ip) != gateway && !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_refuses_host_bits() {
        let n = net("198.18.0.0/24");
        assert_eq!((n.addr(), n.len()), (Ipv4Addr::new(198, 18, 0, 0), 24));
        assert_eq!(n.to_string(), "198.18.0.0/24");
        let e = "198.18.0.5/24".parse::<Ipv4Net>().unwrap_err().to_string();
        assert!(
            e.contains("host bits") && e.contains("198.18.0.0/24"),
            "{e}"
        );
        for bad in [
            "198.18.0.0",
            "198.18.0.0/33",
            "x/24",
            "fd00::/64",
            "198.18.0.0/",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad} accepted");
        }
        assert_eq!(net("0.0.0.0/0").broadcast(), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn membership_and_hosts() {
        let n = net("198.18.0.0/24");
        assert!(n.contains("198.18.0.255".parse().unwrap()));
        assert!(!n.contains("198.18.1.0".parse().unwrap()));
        assert!(!n.is_host("198.18.0.0".parse().unwrap()));
        assert!(!n.is_host("198.18.0.255".parse().unwrap()));
        assert!(n.is_host("198.18.0.1".parse().unwrap()));
        assert_eq!(n.first_host(), Some("198.18.0.1".parse().unwrap()));
        assert!(net("10.0.0.0/31").is_host("10.0.0.0".parse().unwrap()));
        assert_eq!(net("10.0.0.0/31").first_host(), None);
        assert!(n.covers(&net("198.18.0.128/25")));
        assert!(!net("198.18.0.128/25").covers(&n));
        assert!(!n.covers(&net("198.18.1.0/25")));
    }

    #[test]
    fn allocation_skips_gateway_used_and_reserved() {
        let n = net("198.18.0.0/29"); // hosts .1-.6
        let gw = n.first_host();
        let mut used = BTreeSet::new();
        let mut got = vec![];
        while let Some(ip) = next_free(&n, None, gw, &used) {
            used.insert(ip);
            got.push(ip.octets()[3]);
        }
        assert_eq!(got, vec![2, 3, 4, 5, 6]);
        // A range starting at the subnet's network address still skips it.
        let r = net("198.18.0.0/30");
        assert_eq!(
            next_free(&n, Some(&r), None, &BTreeSet::new()),
            Some("198.18.0.1".parse().unwrap())
        );
        let r = net("198.18.0.4/30");
        let used: BTreeSet<_> = ["198.18.0.4".parse().unwrap()].into();
        assert_eq!(
            next_free(&n, Some(&r), gw, &used),
            Some("198.18.0.5".parse().unwrap())
        );
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("198.18.0.7/24").unwrap(),
            ("198.18.0.7".parse().unwrap(), Some(24))
        );
        assert_eq!(parse_cidr("198.18.0.7").unwrap().1, None);
        assert!(parse_cidr("198.18.0.7/40").is_err());
        assert!(parse_cidr("nope").is_err());
    }

    #[test]
    fn serde_as_string() {
        let n = net("198.18.0.0/24");
        let s = serde_json::to_string(&n).unwrap();
        assert_eq!(s, "\"198.18.0.0/24\"");
        assert_eq!(serde_json::from_str::<Ipv4Net>(&s).unwrap(), n);
        assert!(serde_json::from_str::<Ipv4Net>("\"198.18.0.1/24\"").is_err());
    }
}
