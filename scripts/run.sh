#!/usr/bin/env bash
# Runs a one-machine Flotilla fleet in the foreground until Ctrl-C:
#
# - a one-replica hub (`flotilla-hub server`: the store, the Kubernetes API
#   for kubectl, the scheduler and controllers, and the device gateway with
#   its embedded MQTT endpoint on 127.0.0.1:8883);
# - a local registry (Debian's docker-registry on 127.0.0.1:5000) holding a
#   busybox image built from this machine's busybox-static, so the example
#   runs without internet access;
# - an agent for this machine (`flotilla-agent run --hub`), with a device
#   certificate from the hub's CA, running pods in real containers (runc,
#   or crun where it can run).
#
# Then `kubectl apply -f examples/hello-local.yaml` (see README.md).
# Settings: FLOTILLA_DATA (default /var/lib/flotilla), FLOTILLA_NODE (this
# device's node name, default the host name), FLOTILLA_AGENT_ARGS (more
# `flotilla-agent run` flags, e.g. `--disk-pressure-percent 5` on a machine
# whose disk is nearly full: the device then reports DiskPressure and the
# scheduler keeps pods off it, as kubelet's eviction threshold would).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --locked --release -q -p flotilla-hub -p flotilla-agent -p flotilla-tests \
    --bin flotilla-hub --bin flotilla-agent --bin flotilla-seed
bin="${CARGO_TARGET_DIR:-target}/release"
echo "== flotilla-hub check: the example manifests, as admission will see them"
"$bin/flotilla-hub" check -f examples/

data="${FLOTILLA_DATA:-/var/lib/flotilla}"
node="${FLOTILLA_NODE:-$(hostname -s | tr 'A-Z_' 'a-z-')}"
hub_dir="$data/hub"
listen=127.0.0.1:7420
mkdir -p "$data/registry"
pids=()
cleanup() {
    # The agent first: it stops nothing on exit (pods run on without it).
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[$i]}" 2>/dev/null || true
        wait "${pids[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

echo "== registry on 127.0.0.1:5000 (data in $data/registry)"
if ! curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null; then
    cat >"$data/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $data/registry/data
http:
  addr: 127.0.0.1:5000
EOF
    /usr/bin/docker-registry serve "$data/registry/config.yml" >"$data/registry/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null && break
        sleep 0.1
    done
fi
"$bin/flotilla-seed" --registry 127.0.0.1:5000 --image busybox:1.36

echo "== flotilla-hub server: data in $hub_dir, replicas on $listen, devices on 127.0.0.1:8883"
"$bin/flotilla-hub" server --data-dir "$hub_dir" --listen "$listen" --lease-renewal-seconds 20 \
    >"$data/hub.ready" 2>"$data/hub.log" &
pids+=($!)
for _ in $(seq 1 300); do
    grep -q '"ready":true' "$data/hub.ready" 2>/dev/null && break
    sleep 0.1
done
grep -q '"ready":true' "$data/hub.ready" || { cat "$data/hub.log"; exit 1; }

echo "== flotilla-agent: node $node (certificate in $data/device)"
"$bin/flotilla-hub" device-cert --data-dir "$hub_dir" --node "$node" --out "$data/device"
"$bin/flotilla-agent" run --node "$node" --state-dir "$data/agent" --run-dir /run/flotilla \
    --hub 127.0.0.1:8883 --hub-ca "$data/device/ca.crt" \
    --cert "$data/device/device.crt" --key "$data/device/device.key" \
    --insecure-registry 127.0.0.1:5000 --node-label role=gateway --heartbeat-seconds 10 \
    ${FLOTILLA_AGENT_ARGS:-} 2>"$data/agent.log" &
pids+=($!)

echo
echo "Flotilla is running (Ctrl-C stops it; logs in $data/*.log). With kubectl:"
echo "  export KUBECONFIG=$hub_dir/admin.kubeconfig"
echo "  kubectl get nodes -o wide"
echo "  kubectl apply -f examples/hello-local.yaml"
echo "  kubectl get pods -o wide"
wait -n "${pids[@]}"
