#!/usr/bin/env bash
# schemathesis (pinned in requirements.txt) against the OpenAPI document of a real
# `gridwatch serve --demo` on a free loopback port, every check on, with the exceptions
# that schemathesis.toml documents; any failure fails the run. ./test.sh runs it.
#
#   tests/api/run.sh GRIDWATCH_BINARY [GLOBAL FLAGS...]   (SCHEMATHESIS_EXAMPLES, default 50 per operation)
#   tests/api/run.sh --install                            only installs schemathesis if missing
#
# The flags after the binary go to gridwatch before `serve` (e.g. `--store nats --nats-url
# URLS --nats-stream NAME`, for a NATS-backed node).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="${1:?the gridwatch binary to test}"
shift
examples="${SCHEMATHESIS_EXAMPLES:-50}"
venv="$here/.venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")"; then
    echo "tests/api: installing schemathesis ($(cat "$here/requirements.txt"), pip)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
[ "$binary" = --install ] && exit 0
work="$(mktemp -d)"
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
"$binary" --data "$work/data" "$@" serve --addr 127.0.0.1:0 --demo >"$work/out" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 600); do
    grep -q '^listening on ' "$work/out" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; echo "tests/api: the server did not start" >&2; exit 1; }
    sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$work/out")"
token="$(sed -n '2p' "$work/out")"
[ -n "$url" ] && [[ "$token" == gw_* ]] || { cat "$work/out"; echo "tests/api: no address or admin token" >&2; exit 1; }
started=$SECONDS
if ! "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$url/api/openapi.json" \
    --checks all --max-examples "$examples" --workers 1 --seed 20261202 \
    -H "Authorization: Bearer $token" --no-color >"$work/report.txt" 2>&1; then
    cat "$work/report.txt"
    echo "tests/api: schemathesis found failures (above)" >&2
    exit 1
fi
summary="$(grep -E 'test cases|generated' "$work/report.txt" | tail -1 | sed 's/^ *//')"
echo "schemathesis${1:+ ($*)}: $summary, 0 failures, $((SECONDS - started)) s"
