#!/usr/bin/env bash
# Runs Flotilla on this machine, as far as it exists: the hub's admission
# checks over the example manifests, the agent binary, and a one-replica hub
# (`flotilla-hub server`: the store, the Kubernetes API for kubectl, the
# scheduler and the controllers) in the foreground until Ctrl-C. The device
# gateway and the agent's runtime arrive with their issues; see README.md,
# section Status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --locked --release -q -p flotilla-hub -p flotilla-agent
echo "== flotilla-agent"
target/release/flotilla-agent version
echo "== flotilla-hub check: the example manifests, as admission will see them"
target/release/flotilla-hub check -f examples/

data_dir="${FLOTILLA_HUB_DATA:-/var/lib/flotilla/hub}"
listen="${FLOTILLA_HUB_LISTEN:-127.0.0.1:7420}"
echo "== flotilla-hub server: data in $data_dir, listening on $listen"
target/release/flotilla-hub server --data-dir "$data_dir" --listen "$listen" &
hub=$!
trap 'kill -TERM $hub 2>/dev/null; wait $hub 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
    if target/release/flotilla-hub cluster status --server "$listen" --pki "$data_dir/pki" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
for _ in $(seq 1 100); do
    [ -s "$data_dir/admin.kubeconfig" ] && break
    sleep 0.1
done
echo
echo "The hub is running (Ctrl-C stops it). Use it with kubectl:"
echo "  export KUBECONFIG=$data_dir/admin.kubeconfig"
echo "  kubectl get namespaces"
echo "  kubectl apply -f examples/hello-edge.yaml"
echo "  kubectl get deployments,replicasets,pods"
echo "Pods stay Pending until a device registers: the device gateway and the"
echo "agent's runtime are not there yet (README.md, Status)."
wait $hub
