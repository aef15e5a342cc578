//! Name validation (interfaces, namespaces, lab prefixes). No system calls here.

use std::fmt;

use crate::error::{Error, Result};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// Longest lab prefix we accept: keeps every `{prefix}-{role}` well under NAME_MAX and readable.
pub const PREFIX_MAX: usize = 40;

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid("interface name", name, reason));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > IFNAME_MAX {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("contains '/', ':', whitespace or a control character");
    }
    Ok(())
}

/// Checks a network namespace name (a file name under /run/netns).
pub fn validate_netns_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid("netns name", name, reason));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 200 {
        return bad("longer than 200 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return bad("contains '/', whitespace or a control character");
    }
    Ok(())
}

/// Checks a lab prefix: starts with a lowercase ASCII letter, then lowercase letters, digits, '-' or '_',
/// at most [`PREFIX_MAX`] bytes, and does not end with '-'.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid("lab name", prefix, reason));
    if prefix.is_empty() {
        return bad("empty");
    }
    if prefix.len() > PREFIX_MAX {
        return bad("longer than 40 bytes");
    }
    if !prefix.as_bytes()[0].is_ascii_lowercase() {
        return bad("must start with a lowercase letter");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return bad("only a-z, 0-9, '-' and '_' are allowed");
    }
    if prefix.ends_with('-') {
        return bad("must not end with '-'");
    }
    Ok(())
}

/// A namespace's role inside a lab: the part after `{prefix}-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `{prefix}-wire`: the Linux bridge acting as the external switch.
    Wire,
    /// `{prefix}-ext`: the external host.
    Ext,
    /// `{prefix}-host` (one host) or `{prefix}-host{N}` (N >= 1, several hosts): holds a parent NIC.
    Host(Option<u32>),
    /// `{prefix}-c{N}`, N >= 1: a container.
    Container(u32),
}

impl Role {
    /// Parses a role suffix; `None` when it is not one the lab creates.
    pub fn parse(s: &str) -> Option<Role> {
        fn number(s: &str) -> Option<u32> {
            if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok().filter(|n| *n >= 1)
        }
        match s {
            "wire" => Some(Role::Wire),
            "ext" => Some(Role::Ext),
            "host" => Some(Role::Host(None)),
            _ => {
                if let Some(n) = s.strip_prefix("host") {
                    number(n).map(|n| Role::Host(Some(n)))
                } else {
                    s.strip_prefix('c').and_then(number).map(Role::Container)
                }
            }
        }
    }

    /// The namespace name for this role in lab `prefix`.
    pub fn netns_name(&self, prefix: &str) -> String {
        format!("{prefix}-{self}")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Wire => f.write_str("wire"),
            Role::Ext => f.write_str("ext"),
            Role::Host(None) => f.write_str("host"),
            Role::Host(Some(n)) => write!(f, "host{n}"),
            Role::Container(n) => write!(f, "c{n}"),
        }
    }
}

/// Splits a namespace name into (lab prefix, role) when it is one a lab creates: `{prefix}-{role}` with a
/// valid prefix and a known role. `"mvt12-wire"` -> `("mvt12", Wire)`; `"lab-x-c3"` -> `("lab-x", Container(3))`.
pub fn parse_lab_netns(name: &str) -> Option<(&str, Role)> {
    let (prefix, role) = name.rsplit_once('-')?;
    validate_prefix(prefix).ok()?;
    Some((prefix, Role::parse(role)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        assert!(validate_ifname("eth1").is_ok());
        assert!(validate_ifname("a23456789012345").is_ok());
        assert!(validate_ifname("a234567890123456").is_err());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\tb"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn netns_names() {
        assert!(validate_netns_name("mvt1-wire").is_ok());
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(validate_netns_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prefixes() {
        for ok in ["lab", "mvt1234_5", "a-b", "x"] {
            assert!(validate_prefix(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "1lab",
            "Lab",
            "la b",
            "lab-",
            "la/b",
            "-lab",
            &"a".repeat(41),
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad:?} accepted");
        }
        let e = validate_prefix("Lab").unwrap_err().to_string();
        assert!(e.contains("lab name") && e.contains("Lab"), "{e}");
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Wire,
            Role::Ext,
            Role::Host(None),
            Role::Host(Some(2)),
            Role::Container(17),
        ] {
            assert_eq!(Role::parse(&r.to_string()), Some(r));
        }
        for bad in [
            "", "c", "c0", "c01", "host0", "hostx", "wires", "cx", "c-1", "ext1",
        ] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lab_netns_parsing() {
        assert_eq!(parse_lab_netns("mvt12-wire"), Some(("mvt12", Role::Wire)));
        assert_eq!(
            parse_lab_netns("lab-x-c3"),
            Some(("lab-x", Role::Container(3)))
        );
        assert_eq!(
            parse_lab_netns("lab-host2"),
            Some(("lab", Role::Host(Some(2))))
        );
        assert_eq!(parse_lab_netns("lab-other"), None);
        assert_eq!(parse_lab_netns("wire"), None);
        assert_eq!(parse_lab_netns("Lab-wire"), None);
        // "lab" does not own "lab-x"'s namespaces.
        assert_ne!(parse_lab_netns("lab-x-wire").map(|p| p.0), Some("lab"));
    }
}
