#!/usr/bin/env bash
# bench/start.sh [RESULTS_DIR]
#
# Container start with the image already local: a pod whose `tiny` image runs /bin/true, from
# command to exit, side by side in one run: `nodelet run -f pod.yaml` (shim, CRI log, events,
# clean-up) on its default crun and on runc, `ctr run --rm` (containerd + containerd-shim-runc-v2) without
# and with CNI (`--cni`: the same bridge + host-local + portmap chain as nodelet's pod network)
# and `podman run --rm` (conmon), those on runc. Also the RSS of one shim per running container:
# nodelet's shim, containerd-shim-runc-v2 and conmon. Needs root; installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-}
RUNS=${RUNS:-30}

source bench/lib.sh
bench_install
start_bed
start_containerd

# ctr --cni reads the first conflist in /etc/cni/net.d and plugins in /opt/cni/bin (fixed
# paths): a list like nodelet's default, on its own bridge and CIDR, only for this run.
CTR_CNI_CONF=/etc/cni/net.d/05-nodelet-bench.conflist
mkdir -p /etc/cni/net.d
cat >"$CTR_CNI_CONF" <<JSON
{"cniVersion": "1.0.0", "name": "nodelet-bench", "plugins": [
  {"type": "bridge", "bridge": "nbench0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.245.0.0/16"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$T/ctr-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
BENCH_CLEANUP_HOOK="rm -f $CTR_CNI_CONF; ip link del nbench0 2>/dev/null"
if [ ! -e /opt/cni/bin ]; then
  [ -d /opt/cni ] || BENCH_CLEANUP_HOOK="$BENCH_CLEANUP_HOOK; rmdir /opt/cni"
  mkdir -p /opt/cni && ln -s /usr/lib/cni /opt/cni/bin
  BENCH_CLEANUP_HOOK="rm -f /opt/cni/bin; $BENCH_CLEANUP_HOOK"
fi
# nodelet's built-in handler table defaults to crun when installed (as here); the runc rows
# name runc, the runtime ctr and podman run on.
NODELET_RUNC="${NODELET/--config $T\/nodelet.toml/--config $T/nodelet-runc.toml}"
{ printf 'default_runtime = "runc"\n[runtimes.runc]\n[runtimes.crun]\n'; cat "$T/nodelet.toml"; } >"$T/nodelet-runc.toml"

IMAGE=$REG/tiny:v1
$NODELET images pull "$IMAGE" >/dev/null
$CTR images pull --plain-http "$IMAGE" >/dev/null
$P pull -q --tls-verify=false "$IMAGE" >/dev/null

cat >"$T/true.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: bench-true}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: $IMAGE, imagePullPolicy: IfNotPresent, command: [/bin/true]}
YAML
# The same pod on the node's network: no CNI plugins, as ctr (no CNI) and podman
# (--network none) run.
sed 's/^spec:$/spec:\n  hostNetwork: true/' "$T/true.yaml" >"$T/true-host.yaml"
cat >"$T/sleep.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: bench-sleep}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: $IMAGE, imagePullPolicy: IfNotPresent, command: [/bin/sleep, "300"]}
YAML

summary_header
bench nodelet-run-true "$RUNS" "true" "$NODELET run -f $T/true.yaml"
bench nodelet-run-true-host-network "$RUNS" "true" "$NODELET run -f $T/true-host.yaml"
bench nodelet-runc-run-true "$RUNS" "true" "$NODELET_RUNC run -f $T/true.yaml"
bench nodelet-runc-run-true-host-network "$RUNS" "true" "$NODELET_RUNC run -f $T/true-host.yaml"
bench ctr-run-true "$RUNS" "true" "$CTR run --rm --runtime io.containerd.runc.v2 $IMAGE bench-true /bin/true"
bench ctr-cni-run-true "$RUNS" "true" "$CTR run --rm --cni --runtime io.containerd.runc.v2 $IMAGE bench-true /bin/true"
bench podman-run-true "$RUNS" "true" "$P run --rm --network none $PU --runtime runc $IMAGE /bin/true"

# One running container each; RSS of its monitor process.
$NODELET run -f "$T/sleep.yaml" >"$T/nodelet-sleep.log" 2>&1 & NODELET_RUN=$!
$CTR run -d --runtime io.containerd.runc.v2 "$IMAGE" bench-sleep /bin/sleep 300 >/dev/null
CID=$($P run -d --network none $PU --runtime runc "$IMAGE" /bin/sleep 300)
sleep 2
# This run's shim (its state is under $T), not one some other nodelet left behind.
shim=$(pgrep -f "nodelet shim $T/" | head -1 || true)
cshim=$(pgrep -f containerd-shim-runc-v2 | head -1 || true)
conmon=$($P inspect --format '{{.State.ConmonPid}}' "$CID")
printf 'process\tVmRSS_kB\n' >"$OUT/shim-rss.tsv"
printf 'nodelet-shim\t%s\ncontainerd-shim-runc-v2\t%s\nconmon\t%s\n' \
  "$(rss_kb "$shim")" "$(rss_kb "$cshim")" "$(rss_kb "$conmon")" | tee -a "$OUT/shim-rss.tsv"
kill -INT "$NODELET_RUN"; wait "$NODELET_RUN" || true
$CTR tasks kill -s KILL bench-sleep >/dev/null 2>&1 || true; sleep 0.5
$CTR containers rm bench-sleep >/dev/null 2>&1 || true
$P rm -f -t 0 "$CID" >/dev/null
versions
