//! The `mvdp` package: the CLI binary (src/main.rs) plus what it shares with the tests.

pub mod bench;
pub mod conformance;
pub mod probe;
pub mod runtime;
