#!/usr/bin/env bash
# A fleet of AGENTS agents (default 100) in one namespace, each on its own
# TCP port, 5 of the targets blackholed (routed to a namespace that drops
# what is not its own: SYNs never answered). Times, as people run them:
#   netctl --targets-file FLEET host                   (target: connect timeout + 1 s)
#   netctl --targets-file FLEET counters --window 2s   (target: 2 s + connect timeout + 1 s)
# with the default connect timeout (3 s), and the same without the
# blackholed targets for reference. Usage (root, after a build):
#   tests/bench/fleet.sh [AGENTS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
AGENTS="${1:-100}"
BLACKHOLED=5
LIVE=$((AGENTS - BLACKHOLED))
RUNS=3
NS="na-bench-fl-$$"
DROP="na-bench-fd-$$"
DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip netns del "$DROP" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ninja -C "$BUILD" netagentd netctl >/dev/null
NETCTL="$BUILD/client/netctl"

ip netns add "$NS"
ip netns add "$DROP"
ip -n "$NS" link set lo up
ip -n "$NS" link add vfl0 type veth peer name vfl1 netns "$DROP"
ip -n "$NS" addr add 10.250.0.1/24 dev vfl0
ip -n "$NS" link set vfl0 up
ip -n "$DROP" addr add 10.250.0.254/24 dev vfl1
ip -n "$DROP" link set vfl1 up
: >"$DIR/live"
: >"$DIR/fleet"
for i in $(seq 0 $((LIVE - 1))); do
  port=$((9500 + i))
  "$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a$i.sock" --state-dir "$DIR/s$i" \
    --listen "127.0.0.1:$port" --log-level warn >"$DIR/agent$i.log" 2>&1 &
  PIDS+=($!)
  echo "127.0.0.1:$port" >>"$DIR/live"
done
cp "$DIR/live" "$DIR/fleet"
for i in $(seq 2 $((BLACKHOLED + 1))); do
  ip -n "$NS" route add "10.250.0.$i/32" via 10.250.0.254
  echo "10.250.0.$i:9470" >>"$DIR/fleet"
done
# Every live agent answers before anything is timed.
for _ in $(seq 300); do
  n=$(ip netns exec "$NS" "$NETCTL" --targets-file "$DIR/live" -o json health 2>/dev/null |
    grep -c '"ok":true' || true)
  [ "$n" -eq "$LIVE" ] && break
  sleep 0.2
done
[ "$n" -eq "$LIVE" ] || { echo "only $n of $LIVE agents healthy"; exit 1; }

# Median wall time of RUNS runs.
wall() {
  for _ in $(seq $RUNS); do
    local start
    start=$(date +%s%N)
    ip netns exec "$NS" "$NETCTL" "$@" >/dev/null 2>&1 || true
    echo $(($(date +%s%N) - start))
  done | sort -n | awk '{v[NR] = $1} END {printf "%.3f", v[int((NR + 1) / 2)] / 1e9}'
}
HOST_LIVE=$(wall --targets-file "$DIR/live" host)
HOST=$(wall --targets-file "$DIR/fleet" host)
CNT_LIVE=$(wall --targets-file "$DIR/live" counters --window 2s)
CNT=$(wall --targets-file "$DIR/fleet" counters --window 2s)
FAILED=$(ip netns exec "$NS" "$NETCTL" --targets-file "$DIR/fleet" host 2>&1 >/dev/null |
  sed -n 's/^netctl: \([0-9]*\) of.*/\1/p' || true)
echo "fleet: $LIVE agents + $BLACKHOLED blackholed targets; connect timeout 3 s (default)"
echo "medians of $RUNS runs (wall):"
echo "  host, live agents only:          $HOST_LIVE s"
echo "  host, with the blackholed:       $HOST s (target <= 4 s); failed targets named: $FAILED"
echo "  counters --window 2s, live only: $CNT_LIVE s"
echo "  counters --window 2s, with:      $CNT s (target <= 6 s)"
