//! mvdp's control plane: named network namespaces ([`netns`]), typed rtnetlink operations ([`netlink`]),
//! NIC offload switches ([`offload`]) and the netns test lab ([`lab`]) with its container [`backend`]s.
//!
//! ```no_run
//! use mvdp_control::{install_signal_handler, Lab, Netlink};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! install_signal_handler()?; // Ctrl-C removes live labs and exits 130
//! let lab = Lab::builder("mvt42").containers(2).hairpin(true).build()?;
//! // Attach things inside the host netns: sockets/XDP links made here stay bound to it.
//! let parent = lab.parent_ifname().to_string();
//! let mtu = lab.host().run(move || std::fs::read_to_string(format!("/sys/class/net/{parent}/mtu")))??;
//! // Or use typed netlink on it from here.
//! let eth1 = Netlink::in_netns(lab.host())?.link("eth1")?;
//! // Programs inside a netns.
//! let ok = lab.ext().command("ping").args(["-c1", "-W1", &lab.host_ip().to_string()]).status()?.success();
//! # let _ = (mtu, eth1, ok);
//! drop(lab); // every namespace goes, and the links with them
//! # Ok(()) }
//! ```

pub mod backend;
pub mod dataplane;
pub mod error;
pub mod lab;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod offload;

pub use backend::Backend;
pub use error::{Error, Result};
pub use lab::{install_signal_handler, Lab, LabBuilder};
pub use names::{MacAddr, Role};
pub use netlink::{Link, MacvlanMode, MacvlanOptions, Netlink, SourceMacOp, VethEnd};
pub use netns::{is_root, NetNs};
pub use offload::{set_offloads, Offload};
