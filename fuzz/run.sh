#!/usr/bin/env bash
# Runs the fuzz targets, each for SECONDS (default 20), on its committed corpus, and fails on
# the first crash, hang, leak or out-of-memory (libFuzzer's own exit code).
#   fuzz/run.sh [SECONDS] [TARGET...]
# New inputs found are added to fuzz/corpus/<target>/ (keep those worth keeping: `cargo fuzz
# cmin` shrinks a corpus). Needs the nightly toolchain and cargo-fuzz (`cargo install
# cargo-fuzz`); CI runs it with 20 s per target.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== fuzz $target for ${seconds}s"
    # -timeout: an input taking over 10 s is a hang; -rss_limit_mb bounds memory.
    log="$(mktemp)"
    if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz $target: failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" | tr '\n' ' '
    echo
    rm -f "$log"
done
