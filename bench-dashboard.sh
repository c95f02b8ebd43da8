#!/usr/bin/env bash
# The dashboard's benchmark: a release `gridwatch serve --demo` on a free loopback port and
# tests/browser/bench.mjs in Debian's Chromium against it (page weight, acknowledgement to
# the board's change over 100 commands, the board's render with 2,000 gates). Needs what
# ./test.sh installs.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --locked --quiet
dir=$(mktemp -d)
trap 'kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; rm -rf "$dir"' EXIT
GRIDWATCH_LOG=warn ./target/release/gridwatch --data "$dir/data" --seal-key "$dir/seal.key" serve --demo --addr 127.0.0.1:0 > "$dir/out" &
server=$!
for _ in $(seq 1 100); do grep -q '^listening on ' "$dir/out" 2> /dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$dir/out")
token=$(grep '^gw_' "$dir/out")
GRIDWATCH_URL="$url" GRIDWATCH_TOKEN="$token" CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" node tests/browser/bench.mjs
