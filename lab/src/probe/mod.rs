//! Tools that watch and poke a dataplane from outside, used by `mvdp demo` and the tests:
//! AF_XDP sockets that show which socket a frame landed in, and raw Ethernet frames sent and
//! captured through AF_PACKET. Everything works in the calling thread's network namespace.

pub mod raw;
pub mod xsk;
