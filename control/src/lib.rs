//! What a deployed host runs besides the fast path: named network namespaces ([`netns`]), typed
//! rtnetlink operations ([`netlink`]), NIC offload switches ([`offload`]), and the mvdp [`daemon`]
//! (its state machine, control socket, IPAM and persistence) that drives a forwarding plane through
//! [`mvdp_switch::plane::Dataplane`].
//!
//! The crate reaches the kernel's network configuration over netlink only: rtnetlink through
//! [`netlink::Netlink`], and ethtool's family for NIC features through [`ethtool`] (the
//! rust-netlink crates cannot set features). It runs no program.

#![forbid(unsafe_code)]

pub mod cni;
pub mod daemon;
pub mod docker;
pub mod error;
pub mod ethtool;
pub mod linkwatch;
pub mod mcast;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod offload;

pub use error::{Error, Result};
/// The MAC and mode types every layer shares (defined by the switch core).
pub use mvdp_switch::{Mac, Mode};
pub use names::Role;
pub use netlink::{Link, MacvlanOptions, Netlink, SourceMacOp, VethEnd};
pub use netns::{is_root, NetNs};
pub use offload::{set_offloads, Offload};
