#!/usr/bin/env bash
# Soak an mvdp daemon (not CI; needs root): mixed traffic on a netns lab of eight containers,
# port churn, a daemon restart every few minutes; checks the UMEM books balance and the daemon's
# RSS and fds do not grow. The logic is `mvdp lab soak` (lab/src/soak/); this builds the release
# binary and runs it. Options go through: --minutes 30 (default), --restart-every 180,
# --churn-every 5, --sample-every 15, --out soak-results, --name NAME.
# Ctrl-C stops the daemon and removes the lab. Exit status: 0 passed, non-zero failed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin mvdp
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/mvdp" lab soak "$@"
