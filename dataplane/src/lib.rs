//! mvdp's userspace switch.
