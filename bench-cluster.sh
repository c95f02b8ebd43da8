#!/usr/bin/env bash
# The clustered backend beside the embedded one, in the same run: builds the release, starts a
# three-node NATS JetStream cluster on loopback (tests/nats/cluster.sh: the pinned nats-server,
# sync_interval: always, R3; ports from NATS_PORT_BASE, default 18222, so as not to meet the
# test cluster), runs `gridwatch bench --cluster` against it with sled on the same disk, and
# stops the cluster. Not a test: it prints figures. ./bench-cluster.sh [SECONDS per phase, 3]
# BENCH_DIR: where the cluster's nodes and the sled stores go (default: a new folder in /tmp);
# it must be on the disk you mean to measure (a tmpfs shows what the software costs without
# the disk's flushes).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-3}"
cargo build --release --locked --quiet
dir="$(mktemp -d "${BENCH_DIR:-/tmp}/gridwatch-bench-cluster.XXXXXX")"
trap './tests/nats/cluster.sh stop "$dir"; rm -rf "$dir"' EXIT
urls="$(NATS_PORT_BASE="${NATS_PORT_BASE:-18222}" ./tests/nats/cluster.sh start "$dir")"
"${CARGO_TARGET_DIR:-target}/release/gridwatch" --nats-url "$urls" bench --cluster --seconds "$seconds" --dir "$dir"
