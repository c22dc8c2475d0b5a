#!/usr/bin/env bash
# bench/pull.sh [RESULTS_DIR]
#
# Cold image pulls from one local registry (the test bed's plain registry A), side by side in
# one run: nodelet (pull + unpack), podman pull, ctr images pull (pull + unpack), skopeo copy
# (download + verify, no unpack) and a measured floor (parallel curl | gzip -dc | tar -x of the
# layer blobs). Every tool's copy is deleted before each run; the registry stays warm. Also the
# peak RSS of nodelet and podman pulling `medium`. Needs root; installs podman, containerd,
# hyperfine and time when missing. Everything lives in one temp dir, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-}
RUNS_MEDIUM=${RUNS_MEDIUM:-10}
RUNS_TINY=${RUNS_TINY:-20}
RUNS_RSS=${RUNS_RSS:-3}

source bench/lib.sh
bench_install
start_bed
start_containerd
CTR_CLEAN="$CTR images ls -q | xargs -r $CTR images rm --sync >/dev/null; $CTR content ls -q | xargs -r $CTR content rm >/dev/null; true"

# The floor: the medium image's layer blobs fetched in parallel, each inflated and untarred.
MANIFEST=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="medium") | .digest' "$LAYOUT/index.json")
FLOOR_CMD="i=0; for d in $(jq -r '.layers[].digest' "$LAYOUT/blobs/sha256/${MANIFEST#sha256:}" | tr '\n' ' '); do mkdir -p $T/floor/\$i; (curl -sf http://$REG/v2/medium/blobs/\$d | gzip -dc | tar -x -C $T/floor/\$i) & i=\$((i+1)); done; wait"

summary_header
for image in medium tiny; do
  runs=$RUNS_MEDIUM; [ "$image" = tiny ] && runs=$RUNS_TINY
  bench "nodelet-$image" "$runs" "rm -rf $T/nodelet" "$NODELET images pull $REG/$image:v1"
  bench "podman-$image" "$runs" "$P rmi -a -f >/dev/null 2>&1; true" "$P pull -q --tls-verify=false $REG/$image:v1"
  bench "ctr-$image" "$runs" "$CTR_CLEAN" "$CTR images pull --plain-http $REG/$image:v1"
  bench "skopeo-$image" "$runs" "rm -rf $T/skopeo" "skopeo copy -q --src-tls-verify=false docker://$REG/$image:v1 oci:$T/skopeo:$image"
done
bench "nodelet-multi" "$RUNS_TINY" "rm -rf $T/nodelet" "$NODELET images pull $REG/multi:v1"
bench "podman-multi" "$RUNS_TINY" "$P rmi -a -f >/dev/null 2>&1; true" "$P pull -q --tls-verify=false $REG/multi:v1"
bench "floor-medium" "$RUNS_MEDIUM" "rm -rf $T/floor" "$FLOOR_CMD"

# Peak RSS (kB) while pulling medium, cold.
for i in $(seq "$RUNS_RSS"); do
  rm -rf "$T/nodelet"
  /usr/bin/time -f "nodelet-medium-rss\t%M" -a -o "$OUT/rss.tsv" $NODELET images pull "$REG/medium:v1" >/dev/null 2>&1
  $P rmi -a -f >/dev/null 2>&1 || true
  /usr/bin/time -f "podman-medium-rss\t%M" -a -o "$OUT/rss.tsv" $P pull -q --tls-verify=false "$REG/medium:v1" >/dev/null 2>&1
done
cat "$OUT/rss.tsv"
versions
