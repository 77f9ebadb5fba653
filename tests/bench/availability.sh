#!/usr/bin/env bash
# Operators under a viewer siege, against the same operator calls on a quiet
# agent (the reference), in the same run; and the agent's memory.
#
# A namespace with 4,000 TCP sockets and a veth; netagentd serves it on its
# unix socket and on 127.0.0.1:9470 with the fast path attached. For each
# round, tests/tools/agent_load makes 100 operator rounds on the unix socket
# (two UpdateRules, one ApplyTuning, a health check on each listener):
#   quiet:  nothing else
#   siege:  80 TestPacket and 80 full socket dump viewers in loops over TCP
#           (at nice 19: an attacker's CPU is elsewhere) and 1,000 idle
#           connections that send the HTTP/2 preface only
# and prints p50/p99 of each call and the siege/quiet ratio, the agent's RSS
# idle, right after the siege, and a minute later.
# Usage (root, after a build): tests/bench/availability.sh [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
ROUNDS="${1:-3}"
NS="na-bench-av-$$"
PEER="na-bench-avp-$$"
DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip netns del "$PEER" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "availability.sh: run as root" >&2; exit 1; }
# The agent mounts bpffs in this run's own mount namespace: nothing is left
# on the host.
if [ "${NETAGENT_BENCH_PRIVATE_MOUNTS:-0}" != 1 ]; then
  NETAGENT_BENCH_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private "$0" "$@"
fi
mountpoint -q /sys/fs/bpf && umount -l /sys/fs/bpf
ninja -C "$BUILD" netagentd netctl sockfarm agent_load >/dev/null

ip netns add "$NS"
ip netns add "$PEER"
ip -n "$NS" link set lo up
ip -n "$PEER" link add va type veth peer name vb netns "$NS"
ip -n "$PEER" link set va up
ip -n "$NS" link set vb up
ip netns exec "$NS" "$BUILD/tests/sockfarm" --established 2000 --port 6100 >"$DIR/farm.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do grep -q ready "$DIR/farm.out" && break; sleep 0.1; done
"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --listen 127.0.0.1:9470 --log-format json >"$DIR/agent.log" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
CTL=("$BUILD/client/netctl" -t "unix://$DIR/a.sock")
for _ in $(seq 100); do "${CTL[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done
"${CTL[@]}" datapath attach vb >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$AGENT/status"; }
sleep 2
IDLE=$(rss)

load() {  # floods? -> one JSON line
  local floods=(--packet-floods 0 --dump-floods 0 --idle 0)
  [ "$1" = siege ] && floods=(--packet-floods 80 --dump-floods 80 --idle 1000 --idle-peers 4)
  ip netns exec "$NS" "$BUILD/tests/agent_load" --tcp 127.0.0.1:9470 --unix "$DIR/a.sock" \
    --device vb --operator-calls 100 "${floods[@]}"
}
for r in $(seq "$ROUNDS"); do
  load quiet >"$DIR/quiet.$r"
  load siege >"$DIR/siege.$r"
done
AFTER=$(rss)
sleep 60
LATER=$(rss)

/usr/bin/python3 - "$DIR" "$ROUNDS" "$IDLE" "$AFTER" "$LATER" <<'EOF'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
idle, after, later = (int(x) for x in sys.argv[3:6])
runs = {k: [json.loads(open(f"{d}/{k}.{r}").read()) for r in range(1, rounds + 1)]
        for k in ("quiet", "siege")}
print(f"{rounds} rounds, 100 operator rounds each; medians over rounds (ms)")
print(f"{'call':<16}{'quiet p50':>10}{'p99':>8}{'siege p50':>11}{'p99':>8}{'errors':>8}"
      f"{'p99 ratio':>11}")
for call in ("update_rules_ms", "apply_tuning_ms", "health_unix_ms", "health_tcp_ms"):
    q50 = statistics.median(x[call]["p50"] for x in runs["quiet"])
    q99 = statistics.median(x[call]["p99"] for x in runs["quiet"])
    s50 = statistics.median(x[call]["p50"] for x in runs["siege"])
    s99 = statistics.median(x[call]["p99"] for x in runs["siege"])
    err = sum(x[call]["errors"] for x in runs["siege"])
    print(f"{call[:-3]:<16}{q50:>10.2f}{q99:>8.2f}{s50:>11.2f}{s99:>8.2f}{err:>8}"
          f"{s99 / q99 if q99 else float('nan'):>10.2f}x")
s = runs["siege"][-1]
print(f"last siege: TestPacket {s['test_packet']}, dumps {s['dumps']}")
print(f"agent RSS: idle {idle / 1024:.1f} MiB, after the sieges {after / 1024:.1f} MiB, "
      f"a minute later {later / 1024:.1f} MiB ({later / idle:.2f}x idle)")
EOF
