#!/usr/bin/env bash
# Every test of gridwatch: installs what the tests need when it is missing (Debian's
# Chromium and CJK fonts, Node.js and npm, the npm packages of tests/browser at their locked
# versions with no browser download; Python's venv for schemathesis; cargo-fuzz), then runs
# the whole cargo test suite (the clustered backend's against a three-node NATS cluster that
# tests/nats/cluster.sh installs and starts), checks the layout with rustfmt, runs every fuzz
# target for a bounded time (fuzz/run.sh) and schemathesis against the API's OpenAPI document
# (tests/api/run.sh). Idempotent and quiet when everything is there already. With arguments,
# only `cargo test` runs, with them.
set -euo pipefail
cd "$(dirname "$0")"

# cargo-fuzz builds from source for minutes: started first, in the background, while the
# packages install and the tests build and run; waited for before the fuzzing.
fuzz_install=""
if [ "$#" -eq 0 ] && ! cargo fuzz --version > /dev/null 2>&1; then
    echo "test.sh: installing cargo-fuzz (cargo install, in the background)"
    fuzz_install_log="$(mktemp)"
    # A build folder of its own: in CARGO_TARGET_DIR it would wait for the tests' build.
    CARGO_TARGET_DIR="$(mktemp -d)" cargo install cargo-fuzz --locked --version 0.13.2 --quiet \
        > "$fuzz_install_log" 2>&1 &
    fuzz_install=$!
fi

need_apt=()
command -v chromium > /dev/null 2>&1 || need_apt+=(chromium)
command -v node > /dev/null 2>&1 || need_apt+=(nodejs)
command -v npm > /dev/null 2>&1 || need_apt+=(npm)
# Chinese pages in the screenshots (phones have these fonts; a bare server does not).
[ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
# schemathesis runs in a venv of its own; the full-disk tests mount a tmpfs.
python3 -c 'import venv, ensurepip' > /dev/null 2>&1 || need_apt+=(python3 python3-venv)
command -v mount > /dev/null 2>&1 || need_apt+=(mount)
# The NATS cluster's readiness checks; the network-cut test's namespaces and veth pairs.
command -v curl > /dev/null 2>&1 || need_apt+=(curl)
command -v ip > /dev/null 2>&1 || need_apt+=(iproute2)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo > /dev/null 2>&1; then
        echo "test.sh: ${need_apt[*]} missing and no root to install them with apt-get" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "test.sh: installing ${need_apt[*]} (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" > /dev/null
fi

# The npm packages, exactly as locked; again only when the lock changed.
stamp=tests/browser/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock; then
    echo "test.sh: installing the browser test's npm packages (npm ci)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error > /dev/null
    cp tests/browser/package-lock.json tests/browser/node_modules/.installed-lock
fi

# The clustered backend's tests run against a real three-node NATS JetStream cluster on
# loopback (the pinned nats-server, installed by tests/nats/cluster.sh when missing), started
# fresh for this run and stopped when it ends.
nats_dir="$(mktemp -d)"
trap './tests/nats/cluster.sh stop "$nats_dir"; rm -rf "$nats_dir"; [ -z "$fuzz_install" ] || kill "$fuzz_install" 2> /dev/null || true' EXIT
GRIDWATCH_TEST_NATS_URLS="$(./tests/nats/cluster.sh start "$nats_dir")"
export GRIDWATCH_TEST_NATS_URLS

if [ "$#" -gt 0 ]; then
    cargo test --workspace --locked "$@"
    exit
fi
cargo test --workspace --locked

# The code as rustfmt lays it out (rustfmt.toml): a change that was not formatted fails here.
if ! cargo fmt --version > /dev/null 2>&1; then
    echo "test.sh: rustfmt is missing from the Rust toolchain (rustup component add rustfmt)" >&2
    exit 1
fi
if ! cargo fmt --all --check > /dev/null; then
    cargo fmt --all --check -- --files-with-diff >&2 || true
    echo "test.sh: these files are not formatted: run cargo fmt --all" >&2
    exit 1
fi

# Coverage-guided fuzzing of every input edge, from the corpora in fuzz/corpus.
if [ -n "$fuzz_install" ] && ! wait "$fuzz_install"; then
    cat "$fuzz_install_log" >&2
    echo "test.sh: cargo-fuzz did not install (above)" >&2
    exit 1
fi
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" ./fuzz/run.sh

# The API against its own OpenAPI document, on the debug binary the tests built: a demo server
# (20 examples per operation here; tests/api/run.sh alone runs 50) and, at the same time, a
# node on the NATS cluster (a stream of its own; 10 examples: every request is a round trip
# to the cluster).
./tests/api/run.sh --install
binary="${CARGO_TARGET_DIR:-target}/debug/gridwatch"
SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-20}" ./tests/api/run.sh "$binary" &
on_sled=$!
SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-10}" ./tests/api/run.sh "$binary" --store nats \
    --nats-url "$GRIDWATCH_TEST_NATS_URLS" --nats-stream "API$(date +%s%N)" &
on_nats=$!
api_failed=0
wait "$on_sled" || api_failed=1
wait "$on_nats" || api_failed=1
if [ "$api_failed" -ne 0 ]; then
    echo "test.sh: schemathesis found failures (above)" >&2
    exit 1
fi
