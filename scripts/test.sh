#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every test, the
# static ARM builds of the agent, and the ARM unit tests under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

step() { printf '\n=== %s\n' "$*"; }
# A clean checkout gains nothing from incremental caches (3 GB here).
export CARGO_INCREMENTAL=0
# The disk is the CI machine's scarcest resource: say what there was.
df -h . | tail -1
trap 'df -h . | tail -1; du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null || true' EXIT

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (x86_64)"
# The end-to-end tests start the flotilla-hub binary as real processes:
# build it first (cargo test builds only each package's own binaries).
cargo build --workspace --bins --locked
cargo test --workspace --locked

step "static agent builds"
scripts/build-agent.sh aarch64-unknown-linux-musl
scripts/build-agent.sh armv7-unknown-linux-musleabihf
# What devices run on x86_64; the agent benchmark measures this one.
scripts/build-agent.sh x86_64-unknown-linux-musl

step "ARM unit tests under qemu-aarch64-static (what 'cross test' does, without containers)"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
    CC_aarch64_unknown_linux_musl=clang AR_aarch64_unknown_linux_musl=llvm-ar
cargo test --locked --target aarch64-unknown-linux-musl -p flotilla-shared
# The agent's real-runc tests (tests/runtime.rs) start the agent as a shim
# and busybox containers natively: they run on x86_64 above and on ARM
# hardware, not under qemu-user.
cargo test --locked --target aarch64-unknown-linux-musl -p flotilla-agent --lib

step "fuzz smoke: wire decoding"
scripts/fuzz.sh decode 30

step "benchmark smoke"
cargo run --locked --release -q -p flotilla-tests --bin flotilla-bench -- codec --quick
cargo build --locked --release -q -p flotilla-hub --bin flotilla-hub
cargo run --locked --release -q -p flotilla-tests --bin flotilla-bench -- store --quick
cargo run --locked --release -q -p flotilla-tests --bin flotilla-bench -- api --quick
cargo run --locked --release -q -p flotilla-tests --bin flotilla-bench -- sched --quick
cargo run --locked --release -q -p flotilla-tests --bin flotilla-bench -- agent --quick
# The device link with the static agent devices run.
FLOTILLA_AGENT_BIN="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/agent/flotilla-agent" \
    cargo run --locked --release -q -p flotilla-tests --bin flotilla-bench -- link --quick
