# Shared by soak.sh and crash-campaign.sh (sourced from the repository's root): wrk, a
# release build, a fresh data directory and port, starting the server, and a compound with
# 8 gates and a guard to write checks at (the ids tests/soak/write.lua writes to).
command -v wrk > /dev/null || { echo "installing wrk (apt-get)"; apt-get install -y -qq wrk > /dev/null; }
cargo build --release --locked --quiet
binary="${CARGO_TARGET_DIR:-target}/release/gridwatch"
work="$(mktemp -d)"
port=$(( 20000 + RANDOM % 20000 ))
url="http://127.0.0.1:$port"
server=""

start_server() {   # SERVE_ARGS: more arguments of `serve` (e.g. --demo)
    "$binary" --data "$work/data" serve --addr "127.0.0.1:$port" ${SERVE_ARGS:-} >> "$work/server.out" 2>> "$work/server.log" &
    server=$!
    for _ in $(seq 1 600); do
        curl -sf "$url/readyz" > /dev/null 2>&1 && return
        kill -0 "$server" 2> /dev/null || { tail -20 "$work/server.log"; echo "the server died on start" >&2; exit 1; }
        sleep 0.05
    done
    echo "the server did not start" >&2
    exit 1
}

# The admin token of the first start, then the compound.
register_gates() {
    token="$(grep -A1 '^first start: admin token' "$work/server.out" | tail -1)"
    local body
    for body in \
        '{"command":"register-community","data":{"community_id":"soak","name":"Soak community"}}' \
        '{"command":"register-grid","data":{"grid_id":"soak-grid","community_id":"soak","name":"Soak grid"}}' \
        '{"command":"register-site","data":{"site_id":"soak-site","grid_id":"soak-grid","name":"Soak compound","kind":"residential_compound"}}' \
        '{"command":"register-staff","data":{"staff_id":"soak-guard","display_name":"Soak guard","role":"guard"}}' \
        $(for gate in 0 1 2 3 4 5 6 7; do
            echo "{\"command\":\"register-checkpoint\",\"data\":{\"checkpoint_id\":\"soak-gate-$gate\",\"site_id\":\"soak-site\",\"name\":\"Gate-$gate\"}}"
        done); do
        curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d "$body" "$url/api/v1/commands"
    done
}
