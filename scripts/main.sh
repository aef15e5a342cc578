#!/usr/bin/env bash
# The main job: installs what is missing, builds mvdp, and runs it on the built-in netns lab.
# Until the fast path and the benchmarks land, that is `mvdp demo`: a lab is built, the XDP
# demux program is attached to the lab host's parent NIC, traffic is sent, counters are shown,
# and the lab is removed again. Extra arguments go to `mvdp demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --quiet --bin mvdp
exec ./target/release/mvdp demo "$@"
