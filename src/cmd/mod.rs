//! One module per top-level subcommand.
pub mod demo;
pub mod lab;
