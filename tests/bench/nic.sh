#!/usr/bin/env bash
# `netctl nic va` for a veth vs `ethtool -S va; ethtool -k va; ethtool -l va;
# ip -s link show va` together, same run. The tools run in one shell inside the
# namespace (their cheapest form); netctl runs from the host and asks the
# agent serving that namespace. Usage (root, after a build): tests/bench/nic.sh [RUNS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
RUNS="${1:-200}"
NS="na-bench-nic-$$"
DIR="$(mktemp -d)"
AGENT=""
cleanup() {
  [ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
ninja -C "$BUILD" netagentd netctl >/dev/null
ip netns add "$NS"
ip -n "$NS" link add va type veth peer name vb
ip -n "$NS" link set va up
ip -n "$NS" link set vb up
"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --log-level warn >"$DIR/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 100); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" health >/dev/null 2>&1 && break; sleep 0.1; done

TOOLS_US=$(ip netns exec "$NS" bash -c "s=\$(date +%s%N); for _ in \$(seq $RUNS); do
  ethtool -S va >/dev/null; ethtool -k va >/dev/null; ethtool -l va >/dev/null; ip -s link show va >/dev/null
done; echo \$(( (\$(date +%s%N) - s) / $RUNS / 1000 ))")
start=$(date +%s%N)
for _ in $(seq "$RUNS"); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" nic va >/dev/null; done
NETCTL_US=$(( ($(date +%s%N) - start) / RUNS / 1000 ))
start=$(date +%s%N)
for _ in $(seq "$RUNS"); do "$BUILD/client/netctl" -t "unix://$DIR/a.sock" health >/dev/null; done
HEALTH_US=$(( ($(date +%s%N) - start) / RUNS / 1000 ))

echo "ethtool -S, -k, -l + ip -s link (in the namespace): ${TOOLS_US} us per set (mean of $RUNS)"
echo "netctl nic va: ${NETCTL_US} us (netctl health, the floor of one netctl call: ${HEALTH_US} us)"
awk -v n="$NETCTL_US" -v t="$TOOLS_US" 'BEGIN {printf "ratio netctl nic / tools: %.2f (target <= 0.5)\n", n / t}'
