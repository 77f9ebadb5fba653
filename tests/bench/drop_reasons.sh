#!/usr/bin/env bash
# What the kernel-drop collector (netagent_drops on skb:kfree_skb) costs the
# packets it counts: the same flood of dropped packets with and without it,
# same run, CPU per packet and the ratio printed. Target: at most 2% more CPU.
#
# Every measurement gets a fresh pair of network namespaces A and B joined by a
# veth (vdr0 in A, vdr1 in B; nothing outside them is touched). In A,
# tests/tools/pktblast sends one 60-byte UDP frame from 10.77.43.1 over and
# over (AF_PACKET, qdisc bypass, sendmmsg batches). In B,
# `iptables-nft -t raw -A PREROUTING -s 10.77.43.1 -j DROP` drops every frame,
# so each one is freed through kfree_skb with reason NETFILTER_DROP: the
# collector's program runs once per packet. Variants:
#   off     nothing attached (the reference)
#   empty   a program that does nothing on the same tracepoint
#           (tests/bench/kfree_skb_empty.bpf.c): the floor, what attaching
#           any program to skb:kfree_skb costs every dropped packet
#   on      the collector attached for namespace B, as the agent attaches it:
#           counting plus flow samples at SAMPLES per second per CPU (100,
#           the agent's default; the rest are "capped")
#   stats   the same with the kernel's BPF run-time statistics on
#           (BPF_ENABLE_STATS, held by the helper for its run only): prints
#           the program's own ns per run; the statistics add two clock reads
#           per run, so this variant is not in the ratio
#   estats  the empty program with the statistics on: its ns per run is the
#           floor of `stats` (the statistics' own clock reads and the call),
#           so stats minus estats is what the collector's code costs
# Phases:
#   blast   one sender thread as fast as it can: the sender runs the receive
#           side too (veth hands the frame over in its context), so its rate
#           is the path's rate and CPU per packet is 1/rate of a busy CPU
#   paced   one thread at a fixed offered load (PPS) both variants keep up with
# CPU per packet: the sender's user+sys time (scheduler clock, includes the
# softirq work done in its context) plus ksoftirqd's, over frames sent. After a
# 1 s warm-up the sender runs DURATION seconds. Each round runs the variants in
# a rotated order; a ratio is the median of the per-round ratios (on/off, the
# floor empty/off, and on/empty: the collector's own work).
# Also checked: the collector's NETFILTER_DROP count equals the iptables rule's
# packet counter.
#
# Usage (root, after a build):
#   tests/bench/drop_reasons.sh [--duration S] [--rounds N] [--pps N]
#                               [--phases blast,paced] [--variants off,empty,on,stats,estats]
#                               [--samples N]
#   defaults: 5 s, 5 rounds, 200000 pps paced, both phases, every variant,
#   100 samples/s (about 4 minutes). NETAGENT_BUILD: the build tree;
#   NETAGENT_NO_BUILD=1: run no ninja. Installs nothing: says what is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
DURATION=5
ROUNDS=5
PPS=200000
PHASES=blast,paced
VARIANTS=off,empty,on,stats
SAMPLES=100
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --pps) PPS="$2"; shift 2 ;;
    --phases) PHASES="$2"; shift 2 ;;
    --variants) VARIANTS="$2"; shift 2 ;;
    --samples) SAMPLES="$2"; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
fail() { echo "drop_reasons.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (network namespaces, bpf, iptables)"
missing=()
for c in ip:iproute2 iptables-nft:iptables ninja:ninja-build awk:mawk; do
  command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:} (for ${c%%:*})")
done
[ ${#missing[@]} -eq 0 ] || fail "missing Debian packages: ${missing[*]} (scripts/lib.sh lists them)"
if [ "${NETAGENT_NO_BUILD:-0}" != 1 ]; then
  ninja -C "$BUILD" bench_drop_reasons pktblast >/dev/null ||
    fail "build failed (ninja -C $BUILD bench_drop_reasons pktblast)"
fi
HELPER="$BUILD/tests/bench/bench_drop_reasons"
BLAST="$BUILD/tests/pktblast"
if [ ! -x "$HELPER" ] || [ ! -x "$BLAST" ]; then fail "no $HELPER or $BLAST: build first"; fi

SRC=10.77.43.1
DST=10.77.43.2
DIR="$(mktemp -d)"
NS_A=""
NS_B=""
HELPER_PID=""
SEQ=0
del_pair() {
  if [ -n "$NS_A" ]; then ip netns del "$NS_A" 2>/dev/null || true; fi
  if [ -n "$NS_B" ]; then ip netns del "$NS_B" 2>/dev/null || true; fi
  NS_A=""
  NS_B=""
}
stop_helper() {
  if [ -n "$HELPER_PID" ]; then
    kill -TERM "$HELPER_PID" 2>/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
    HELPER_PID=""
  fi
}
cleanup() {
  stop_helper
  del_pair
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

new_pair() {
  SEQ=$((SEQ + 1))
  NS_A="na-bench-dr-a-$$-$SEQ"
  NS_B="na-bench-dr-b-$$-$SEQ"
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  ip -n "$NS_A" link add vdr0 type veth peer name vdr1 netns "$NS_B"
  ip -n "$NS_A" addr add "$SRC/24" dev vdr0
  ip -n "$NS_B" addr add "$DST/24" dev vdr1
  ip -n "$NS_A" link set lo up
  ip -n "$NS_B" link set lo up
  ip -n "$NS_A" link set vdr0 up
  ip -n "$NS_B" link set vdr1 up
  ip netns exec "$NS_B" iptables-nft -t raw -A PREROUTING -s "$SRC" -j DROP
}
rule_count() { ip netns exec "$NS_B" iptables-nft -t raw -L PREROUTING -v -x -n | awk '$3 == "DROP" {print $1; exit}'; }
ksoftirqd() {
  local sum=0 pid
  for pid in $(ps -eo pid=,comm= | awk '$2 ~ /^ksoftirqd\// {print $1}'); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
psi() { awk '/^some/ {sub("total=", "", $5); print $5; exit}' /proc/pressure/cpu 2>/dev/null || echo 0; }
HZ="$(getconf CLK_TCK)"

# measure PHASE VARIANT ROUND: one line appended to $DIR/results.
measure() {
  local phase="$1" variant="$2" round="$3" args=() k0 k1 s0 s1 out mac collected="-" nsrun="-"
  case "$phase" in
    blast) args=(--threads 1) ;;
    paced) args=(--threads 1 --pps "$PPS") ;;
  esac
  new_pair
  if [ "$variant" != off ]; then
    local extra=()
    [ "$variant" = stats ] && extra=(--stats)
    [ "$variant" = empty ] && extra=(--empty)
    [ "$variant" = estats ] && extra=(--empty --stats)
    "$HELPER" "${extra[@]}" "$NS_B" "$SAMPLES" >"$DIR/helper.out" 2>&1 &
    HELPER_PID=$!
    for _ in $(seq 1200); do
      grep -q '^ready' "$DIR/helper.out" && break
      kill -0 "$HELPER_PID" 2>/dev/null || fail "collector did not start: $(cat "$DIR/helper.out")"
      sleep 0.05
    done
    grep -q '^ready' "$DIR/helper.out" || fail "collector did not start in 60 s"
  fi
  mac="$(ip netns exec "$NS_B" cat /sys/class/net/vdr1/address)"
  local blast=(ip netns exec "$NS_A" "$BLAST" --dev vdr0 --dst-mac "$mac" --src "$SRC" --dst "$DST")
  "${blast[@]}" "${args[@]}" --duration 1 >/dev/null
  k0="$(ksoftirqd)" s0="$(psi)"
  out="$("${blast[@]}" "${args[@]}" --duration "$DURATION")"
  k1="$(ksoftirqd)" s1="$(psi)"
  local rule
  rule="$(rule_count)"
  if [ "$variant" = empty ]; then
    stop_helper
  elif [ "$variant" = estats ]; then
    stop_helper
    nsrun="$(sed -n 's/.*ns_per_run=\([0-9.]*\).*/\1/p' "$DIR/helper.out")"
  elif [ "$variant" != off ]; then
    stop_helper
    collected="$(sed -n 's/.*reason=NETFILTER_DROP:\([0-9]*\).*/\1/p' "$DIR/helper.out")"
    [ -n "$collected" ] || collected=0
    if [ "$variant" = stats ]; then nsrun="$(sed -n 's/.*ns_per_run=\([0-9.]*\).*/\1/p' "$DIR/helper.out")"; fi
  fi
  del_pair
  # Fields: 1 phase 2 variant 3 round 4 sent 5 seconds 6 sender CPU s 7 ksoftirqd CPU s
  # 8 rule drops (whole run) 9 collector drops (whole run) 10 ns per program run 11 PSI s
  awk -v phase="$phase" -v variant="$variant" -v round="$round" -v out="$out" -v k="$((k1 - k0))" \
    -v hz="$HZ" -v rule="$rule" -v col="$collected" -v nsrun="$nsrun" -v psi="$((s1 - s0))" 'BEGIN {
      n = split(out, kv, /[ =]/); for (i = 1; i < n; i += 2) o[kv[i]] = kv[i + 1]
      printf "%s %s %s %s %s %.4f %.4f %s %s %s %.3f\n", phase, variant, round, o["sent"], o["seconds"],
        o["user_s"] + o["sys_s"], k / hz, rule, col, nsrun, psi / 1e6
    }' >>"$DIR/results"
  tail -1 "$DIR/results" | awk '{
    printf "  %-5s r%s %-5s sent %8.0f/s  CPU %.3f+%.3f s = %5.0f ns/pkt  rule %d", $1, $3, $2,
      $4 / $5, $6, $7, ($6 + $7) / $4 * 1e9, $8
    if ($9 != "-") printf "  collector %d%s", $9, ($9 == $8 ? " (equal)" : " (DIFFERENT)")
    if ($10 != "-") printf "  prog %s ns/run", $10
    printf "  pressure %.0f%%\n", 100 * $11 / $5
  }'
}

echo "kernel $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "duration ${DURATION}s after 1s warm-up, $ROUNDS rounds, phases $PHASES, variants $VARIANTS, paced $PPS pps, $SAMPLES samples/s per CPU"
IFS=, read -r -a phase_list <<<"$PHASES"
IFS=, read -r -a variant_list <<<"$VARIANTS"
nv=${#variant_list[@]}
for phase in "${phase_list[@]}"; do
  case "$phase" in blast | paced) ;; *) fail "unknown phase $phase" ;; esac
  echo "phase $phase:"
  for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((nv - 1))); do
      v="${variant_list[$(((i + round - 1) % nv))]}"
      case "$v" in off | empty | on | stats | estats) ;; *) fail "unknown variant $v" ;; esac
      measure "$phase" "$v" "$round"
    done
  done
done

echo
echo "medians over the rounds (ns/pkt: sender user+sys + ksoftirqd CPU over frames sent):"
for phase in "${phase_list[@]}"; do
  for v in "${variant_list[@]}"; do
    awk -v p="$phase" -v v="$v" '$1 == p && $2 == v' "$DIR/results" >"$DIR/sel"
    [ -s "$DIR/sel" ] || continue
    med() { awk "{print $1}" "$DIR/sel" | sort -g | awk '{x[NR] = $1} END {printf "%.6g", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2}'; }
    line="$(printf "  %-5s %-5s offered %8.0f/s  %5.0f ns/pkt" "$phase" "$v" "$(med '$4 / $5')" "$(med '($6 + $7) / $4 * 1e9')")"
    [ "$v" = stats ] || [ "$v" = estats ] && line="$line  $(printf 'program %.1f ns/run' "$(med '$10')")"
    echo "$line"
  done
done
echo
echo "ratios, median of the per-round ratios [range] (CPU per packet; packets/s for blast):"
for phase in "${phase_list[@]}"; do
  for pair in on:off empty:off on:empty; do
    a="${pair%%:*}" b="${pair#*:}"
    [[ ",$VARIANTS," == *",$a,"* && ",$VARIANTS," == *",$b,"* ]] || continue
    awk -v p="$phase" -v a="$a" -v b="$b" '
      $1 == p && $2 == a {c[$3] = ($6 + $7) / $4; r[$3] = $4 / $5}
      $1 == p && $2 == b {d[$3] = ($6 + $7) / $4; s[$3] = $4 / $5}
      function median(x, n,   i, j, t) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) {t = x[i]; x[i] = x[j]; x[j] = t}
        return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
      }
      END {
        n = 0
        for (k in c) if ((k in d) && d[k] > 0) {n++; q[n] = c[k] / d[k]; w[n] = r[k] / s[k]}
        if (!n) exit
        m = median(q, n); mw = median(w, n)
        printf "  %-5s %-11s CPU/pkt %.3f [%.3f..%.3f] = %+.1f%% CPU", p, a " / " b ":", m, q[1], q[n], 100 * (m - 1)
        if (p == "blast") printf ";  packets/s %.3f [%.3f..%.3f]", mw, w[1], w[n]
        printf "\n"
      }' "$DIR/results"
  done
done
awk '$9 != "-" && $9 != $8 {bad++} END {if (bad) printf "  WARNING: the collector counted differently from the rule in %d runs\n", bad}' "$DIR/results"
