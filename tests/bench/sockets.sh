#!/usr/bin/env bash
# ~95,000 established TCP sockets in a namespace (six processes: one may hold
# only ~20,000 descriptors here), then, in the same run, as people run them
# (output to /dev/null), wall time and CPU:
#   ss -tainmH                                    (the reference, twice: before and after ours)
#   netctl sockets -i -m --state all              (the table; CPU: netctl + the agent)
#   netctl -o json sockets -i -m --state all      (JSON lines)
#   netctl sockets -i -m --state all --count      (the cheaper variant: decode, no printing)
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

CLK_TCK="$(getconf CLK_TCK)"
agent_ticks() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
# Runs a command RUNS times (output to /dev/null) and prints
# "wall_mean cpu_mean" in seconds: the command's own CPU (user + system of
# it and its children), plus the agent's CPU over the same runs when the
# second argument is "agent".
measure() {
  local with_agent=$1
  shift
  local a0 a1 out
  a0=$(agent_ticks)
  out=$( { TIMEFORMAT='%R %U %S'; time (for _ in $(seq $RUNS); do "$@" >/dev/null; done); } 2>&1 )
  a1=$(agent_ticks)
  awk -v t="$out" -v n=$RUNS -v a=$((a1 - a0)) -v hz="$CLK_TCK" -v w="$with_agent" 'BEGIN {
    split(t, f, " "); cpu = f[2] + f[3]; if (w == "agent") cpu += a / hz;
    printf "%.4f %.4f\n", f[1] / n, cpu / n }'
}
NETCTL_BIN="$BUILD/client/netctl"
TARGET="unix://$DIR/a.sock"
OURS_COUNT="$("$NETCTL_BIN" -t "$TARGET" sockets -i -m --state all --count | tail -1 | tr -d ' ')"
OURS_ROWS="$("$NETCTL_BIN" -t "$TARGET" sockets -i -m --state all | tail -n +2 | wc -l)"
# Alternating, so both see the same machine: the reference, then ours.
read -r SS_WALL SS_CPU < <(measure none ip netns exec "$NS" ss -tainmH)
read -r TABLE_WALL TABLE_CPU < <(measure agent "$NETCTL_BIN" -t "$TARGET" sockets -i -m --state all)
read -r SS2_WALL SS2_CPU < <(measure none ip netns exec "$NS" ss -tainmH)
read -r JSON_WALL JSON_CPU < <(measure agent "$NETCTL_BIN" -t "$TARGET" -o json sockets -i -m --state all)
read -r COUNT_WALL COUNT_CPU < <(measure agent "$NETCTL_BIN" -t "$TARGET" sockets -i -m --state all --count)
COLLECTOR="$(ip netns exec "$NS" "$BUILD/tests/bench/bench_sockets" $RUNS)"
COLLECTOR_MEAN="$(sed -E 's/.*mean_s=([0-9.]+).*/\1/' <<<"$COLLECTOR")"
RSS_PEAK="$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$AGENT/status")"

echo "sockets in the namespace (ss -tanH): $COUNT; netctl counted: $OURS_COUNT; table rows: $OURS_ROWS"
echo "means of $RUNS runs, wall / CPU (netctl's CPU plus the agent's):"
echo "  ss -tainmH:                                   ${SS_WALL} s / ${SS_CPU} s (again after ours: ${SS2_WALL} s / ${SS2_CPU} s)"
echo "  netctl sockets -i -m --state all (table):     ${TABLE_WALL} s / ${TABLE_CPU} s"
echo "  netctl -o json sockets -i -m --state all:     ${JSON_WALL} s / ${JSON_CPU} s"
echo "  netctl sockets -i -m --state all --count:     ${COUNT_WALL} s / ${COUNT_CPU} s"
echo "  collector in process: $COLLECTOR"
awk -v tw="$TABLE_WALL" -v tc="$TABLE_CPU" -v jw="$JSON_WALL" -v jc="$JSON_CPU" \
    -v cw="$COUNT_WALL" -v sw="$SS_WALL" -v sc="$SS_CPU" -v sw2="$SS2_WALL" -v sc2="$SS2_CPU" \
    -v col="$COLLECTOR_MEAN" 'BEGIN {
  w = (sw + sw2) / 2; c = (sc + sc2) / 2;
  printf "ratio table / ss, wall: %.3f (target <= 0.5)\n", tw / w;
  printf "ratio table / ss, CPU:  %.3f (target <= 0.7)\n", tc / c;
  printf "ratio json / ss, wall:  %.3f (target <= 1.0)\n", jw / w;
  printf "ratio json / ss, CPU:   %.3f\n", jc / c;
  printf "ratio --count / ss, wall: %.3f (the cheaper variant)\n", cw / w;
  printf "ratio collector / ss: %.3f (target <= 0.3)\n", col / w }'
echo "agent RSS MiB: idle $RSS_IDLE, peak (VmHWM) $RSS_PEAK (target <= 48)"
