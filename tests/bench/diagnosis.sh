#!/usr/bin/env bash
# The CPU a diagnosis costs, against the manual pass it replaces, in the same
# run; and what the agent's continuous evaluation costs an idle host.
#
# 1. A namespace with ~95,000 established TCP sockets (six sockfarm
#    processes) and a veth pair. The agent serves it with its own evaluation
#    off. For RUNS rounds, alternating:
#      netctl doctor --window 1s            agent CPU (utime+stime of netagentd)
#                                           plus netctl's
#      nstat -az; ss -tinm; conntrack -S; ethtool -S veth0
#                                           the manual pass (CPU of the four)
#    and the ratio (target <= 0.3). A Diagnose takes two full snapshots, the
#    manual pass one. Beside it, the same Diagnose from a second agent started
#    with --socket-walk sock_diag (the walk before the BPF socket iterator):
#    what the iterator saves, in the same run.
# 2. Two agents side by side for IDLE seconds, one with
#    --diagnosis-interval 10s, one with 0: each one's CPU as a share of one
#    CPU. First both serve the namespace with the sockets (each evaluation
#    walks them: the kernel walks every TCP socket of the host for a dump),
#    then, the sockets gone, two empty namespaces of an idle host (target
#    for the evaluation there: <= 0.5 %).
#
# Usage (root, after a build): tests/bench/diagnosis.sh [PAIRS_PER_PROCESS] [RUNS] [IDLE]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
PAIRS="${1:-7950}"
RUNS="${2:-5}"
IDLE="${3:-180}"
PROCS=6
NS="na-bench-dg-$$"
IDLE_ON="na-bench-dg-on-$$"
IDLE_OFF="na-bench-dg-off-$$"
DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$NS" "$IDLE_ON" "$IDLE_OFF"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "diagnosis.sh: run as root" >&2; exit 1; }
# The agents mount bpffs in this run's own mount namespace if they need it.
if [ "${NETAGENT_BENCH_PRIVATE_MOUNTS:-0}" != 1 ]; then
  NETAGENT_BENCH_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private "$0" "$@"
fi
ninja -C "$BUILD" netagentd netctl sockfarm >/dev/null

# CPU seconds (user + system) a process has used.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{printf "%.4f", ($14 + $15) / t}' "/proc/$1/stat"; }
# CPU seconds (user + system) a command and its children used: bash's `time`
# with the format set to "user sys" (a $(times) would run in a subshell and
# see none of them).
cpu_of_command() {
  local TIMEFORMAT='%3U %3S' t
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  awk -v t="$t" 'BEGIN { split(t, f, " "); printf "%.4f", f[1] + f[2] }'
}
start_agent() {  # NAME NETNS EXTRA...
  local name=$1 ns=$2
  shift 2
  "$BUILD/agent/netagentd" --netns "$ns" --socket "$DIR/$name.sock" --state-dir "$DIR/$name" \
    --log-level warn "$@" >"$DIR/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    "$BUILD/client/netctl" -t "unix://$DIR/$name.sock" health >/dev/null 2>&1 && return
    sleep 0.1
  done
  cat "$DIR/$name.log"
  exit 1
}

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add veth0 type veth peer name veth1
ip -n "$NS" link set veth0 up
ip -n "$NS" link set veth1 up
for i in $(seq 0 $((PROCS - 1))); do
  ip netns exec "$NS" "$BUILD/tests/sockfarm" --port $((6000 + i)) --established "$PAIRS" \
    >"$DIR/farm$i.out" 2>&1 &
  PIDS+=($!)
done
for i in $(seq 0 $((PROCS - 1))); do
  for _ in $(seq 600); do grep -q ready "$DIR/farm$i.out" && break; sleep 0.1; done
  grep -q ready "$DIR/farm$i.out" || { cat "$DIR/farm$i.out"; exit 1; }
done
# Without the kernel-drop collector: the manual pass attaches nothing either.
start_agent big "$NS" --diagnosis-interval 0 --drop-reasons off
AGENT=${PIDS[-1]}
start_agent diag "$NS" --diagnosis-interval 0 --drop-reasons off --socket-walk sock_diag
DIAG_AGENT=${PIDS[-1]}
# The iterator loads on a thread of its own after the agent serves.
for _ in $(seq 100); do
  "$BUILD/client/netctl" -t "unix://$DIR/big.sock" host | grep -q "socket iterator *yes" && break
  sleep 0.1
done
"$BUILD/client/netctl" -t "unix://$DIR/big.sock" host | grep "socket iterator" || true
COUNT="$(ip netns exec "$NS" ss -tanH | wc -l)"

manual() {
  ip netns exec "$NS" nstat -az >/dev/null
  ip netns exec "$NS" ss -tinm >/dev/null
  ip netns exec "$NS" conntrack -S >/dev/null 2>&1 || true
  ip netns exec "$NS" ethtool -S veth0 >/dev/null
}
ours_total=0 manual_total=0 diag_total=0
# CPU of one `netctl doctor --window 1s` against the agent SOCKET NAME PID:
# the agent's share plus netctl's.
doctor_cpu() {
  local a0 a1 client
  a0=$(cpu_of "$2")
  client=$(cpu_of_command "$BUILD/client/netctl" -t "unix://$DIR/$1.sock" doctor --window 1s)
  a1=$(cpu_of "$2")
  awk -v a="$a0" -v b="$a1" -v c="$client" 'BEGIN {printf "%.4f", (b - a) + c}'
}
for r in $(seq "$RUNS"); do
  ours=$(doctor_cpu big "$AGENT")
  man=$(cpu_of_command manual)
  diag=$(doctor_cpu diag "$DIAG_AGENT")
  echo "round $r: netctl doctor (agent + netctl) ${ours} s CPU, manual pass ${man} s CPU," \
    "doctor with --socket-walk sock_diag ${diag} s CPU"
  ours_total=$(awk -v a="$ours_total" -v b="$ours" 'BEGIN {print a + b}')
  manual_total=$(awk -v a="$manual_total" -v b="$man" 'BEGIN {print a + b}')
  diag_total=$(awk -v a="$diag_total" -v b="$diag" 'BEGIN {print a + b}')
done
echo "sockets: $COUNT"
awk -v o="$ours_total" -v m="$manual_total" -v d="$diag_total" -v n="$RUNS" 'BEGIN {
  printf "mean CPU per diagnosis: %.3f s; per manual pass: %.3f s; ratio %.2f (target <= 0.3)\n",
    o / n, m / n, o / m
  printf "with --socket-walk sock_diag: %.3f s per diagnosis, ratio %.2f\n", d / n, d / m }'

# Continuous evaluation: two agents side by side for IDLE seconds, one with
# --diagnosis-interval 10s, one with 0; the difference is the evaluation.
evaluation_cost() {  # TAG LABEL NETNS_ON NETNS_OFF
  local tag=$1 label=$2 on off on0 on1 off0 off1
  start_agent "on-$tag" "$3" --diagnosis-interval 10s --drop-reasons off
  on=${PIDS[-1]}
  start_agent "off-$tag" "$4" --diagnosis-interval 0 --drop-reasons off
  off=${PIDS[-1]}
  sleep 5
  on0=$(cpu_of "$on") off0=$(cpu_of "$off")
  sleep "$IDLE"
  on1=$(cpu_of "$on") off1=$(cpu_of "$off")
  kill "$on" "$off"
  wait "$on" "$off" 2>/dev/null || true
  awk -v a="$on0" -v b="$on1" -v c="$off0" -v d="$off1" -v s="$IDLE" -v l="$label" 'BEGIN {
    printf "%s: agent CPU over %d s: evaluating every 10 s %.3f %% of one CPU, not evaluating %.3f %%; the evaluation costs %.3f %%\n",
      l, s, 100 * (b - a) / s, 100 * (d - c) / s, 100 * ((b - a) - (d - c)) / s }'
}
# First on the namespace with the sockets (every evaluation walks them),
# then, with the sockets gone, on an idle host (target <= 0.5 %).
kill "$AGENT" "$DIAG_AGENT"
evaluation_cost busy "$COUNT sockets" "$NS" "$NS"
for i in $(seq 0 $((PROCS - 1))); do kill "${PIDS[$i]}" 2>/dev/null || true; done
ip netns del "$NS"
for n in "$IDLE_ON" "$IDLE_OFF"; do
  ip netns add "$n"
  ip -n "$n" link set lo up
done
evaluation_cost idle "idle host (target <= 0.5 %)" "$IDLE_ON" "$IDLE_OFF"
