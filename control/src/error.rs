//! One error type for the control crate: every variant names the operation and the object it failed on.

use std::io;

/// Errors from netns, netlink, offload and lab operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed, e.g. "creating veth eth1/whost1 in netns mvdp-x-host: File exists (os error 17)".
    #[error("{op} in netns {netns}: {source}")]
    Netlink {
        op: String,
        netns: String,
        #[source]
        source: io::Error,
    },
    /// A system call or file operation (mount, setns, /run/netns) failed.
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// An external program (e.g. `ethtool`) exited non-zero.
    #[error("{op}: `{command}` failed ({status}): {stderr}")]
    Command {
        op: String,
        command: String,
        status: String,
        stderr: String,
    },
    /// A name, address or option was refused before anything was changed.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// A link looked up by name does not exist.
    #[error("link {name} not found in netns {netns}")]
    LinkNotFound { name: String, netns: String },
    /// A namespace looked up by name does not exist.
    #[error("network namespace {0} does not exist (no /run/netns/{0})")]
    NetnsNotFound(String),
    /// Building a lab whose namespaces already exist.
    #[error("lab {prefix} already exists (namespaces: {}); run `mvdp lab down --name {prefix}`", namespaces.join(", "))]
    LabExists {
        prefix: String,
        namespaces: Vec<String>,
    },
    /// `lab down` of a lab that does not exist.
    #[error("no lab named {0}: no network namespace {0}-<wire|ext|host|hostN|cN> exists; nothing removed")]
    NoSuchLab(String),
    /// `lab down` of namespaces that look like a lab's but that `mvdp lab up` did not record.
    #[error("namespaces {} look like lab {prefix}, but mvdp did not create them (no record in /run/mvdp/labs); nothing removed. If they are leftovers, remove them with `ip netns del NAME`", namespaces.join(", "))]
    NotOurLab {
        prefix: String,
        namespaces: Vec<String>,
    },
    /// The operation needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
    #[error("{0} needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run it with sudo")]
    NotRoot(String),
    /// A macvlan mode name that is none of the kernel's.
    #[error(transparent)]
    Mode(#[from] mvdp_switch::ParseModeError),
    /// Text that is not a MAC address.
    #[error(transparent)]
    Mac(#[from] mvdp_switch::ParseMacError),
}

impl Error {
    /// The errno behind this error, when there is one (EEXIST, ENODEV, ...).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn io(op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            op: op.into(),
            source: source.into(),
        }
    }

    pub fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Convert an rtnetlink error into an io::Error carrying the errno when the kernel sent one.
pub(crate) fn rtnl_to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => io::Error::from_raw_os_error(-code.get()),
            None => io::Error::other("netlink NACK without error code"),
        },
        other => io::Error::other(other),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
