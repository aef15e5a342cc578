//! mvdp's lab and measuring tools, apart from the shipped product.
//!
//! - [`lab`]: the network-namespace lab (wire switch, external host, hosts with a parent NIC,
//!   containers) and its [`backend`]s: kernel macvlan, a Linux bridge, or mvdp.
//! - [`bench`]: `mvdp bench`, mvdp against kernel macvlan, the Linux bridge and the AF_XDP ceiling.
//! - [`conformance`]: the same raw frames through kernel macvlan and mvdp, receiver by receiver.
//! - [`probe`]: raw and AF_XDP sockets that send and catch frames in a lab.
//! - [`process`]: the one way to stop a process (signal, grace period, SIGKILL).
//! - [`testing`]: support for the tests that build labs (root check, unique names, `ip` helpers,
//!   a recording fake dataplane, a lab with a daemon).
//!
//! ```no_run
//! use mvdp_control::Netlink;
//! use mvdp_lab::{install_signal_handler, Lab};
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

// The measuring tools drive AF_XDP through xsk-rs, whose ring API is `unsafe`; each use says why
// it holds, as in the engine.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod backend;
pub mod bench;
pub mod conformance;
pub mod lab;
pub mod probe;
pub mod process;
pub mod soak;
pub mod testing;

pub use backend::Backend;
pub use lab::{install_signal_handler, Lab, LabBuilder};
