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
# Before each benchmark, wait up to QUIET_WAIT seconds for whole-machine CPU use <= 15%
# (shared machines); the busy % seen at the start is recorded with each row.
QUIET_WAIT=${QUIET_WAIT:-0}

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
scripts/install-deps
need=()
for p in podman containerd hyperfine time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null

cargo build --release --locked -q -p nodelet -p nodelet-testbed
T=$(mktemp -d /tmp/nodelet-bench.XXXXXX)
OUT=$T/out; mkdir -p "$OUT" "$T/tmp"
export TMPDIR=$T/tmp
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  awk -v t="$T" 'index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  [ -n "$RESULTS" ] && mkdir -p "$RESULTS" && cp -r "$OUT"/. "$RESULTS"/
  rm -rf "$T"
}
trap cleanup EXIT

target/release/nodelet-testbed up "$T/bed" >"$T/bed.log" 2>&1 & pids+=($!)
for _ in $(seq 300); do [ -f "$T/bed/bed.json" ] && break; sleep 0.1; done
REG=$(jq -r .plain.host "$T/bed/bed.json")
LAYOUT=$(jq -r .layout "$T/bed/bed.json")

printf '[registries."%s"]\ninsecure = true\n' "$REG" >"$T/nodelet.toml"
NODELET="$PWD/target/release/nodelet --config $T/nodelet.toml --root-dir $T/nodelet"
P="podman --root $T/podman/root --runroot $T/podman/run --tmpdir $T/podman/tmp"

mkdir -p "$T/containerd"
cat >"$T/containerd/config.toml" <<TOML
version = 2
root = "$T/containerd/root"
state = "$T/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/containerd/containerd.sock"
[ttrpc]
  address = "$T/containerd/containerd.sock.ttrpc"
TOML
containerd --config "$T/containerd/config.toml" >"$T/containerd.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [ -S "$T/containerd/containerd.sock" ] && break; sleep 0.1; done
CTR="ctr -a $T/containerd/containerd.sock -n bench"
CTR_CLEAN="$CTR images ls -q | xargs -r $CTR images rm --sync >/dev/null; $CTR content ls -q | xargs -r $CTR content rm >/dev/null; true"

# The floor: the medium image's layer blobs fetched in parallel, each inflated and untarred.
MANIFEST=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="medium") | .digest' "$LAYOUT/index.json")
FLOOR_CMD="i=0; for d in $(jq -r '.layers[].digest' "$LAYOUT/blobs/sha256/${MANIFEST#sha256:}" | tr '\n' ' '); do mkdir -p $T/floor/\$i; (curl -sf http://$REG/v2/medium/blobs/\$d | gzip -dc | tar -x -C $T/floor/\$i) & i=\$((i+1)); done; wait"

cpu_busy() { # whole-machine CPU busy % over 1 s
  local a b
  read -r a < <(awk '/^cpu /{t=0; for (k=2; k<=NF; k++) t+=$k; print t, $5+$6}' /proc/stat)
  sleep 1
  read -r b < <(awk '/^cpu /{t=0; for (k=2; k<=NF; k++) t+=$k; print t, $5+$6}' /proc/stat)
  set -- $a $b
  echo $(( 100 * (($3 - $1) - ($4 - $2)) / ($3 - $1 > 0 ? $3 - $1 : 1) ))
}
wait_quiet() {
  local waited=0 busy; busy=$(cpu_busy)
  while [ "$busy" -gt 15 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do sleep 4; waited=$((waited + 5)); busy=$(cpu_busy); done
  echo "$busy"
}

bench() { # ID RUNS PREPARE COMMAND
  local busy; busy=$(wait_quiet)
  hyperfine --style basic --runs "$2" --warmup 1 --prepare "$3" --export-json "$OUT/$1.json" "$4" >>"$OUT/hyperfine.log" 2>&1 \
    || { echo "FAILED: $1 (see hyperfine.log)" >&2; return 0; }
  jq -r --arg id "$1" --arg busy "$busy" '.results[0] | [$id, (.times|length), (.min*1000|round), (.median*1000|round), (.max*1000|round), ((.user+.system)*1000|round), ($busy + "%")] | @tsv' "$OUT/$1.json" | tee -a "$OUT/summary.tsv"
}

printf 'id\truns\tmin_ms\tmedian_ms\tmax_ms\tcpu_ms\tbusy_at_start\n' | tee "$OUT/summary.tsv"
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
{
  echo "date: $(date -u +%FT%TZ); kernel $(uname -r); $(nproc) cpus; loadavg at end $(cut -d' ' -f1-3 /proc/loadavg)"
  dpkg-query -W -f='${Package} ${Version}\n' podman containerd skopeo docker-registry hyperfine
  $NODELET version
} >"$OUT/versions.txt"
cat "$OUT/versions.txt"
