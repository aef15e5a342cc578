//! The kernel-facing half of mvdp's fast path.
//!
//! - `bpf/demux.c`: the XDP program that sorts a parent NIC's frames into ports' AF_XDP
//!   sockets by (VLAN, destination MAC); built by `build.rs` with clang.
//! - [`abi`]: the Rust mirror of the program's map layouts.
//! - [`Demux`]: loads and attaches the program (aya, BPF link) and edits its maps.
//! - [`PortRedirect`]: `bpf/port.c` on the host end of each port's veth, sending everything a
//!   container transmits into the port's AF_XDP socket.
//! - [`FloodTap`]: the AF_PACKET socket through which broadcast and multicast frames, which
//!   the program passes to the host stack, are also copied to the userspace flood path.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod demux;
mod error;
mod flood_tap;
mod object;
mod port;

pub use demux::{AttachMode, Counters, Demux, ModePolicy, DEMUX_OBJECT};
pub use error::DemuxError;
pub use flood_tap::{FloodTap, TappedFrame};
pub use object::release_free_heap;
pub use port::{PortCounters, PortRedirect, PORT_OBJECT};
