//! One module per top-level subcommand.
pub mod bench;
pub mod cni;
pub mod daemon;
pub mod demo;
pub mod lab;
pub mod network;
pub mod port;
pub mod stats;
