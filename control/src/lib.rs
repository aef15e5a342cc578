//! mvdp's control plane.
