#!/usr/bin/env bash
# Runs Flotilla on this machine. Today that is what exists: the hub's
# admission checks over manifests and the agent binary; the one-machine fleet
# (hub with embedded broker plus a local agent running containers) arrives with
# the store, API, agent and device-link issues.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --locked --release -q -p flotilla-hub -p flotilla-agent
echo "== flotilla-agent"
target/release/flotilla-agent version
echo "== flotilla-hub check: the example manifests, as admission will see them"
target/release/flotilla-hub check -f examples/
echo
echo "Not there yet: 'flotilla-hub server' (Raft store, API for kubectl, device"
echo "gateway) and the agent's runtime. See README.md, section Status."
