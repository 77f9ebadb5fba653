#!/usr/bin/env bash
# What deploy/daemonset.yaml's resource requests and limits rest on. One agent
# run as the DaemonSet runs it (metrics on, its own diagnosis every 10 s, drop
# reasons on demand) serves a namespace with the collectors' workload (~95,000
# established TCP sockets, ~200,000 conntrack entries, a veth with the fast
# path attached). Its CPU (share of one CPU) and memory (VmRSS now, VmHWM the
# peak so far) after each phase:
#   idle     IDLE seconds, nobody asking: its own evaluation only
#   scraped  BUSY seconds of a scrape every 15 s (as Prometheus) and a
#            `netctl doctor` every 30 s
#   storm    8 full socket listings (-o json), 4 conntrack listings and 16
#            scrapes at once (the listings come from one caller, whose limit
#            is 8 long calls: 4 are refused, as they should be)
#   after    60 s after the storm
#
# Usage (root, after a build): tests/bench/resources.sh [PAIRS_PER_PROCESS] [ENTRIES] [IDLE] [BUSY]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
PAIRS="${1:-7950}"
ENTRIES="${2:-200000}"
IDLE="${3:-120}"
BUSY="${4:-120}"
NS="na-bench-res-$$"
DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  # The fast path's pins live on the host's bpffs (a private mount namespace
  # shares it): detach before the agent goes, or they outlive the run.
  [ -S "$DIR/a.sock" ] && "$BUILD/client/netctl" -t "unix://$DIR/a.sock" datapath detach veth0 \
    >/dev/null 2>&1 || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "resources.sh: run as root" >&2; exit 1; }
if [ "${NETAGENT_BENCH_PRIVATE_MOUNTS:-0}" != 1 ]; then
  NETAGENT_BENCH_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private "$0" "$@"
fi
ninja -C "$BUILD" netagentd netctl sockfarm udpspray >/dev/null
. "$ROOT/tests/bench/workload.sh"
mem_of() { awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB  ", $1, $2 / 1024}' "/proc/$1/status"; }

collectors_workload "$NS" "$PAIRS" "$ENTRIES"

"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --log-level warn --metrics-listen 127.0.0.1:9471 --health-listen 127.0.0.1:9472 \
  >"$DIR/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
NETCTL=("$BUILD/client/netctl" -t "unix://$DIR/a.sock")
for _ in $(seq 100); do "${NETCTL[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done
"${NETCTL[@]}" datapath attach veth0 >/dev/null
"${NETCTL[@]}" datapath rules add veth0 --block 192.0.2.0/24 >/dev/null
for _ in $(seq 100); do
  "${NETCTL[@]}" host | grep -q "socket iterator *yes" && break
  sleep 0.1
done
SOCKETS="$(ip netns exec "$NS" ss -tanH | wc -l)"
FLOWS="$(ip netns exec "$NS" conntrack -C)"
echo "workload: $SOCKETS TCP sockets, $FLOWS conntrack entries, fast path on veth0"

scrape() {
  ip netns exec "$NS" python3 -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9471/metrics', timeout=30).read()"
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {print b - a}'; }
report() {  # PHASE SECONDS CPU_BEFORE
  local now
  now=$(cpu_of "$AGENT")
  awk -v p="$1" -v s="$2" -v a="$3" -v b="$now" \
    'BEGIN {printf "%-8s %6.1f s  CPU %.3f s = %5.2f %% of one CPU  ", p, s, b - a, 100 * (b - a) / s}'
  mem_of "$AGENT"
  echo
}

echo "after start: $(mem_of "$AGENT")"
c0=$(cpu_of "$AGENT")
t0=$(date +%s.%N)
sleep "$IDLE"
report idle "$(since "$t0")" "$c0"

c0=$(cpu_of "$AGENT")
t0=$(date +%s.%N)
end=$(($(date +%s) + BUSY))
n=0
while [ "$(date +%s)" -lt "$end" ]; do
  scrape
  if [ $((n % 2)) -eq 0 ]; then "${NETCTL[@]}" doctor --window 1s >/dev/null; fi
  n=$((n + 1))
  sleep 15
done
report scraped "$(since "$t0")" "$c0"

c0=$(cpu_of "$AGENT")
t0=$(date +%s.%N)
storm=()
for i in $(seq 8); do "${NETCTL[@]}" -o json sockets >/dev/null 2>&1 & storm+=($!); done
for i in $(seq 4); do "${NETCTL[@]}" conntrack list >/dev/null 2>&1 & storm+=($!); done
for i in $(seq 16); do scrape & storm+=($!); done
failed=0
for p in "${storm[@]}"; do wait "$p" || failed=$((failed + 1)); done
report storm "$(since "$t0")" "$c0"
echo "storm: ${#storm[@]} clients, $failed refused or failed"

c0=$(cpu_of "$AGENT")
t0=$(date +%s.%N)
sleep 60
report after "$(since "$t0")" "$c0"
"${NETCTL[@]}" health >/dev/null && echo "the agent still serves"
