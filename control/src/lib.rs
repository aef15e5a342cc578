//! mvdp's control plane: named network namespaces ([`netns`]), typed rtnetlink operations ([`netlink`]),
//! NIC offload switches ([`offload`]) and the netns test lab ([`lab`]).

pub mod error;
pub mod names;
pub mod netlink;
pub mod netns;

pub use error::{Error, Result};
pub use names::{MacAddr, Role};
pub use netlink::{Link, MacvlanMode, MacvlanOptions, Netlink, SourceMacOp, VethEnd};
pub use netns::{is_root, NetNs};
pub mod lab;
pub mod offload;

pub use lab::{install_signal_handler, Lab, LabBuilder};
pub use offload::{set_offloads, Offload};
