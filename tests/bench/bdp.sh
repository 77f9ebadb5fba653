#!/usr/bin/env bash
# Efficacy of the BDP buffer tuner on a long fat path. Two namespaces joined by
# tests/tools/delayline (a user-space delay line on TUN: this kernel has no
# netem), by default 100 ms each way (RTT 200 ms) through a 1000 Mbit/s
# bottleneck; then, in the same run:
#   iperf3 A -> B with the namespaces' default buffers   (the reference: a fresh
#                                                        namespace starts with
#                                                        tcp_wmem max 4 MiB)
#   netctl tune apply bdp --bandwidth BW --rtt RTT        (one agent per namespace:
#                                                        tcp_rmem/tcp_wmem max
#                                                        = 2 x BDP in each)
#   iperf3 A -> B again
# and prints both figures and the ratio (target >= 3x). Exits non-zero only when
# something could not be set up, not when the target is missed. Nothing is
# changed outside the two namespaces it creates.
#
# Usage (root, after a build):
#   tests/bench/bdp.sh [--delay-ms MS] [--rate-mbit R] [--bandwidth BW] [--duration S] [--manual]
#   --delay-ms MS   one-way delay of the line, each direction (RTT = 2 x MS); env DELAY_MS, 100
#   --rate-mbit R   bottleneck of the line, 0 for none; env RATE_MBIT, 1000
#   --bandwidth BW  what the tuner is told (1gbit, 500mbit, ...); env BANDWIDTH,
#                   default the bottleneck rate (1gbit without one: the line
#                   itself carries ~7.8 Gbit/s at 200 ms RTT here)
#   --duration S    seconds per iperf3 run, after OMIT (3) seconds of ramp-up
#                   that are not counted; env DURATION, 20
#   --manual        BDP_MANUAL=1: FALLBACK until `netctl tune apply bdp` exists:
#                   set the same 2 x BDP with sysctl in each namespace, no agents
# NETAGENT_BUILD: the build tree; DELAYLINE: a delayline binary to use instead
# of $NETAGENT_BUILD/tests/delayline; NETAGENT_NO_BUILD=1: run no ninja.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
DELAY_MS="${DELAY_MS:-100}"
RATE_MBIT="${RATE_MBIT:-1000}"
BANDWIDTH="${BANDWIDTH:-}"
DURATION="${DURATION:-20}"
OMIT="${OMIT:-3}"
BDP_MANUAL="${BDP_MANUAL:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --delay-ms) DELAY_MS="$2"; shift 2 ;;
    --rate-mbit) RATE_MBIT="$2"; shift 2 ;;
    --bandwidth) BANDWIDTH="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --manual) BDP_MANUAL=1; shift ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
if [ -z "$BANDWIDTH" ]; then
  if awk -v r="$RATE_MBIT" 'BEGIN {exit !(r > 0)}'; then
    BANDWIDTH=$(awk -v r="$RATE_MBIT" 'BEGIN {if (r % 1000 == 0) printf "%dgbit", r / 1000; else printf "%gmbit", r}')
  else
    BANDWIDTH=1gbit
  fi
fi
RTT_MS=$(awk -v d="$DELAY_MS" 'BEGIN {printf "%g", 2 * d}')
ADDR_A=10.77.0.1
ADDR_B=10.77.0.2
NS_A="na-bench-bdp-a-$$"
NS_B="na-bench-bdp-b-$$"
DIR="$(mktemp -d)"
PIDS=()
NS_MADE=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "${NS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
fail() { echo "bdp.sh: $*" >&2; exit 1; }

# iperf3 and python3 (to read its JSON) from Debian, as scripts/lib.sh installs things.
missing=()
for p in iperf3 python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

TARGETS=()
[ "$BDP_MANUAL" = 1 ] || TARGETS+=(netagentd netctl)
[ -n "${DELAYLINE:-}" ] || TARGETS+=(delayline)
if [ "${NETAGENT_NO_BUILD:-0}" != 1 ] && [ ${#TARGETS[@]} -gt 0 ]; then
  ninja -C "$BUILD" "${TARGETS[@]}" >/dev/null
fi
DELAYLINE="${DELAYLINE:-$BUILD/tests/delayline}"
[ -x "$DELAYLINE" ] || fail "no delayline at $DELAYLINE"

# 2 x BDP in bytes for a bandwidth like 1gbit, 500mbit, 2.5gbit, 800kbit or bits/s.
BDP2=$(python3 - "$BANDWIDTH" "$RTT_MS" <<'PY'
import re, sys
m = re.fullmatch(r"([0-9.]+)\s*([kmgt]?)(bit|bps|b)?(/s)?", sys.argv[1].strip().lower())
if not m:
    sys.exit("bad bandwidth: " + sys.argv[1])
bps = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2)]
print(int(round(2 * bps * float(sys.argv[2]) / 1000 / 8)))
PY
)

echo "BDP tuner efficacy: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(nproc) CPUs, $(iperf3 --version | head -1 | cut -d' ' -f1-2)"
echo "path: delay line $NS_A ($ADDR_A) <-> $NS_B ($ADDR_B), ${DELAY_MS} ms each way (RTT ${RTT_MS} ms), bottleneck $(awk -v r="$RATE_MBIT" 'BEGIN {if (r > 0) printf "%g Mbit/s", r; else printf "none"}')"
echo "tuner input: --bandwidth $BANDWIDTH --rtt ${RTT_MS}ms -> 2 x BDP = $BDP2 bytes; mode: $([ "$BDP_MANUAL" = 1 ] && echo "MANUAL fallback (sysctl)" || echo "netctl tune apply bdp")"

ip netns add "$NS_A"
NS_MADE+=("$NS_A")
ip netns add "$NS_B"
NS_MADE+=("$NS_B")
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
LINE=(--ns-a "$NS_A" --ns-b "$NS_B" --addr-a "$ADDR_A" --addr-b "$ADDR_B" --delay-ms "$DELAY_MS")
awk -v r="$RATE_MBIT" 'BEGIN {exit !(r > 0)}' && LINE+=(--rate-mbit "$RATE_MBIT")
"$DELAYLINE" "${LINE[@]}" >"$DIR/delayline.out" 2>"$DIR/delayline.log" &
DL=$!
PIDS+=("$DL")
for _ in $(seq 100); do grep -q ready "$DIR/delayline.out" && break; sleep 0.1; done
grep -q ready "$DIR/delayline.out" || { cat "$DIR/delayline.log" >&2; fail "the delay line did not come up"; }

ip netns exec "$NS_B" iperf3 -s -B "$ADDR_B" >"$DIR/iperf3-server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  [ -n "$(ip netns exec "$NS_B" ss -Hltn "sport = :5201")" ] && break
  sleep 0.1
done

buffers() { # NS -> "wmem max W, rmem max R"
  local w r
  w=$(ip netns exec "$1" sysctl -n net.ipv4.tcp_wmem | awk '{print $3}')
  r=$(ip netns exec "$1" sysctl -n net.ipv4.tcp_rmem | awk '{print $3}')
  echo "tcp_wmem max $w, tcp_rmem max $r"
}

# One iperf3 run A -> B (bounded by timeout; its pid is ours to kill on the way
# out); leaves "MBIT RETRANS MEAN_RTT_MS MAX_CWND_BYTES MAX_SND_WND_BYTES" in $DIR/NAME.txt.
measure() {
  ip netns exec "$NS_A" timeout $((DURATION + OMIT + 30)) \
    iperf3 -c "$ADDR_B" -t "$DURATION" -O "$OMIT" -J >"$DIR/$1.json" 2>&1 &
  local client=$!
  PIDS+=("$client")
  wait "$client" || true
  python3 - "$DIR/$1.json" >"$DIR/$1.txt" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit("iperf3 gave no JSON: " + open(sys.argv[1]).read()[:500])
if "error" in d:
    sys.exit("iperf3: " + d["error"])
s = d["end"]["streams"][0]["sender"]
print("%.1f %d %.1f %d %d" % (d["end"]["sum_received"]["bits_per_second"] / 1e6,
      s.get("retransmits", 0), s.get("mean_rtt", 0) / 1000, s.get("max_snd_cwnd", 0),
      s.get("max_snd_wnd", 0)))
PY
}
describe() { # LABEL FIGURES
  read -r mbit retr rtt cwnd wnd <<<"$2"
  echo "$1: $mbit Mbit/s (received, ${DURATION} s after ${OMIT} s ramp-up), retransmits $retr, mean RTT $rtt ms, max cwnd $cwnd B, max peer window $wnd B"
}

if [ "$BDP_MANUAL" != 1 ]; then
  # One agent per namespace; the plan first, so a missing or broken command fails
  # before the measurements rather than after the first one.
  for side in a b; do
    ns="$NS_A"
    [ "$side" = b ] && ns="$NS_B"
    "$BUILD/agent/netagentd" --netns "$ns" --socket "$DIR/$side.sock" --state-dir "$DIR/state-$side" \
      --log-level warn >"$DIR/agent-$side.log" 2>&1 &
    PIDS+=($!)
  done
  for side in a b; do
    for _ in $(seq 100); do
      "$BUILD/client/netctl" --target "unix://$DIR/$side.sock" health >/dev/null 2>&1 && break
      sleep 0.1
    done
    "$BUILD/client/netctl" --target "unix://$DIR/$side.sock" health >/dev/null 2>&1 ||
      { cat "$DIR/agent-$side.log" >&2; fail "agent for namespace $side is not healthy"; }
  done
  NETCTL=("$BUILD/client/netctl" --target "unix://$DIR/a.sock" --target "unix://$DIR/b.sock")
  echo "\$ netctl ... tune plan bdp --bandwidth $BANDWIDTH --rtt ${RTT_MS}ms"
  "${NETCTL[@]}" tune plan bdp --bandwidth "$BANDWIDTH" --rtt "${RTT_MS}ms" | sed 's/^/  /' ||
    fail "netctl tune plan bdp failed"
fi

echo "default buffers: A $(buffers "$NS_A"); B $(buffers "$NS_B")"
measure default || fail "iperf3 run with default buffers failed"
DEFAULT="$(cat "$DIR/default.txt")"
describe "default" "$DEFAULT"

if [ "$BDP_MANUAL" = 1 ]; then
  # ---- FALLBACK (BDP_MANUAL=1): what `netctl tune apply bdp` is to do, by hand:
  # tcp_rmem and tcp_wmem max = 2 x BDP in each namespace, min and default kept.
  for ns in "$NS_A" "$NS_B"; do
    read -r rmin rdef _ <<<"$(ip netns exec "$ns" sysctl -n net.ipv4.tcp_rmem)"
    read -r wmin wdef _ <<<"$(ip netns exec "$ns" sysctl -n net.ipv4.tcp_wmem)"
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rmem="$rmin $rdef $BDP2" \
      net.ipv4.tcp_wmem="$wmin $wdef $BDP2" || fail "sysctl in $ns failed"
  done
else
  echo "\$ netctl ... tune apply bdp --bandwidth $BANDWIDTH --rtt ${RTT_MS}ms"
  "${NETCTL[@]}" tune apply bdp --bandwidth "$BANDWIDTH" --rtt "${RTT_MS}ms" | sed 's/^/  /' ||
    fail "netctl tune apply bdp failed"
fi
for ns in "$NS_A" "$NS_B"; do
  got="$(buffers "$ns")"
  [ "$got" = "tcp_wmem max $BDP2, tcp_rmem max $BDP2" ] ||
    echo "warning: $ns has $got after tuning, expected $BDP2 for both" >&2
done
echo "tuned buffers: A $(buffers "$NS_A"); B $(buffers "$NS_B")"
measure tuned || fail "iperf3 run with tuned buffers failed"
TUNED="$(cat "$DIR/tuned.txt")"
describe "tuned" "$TUNED"

# The line's own counters: drops there would mean it, not the buffers, limited.
DL_CPU=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$DL/stat")
DL_UP=$(awk -v hz="$(getconf CLK_TCK)" -v up="$(cut -d' ' -f1 /proc/uptime)" '{printf "%.1f", up - $22 / hz}' "/proc/$DL/stat")
echo "delay line: ${DL_CPU} s CPU in ${DL_UP} s ($(awk -v c="$DL_CPU" -v u="$DL_UP" 'BEGIN {printf "%.0f", 100 * c / u}')% of one CPU)"
kill "$DL"
wait "$DL" 2>/dev/null || true
grep -E '^delayline (a->b|b->a):' "$DIR/delayline.log" | sed 's/^/  /'

read -r d_mbit _ <<<"$DEFAULT"
read -r t_mbit _ <<<"$TUNED"
awk -v d="$d_mbit" -v t="$t_mbit" 'BEGIN {
  r = d > 0 ? t / d : 0
  printf "default %.0f Mbit/s, tuned %.0f Mbit/s, ratio %.2fx, target >= 3x: %s\n", d, t, r, (r >= 3) ? "met" : "MISSED" }'
