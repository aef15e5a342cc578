//! The netns test lab: an external switch, an external host, one or two hosts with a parent NIC, and N
//! container namespaces, all under a unique name prefix, removed on drop, on panic and on Ctrl-C.
//!
//! ```text
//!  {prefix}-ext            {prefix}-wire                          {prefix}-host (or host1, host2)
//!  eth0 198.18.0.254 ──── wext ─ br0 ─ whost1 ─────────────────── eth1 198.18.0.1 (the parent NIC)
//!                                     (hairpin on whostN if asked)  vc1..vcN ── eth0 in {prefix}-c1..cN
//!                                                                   (only with container veths)
//! ```
//!
//! Addresses come only from the RFC 2544 benchmarking range 198.18.0.0/24: hosts' parents 198.18.0.1..,
//! containers from 198.18.0.10, the external host 198.18.0.254. MACs are locally administered
//! 02:6d:76:xx:xx:xx. Offloads: the wire bridge's veth ends and the external host's end have `txvlan` (and
//! the 802.1ad twin) off so tags stay in frame data, each parent has `rxvlan` (and twin) off, container
//! ends have TX checksum offload off. IPv6 is disabled in every lab namespace unless asked for.
//!
//! The module's files:
//! - [`addressing`]: names, addresses, MACs and offloads every lab uses;
//! - [`builder`]: [`LabBuilder`], its checks and the build itself; `attach`: containers on kernel
//!   macvlan, a bridge or plain veths;
//! - [`built`]: [`Lab`], its hosts and containers, and what can be done to a built lab;
//! - [`description`]: what `mvdp lab up --json` and `mvdp lab ls` print;
//! - [`records`]: labs left up (`/run/mvdp/labs`), `mvdp lab down` and `mvdp lab ls`;
//! - [`daemon`]: mvdp daemons on a lab: started (as a process or in this process), containers
//!   attached as ports, stopped;
//! - [`ovs`]: Open vSwitch (userspace datapath, AF_XDP ports) on a lab, for `mvdp bench`;
//! - [`registry`]: the labs and daemons alive in this process, and the Ctrl-C handler;
//! - `cleanup`: the guard that removes a half-built or dropped lab.

pub mod addressing;
mod attach;
pub mod builder;
pub mod built;
mod cleanup;
pub mod daemon;
pub mod description;
pub mod ovs;
pub mod records;
pub mod registry;

pub use addressing::*;
pub use builder::{ContainerAddr, LabBuilder};
pub use built::{ContainerLink, ContainerVeth, Lab, LabContainer, LabHost};
pub use daemon::{daemon_dir, LabDaemon};
pub use description::{
    ContainerDescription, EndpointDescription, HostDescription, LabDescription, LabSummary,
    WireDescription,
};
pub use records::group_labs;
pub use registry::{
    destroy_all_live, forget_daemon_on_interrupt, install_signal_handler, stop_daemon_on_interrupt,
};
