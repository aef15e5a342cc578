//! Errors of the loader and the flood tap, phrased for the person who has to act on them.

#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    #[error("interface {0} does not exist (in this network namespace)")]
    NoSuchInterface(String),
    #[error("interface {ifname} cannot be an mvdp parent: {why}")]
    NotEthernet { ifname: String, why: &'static str },
    #[error(
        "interface {ifname} already has an XDP program attached; mvdp does not replace it \
         (see `ip link show {ifname}`, and detach it with `ip link set {ifname} xdp off` if it is stale)"
    )]
    AlreadyAttached { ifname: String },
    #[error("loading the demux program: {0}")]
    Load(String),
    #[error("attaching the demux program to {ifname}: {detail}")]
    Attach { ifname: String, detail: String },
    #[error("BPF map `{map}`: {detail}")]
    Map { map: &'static str, detail: String },
    #[error("{what} {value} is out of range (0..={max})")]
    OutOfRange {
        what: &'static str,
        value: u32,
        max: u32,
    },
}
