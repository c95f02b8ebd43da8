#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS each (default 20), starting from the corpus kept
# in fuzz/corpus/<target> (read only: what the run finds goes to a scratch folder). A crash
# stops the run with its input saved under fuzz/artifacts/<target>/ and a non-zero exit;
# turn it into a regression test beside the code it broke.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, which ./test.sh does) and the
# stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-20}"
targets=(record_decoder event_json ndjson_import command_body export_file)
export RUSTC_BOOTSTRAP=1
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if ! cargo fuzz build >"$scratch/build.log" 2>&1; then
    cat "$scratch/build.log"
    echo "building the fuzz targets failed" >&2
    exit 1
fi
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    started=$SECONDS
    if ! cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1; then
        tail -n 60 "$scratch/$target.log"
        echo "fuzz target $target failed: its input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$target.log" | grep -o '[0-9]*$' || echo '?')
    coverage=$(grep -o 'cov: [0-9]*' "$scratch/$target.log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "fuzz $target: $runs runs in $((SECONDS - started)) s, coverage $coverage, no crash"
done
