#!/usr/bin/env bash
# The test suite: installs what is missing, then formatting, lints and every test
# (the end-to-end ones build their own network-namespace labs and need root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads="${MVDP_TEST_THREADS:-2}"

# After the suite: nothing the tests created may be left behind (test labs use the "mvt" prefix).
left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^mvt' || true)
if [ -n "$left" ]; then
  echo "test suite left network namespaces behind:" $left >&2
  exit 1
fi
echo "lab cleanup: no test namespace left behind"
