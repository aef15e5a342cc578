//! Docker's libnetwork *remote network driver*: `docker network create -d mvdp`.
//!
//! dockerd finds the driver by its socket (`/run/docker/plugins/mvdp.sock`, or a spec file in
//! `/etc/docker/plugins`) and POSTs JSON to it. The driver keeps no state of its own: every call
//! becomes daemon requests put on the daemon's one queue ([`crate::daemon::Requester`]), so the
//! state machine stays single-owner and state.json carries what Docker made (networks are named
//! `docker-<network id>`, a port's container id is Docker's endpoint id).
//!
//! - [`types`]: the request and response bodies; [`handlers`]: one function per call;
//! - [`server`]: HTTP/1 (hyper) over the unix socket; [`error`]: what Docker is told.

pub mod error;
pub mod handlers;
pub mod server;
pub mod types;

pub use server::{serve, DockerPlugin, DEFAULT_PLUGIN_SOCKET};
