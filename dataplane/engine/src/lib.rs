//! mvdp's AF_XDP fast path: everything between the XDP programs (`mvdp-ebpf`) and the switch core
//! (`mvdp-switch`).
//!
//! - [`xsk`]: AF_XDP over libxdp's C API: one UMEM shared by every socket, sockets and their rings.
//! - [`engine`]: the switch workers: batched turns over the rings, the chunk pool, published stats.
//! - [`runtime`]: joins them to the XDP demux and the flood tap on each parent and implements
//!   [`mvdp_switch::plane::Dataplane`] for the daemon.
//!
//! This is one of the two crates allowed `unsafe` (the other is the BPF loader in `mvdp-ebpf`):
//! ring and UMEM memory are shared with the kernel. Every block says why it holds.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod engine;
pub mod runtime;
pub mod xsk;
