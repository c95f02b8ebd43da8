#!/usr/bin/env bash
# The crash campaign (not CI): CRASH_CYCLES (default 1,000) cycles of: start a release
# `gridwatch serve`, write patrol checks over HTTP from concurrent connections (wrk with
# tests/soak/write.lua, which records every event id answered 201), kill -9 the server at a
# random moment of the load, then check the store offline: `gridwatch verify` passes (chain
# intact, no holes, versions dense) and every event acknowledged in this cycle is in the log.
# Prints a line per 50 cycles and a summary: cycles, events acknowledged, the time taken.
set -euo pipefail
cd "$(dirname "$0")"
cycles="${CRASH_CYCLES:-1000}"
source tests/soak/lib.sh
trap '[ -n "$server" ] && kill -9 "$server" 2> /dev/null; echo "crash campaign: data and logs kept in $work"' EXIT
start_server
register_gates

started=$SECONDS
acknowledged=0
head=0
for cycle in $(seq 1 "$cycles"); do
    [ "$cycle" -eq 1 ] || start_server
    rm -f "$work"/acked.*
    TOKEN="$token" PAUSE_MS=10 GATES=8 ACKED_FILE="$work/acked" wrk -t2 -c8 -d3s -s tests/soak/write.lua "$url" > "$work/wrk.log" 2>&1 &
    load=$!
    # Somewhere in the load's first second and a half.
    sleep "0.$(( 100 + RANDOM % 900 ))"
    [ $(( RANDOM % 2 )) -eq 0 ] && sleep 0.5
    kill -9 "$server"
    wait "$server" 2> /dev/null || true
    server=""
    # The writers stop too: what they were answered is in the acked files already.
    kill -INT "$load" 2> /dev/null || true
    wait "$load" 2> /dev/null || true
    if ! "$binary" --data "$work/data" verify > "$work/verify.log" 2>&1; then
        cat "$work/verify.log"
        echo "crash campaign: cycle $cycle: verify failed" >&2
        exit 1
    fi
    cat "$work"/acked.* 2> /dev/null | sort > "$work/acked-ids" || true
    "$binary" --data "$work/data" events --from $(( head + 1 )) --limit 10000000 \
        | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4 | sort > "$work/stored-ids"
    missing=$(comm -23 "$work/acked-ids" "$work/stored-ids" | wc -l)
    if [ "$missing" -ne 0 ]; then
        echo "crash campaign: cycle $cycle: $missing acknowledged events are not in the log" >&2
        exit 1
    fi
    acknowledged=$(( acknowledged + $(wc -l < "$work/acked-ids") ))
    head=$(sed -n 's/^ok: \([0-9]*\) events.*/\1/p' "$work/verify.log")
    if [ $(( cycle % 50 )) -eq 0 ] || [ "$cycle" -eq "$cycles" ]; then
        echo "cycle $cycle: $acknowledged events acknowledged so far, all in the log; log at $head events; $(( SECONDS - started )) s"
    fi
done
echo "crash campaign: $cycles cycles of kill -9 under concurrent HTTP writers, $acknowledged events acknowledged, none lost, verify passed after each; $(( SECONDS - started )) s"
