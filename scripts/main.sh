#!/usr/bin/env bash
# The main job: installs what is missing, builds mvdp, and runs `mvdp bench`: the same netns lab
# shape per backend (kernel macvlan, Linux bridge, mvdp once its daemon lands, and a bare AF_XDP
# forwarder as the ceiling), UDP latency and throughput with CPU per packet, written to
# bench-results/ (results.json, summary.md, SVG plots); the labs are removed again.
# Extra arguments go to `mvdp bench` (try --quick, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --quiet --bin mvdp
exec ./target/release/mvdp bench "$@"
