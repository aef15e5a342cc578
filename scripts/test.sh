#!/usr/bin/env bash
# The test suite: installs what is missing, then formatting, lints and every test
# (the end-to-end ones build their own network-namespace labs and need root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

root_links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)
netns_before=$(ip netns list | awk '{print $1}' | sort)

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast -- --test-threads="${MVDP_TEST_THREADS:-2}"

# After the suite: nothing the tests created may be left behind. Namespaces are compared
# before/after, whatever their prefix; kernel teardown is asynchronous, so allow it a moment.
for _ in 1 2 3 4 5; do
  left=$(comm -13 <(echo "$netns_before") <(ip netns list | awk '{print $1}' | sort))
  [ -z "$left" ] && break
  sleep 1
done
if [ -n "$left" ]; then
  echo "test suite left network namespaces behind:" $left >&2
  exit 1
fi
root_links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort)
if [ "$root_links_before" != "$root_links_after" ]; then
  echo "test suite changed the root namespace's links:" >&2
  diff <(echo "$root_links_before") <(echo "$root_links_after") >&2 || true
  exit 1
fi
echo "lab cleanup: no test namespace left behind, root namespace links unchanged"
