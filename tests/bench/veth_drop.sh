#!/usr/bin/env bash
# Packets dropped per second on a veth: our XDP blocklist vs the same rule as
# `iptables -t raw -A PREROUTING -s SENDER -j DROP`, same sender, ratio printed.
#
# Every measurement gets a fresh pair of network namespaces A and B joined by a
# veth (vbd0 in A, vbd1 in B; nothing outside them is touched). In A,
# tests/tools/pktblast sends one 60-byte UDP frame from 10.77.42.1 over and
# over (AF_PACKET with PACKET_QDISC_BYPASS, sendmmsg batches of 64; this kernel
# has no pktgen). In B, on vbd1, one of:
#   xdp              netagent_xdp attached through the loader (AttachXdp, native
#                    mode asked; the mode the kernel gave is printed), pinned
#                    under /sys/fs/bpf/na-bench-veth-PID, 10.77.42.1/32 in the
#                    exact4 blocklist; drops = counters[NA_CNT_IDX(NA_R_BLOCK, 1)]
#                    summed over CPUs; DetachXdp afterwards
#   xdp-generic      the same in generic (skb) mode
#   iptables         iptables-nft -t raw -A PREROUTING -s 10.77.42.1 -j DROP
#                    (Debian 12's default iptables); drops = the rule's packet
#                    counter (iptables -t raw -L -v -x -n)
#   iptables-legacy  the same rule through iptables-legacy (x_tables)
#   baseline         no veth: the same sender into an ifb device in A, which
#                    frees every frame (this kernel has no dummy driver): what
#                    sending alone costs
# After a 1 s warm-up the sender runs DURATION seconds; drops/s is the drop
# counter's increase over the sender's own elapsed time. Variants alternate
# within each round, in a rotated order. Three phases:
#   blast    one sender thread, as fast as it can
#   blast2   two sender threads pinned to CPUs 0 and 1, as fast as they can
#   paced    one thread at a fixed offered load (PPS) every variant keeps up
#            with: the figure is CPU per dropped packet
# On a veth the receive side runs in the sender's own context (veth_xmit hands
# the frame to the peer and the softirq runs when the sender re-enables bottom
# halves), so at full blast the sender's rate is the whole path's rate:
# drops/s with "the same sender" measures send + receive + drop per packet.
# Hence CPU per packet: the sender's own CPU time (user + sys, which includes
# that softirq work, from the scheduler's clock) plus ksoftirqd's, per frame;
# "rx ns" subtracts the baseline's, leaving what the veth hand-over, the
# receive path and the drop add. Also printed: the sender's share of its CPU,
# softirq and busy CPUs of the whole machine from /proc/stat (tick-sampled:
# blast phases only), CPU pressure (PSI "some": other load on the machine)
# and steal. "refused" are frames the veth dropped before any rule saw them
# (its tx_dropped: the peer's XDP ring was full); they are not in "sent".
#
# Usage (root, after a build):
#   tests/bench/veth_drop.sh [--duration S] [--rounds N] [--pps N]
#                            [--phases blast,blast2,paced]
#                            [--variants xdp,iptables,xdp-generic,iptables-legacy,baseline]
#   defaults: 5 s, 5 rounds, 300000 pps in the paced phase, every phase and
#   variant (about 9 minutes). NETAGENT_BUILD: the build tree;
#   NETAGENT_NO_BUILD=1: run no ninja. Installs nothing: says what is missing.
#   Exits non-zero only when something could not be set up.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
DURATION=5
ROUNDS=5
PPS=300000
PHASES=blast,blast2,paced
VARIANTS=xdp,iptables,xdp-generic,iptables-legacy,baseline
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --pps) PPS="$2"; shift 2 ;;
    --phases) PHASES="$2"; shift 2 ;;
    --variants) VARIANTS="$2"; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
fail() { echo "veth_drop.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (network namespaces, bpf, iptables)"
missing=()
for c in ip:iproute2 iptables-nft:iptables iptables-legacy:iptables ninja:ninja-build awk:mawk; do
  command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:} (for ${c%%:*})")
done
[ ${#missing[@]} -eq 0 ] || fail "missing Debian packages: ${missing[*]} (scripts/lib.sh lists them)"
# The pins live in a bpffs of this run's own: a private mount namespace, so
# nothing is left on the host and a bare host (no bpffs) works too.
if [ "${NETAGENT_BENCH_PRIVATE_MOUNTS:-0}" != 1 ]; then
  NETAGENT_BENCH_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private "$0" "${ARGS[@]}"
fi
mountpoint -q /sys/fs/bpf && umount -l /sys/fs/bpf
mount -t bpf bpf /sys/fs/bpf || fail "cannot mount a bpf filesystem at /sys/fs/bpf"
if [ "${NETAGENT_NO_BUILD:-0}" != 1 ]; then
  ninja -C "$BUILD" bench_veth_drop pktblast >/dev/null || fail "build failed (ninja -C $BUILD bench_veth_drop pktblast)"
fi
HELPER="$BUILD/tests/bench/bench_veth_drop"
BLAST="$BUILD/tests/pktblast"
if [ ! -x "$HELPER" ] || [ ! -x "$BLAST" ]; then fail "no $HELPER or $BLAST: build first"; fi

SRC=10.77.42.1
DST=10.77.42.2
PIN="/sys/fs/bpf/na-bench-veth-$$"
DIR="$(mktemp -d)"
NS_A=""
NS_B=""
SEQ=0
del_pair() {
  if [ -n "$NS_A" ]; then ip netns del "$NS_A" 2>/dev/null || true; fi
  if [ -n "$NS_B" ]; then ip netns del "$NS_B" 2>/dev/null || true; fi
  NS_A=""
  NS_B=""
}
cleanup() {
  if [ -n "$NS_B" ] && [ -d "$PIN" ]; then "$HELPER" detach "$NS_B" vbd1 "$PIN" 2>/dev/null || true; fi
  del_pair
  rm -rf "$PIN" "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

new_pair() {
  SEQ=$((SEQ + 1))
  NS_A="na-bench-vd-a-$$-$SEQ"
  NS_B="na-bench-vd-b-$$-$SEQ"
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  ip -n "$NS_A" link add vbd0 type veth peer name vbd1 netns "$NS_B"
  ip -n "$NS_A" addr add "$SRC/24" dev vbd0
  ip -n "$NS_B" addr add "$DST/24" dev vbd1
  ip -n "$NS_A" link set lo up
  ip -n "$NS_B" link set lo up
  ip -n "$NS_A" link set vbd0 up
  ip -n "$NS_B" link set vbd1 up
}

# Packets the variant's rule dropped so far (baseline: frames the veth dropped).
drops() {
  case "$1" in
    xdp | xdp-generic) "$HELPER" count "$PIN" vbd1 | sed 's/.*block_drops=\([0-9]*\).*/\1/' ;;
    iptables) ip netns exec "$NS_B" iptables-nft -t raw -L PREROUTING -v -x -n | awk '$3 == "DROP" {print $1; exit}' ;;
    iptables-legacy) ip netns exec "$NS_B" iptables-legacy -t raw -L PREROUTING -v -x -n | awk '$3 == "DROP" {print $1; exit}' ;;
    baseline) ip netns exec "$NS_A" cat /sys/class/net/vbdi/statistics/rx_dropped ;;
  esac
}
# "cpu" line of /proc/stat: busy (all but idle and iowait), softirq and steal, jiffies.
procstat() { awk '$1 == "cpu" {t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, $8, $9; exit}' /proc/stat; }
# utime + stime of every ksoftirqd thread (clock ticks).
ksoftirqd() {
  local sum=0 pid
  for pid in $(ps -eo pid=,comm= | awk '$2 ~ /^ksoftirqd\// {print $1}'); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
# Microseconds some task waited for a CPU (PSI), 0 without PSI.
psi() { awk '/^some/ {sub("total=", "", $5); print $5; exit}' /proc/pressure/cpu 2>/dev/null || echo 0; }
HZ="$(getconf CLK_TCK)"

# measure PHASE VARIANT ROUND: one line appended to $DIR/results.
measure() {
  local phase="$1" variant="$2" round="$3" mode args=() d0 d1 p0 p1 k0 k1 s0 s1 w0 w1 out mac
  case "$phase" in
    blast) args=(--threads 1) ;;
    blast2) args=(--threads 2 --cpus "0,1") ;;
    paced) args=(--threads 1 --pps "$PPS") ;;
  esac
  new_pair
  case "$variant" in
    xdp | xdp-generic)
      local want=native
      [ "$variant" = xdp-generic ] && want=generic
      out="$("$HELPER" attach "$NS_B" vbd1 "$PIN" "$SRC" "$want")" || fail "attach failed: $out"
      mode="$(sed 's/^mode=\([a-z]*\).*/\1/' <<<"$out")"
      ;;
    iptables)
      ip netns exec "$NS_B" iptables-nft -t raw -A PREROUTING -s "$SRC" -j DROP
      mode="nft-$(iptables-nft -V | awk '{print $2}')"
      ;;
    iptables-legacy)
      ip netns exec "$NS_B" iptables-legacy -t raw -A PREROUTING -s "$SRC" -j DROP
      mode="legacy-$(iptables-legacy -V | awk '{print $2}')"
      ;;
    baseline)
      mode="ifb-sink"
      ;;
  esac
  mac="$(ip netns exec "$NS_B" cat /sys/class/net/vbd1/address)"
  local dev=vbd0
  if [ "$variant" = baseline ]; then
    ip -n "$NS_A" link add vbdi type ifb
    ip -n "$NS_A" link set vbdi up
    dev=vbdi
  fi
  local blast=(ip netns exec "$NS_A" "$BLAST" --dev "$dev" --dst-mac "$mac" --src "$SRC" --dst "$DST")
  "${blast[@]}" "${args[@]}" --duration 1 >/dev/null
  d0="$(drops "$variant")"
  local txd0 txd1
  txd0="$(ip netns exec "$NS_A" cat /sys/class/net/vbd0/statistics/tx_dropped)"
  w0="$(date +%s%N)" p0="$(procstat)" k0="$(ksoftirqd)" s0="$(psi)"
  out="$("${blast[@]}" "${args[@]}" --duration "$DURATION")"
  w1="$(date +%s%N)" p1="$(procstat)" k1="$(ksoftirqd)" s1="$(psi)"
  d1="$(drops "$variant")"
  txd1="$(ip netns exec "$NS_A" cat /sys/class/net/vbd0/statistics/tx_dropped)"
  if [ "$variant" = xdp ] || [ "$variant" = xdp-generic ]; then
    "$HELPER" detach "$NS_B" vbd1 "$PIN" || fail "detach failed"
  fi
  del_pair
  # Fields: 1 phase 2 variant 3 round 4 mode 5 sent 6 seconds 7 drops 8 lost
  # (veth tx_dropped) 9 sender CPU s (user+sys) 10 ksoftirqd CPU s 11 wall s
  # 12 machine busy s 13 machine softirq s 14 PSI cpu some s 15 steal s
  awk -v phase="$phase" -v variant="$variant" -v round="$round" -v mode="$mode" \
    -v out="$out" -v d="$((d1 - d0))" -v txd="$((txd1 - txd0))" -v k="$((k1 - k0))" \
    -v hz="$HZ" -v p0="$p0" -v p1="$p1" -v wall="$((w1 - w0))" -v psi="$((s1 - s0))" 'BEGIN {
      n = split(out, kv, /[ =]/); for (i = 1; i < n; i += 2) o[kv[i]] = kv[i + 1]
      split(p0, a, " "); split(p1, b, " ")
      printf "%s %s %s %s %s %s %s %s %.3f %.3f %.3f %.2f %.2f %.3f %.2f\n", phase, variant, round, mode,
        o["sent"], o["seconds"], d, txd, o["user_s"] + o["sys_s"], k / hz, wall / 1e9,
        (b[1] - a[1]) / hz, (b[2] - a[2]) / hz, psi / 1e6, (b[3] - a[3]) / hz
    }' >>"$DIR/results"
  tail -1 "$DIR/results" | awk '{
    printf "  %-6s r%s %-15s %-13s sent %8.0f/s dropped %8.0f/s (%5.1f%%) refused %-6d CPU %.2f+%.2f = %4.0f ns/pkt",
      $1, $3, $2, $4, $5 / $6, $7 / $6, $5 ? 100 * $7 / $5 : 0, $8, $9 / $6, $10 / $6, ($9 + $10) / $5 * 1e9
    if ($1 != "paced") printf "  softirq %.2f of busy %.2f CPUs", $13 / $11, $12 / $11
    printf "  pressure %2.0f%%  steal %2.0f%%\n", 100 * $14 / $11, 100 * $15 / $11
  }'
}

echo "kernel $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "duration ${DURATION}s after 1s warm-up, $ROUNDS rounds, phases $PHASES, variants $VARIANTS, paced load $PPS pps"
IFS=, read -r -a phase_list <<<"$PHASES"
IFS=, read -r -a variant_list <<<"$VARIANTS"
nv=${#variant_list[@]}
for phase in "${phase_list[@]}"; do
  case "$phase" in blast | blast2 | paced) ;; *) fail "unknown phase $phase" ;; esac
  echo "phase $phase:"
  for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((nv - 1))); do
      v="${variant_list[$(((i + round - 1) % nv))]}"
      case "$v" in xdp | xdp-generic | iptables | iptables-legacy | baseline) ;; *) fail "unknown variant $v" ;; esac
      measure "$phase" "$v" "$round"
    done
  done
done

THREADS_OF() { [ "$1" = blast2 ] && echo 2 || echo 1; }
echo
echo "medians over the rounds. ns/pkt: (sender user+sys + ksoftirqd CPU time) / frames sent;"
echo "rx ns: ns/pkt minus the baseline's (hand-over, receive and drop); sender: its threads' share of their CPUs"
: >"$DIR/summary"
for phase in "${phase_list[@]}"; do
  for v in "${variant_list[@]}"; do
    awk -v p="$phase" -v v="$v" '$1 == p && $2 == v' "$DIR/results" >"$DIR/sel"
    med() { awk "{print $1}" "$DIR/sel" | sort -g | awk '{x[NR] = $1} END {printf "%.6g", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2}'; }
    echo "$phase $v $(awk '{print $4; exit}' "$DIR/sel") $(med '$5 / $6') $(med '$7 / $6') $(med '$8 / $6')" \
      "$(med '($9 + $10) / $5 * 1e9') $(med '$13 / $11') $(med '$12 / $11') $(med '$14 / $11')" \
      "$(med "\$9 / \$6 / $(THREADS_OF "$phase")") $(med '$15 / $11')" >>"$DIR/summary"
  done
done
# summary fields: 1 phase 2 variant 3 mode 4 offered/s 5 dropped/s 6 refused/s
# 7 ns/pkt 8 softirq CPUs 9 busy CPUs 10 pressure 11 sender share 12 steal
awk '
  {line[NR] = $0; if ($2 == "baseline") base[$1] = $7}
  END {
    for (i = 1; i <= NR; i++) {
      split(line[i], f, " ")
      printf "  %-6s %-15s %-13s offered %8.0f/s dropped %8.0f/s refused %5.0f/s %5.0f ns/pkt", f[1], f[2], f[3], f[4], f[5], f[6], f[7]
      if ((f[1] in base) && f[2] != "baseline") printf "  rx %4.0f ns", f[7] - base[f[1]]
      else printf "  %10s", ""
      printf "  sender %3.0f%%", 100 * f[11]
      if (f[1] != "paced") printf "  softirq %.2f of busy %.2f CPUs", f[8], f[9]
      printf "  pressure %2.0f%% steal %2.0f%%\n", 100 * f[10], 100 * f[12]
    }
  }' "$DIR/summary"
echo
# ours / reference, median of the per-round ratios (range in brackets): drops/s
# (blast phases) and CPU per packet; rx ns from the medians above.
perround() {
  awk -v p="$1" -v a="$2" -v b="$3" -v e="$4" '
    function val() { return e == "rate" ? $7 / $6 : ($9 + $10) / $5 }
    $1 == p && $2 == a {x[$3] = val()} $1 == p && $2 == b {y[$3] = val()}
    END {
      n = 0
      for (r in x) if ((r in y) && y[r] > 0) q[++n] = x[r] / y[r]
      if (!n) exit
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) {t = q[i]; q[i] = q[j]; q[j] = t}
      printf "%.2f [%.2f..%.2f]", n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2, q[1], q[n]
    }' "$DIR/results"
}
echo "ratios, ours / reference (drops/s: higher is better; CPU: lower is better):"
for phase in "${phase_list[@]}"; do
  for pair in xdp:iptables xdp:iptables-legacy xdp-generic:iptables; do
    a="${pair%%:*}" b="${pair#*:}"
    [[ ",$VARIANTS," == *",$a,"* && ",$VARIANTS," == *",$b,"* ]] || continue
    rx="$(awk -v p="$phase" -v a="$a" -v b="$b" '
      $1 == p && $2 == "baseline" {base = $7; hb = 1} $1 == p && $2 == a {x = $7} $1 == p && $2 == b {y = $7}
      END {if (hb && y - base > 0) printf ", rx ns %.2f", (x - base) / (y - base)}' "$DIR/summary")"
    if [ "$phase" = paced ]; then
      printf "  %-6s %-27s CPU/pkt %s%s\n" "$phase" "$a / $b:" "$(perround "$phase" "$a" "$b" cpu)" "$rx"
    else
      printf "  %-6s %-27s drops/s %s, CPU/pkt %s%s\n" "$phase" "$a / $b:" "$(perround "$phase" "$a" "$b" rate)" \
        "$(perround "$phase" "$a" "$b" cpu)" "$rx"
    fi
  done
done
