#!/usr/bin/env bash
# ~200,000 conntrack entries in a namespace, then in the same run, as people
# run them (output to /dev/null), wall time and CPU:
#   conntrack -L                                     (the reference)
#   netctl conntrack list                            (the lines; CPU: netctl + the agent)
#   netctl -o json conntrack list                    (JSON lines)
#   netctl conntrack list --count                    (the cheaper variant: decode, no printing)
#   bench_conntrack: the collector in process (the kernel's dump alone,
#   received and not parsed; parse; parse+encode) and the statistics call.
# The kernel's dump alone against conntrack -L is the floor of the ratios:
# ctnetlink fills the table's messages in the reader's recvmsg, on one CPU,
# for every client alike.
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

COUNT="$(ip netns exec "$NS" conntrack -C)"
OURS_COUNTED="$("${NETCTL[@]}" conntrack list --count | tail -1 | tr -d ' ')"
OURS_LINES="$("${NETCTL[@]}" conntrack list | wc -l)"
CLK_TCK="$(getconf CLK_TCK)"
agent_ticks() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
# One run of a command, output to /dev/null: "wall cpu" in seconds, the CPU
# being the command's (user + system, with children) plus, for ours, the
# agent's over the same run.
once() {
  local with_agent=$1 a0 a1 out
  shift
  a0=$(agent_ticks)
  out=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1 )
  a1=$(agent_ticks)
  awk -v t="$out" -v a=$((a1 - a0)) -v hz="$CLK_TCK" -v w="$with_agent" 'BEGIN {
    split(t, f, " "); cpu = f[2] + f[3]; if (w == "agent") cpu += a / hz;
    printf "%.4f %.4f\n", f[1], cpu }'
}
median() { sort -n | awk '{v[NR] = $1} END {printf "%.4f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# The reference and ours alternate, run after run, so a busy moment of the
# machine falls on all of them; medians of the runs, wall and CPU.
for f in tool table count json; do : >"$DIR/$f"; done
for _ in $(seq $RUNS); do
  once none ip netns exec "$NS" conntrack -L >>"$DIR/tool"
  once agent "${NETCTL[@]}" conntrack list >>"$DIR/table"
  once agent "${NETCTL[@]}" conntrack list --count >>"$DIR/count"
  once agent "${NETCTL[@]}" -o json conntrack list >>"$DIR/json"
done
wall() { cut -d' ' -f1 "$DIR/$1" | median; }
cpu() { cut -d' ' -f2 "$DIR/$1" | median; }
COLLECTOR="$(ip netns exec "$NS" "$BUILD/tests/bench/bench_conntrack" 3)"

echo "entries: conntrack -C $COUNT, netctl counted $OURS_COUNTED, listed $OURS_LINES lines"
echo "medians of $RUNS runs, alternating; wall / CPU (ours: netctl + agent):"
echo "  conntrack -L:                       $(wall tool) s / $(cpu tool) s"
echo "  netctl conntrack list (the lines):  $(wall table) s / $(cpu table) s"
echo "  netctl -o json conntrack list:      $(wall json) s / $(cpu json) s"
echo "  netctl conntrack list --count:      $(wall count) s / $(cpu count) s (the cheaper variant)"
awk -v tw="$(wall table)" -v tc="$(cpu table)" -v jw="$(wall json)" -v cw="$(wall count)" \
    -v rw="$(wall tool)" -v rc="$(cpu tool)" 'BEGIN {
  printf "ratio list / conntrack -L, wall: %.3f (target <= 0.5)\n", tw / rw;
  printf "ratio list / conntrack -L, CPU:  %.3f (target <= 0.7)\n", tc / rc;
  printf "ratio json / conntrack -L, wall: %.3f\n", jw / rw;
  printf "ratio --count / conntrack -L, wall: %.3f\n", cw / rw }'
echo "in process: $COLLECTOR" | sed 's/^/  /'
FLOOR="$(sed -n "s/^the kernel's dump alone.*best_s=\([0-9.]*\).*/\1/p" <<<"$COLLECTOR")"
awk -v f="$FLOOR" -v rw="$(wall tool)" 'BEGIN {
  printf "floor: the kernel'"'"'s dump alone / conntrack -L, wall: %.3f (no ctnetlink client goes below it)\n", f / rw }'
echo "(statistics call target: <= 5 ms)"
