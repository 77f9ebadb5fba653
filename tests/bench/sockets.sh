#!/usr/bin/env bash
# ~95,000 established TCP sockets in a namespace (six processes: one may hold
# only ~20,000 descriptors here), then, in the same run:
#   ss -tinmH > /dev/null                         (the reference)
#   netctl sockets -i -m --state all --count      (agent streams every socket with
#                                                  tcp_info and memory; netctl decodes
#                                                  all of it and prints a count)
#   bench_sockets                                 (the collector alone, in process)
# and the agent's peak RSS. Usage (root, after a build): tests/bench/sockets.sh [PAIRS_PER_PROCESS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
PAIRS="${1:-7950}"
PROCS=6
RUNS=5
NS="na-bench-sk-$$"
DIR="$(mktemp -d)"
PIDS=()
AGENT=""
cleanup() {
  [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ninja -C "$BUILD" netagentd netctl sockfarm bench_sockets >/dev/null

ip netns add "$NS"
ip -n "$NS" link set lo up
for i in $(seq 0 $((PROCS - 1))); do
  ip netns exec "$NS" "$BUILD/tests/sockfarm" --port $((6000 + i)) --established "$PAIRS" \
    >"$DIR/farm$i.out" 2>&1 &
  PIDS+=($!)
done
for i in $(seq 0 $((PROCS - 1))); do
  for _ in $(seq 600); do grep -q ready "$DIR/farm$i.out" && break; sleep 0.1; done
  grep -q ready "$DIR/farm$i.out" || { cat "$DIR/farm$i.out"; exit 1; }
done
"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --log-level warn >"$DIR/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 100); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
COUNT="$(ip netns exec "$NS" ss -tanH | wc -l)"
RSS_IDLE="$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$AGENT/status")"

# Mean wall time of a command over RUNS runs, in seconds.
timeit() {
  local start end
  start=$(date +%s%N)
  for _ in $(seq $RUNS); do "$@" >/dev/null; done
  end=$(date +%s%N)
  awk -v ns=$((end - start)) -v n=$RUNS 'BEGIN {printf "%.4f", ns / n / 1e9}'
}
SS="$(timeit ip netns exec "$NS" ss -tinmH)"
OURS_COUNT="$("$BUILD/client/netctl" -t "unix://$DIR/a.sock" sockets -i -m --state all --count | tail -1 | tr -d ' ')"
NETCTL="$(timeit "$BUILD/client/netctl" -t "unix://$DIR/a.sock" sockets -i -m --state all --count)"
COLLECTOR="$(ip netns exec "$NS" "$BUILD/tests/bench/bench_sockets" $RUNS)"
COLLECTOR_MEAN="$(sed -E 's/.*mean_s=([0-9.]+).*/\1/' <<<"$COLLECTOR")"
RSS_PEAK="$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$AGENT/status")"

echo "sockets in the namespace (ss -tanH): $COUNT; netctl counted: $OURS_COUNT"
echo "ss -tinmH > /dev/null: ${SS} s (mean of $RUNS)"
echo "netctl sockets -i -m --count: ${NETCTL} s (mean of $RUNS)"
echo "collector in process: $COLLECTOR"
awk -v n="$NETCTL" -v c="$COLLECTOR_MEAN" -v s="$SS" 'BEGIN {
  printf "ratio netctl / ss: %.3f (target <= 0.5)\n", n / s;
  printf "ratio collector / ss: %.3f (target <= 0.3)\n", c / s }'
echo "agent RSS MiB: idle $RSS_IDLE, peak (VmHWM) $RSS_PEAK (target <= 48)"
