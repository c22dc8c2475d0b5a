# bench/lib.sh: what every benchmark script shares (sourced, not run). Sets up, in one temp dir
# removed at exit: the test bed's registries (REG = plain registry A), nodelet (NODELET, with A
# insecure), podman (P, PU), a private containerd (CTR), hyperfine rows in $OUT/summary.tsv.
# The caller sets RESULTS (copy $OUT there at exit) and may set QUIET_WAIT.
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
QUIET_WAIT=${QUIET_WAIT:-0}

bench_install() {
  # Every runtime copies the mount table into each new container: leftovers of interrupted
  # test runs (sandbox and rootfs mounts) slow all the tools measured here.
  local mounts; mounts=$(wc -l </proc/self/mountinfo)
  [ "$mounts" -le 200 ] || echo "warning: $mounts mounts on this host (leftovers of interrupted test runs?); every container start pays for them" >&2
  scripts/install-deps
  local need=() p
  for p in podman containerd hyperfine time; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  cargo build --release --locked -q -p nodelet -p nodelet-testbed
}

T=$(mktemp -d /tmp/nodelet-bench.XXXXXX)
OUT=$T/out; mkdir -p "$OUT" "$T/tmp"
export TMPDIR=$T/tmp
pids=()
bench_cleanup() {
  set +e
  [ -n "${BENCH_CLEANUP_HOOK:-}" ] && eval "$BENCH_CLEANUP_HOOK"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  awk -v t="$T" 'index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  [ -n "${RESULTS:-}" ] && mkdir -p "$RESULTS" && cp -r "$OUT"/. "$RESULTS"/
  rm -rf "$T"
}
trap bench_cleanup EXIT

start_bed() {
  target/release/nodelet-testbed up "$T/bed" >"$T/bed.log" 2>&1 & pids+=($!)
  for _ in $(seq 300); do [ -f "$T/bed/bed.json" ] && break; sleep 0.1; done
  REG=$(jq -r .plain.host "$T/bed/bed.json")
  LAYOUT=$(jq -r .layout "$T/bed/bed.json")
  printf '[registries."%s"]\ninsecure = true\n' "$REG" >"$T/nodelet.toml"
  NODELET="$PWD/target/release/nodelet --config $T/nodelet.toml --root-dir $T/nodelet"
  P="podman --root $T/podman/root --runroot $T/podman/run --tmpdir $T/podman/tmp"
  # No CAP_SYS_RESOURCE here: podman's default rlimits cannot be set (anchors/RESULTS.md).
  PU="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
}

start_containerd() {
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
  CONTAINERD_PID=$!
  for _ in $(seq 100); do [ -S "$T/containerd/containerd.sock" ] && break; sleep 0.1; done
  CTR="ctr -a $T/containerd/containerd.sock -n bench"
}

cpu_busy() { # whole-machine CPU busy % over 1 s
  local a b
  read -r a < <(awk '/^cpu /{t=0; for (k=2; k<=NF; k++) t+=$k; print t, $5+$6}' /proc/stat)
  sleep 1
  read -r b < <(awk '/^cpu /{t=0; for (k=2; k<=NF; k++) t+=$k; print t, $5+$6}' /proc/stat)
  set -- $a $b
  echo $(( 100 * (($3 - $1) - ($4 - $2)) / ($3 - $1 > 0 ? $3 - $1 : 1) ))
}
# Before each benchmark, wait up to QUIET_WAIT seconds for whole-machine CPU use <= 15%
# (shared machines); the busy % seen at the start is recorded with each row.
wait_quiet() {
  local waited=0 busy; busy=$(cpu_busy)
  while [ "$busy" -gt 15 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do sleep 4; waited=$((waited + 5)); busy=$(cpu_busy); done
  echo "$busy"
}

summary_header() {
  printf 'id\truns\tmin_ms\tmedian_ms\tmax_ms\tcpu_ms\tbusy_at_start\n' | tee "$OUT/summary.tsv"
}

bench() { # ID RUNS PREPARE COMMAND
  local busy; busy=$(wait_quiet)
  hyperfine --style basic --runs "$2" --warmup 1 --prepare "$3" --export-json "$OUT/$1.json" "$4" >>"$OUT/hyperfine.log" 2>&1 \
    || { echo "FAILED: $1 (see hyperfine.log)" >&2; return 0; }
  jq -r --arg id "$1" --arg busy "$busy" '.results[0] | [$id, (.times|length), (.min*1000|round), (.median*1000|round), (.max*1000|round), ((.user+.system)*1000|round), ($busy + "%")] | @tsv' "$OUT/$1.json" | tee -a "$OUT/summary.tsv"
}

rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null; }

versions() {
  {
    echo "date: $(date -u +%FT%TZ); kernel $(uname -r); $(nproc) cpus; loadavg at end $(cut -d' ' -f1-3 /proc/loadavg)"
    # Host state that moves every tool's container start: the mount table's size (each
    # runtime copies it into a new mount namespace) and cgroup2's favordynmods (without it
    # a cgroup v1 task migration waits for an RCU grace period).
    echo "mounts: $(wc -l </proc/self/mountinfo); cgroup2: $(awk '$3 == "cgroup2" {print $2, $4}' /proc/mounts)"
    dpkg-query -W -f='${Package} ${Version}\n' podman containerd runc crun skopeo docker-registry hyperfine
    $NODELET version
  } >"$OUT/versions.txt"
  cat "$OUT/versions.txt"
}
