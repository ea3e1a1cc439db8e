#!/usr/bin/env bash
# Runs one cargo-fuzz target of shared/fuzz for SECONDS. Usage: fuzz.sh TARGET SECONDS
set -euo pipefail
cd "$(dirname "$0")/../shared/fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
cargo +nightly fuzz run "${1:?target}" -- -max_total_time="${2:-30}" -rss_limit_mb=1024 2>&1 | tail -n 3
