#!/usr/bin/env bash
# bench/static-pods.sh [RESULTS_DIR]
#
# Standalone mode at scale: `nodelet agent --pod-manifest-path DIR` with PODS (100) static pod
# manifests of the cached `tiny` image running `sleep 3600`, on runc. Measures:
#   - time from starting the agent until every pod's container has started: the agent prints
#     `[<pod>] Normal  Started  Started container main` once the runtime's `start` returned
#     (the kubelet's Started event); the count is then checked against `runc list` (all
#     `running`), so the number is not the agent's word alone;
#   - the agent's CPU time until then, its RSS (VmRSS) and CPU time over IDLE_WAIT (5) s of
#     idle after, and every shim's VmRSS (min / median / max / sum over the PODS shims; none
#     where containers do not run under shims);
#   - time from SIGTERM until the agent has stopped every pod and exited, and that runc
#     lists nothing after.
# Target: all 100 running in <= 10 s on 2 cores. Needs root; installs what is missing.
# BENCH_DEBUG=1 runs the debug build without installing or building (to try the script).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-}
PODS=${PODS:-100}
IDLE_WAIT=${IDLE_WAIT:-5}

source bench/lib.sh
if [ "${BENCH_DEBUG:-0}" = 1 ]; then
  [ -x target/release/nodelet-testbed ] || cargo build -q -p nodelet-testbed --release
else
  bench_install
fi
start_bed
[ "${BENCH_DEBUG:-0}" = 1 ] && NODELET="$PWD/target/debug/nodelet --config $T/nodelet.toml --root-dir $T/nodelet"
# Our own runc root: other containers on the machine are not counted.
printf '[runtimes.runc]\nroot = "%s/runc"\n' "$T" >>"$T/nodelet.toml"
RUNC="runc --root $T/runc"

IMAGE=$REG/tiny:v1
$NODELET images pull "$IMAGE" >/dev/null
mkdir -p "$T/manifests"
for i in $(seq -w 1 "$PODS"); do
  cat >"$T/manifests/sleep-$i.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: sleep-$i}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: $IMAGE, imagePullPolicy: IfNotPresent, command: [/bin/sleep, "3600"]}
YAML
done

started() { grep -c 'Normal  Started  Started container main' "$T/agent.log" || true; }
running() { $RUNC list -f json 2>/dev/null | jq '[.[]? | select(.status == "running")] | length'; }

busy=$(wait_quiet)
t0=$(date +%s%N)
$NODELET agent --pod-manifest-path "$T/manifests" >"$T/agent.out" 2>"$T/agent.log" & AGENT=$!
BENCH_CLEANUP_HOOK='kill -TERM $AGENT 2>/dev/null; wait $AGENT 2>/dev/null' 
while [ "$(started)" -lt "$PODS" ]; do
  kill -0 "$AGENT" 2>/dev/null || { echo "agent ended early:" >&2; tail -20 "$T/agent.log" >&2; exit 1; }
  [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt 120 ] || { echo "not all pods started in 120 s ($(started))" >&2; exit 1; }
  sleep 0.05
done
t1=$(date +%s%N)
all_ms=$(( (t1 - t0) / 1000000 ))
in_runc=$(running)

cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$AGENT/stat"; }
cpu_started=$(cpu_ms)
sleep "$IDLE_WAIT"
agent_rss=$(rss_kb "$AGENT")
cpu_idle=$(( $(cpu_ms) - cpu_started ))
: >"$T/shim-rss"
for pid in $(pgrep -f "shim $T/" || true); do rss_kb "$pid" >>"$T/shim-rss"; done
shims=$(wc -l <"$T/shim-rss")
shim_stats=$(sort -n "$T/shim-rss" | awk '{a[NR]=$1; s+=$1} END {if (NR) print a[1], a[int((NR+1)/2)], a[NR], s; else print "- - - -"}')
read -r shim_min shim_median shim_max shim_sum <<<"$shim_stats"

t2=$(date +%s%N)
kill -TERM "$AGENT"; agent_rc=0; wait "$AGENT" || agent_rc=$?
t3=$(date +%s%N)
stop_ms=$(( (t3 - t2) / 1000000 ))
left=$($RUNC list -q 2>/dev/null | wc -l)

{
  printf 'metric\tvalue\n'
  printf 'pods\t%s\n' "$PODS"
  printf 'all_started_ms\t%s\n' "$all_ms"
  printf 'running_in_runc_then\t%s\n' "$in_runc"
  printf 'agent_idle_rss_kB\t%s\n' "$agent_rss"
  printf 'agent_cpu_ms_until_all_started\t%s\n' "$cpu_started"
  printf 'agent_cpu_ms_idle_over_%ss\t%s\n' "$IDLE_WAIT" "$cpu_idle"
  printf 'shims\t%s\n' "$shims"
  printf 'shim_rss_kB_min_median_max\t%s %s %s\n' "$shim_min" "$shim_median" "$shim_max"
  printf 'shim_rss_kB_sum\t%s\n' "$shim_sum"
  printf 'sigterm_to_exit_ms\t%s\n' "$stop_ms"
  printf 'agent_exit_status\t%s\n' "$agent_rc"
  printf 'containers_left\t%s\n' "$left"
  printf 'busy_at_start\t%s%%\n' "$busy"
} | tee "$OUT/static-pods.tsv"
cp "$T/agent.log" "$OUT/agent.log"
versions
