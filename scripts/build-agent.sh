#!/usr/bin/env bash
# Builds the static, size-optimised agent for one target and prints its
# stripped size. Usage: scripts/build-agent.sh TARGET
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: build-agent.sh TARGET}
case "$target" in
    aarch64-unknown-linux-musl | x86_64-unknown-linux-musl)
        # Rust plus ring's C and assembly: clang compiles those for the
        # target (no cross gcc needed), llvm-ar archives them, rust-lld links.
        env_name=$(echo "$target" | tr 'a-z-' 'A-Z_')
        cc_name=$(echo "$target" | tr '-' '_')
        env "CARGO_TARGET_${env_name}_LINKER=rust-lld" \
            "CC_${cc_name}=clang" "AR_${cc_name}=llvm-ar" \
            cargo build --locked -q -p flotilla-agent --profile agent --target "$target"
        qemu=qemu-aarch64-static
        [ "$target" = x86_64-unknown-linux-musl ] && qemu=
        ;;
    armv7-unknown-linux-musleabihf)
        RUSTFLAGS="-C link-self-contained=no -A linker_messages" \
            cargo +nightly zigbuild --locked -q -p flotilla-agent --profile agent \
            --target "$target" -Zbuild-std=std,panic_abort
        qemu=qemu-arm-static
        ;;
    *)
        echo "build-agent.sh: unknown target $target" >&2
        exit 2
        ;;
esac
bin="${CARGO_TARGET_DIR:-target}/$target/agent/flotilla-agent"
if file "$bin" | grep -q 'dynamically linked'; then
    echo "build-agent.sh: $bin is dynamically linked" >&2
    exit 1
fi
# It must run, not just link.
$qemu "$bin" version >/dev/null
printf 'agent %s: %s bytes stripped (%s)\n' "$target" "$(stat -c %s "$bin")" "$bin"
