//! One module per top-level subcommand.
pub mod bench;
pub mod demo;
pub mod lab;
