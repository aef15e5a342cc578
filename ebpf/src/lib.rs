//! mvdp's XDP demux program and its loader.
