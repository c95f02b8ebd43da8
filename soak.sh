#!/usr/bin/env bash
# The soak (not CI): SOAK_MINUTES (default 10) of bounded loopback load against a release
# `gridwatch serve`, with a kill -9 and restart of the server in the middle, reporting per
# minute: errors, events acknowledged and stored, p50/p99 latencies (wrk's HDR histograms),
# the server's resident memory and open file descriptors. At the end, every acknowledged
# event must be in the log (the events stored but never acknowledged are those in flight
# at the kill) and `gridwatch verify` must pass.
#
# The server starts with the demo month loaded. Load, all at once, for each minute (bounded: each connection pauses between an answer and
# its next request): wrk with 8 connections writing patrol checks over 8 gates (40 ms
# pauses), 8 more all on one gate (80 ms), 4 reading the status board (10 ms), 2 reading
# the report of a demo day (500 ms); 6
# live-feed subscribers (curl), 2 of them slow (2 KB/s, so the server cuts them off and they
# reconnect). Needs wrk (Debian's; installed when missing) and curl (tests/soak/lib.sh).
set -euo pipefail
cd "$(dirname "$0")"
minutes="${SOAK_MINUTES:-10}"
kill_at=$(( (minutes + 1) / 2 ))
source tests/soak/lib.sh
subscribers=()
cleanup() {
    for pid in "${subscribers[@]}"; do kill "$pid" 2> /dev/null || true; done
    [ -n "$server" ] && kill -9 "$server" 2> /dev/null || true
    echo "soak: data and logs kept in $work"
}
trap cleanup EXIT
SERVE_ARGS="--demo" start_server
register_gates
head_at_start="$(curl -sf "$url/readyz" | sed 's/.*"head_position":\([0-9]*\).*/\1/')"
# Reports are read of a day of the demo month: a finished day, as an auditor reads it (the
# writers fill today, whose report grows with it).
report_day=2020-02-20

subscribe() {   # $1: extra curl options (a rate limit for the slow ones)
    while true; do
        curl -sN $1 -H "Authorization: Bearer $token" "$url/api/v1/events/live" > /dev/null 2>&1 || true
        sleep 0.5
    done
}
for k in 1 2 3 4; do subscribe "" & subscribers+=($!); done
for k in 1 2; do subscribe "--limit-rate 2k" & subscribers+=($!); done

result() { grep '^RESULT' "$1" | sed 's/^RESULT //'; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

printf '\n| minute | errors | acknowledged | stored | writes p50 / p99 ms | one gate p50 / p99 ms | status p50 / p99 ms | report p50 / p99 ms | RSS MiB | fds |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
acked_total=0
for minute in $(seq 1 "$minutes"); do
    export TOKEN="$token"
    PAUSE_MS=40 GATES=8 ACKED_FILE="$work/acked" wrk -t2 -c8 -d60s -s tests/soak/write.lua "$url" > "$work/w.$minute" 2>&1 &
    writers=$!
    PAUSE_MS=80 GATES=1 ACKED_FILE="$work/acked-one" wrk -t1 -c8 -d60s -s tests/soak/write.lua "$url" > "$work/o.$minute" 2>&1 &
    one_gate=$!
    PAUSE_MS=10 READ_PATH=/api/v1/status wrk -t1 -c4 -d60s -s tests/soak/read.lua "$url" > "$work/s.$minute" 2>&1 &
    status=$!
    PAUSE_MS=500 READ_PATH="/api/v1/report?day=$report_day" wrk -t1 -c2 -d60s -s tests/soak/read.lua "$url" > "$work/r.$minute" 2>&1 &
    report=$!
    note=""
    if [ "$minute" -eq "$kill_at" ]; then
        sleep 20
        kill -9 "$server"
        wait "$server" 2> /dev/null || true
        start_server
        note=" (kill -9 and restart)"
    fi
    wait "$writers" "$one_gate" "$status" "$report"
    w="$(result "$work/w.$minute")"; o="$(result "$work/o.$minute")"
    s="$(result "$work/s.$minute")"; r="$(result "$work/r.$minute")"
    errors=$(( $(field "$w" refused) + $(field "$w" errors) + $(field "$o" refused) + $(field "$o" errors) \
        + $(field "$s" bad) + $(field "$s" errors) + $(field "$r" bad) + $(field "$r" errors) ))
    acked_total=$(( acked_total + $(field "$w" created) + $(field "$o" created) ))
    head="$(curl -sf "$url/readyz" | sed 's/.*"head_position":\([0-9]*\).*/\1/')"
    rss=$(( $(awk '/VmRSS/ {print $2}' "/proc/$server/status") / 1024 ))
    fds=$(ls "/proc/$server/fd" | wc -l)
    printf '| %s%s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s | %s |\n' \
        "$minute" "$note" "$errors" "$acked_total" "$(( head - head_at_start ))" \
        "$(field "$w" p50_ms)" "$(field "$w" p99_ms)" "$(field "$o" p50_ms)" "$(field "$o" p99_ms)" \
        "$(field "$s" p50_ms)" "$(field "$s" p99_ms)" "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "$rss" "$fds"
done

for pid in "${subscribers[@]}"; do kill "$pid" 2> /dev/null || true; done
subscribers=()
kill -TERM "$server"; wait "$server" 2> /dev/null || true; server=""
"$binary" --data "$work/data" events --limit 10000000 | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4 | sort > "$work/stored-ids"
cat "$work"/acked* | sort > "$work/acked-ids"
missing=$(comm -23 "$work/acked-ids" "$work/stored-ids" | wc -l)
acked=$(wc -l < "$work/acked-ids")
unacked=$(( $(wc -l < "$work/stored-ids") - head_at_start - acked ))
echo
echo "acknowledged: $acked; missing from the log: $missing (must be 0); stored but never acknowledged (in flight at the kill): $unacked"
"$binary" --data "$work/data" verify
[ "$missing" -eq 0 ]
