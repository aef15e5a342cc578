//! The mvdp daemon: networks and ports in Docker's vocabulary over a [`Dataplane`](mvdp_switch::plane::Dataplane).
//!
//! - [`state`]: the model and every check that needs no system call; [`ipam`]: prefixes and allocation.
//! - [`ports`]: veth pairs, container netns configuration, the host shim.
//! - [`engine`]: the state machine that applies requests all or nothing; carrier follow; shutdown.
//! - [`peers`]: the state and MAC of the containers' veth ends, which ports follow; [`multicast`]:
//!   the groups they listen to, which ports' multicast filters follow.
//! - [`api`], [`server`], [`client`]: the JSON-lines control socket; [`persist`]: state.json.

pub mod api;
pub mod client;
pub mod engine;
pub mod ipam;
pub mod multicast;
pub mod peers;
pub mod persist;
pub mod ports;
pub mod reaper;
pub mod server;
pub mod state;

pub use api::{NetworkCreate, PortAdd, Reply, Request};
pub use client::{call, ClientError, DEFAULT_SOCKET};
pub use engine::{Daemon, DaemonConfig, DaemonError};
pub use server::{ensure_no_daemon_at, serve, Requester, Server};
