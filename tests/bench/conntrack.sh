#!/usr/bin/env bash
# ~200,000 conntrack entries in a namespace, then in the same run:
#   conntrack -L > /dev/null                         (the reference)
#   netctl conntrack list --count                    (agent streams every entry,
#                                                     netctl decodes all and counts)
#   netctl conntrack list -o json > /dev/null        (the same, printed)
#   bench_conntrack: the collector in process (parse; parse+convert+serialize)
#   and the statistics call alone.
# Usage (root, after a build): tests/bench/conntrack.sh [ENTRIES]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
ENTRIES="${1:-200000}"
RUNS=7
NS="na-bench-ct-$$"
DIR="$(mktemp -d)"
AGENT=""
cleanup() {
  [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ninja -C "$BUILD" netagentd netctl udpspray bench_conntrack >/dev/null
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT
ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600
ip netns exec "$NS" "$BUILD/tests/udpspray" "$ENTRIES"
"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --log-level warn >"$DIR/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 100); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
NETCTL=("$BUILD/client/netctl" -t "unix://$DIR/a.sock")

# Seconds one run of a command takes.
once() {
  local start
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1
  awk -v ns=$(($(date +%s%N) - start)) 'BEGIN {printf "%.4f", ns / 1e9}'
}
median() { sort -n | awk '{v[NR] = $1} END {printf "%.4f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
timeit() {
  for _ in $(seq $RUNS); do once "$@"; echo; done | median
}
COUNT="$(ip netns exec "$NS" conntrack -C)"
OURS_COUNTED="$("${NETCTL[@]}" conntrack list --count | tail -1 | tr -d ' ')"
# CPU seconds (user + system) a process used, from /proc/PID/stat.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.4f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# The reference and ours alternate, run after run, so a busy moment of the
# machine falls on both; medians of the runs. CPU time too (the tool's, and
# netctl's plus the agent's), which the machine's noise does not move.
: >"$DIR/tool"
: >"$DIR/ours"
TOOL_CPU=0
OURS_CPU=0
for _ in $(seq $RUNS); do
  once ip netns exec "$NS" conntrack -L >>"$DIR/tool"; echo >>"$DIR/tool"
  /usr/bin/time -f "%U %S" -o "$DIR/cpu" ip netns exec "$NS" conntrack -L >/dev/null 2>&1
  TOOL_CPU=$(awk -v a="$TOOL_CPU" '{printf "%.4f", a + $1 + $2}' "$DIR/cpu")
  once "${NETCTL[@]}" conntrack list --count >>"$DIR/ours"; echo >>"$DIR/ours"
  before=$(cpu_of "$AGENT")
  /usr/bin/time -f "%U %S" -o "$DIR/cpu" "${NETCTL[@]}" conntrack list --count >/dev/null 2>&1
  after=$(cpu_of "$AGENT")
  OURS_CPU=$(awk -v a="$OURS_CPU" -v b="$before" -v e="$after" '{printf "%.4f", a + $1 + $2 + e - b}' "$DIR/cpu")
done
TOOL="$(median <"$DIR/tool")"
OURS="$(median <"$DIR/ours")"
OURS_JSON="$(once "${NETCTL[@]}" -o json conntrack list)"
COLLECTOR="$(ip netns exec "$NS" "$BUILD/tests/bench/bench_conntrack" 3)"

echo "entries: conntrack -C $COUNT, netctl counted $OURS_COUNTED"
echo "conntrack -L > /dev/null: $TOOL s (median of $RUNS, alternating with ours)"
echo "netctl conntrack list --count: $OURS s (median); with -o json printed: $OURS_JSON s (one run)"
awk -v o="$OURS" -v t="$TOOL" 'BEGIN {printf "ratio netctl / conntrack -L, wall: %.3f (target <= 0.5)\n", o / t}'
awk -v o="$OURS_CPU" -v t="$TOOL_CPU" -v n=$RUNS 'BEGIN {
  printf "CPU per listing: conntrack -L %.3f s; netctl + agent %.3f s; ratio %.3f\n", t / n, o / n, o / t }'
echo "in process: $COLLECTOR" | sed 's/^/  /'
echo "(statistics call target: <= 5 ms)"
