#!/usr/bin/env bash
# bench/serve.sh [RESULTS_DIR]
#
# `nodelet serve` as a one-node cluster, beside containerd in the same run:
#   - idle RSS (VmRSS) of `nodelet serve` 5 s after it is ready, and of containerd 5 s after
#     start (CRI plugin off, as bench/lib.sh starts it);
#   - API create -> Running latency for PODS (100) pods of the cached `tiny` image, one at a
#     time (POST, then a watch until status.phase is Running; each pod deleted after), p50/p99
#     (bench/api_latency.py, Python stdlib only);
#   - `kubectl get pods` with LIST_PODS (1000) pods in the namespace (bound to a node that does
#     not exist, so nothing runs them), hyperfine;
#   - RSS of `nodelet serve` after all that.
# Targets: create -> Running p50 <= 150 ms; idle RSS <= 0.5x containerd's.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-}
PODS=${PODS:-100}
LIST_PODS=${LIST_PODS:-1000}
RUNS=${RUNS:-10}

source bench/lib.sh
bench_install
start_bed
start_containerd
IMAGE=$REG/tiny:v1
$NODELET images pull "$IMAGE" >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$NODELET serve --data-dir "$T/server" --listen "127.0.0.1:$PORT" >"$T/serve.log" 2>&1 & SERVE=$!
pids+=("$SERVE")
export KUBECONFIG=$T/server/kubeconfig
for _ in $(seq 300); do
  [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.1
done
kubectl get nodes >/dev/null
sleep 5
printf 'process\tVmRSS_kB\n' | tee "$OUT/rss.tsv"
printf 'nodelet-serve-idle\t%s\ncontainerd-idle\t%s\n' "$(rss_kb "$SERVE")" "$(rss_kb "$CONTAINERD_PID")" | tee -a "$OUT/rss.tsv"

busy=$(wait_quiet)
python3 bench/api_latency.py "$KUBECONFIG" "$IMAGE" "$PODS" "$OUT/api-latency.tsv"
echo "busy at start: $busy%" >>"$OUT/api-latency.tsv"
for _ in $(seq 100); do
  [ "$(kubectl get pods --no-headers 2>/dev/null | wc -l)" = 0 ] && break
  sleep 0.2
done

python3 - "$LIST_PODS" >"$T/list.json" <<'PY'
import json, sys
items = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"listed-{i:04}", "labels": {"app": "listed"}},
          "spec": {"nodeName": "elsewhere", "containers": [{"name": "main", "image": "example.invalid/app:v1"}]}}
         for i in range(int(sys.argv[1]))]
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
PY
kubectl create -f "$T/list.json" >/dev/null
summary_header
bench "kubectl-get-pods-$LIST_PODS" "$RUNS" "true" "kubectl get pods"
bench "kubectl-get-pods-$LIST_PODS-json" "$RUNS" "true" "kubectl get pods -o json"
printf 'nodelet-serve-after\t%s\n' "$(rss_kb "$SERVE")" | tee -a "$OUT/rss.tsv"
versions
