#!/usr/bin/env bash
# The test suite: installs what is missing, then formatting, lints and every test
# (the end-to-end ones build their own network-namespace labs and need root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads="${MVDP_TEST_THREADS:-2}"
