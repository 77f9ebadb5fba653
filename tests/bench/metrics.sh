#!/usr/bin/env bash
# Our /metrics against node_exporter (Debian's prometheus-node-exporter) on the
# collectors' workload, in the same run: a namespace with ~95,000 established
# TCP sockets (six sockfarm processes), ~200,000 conntrack entries and a veth
# pair, served by
#   netagentd --metrics-listen 127.0.0.1:9471 (its own diagnosis off, so that
#             its CPU between scrapes is the scrapes'), with every device's
#             ethtool statistics (--metrics-ethtool-devices '.*': the veth
#             pair's, as node_exporter reads them)
#   prometheus-node-exporter on 127.0.0.1:9100 with the collectors that read
#             the same data: softnet, netstat (every field, as ours exports
#             every counter), conntrack, tcpstat, netdev, sockstat, ethtool.
# Both run inside the namespace. RUNS scrapes of each, alternating, from one
# client process (wall time per scrape: request to last byte). Per scrape:
# the server's CPU (utime + stime over the run / RUNS), wall time (median);
# the servers' RSS and peak RSS at the end; the series each exposes. Targets:
# CPU per scrape <= 0.25x node_exporter's, wall <= 0.5x, RSS <= 0.3x.
#
# Usage (root, after a build): tests/bench/metrics.sh [PAIRS_PER_PROCESS] [ENTRIES] [RUNS]
# NETAGENT_BENCH_AGENT_ARGS: more flags for the agent (e.g.
# "--metrics-compat node_exporter", to time node_exporter's names as well).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
PAIRS="${1:-7950}"
ENTRIES="${2:-200000}"
RUNS="${3:-20}"
NS="na-bench-mx-$$"
DIR="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "metrics.sh: run as root" >&2; exit 1; }
EXPORTER="$(command -v prometheus-node-exporter || true)"
[ -n "$EXPORTER" ] || { echo "metrics.sh: needs prometheus-node-exporter (apt)" >&2; exit 1; }
if [ "${NETAGENT_BENCH_PRIVATE_MOUNTS:-0}" != 1 ]; then
  NETAGENT_BENCH_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private "$0" "$@"
fi
ninja -C "$BUILD" netagentd netctl sockfarm udpspray >/dev/null
. "$ROOT/tests/bench/workload.sh"
kib_of() { awk -v k="$2" '$1 == k ":" {print $2}' "/proc/$1/status"; }

collectors_workload "$NS" "$PAIRS" "$ENTRIES"

"$BUILD/agent/netagentd" --netns "$NS" --socket "$DIR/a.sock" --state-dir "$DIR/state" \
  --log-level warn --metrics-listen 127.0.0.1:9471 --metrics-ethtool-devices '.*' \
  --diagnosis-interval 0 --drop-reasons off ${NETAGENT_BENCH_AGENT_ARGS:-} \
  >"$DIR/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
ip netns exec "$NS" "$EXPORTER" --web.listen-address=127.0.0.1:9100 \
  --collector.disable-defaults --collector.softnet --collector.netstat \
  --collector.netstat.fields='.*' --collector.conntrack --collector.tcpstat \
  --collector.netdev --collector.sockstat --collector.ethtool >"$DIR/exporter.log" 2>&1 &
EXPORTER_PID=$!
PIDS+=("$EXPORTER_PID")
for _ in $(seq 100); do
  "$BUILD/client/netctl" -t "unix://$DIR/a.sock" health >/dev/null 2>&1 && break
  sleep 0.1
done
# The agent's socket walk uses its BPF iterator once loaded (a thread of its own).
for _ in $(seq 100); do
  "$BUILD/client/netctl" -t "unix://$DIR/a.sock" host | grep -q "socket iterator *yes" && break
  sleep 0.1
done
echo "workload: $(ip netns exec "$NS" ss -tanH | wc -l) TCP sockets," \
  "$(ip netns exec "$NS" conntrack -C) conntrack entries"

# One client for both: RUNS alternating scrapes, wall time of each.
cat >"$DIR/scrape.py" <<'EOF'
import statistics, sys, time, urllib.request
urls = {"ours": "http://127.0.0.1:9471/metrics", "node_exporter": "http://127.0.0.1:9100/metrics"}
runs = int(sys.argv[1])
walls = {k: [] for k in urls}
series = {}
for k, u in urls.items():  # warm: the first answer of each, and its series
    for _ in range(50):
        try:
            body = urllib.request.urlopen(u, timeout=60).read().decode()
            break
        except OSError:
            time.sleep(0.1)
    series[k] = sum(1 for l in body.splitlines() if l and not l.startswith("#"))
print("ready", flush=True)
sys.stdin.readline()  # the CPU is read now
for _ in range(runs):
    for k, u in urls.items():
        t = time.perf_counter()
        urllib.request.urlopen(u, timeout=60).read()
        walls[k].append(time.perf_counter() - t)
for k in urls:
    print(k, series[k], statistics.median(walls[k]), min(walls[k]), max(walls[k]), flush=True)
EOF
coproc CLIENT { ip netns exec "$NS" python3 "$DIR/scrape.py" "$RUNS"; }
read -r ready <&"${CLIENT[0]}"
[ "$ready" = ready ] || { echo "client: $ready"; exit 1; }
a0=$(cpu_of "$AGENT")
e0=$(cpu_of "$EXPORTER_PID")
echo go >&"${CLIENT[1]}"
read -r _ ours_series ours_med ours_min ours_max <&"${CLIENT[0]}"
read -r _ ne_series ne_med ne_min ne_max <&"${CLIENT[0]}"
a1=$(cpu_of "$AGENT")
e1=$(cpu_of "$EXPORTER_PID")
awk -v runs="$RUNS" -v a0="$a0" -v a1="$a1" -v e0="$e0" -v e1="$e1" \
  -v om="$ours_med" -v omin="$ours_min" -v omax="$ours_max" \
  -v nm="$ne_med" -v nmin="$ne_min" -v nmax="$ne_max" \
  -v os="$ours_series" -v ns="$ne_series" \
  -v orss="$(kib_of "$AGENT" VmRSS)" -v ohwm="$(kib_of "$AGENT" VmHWM)" \
  -v nrss="$(kib_of "$EXPORTER_PID" VmRSS)" -v nhwm="$(kib_of "$EXPORTER_PID" VmHWM)" 'BEGIN {
  oc = (a1 - a0) / runs; nc = (e1 - e0) / runs
  printf "%d scrapes each, alternating\n", runs
  printf "%-14s %8s %14s %24s %12s %12s\n", "", "series", "CPU/scrape s", "wall s median (min-max)", "RSS MiB", "peak MiB"
  printf "%-14s %8d %14.4f %10.4f (%.4f-%.4f) %12.1f %12.1f\n", "netagentd", os, oc, om, omin, omax, orss / 1024, ohwm / 1024
  printf "%-14s %8d %14.4f %10.4f (%.4f-%.4f) %12.1f %12.1f\n", "node_exporter", ns, nc, nm, nmin, nmax, nrss / 1024, nhwm / 1024
  printf "ratios (ours / node_exporter): CPU %.3f (target <= 0.25), wall %.3f (<= 0.5), RSS %.3f (<= 0.3), peak RSS %.3f\n",
    oc / nc, om / nm, orss / nrss, ohwm / nhwm
}'
# NETAGENT_BENCH_HOLD=FILE: keep the namespace, the agent and node_exporter up
# until FILE is removed (for a second look with other tools).
if [ -n "${NETAGENT_BENCH_HOLD:-}" ]; then
  touch "$NETAGENT_BENCH_HOLD"
  echo "holding namespace $NS (agent :9471, node_exporter :9100) until $NETAGENT_BENCH_HOLD is removed"
  while [ -e "$NETAGENT_BENCH_HOLD" ]; do sleep 1; done
fi
