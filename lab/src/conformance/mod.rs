//! The conformance suite's runner: the same scenarios (a frame sent raw from one endpoint of a lab) run
//! on a macvlan implementation in each mode, and every endpoint says what it received.
//!
//! - [`scenario`]: what is sent, from where, to whom, and in which lab state ([`Phase`]).
//! - [`subject`]: the implementation under test: [`Subject`] builds a lab whose containers are ports of
//!   one network in a given mode; [`KernelMacvlan`] is kernel macvlan. mvdp plugs in with one more impl.
//! - [`record`]: per-endpoint receivers (AF_PACKET sockets in each namespace).
//! - [`run`]: drives one mode through every phase and returns scenario → receivers.
//! - [`report`]: the scenario × mode table as markdown and JSON, and the README section it fills.
//!
//! The endpoints: the ports `p1`, `p2` (the containers' stacks), `host` (the host stack on the parent),
//! `ext` (the external host's stack) and `wire` (the frame left the parent towards the wire switch).

pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod subject;

pub use report::{Cell, Table};
pub use run::{run_mode, ModeResult};
pub use scenario::{scenarios, Dst, Endpoint, Phase, Scenario, Sender};
pub use subject::{KernelMacvlan, Mvdp, Network, Subject};
