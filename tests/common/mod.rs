//! The end-to-end tests' support lives in the lab crate ([`mvdp_lab::testing`]); this adds the path
//! of the `mvdp` binary Cargo built for them.
#![allow(unused_imports, dead_code)]

pub use mvdp_lab::require_root;
pub use mvdp_lab::testing::*;

/// The `mvdp` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mvdp");
