#!/usr/bin/env bash
# Installs what building and testing Flotilla needs on a fresh Debian 12
# machine, and nothing that is already there. Sourced by test.sh and run.sh.
set -euo pipefail

need_apt=()
# g++: libFuzzer (the fuzz smoke step) is C++ and built by cc-rs with `c++`.
for pkg in qemu-user-static g++ clang lld llvm file busybox-static runc crun nftables iproute2 \
    etcd-server etcd-client protobuf-compiler docker-registry mosquitto mosquitto-clients curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# kubectl may come with the machine image; Debian's package is the fallback.
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

installed_targets=$(rustup target list --installed)
for target in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# 32-bit ARM: the armv7 musl std is not downloadable here, so it is built from
# source with nightly's build-std and linked with zig (../shared/TOOLCHAIN.md).
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
rustup component list --toolchain nightly --installed | grep -q '^rust-src' \
    || rustup component add rust-src --toolchain nightly
python3 -c 'import ziglang' 2>/dev/null || python3 -m pip install --quiet --root-user-action=ignore ziglang
command -v cargo-zigbuild >/dev/null 2>&1 || cargo install --locked --quiet cargo-zigbuild
