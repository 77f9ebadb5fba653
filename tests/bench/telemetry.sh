#!/usr/bin/env bash
# GetSoftnet + GetCounters over the unix socket vs `nstat -az`, same run, same
# namespace; agent RSS idle, after 10,000 and after 20,000 round trips.
# Usage (root, after a build): tests/bench/telemetry.sh [CALLS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
CALLS="${1:-10000}"
NS="na-bench-$$"
DIR="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ninja -C "$BUILD" netagentd netctl bench_telemetry >/dev/null

ip netns add "$NS"
ip -n "$NS" link set lo up
"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --log-level warn >"$DIR/agent.log" 2>&1 &
PID=$!
for _ in $(seq 100); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }

RSS_IDLE="$(rss)"
# Ours: one client, one channel, N round trips of both RPCs.
OURS="$("$BUILD/tests/bench/bench_telemetry" "unix://$DIR/a.sock" "$CALLS")"
RSS_1="$(rss)"
"$BUILD/tests/bench/bench_telemetry" "unix://$DIR/a.sock" "$CALLS" >/dev/null
RSS_2="$(rss)"
OURS_MEAN="$(sed -E 's/.*mean_us=([0-9.]+).*/\1/' <<<"$OURS")"

# Reference: nstat -az in the same namespace (a process per read, as people run it).
N_NSTAT=200
start=$(date +%s%N)
for _ in $(seq $N_NSTAT); do ip netns exec "$NS" nstat -asz >/dev/null; done
NSTAT_MEAN=$(( ($(date +%s%N) - start) / N_NSTAT / 1000 ))
# And the same without the `ip netns exec` wrapper, from inside via one shell.
start=$(date +%s%N)
ip netns exec "$NS" bash -c "for _ in \$(seq $N_NSTAT); do nstat -asz >/dev/null; done"
NSTAT_BARE=$(( ($(date +%s%N) - start) / N_NSTAT / 1000 ))
# netctl as a process (what a person types), vs nstat as a process.
start=$(date +%s%N)
for _ in $(seq $N_NSTAT); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" -o json counters >/dev/null; done
NETCTL_MEAN=$(( ($(date +%s%N) - start) / N_NSTAT / 1000 ))

echo "agent round trip (GetSoftnet+GetCounters): $OURS"
echo "nstat -asz per run: ${NSTAT_BARE} us (in-namespace loop), ${NSTAT_MEAN} us via ip netns exec"
echo "netctl counters -o json per run: ${NETCTL_MEAN} us"
awk -v o="$OURS_MEAN" -v n="$NSTAT_BARE" -v c="$NETCTL_MEAN" 'BEGIN {
  printf "ratio agent round trip / nstat: %.3f\n", o / n;
  printf "ratio netctl process / nstat process: %.2f\n", c / n }'
echo "agent RSS MiB: idle ${RSS_IDLE}, after ${CALLS} round trips ${RSS_1}, after $((2 * CALLS)) ${RSS_2}"
