#!/usr/bin/env bash
# Runs one cargo-fuzz target of shared/fuzz for SECONDS. Usage: fuzz.sh TARGET SECONDS
# Prints libFuzzer's summary line on success and the whole tail of the log
# (build errors, the failing input, the panic) on failure.
set -euo pipefail
cd "$(dirname "$0")/../shared/fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
log=$(mktemp -t fuzz.XXXXXX)
trap 'rm -f "$log"' EXIT
if cargo +nightly fuzz run "${1:?target}" -- -max_total_time="${2:-30}" -rss_limit_mb=1024 >"$log" 2>&1; then
    tail -n 1 "$log"
else
    status=$?
    tail -n 80 "$log"
    ls artifacts/"$1" 2>/dev/null | sed 's/^/artifact: /' || true
    exit "$status"
fi
