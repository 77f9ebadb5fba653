#!/usr/bin/env bash
# Playbooks: what the runner adds to a rollout, and what a playbook fixes.
#
# Fleet: AGENTS netagentds (default 50), each serving its own namespace on
# its unix socket. A manual playbook (somaxconn doubled) in four waves (1,
# 10 %, 50 %, 100 %) with a 2 s detection window, a 5 s verification window
# per wave and 5 s pauses: its waits add up to 2 + 4 x 5 + 3 x 5 = 37 s,
# the reference. The wall time of `netctl playbook run` over it, per round,
# and the ratio (target: at most 1.10). Each round is aborted afterwards
# (not timed).
#
# Efficacy, each shipped playbook run as it is between two measurements of
# its symptom: the lab's port exhaustion (200 ephemeral ports, a client that
# opens and closes connections to one server over a veth; failed connects in
# 3 s), and a listen overflow (somaxconn 64 under a listen(4096), a server
# that accepts in bursts every 2 s and listens again each time;
# ListenOverflows/s over 5 s), a SYN flood (SYN cookies off, 5,000
# spoofed SYNs a second; legitimate connects that succeed, and SYN-queue
# drops/s), and a SYN flood from two networks with cookies on and the fast
# path attached (cookies sent/s and half-open connections, before and after
# syn-flood-block.yaml), and flows limited by their send buffers (a 20 ms
# round trip through the user-space delay line, tcp_wmem's ceiling 64 KiB;
# iperf3's throughput over 6 s before and after buffer-limited.yaml, which
# runs while a transfer goes on: the finding sizes the buffers from what
# that flow delivers). Two more change host-wide knobs, through an agent
# serving the host's own namespace, and the script puts the host's values
# back when it ends: a CPU's backlog overflowing in bursts (RPS into one
# slow CPU; softnet drops/s before and after softnet-drops.yaml, which
# raises netdev_max_backlog), and UDP receive buffers overflowing in bursts
# on loopback (UdpRcvbufErrors/s before and after udp-rcvbuf.yaml, which
# raises rmem_max).
# Usage (root, after a build): tests/bench/playbook.sh [ROUNDS] [AGENTS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
ROUNDS="${1:-3}"
AGENTS="${2:-50}"
DIR="$(mktemp -d)"
PIDS=()
NSS=()
RESTORE=()
PINS="/sys/fs/bpf/netagent-bench-pb-$$"
# How the run in FILE ended (a run that paused prints no "run finished").
finished() {
  local state
  state=$(grep -o "run finished  [A-Z_]*" "$1" | awk '{print $3}' || true)
  echo "${state:-PAUSED (no run finished line)}"
}
# play OUT ID FILE NETCTL...: runs the shipped playbook FILE through that
# netctl (and its target) with run id ID, its report in OUT; prints how the
# run ended.
play() {
  local out=$1 id=$2 file=$3
  shift 3
  "$@" --timeout 20s playbook --state-dir "$DIR/runs" run "$ROOT/docs/playbooks/$file" \
    --run-id "$id" >"$out" || true
  finished "$out"
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  # The host's own values, put back whatever the host-wide sections did.
  for kv in "${RESTORE[@]}"; do sysctl -qw "$kv" || true; done
  rm -rf "$DIR" "$PINS" "$PINS-host"
}
trap cleanup EXIT
# netns_up NAME...: new namespaces with lo up, removed at exit.
netns_up() {
  local ns
  for ns in "$@"; do
    ip netns add "$ns"
    NSS+=("$ns")
    ip -n "$ns" link set lo up
  done
}
# veth_pair A DEV_A B DEV_B NET: namespaces A and B joined by a veth, NET.1
# on DEV_A in A and NET.2 on DEV_B in B (a /24).
veth_pair() {
  netns_up "$1" "$3"
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" addr add "$5.1/24" dev "$2"
  ip -n "$1" link set "$2" up
  ip -n "$3" addr add "$5.2/24" dev "$4"
  ip -n "$3" link set "$4" up
}
[ "$(id -u)" -eq 0 ] || { echo "playbook.sh: run as root" >&2; exit 1; }
ninja -C "$BUILD" netagentd netctl delayline >/dev/null
NETCTL="$BUILD/client/netctl"

: >"$DIR/fleet"
for i in $(seq "$AGENTS"); do
  ns="na-bench-pb-$$-$i"
  netns_up "$ns"
  "$BUILD/agent/netagentd" --netns "$ns" --socket "$DIR/$i.sock" --state-dir "$DIR/state$i" \
    --diagnosis-interval 0 --log-format json >"$DIR/agent$i.log" 2>&1 &
  PIDS+=($!)
  echo "unix://$DIR/$i.sock" >>"$DIR/fleet"
done
for i in $(seq "$AGENTS"); do
  for _ in $(seq 100); do "$NETCTL" -t "unix://$DIR/$i.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
done

cat >"$DIR/fleet.yaml" <<'EOF'
apiVersion: netagent/v1
kind: Playbook
metadata:
  name: bench-fleet
match:
  window: 2s
remediation:
  intent:
    limits:
      settings:
        - name: somaxconn
          value: "max(current * 2, 8192)"
rollout:
  waves: [1, "10%", "50%", "100%"]
  pause: 5s
verify:
  window: 5s
  success:
    - {counter: TcpExtListenOverflows, rate_below: 1}
EOF
REFERENCE=37
echo "fleet: $AGENTS agents, 4 waves; the playbook's own waits: ${REFERENCE} s"
printf '%-6s %10s %10s %8s\n' round wall_s overhead_s ratio
for r in $(seq "$ROUNDS"); do
  start=$(date +%s.%N)
  "$NETCTL" --targets-file "$DIR/fleet" playbook --state-dir "$DIR/runs" run "$DIR/fleet.yaml" \
    --run-id "bench-$r" >"$DIR/run$r.out"
  end=$(date +%s.%N)
  grep -q "SUCCEEDED" "$DIR/run$r.out" || { cat "$DIR/run$r.out"; exit 1; }
  awk -v s="$start" -v e="$end" -v ref="$REFERENCE" -v r="$r" \
    'BEGIN { w = e - s; printf "%-6s %10.2f %10.2f %8.3f\n", r, w, w - ref, w / ref }'
  "$NETCTL" playbook --state-dir "$DIR/runs" abort "bench-$r" >/dev/null
done

# --- efficacy: port exhaustion ------------------------------------------------
A="na-bench-pba-$$"
B="na-bench-pbb-$$"
veth_pair "$A" v0 "$B" v1 10.66.0
ip netns exec "$A" sysctl -qw net.ipv4.ip_local_port_range="40000 40199"
ip netns exec "$B" /usr/bin/python3 -c "
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('10.66.0.2',9000)); s.listen(1024)
while True:
  c,_=s.accept(); c.recv(16); c.close()" >/dev/null 2>&1 &
PIDS+=($!)
"$BUILD/agent/netagentd" --netns "$A" --socket "$DIR/lab.sock" --state-dir "$DIR/labstate" \
  --log-format json >"$DIR/lab.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$NETCTL" -t "unix://$DIR/lab.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do ip netns exec "$B" ss -Hltn 'sport = :9000' | grep -q . && break; sleep 0.1; done
connects() {
  ip netns exec "$A" /usr/bin/python3 -c "
import socket,time
ok=fail=0; end=time.time()+3
while time.time()<end and ok<2000:
  c=socket.socket()
  try: c.connect(('10.66.0.2',9000)); ok+=1
  except OSError: fail+=1; time.sleep(0.01)
  c.close()
print(ok, fail)"
}
read -r ok1 fail1 < <(connects)
state=$(play "$DIR/lab.out" lab port-exhaustion.yaml "$NETCTL" -t "unix://$DIR/lab.sock")
read -r ok2 fail2 < <(connects)
echo
echo "efficacy: port exhaustion, docs/playbooks/port-exhaustion.yaml ($state)"
printf '%-8s %10s %10s %8s\n' when connects failed failed_%
awk -v o="$ok1" -v f="$fail1" 'BEGIN { printf "%-8s %10d %10d %8.1f\n", "before", o + f, f, 100 * f / (o + f) }'
awk -v o="$ok2" -v f="$fail2" 'BEGIN { printf "%-8s %10d %10d %8.1f\n", "after", o + f, f, 100 * f / (o + f) }'

# --- efficacy: listen overflow ------------------------------------------------
# somaxconn 64 caps a listen(4096); ~100 connections a second arrive, and
# the server accepts in bursts every 2 s (a stalled event loop): 200 wait in
# the queue between bursts. It listens again before each pause (as servers do
# on reload), so a larger somaxconn takes effect.
L="na-bench-pbl-$$"
netns_up "$L"
ip netns exec "$L" sysctl -qw net.core.somaxconn=64
ip netns exec "$L" /usr/bin/python3 -c "
import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('127.0.0.1',8080)); s.setblocking(False)
while True:
  s.listen(4096); time.sleep(2)
  while True:
    try: c,_=s.accept(); c.close()
    except BlockingIOError: break" >/dev/null 2>&1 &
PIDS+=($!)
ip netns exec "$L" /usr/bin/python3 -c "
import socket,time
socks=[]
while True:
  for i in range(10):
    c=socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1',8080))
    except BlockingIOError: pass
    socks.append(c)
  time.sleep(0.1)
  if len(socks)>300:
    for c in socks[:100]: c.close()
    socks=socks[100:]" >/dev/null 2>&1 &
PIDS+=($!)
"$BUILD/agent/netagentd" --netns "$L" --socket "$DIR/lo.sock" --state-dir "$DIR/lostate" \
  --log-format json >"$DIR/lo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$NETCTL" -t "unix://$DIR/lo.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
overflows() {
  "$NETCTL" -t "unix://$DIR/lo.sock" counters --window 5s --filter '^TcpExtListenOverflows$' |
    awk 'NR == 2 { print $NF }'
}
sleep 2
before=$(overflows)
state=$(play "$DIR/lo.out" lab-listen listen-overflow.yaml "$NETCTL" -t "unix://$DIR/lo.sock")
after=$(overflows)
echo
echo "efficacy: listen overflow, docs/playbooks/listen-overflow.yaml ($state)"
printf '%-8s %18s\n' when overflows_per_s
printf '%-8s %18s\n' before "$before" after "$after"

# A server namespace SERVER (NET.1 on its veth SDEV) and a client namespace
# CLIENT (NET.2 on CDEV), each routing the rest to the other, lo up; a
# listener on NET.1:8080 with BACKLOG that accepts and closes.
lab_pair() {
  local server=$1 client=$2 sdev=$3 cdev=$4 net=$5 backlog=$6
  veth_pair "$server" "$sdev" "$client" "$cdev" "$net"
  ip -n "$server" route add default via "$net.2"
  ip -n "$client" route add default via "$net.1"
  ip netns exec "$server" /usr/bin/python3 -c "
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('$net.1',8080)); s.listen($backlog)
while True:
  c,_=s.accept(); c.close()" >/dev/null 2>&1 &
  PIDS+=($!)
}

# --- efficacy: SYN flood ----------------------------------------------------------
# A listener (listen(128)) with SYN cookies off; hping3 sends 5,000 spoofed
# SYNs a second from the client's namespace (random sources: nobody answers
# the SYN-ACKs, so the half-open entries stay). Legitimate connects (1 s
# timeout, 5 s) and TcpExtTCPReqQFullDrop/s, before and after the shipped
# playbook, with the flood going on throughout.
SS="na-bench-pbs-$$"
SC="na-bench-pbc-$$"
lab_pair "$SS" "$SC" s0 c0 10.71.0 128
ip netns exec "$SS" sysctl -qw net.ipv4.tcp_syncookies=0
"$BUILD/agent/netagentd" --netns "$SS" --socket "$DIR/syn.sock" --state-dir "$DIR/synstate" \
  --log-format json >"$DIR/syn.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do "$NETCTL" -t "unix://$DIR/syn.sock" health >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do ip netns exec "$SS" ss -Hltn 'sport = :8080' | grep -q . && break; sleep 0.1; done
ip netns exec "$SC" hping3 -q -S -p 8080 -i u200 --rand-source 10.71.0.1 >/dev/null 2>&1 &
PIDS+=($!)
# legit NAMESPACE ADDRESS: connects from NAMESPACE to ADDRESS:8080 for 5 s (1 s each):
# "succeeded failed".
legit() {
  ip netns exec "$1" /usr/bin/python3 -c "
import socket,time
ok=fail=0; end=time.time()+5
while time.time()<end:
  c=socket.socket(); c.settimeout(1)
  try: c.connect(('$2',8080)); ok+=1
  except OSError: fail+=1
  c.close(); time.sleep(0.05)
print(ok, fail)"
}
syn_drops() {
  "$NETCTL" -t "unix://$DIR/syn.sock" counters --window 5s --filter '^TcpExtTCPReqQFullDrop$' |
    awk 'NR == 2 { print $NF }'
}
sleep 3
read -r sok1 sfail1 < <(legit "$SC" 10.71.0.1)
sdrops1=$(syn_drops)
state=$(play "$DIR/syn.out" lab-syn syn-flood.yaml "$NETCTL" -t "unix://$DIR/syn.sock")
read -r sok2 sfail2 < <(legit "$SC" 10.71.0.1)
sdrops2=$(syn_drops)
echo
echo "efficacy: SYN flood (5,000 spoofed SYN/s throughout), docs/playbooks/syn-flood.yaml ($state)"
printf '%-8s %10s %10s %8s %14s\n' when connects succeeded ok_% queue_drops/s
awk -v o="$sok1" -v f="$sfail1" -v d="$sdrops1" 'BEGIN { printf "%-8s %10d %10d %8.1f %14s\n", "before", o + f, o, 100 * o / (o + f), d }'
awk -v o="$sok2" -v f="$sfail2" -v d="$sdrops2" 'BEGIN { printf "%-8s %10d %10d %8.1f %14s\n", "after", o + f, o, 100 * o / (o + f), d }'

# --- efficacy: SYN flood from two networks, blocked in the fast path ---------------
# A listener (listen(512)) with SYN cookies on and the fast path attached to
# its device; hping3 sends 2,500 SYNs a second from each of two addresses in
# two networks. The queue stays full and every further SYN costs a cookie.
# Cookies sent/s (TcpExtTCPReqQFullDoCookies over 5 s) and half-open
# connections, and legitimate connects, before and after the shipped
# syn-flood-block playbook, with the flood going on throughout.
BS="na-bench-pbbs-$$"
BC="na-bench-pbbc-$$"
lab_pair "$BS" "$BC" b0 d0 10.72.0 512
ip netns exec "$BS" sysctl -qw net.ipv4.tcp_syncookies=1
"$BUILD/agent/netagentd" --netns "$BS" --socket "$DIR/block.sock" --state-dir "$DIR/blockstate" \
  --bpf-pin-root "$PINS" --log-format json >"$DIR/block.log" 2>&1 &
PIDS+=($!)
BCTL=("$NETCTL" -t "unix://$DIR/block.sock")
for _ in $(seq 100); do "${BCTL[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do ip netns exec "$BS" ss -Hltn 'sport = :8080' | grep -q . && break; sleep 0.1; done
"${BCTL[@]}" datapath attach b0 >/dev/null
for src in 198.51.100.7 203.0.113.9; do
  ip netns exec "$BC" hping3 -q -S -p 8080 -i u400 -a "$src" 10.72.0.1 >/dev/null 2>&1 &
  PIDS+=($!)
done
cookies() {
  "${BCTL[@]}" counters --window 5s --filter '^TcpExtTCPReqQFullDoCookies$' | awk 'NR == 2 { print $NF }'
}
half_open() { ip netns exec "$BS" ss -Htn state syn-recv | wc -l; }
sleep 3
read -r bok1 bfail1 < <(legit "$BC" 10.72.0.1)
cookies1=$(cookies)
half1=$(half_open)
state=$(play "$DIR/block.out" lab-block syn-flood-block.yaml "${BCTL[@]}")
read -r bok2 bfail2 < <(legit "$BC" 10.72.0.1)
cookies2=$(cookies)
half2=$(half_open)
# Half-open entries from before the block live until their SYN-ACK retries
# run out (tcp_synack_retries 5: about a minute); the flood adds none.
sleep 45
half3=$(half_open)
echo
echo "efficacy: SYN flood from two networks (2 x 2,500 SYN/s throughout, cookies on), docs/playbooks/syn-flood-block.yaml ($state)"
printf '%-8s %10s %10s %10s %10s\n' when connects succeeded cookies/s half_open
printf '%-8s %10d %10d %10s %10d\n' before $((bok1 + bfail1)) "$bok1" "$cookies1" "$half1"
printf '%-8s %10d %10d %10s %10d\n' after $((bok2 + bfail2)) "$bok2" "$cookies2" "$half2"
printf '%-8s %10s %10s %10s %10d\n' +45s - - - "$half3"
"${BCTL[@]}" playbook --state-dir "$DIR/runs" abort lab-block >/dev/null 2>&1 || true
"${BCTL[@]}" datapath detach b0 >/dev/null 2>&1 || true

# --- efficacy: flows limited by their send buffers -----------------------------------
# A 20 ms round trip through the user-space delay line (tests/tools/delayline:
# no netem here) and a 64 KiB ceiling on the sender's buffers. iperf3's
# throughput over 6 s, before and after the shipped buffer-limited playbook;
# the playbook runs while a long transfer goes on (the finding needs a flow to
# measure), which ends before the second measurement.
DA="na-bench-pbda-$$"
DB="na-bench-pbdb-$$"
netns_up "$DA" "$DB"
"$BUILD/tests/delayline" --ns-a "$DA" --ns-b "$DB" --addr-a 10.73.0.1 --addr-b 10.73.0.2 \
  --delay-ms 10 >"$DIR/delayline.out" 2>"$DIR/delayline.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$DIR/delayline.out" && break; sleep 0.1; done
grep -q ready "$DIR/delayline.out" || { cat "$DIR/delayline.log" >&2; exit 1; }
ip netns exec "$DA" sysctl -qw net.ipv4.tcp_wmem="4096 16384 65536" net.ipv4.tcp_rmem="4096 65536 65536"
ip netns exec "$DB" iperf3 -s -B 10.73.0.2 >"$DIR/iperf3-server.log" 2>&1 &
PIDS+=($!)
"$BUILD/agent/netagentd" --netns "$DA" --socket "$DIR/buf.sock" --state-dir "$DIR/bufstate" \
  --log-format json >"$DIR/buf.log" 2>&1 &
PIDS+=($!)
DCTL=("$NETCTL" -t "unix://$DIR/buf.sock")
for _ in $(seq 100); do "${DCTL[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do ip netns exec "$DB" ss -Hltn 'sport = :5201' | grep -q . && break; sleep 0.1; done
# mbits SECONDS: one transfer from DA, the receiver's Mbit/s.
mbits() {
  ip netns exec "$DA" iperf3 -c 10.73.0.2 -t "$1" -J |
    /usr/bin/python3 -c "import json,sys; print('%.1f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e6))"
}
wmem_max() { ip netns exec "$DA" sysctl -n net.ipv4.tcp_wmem | awk '{print $3}'; }
mbit1=$(mbits 6)
wmem1=$(wmem_max)
ip netns exec "$DA" iperf3 -c 10.73.0.2 -t 50 >/dev/null 2>&1 &
WARM=$!
PIDS+=("$WARM")
sleep 3
state=$(play "$DIR/buf.out" lab-buf buffer-limited.yaml "${DCTL[@]}")
wait "$WARM" 2>/dev/null || true
mbit2=$(mbits 6)
wmem2=$(wmem_max)
echo
echo "efficacy: flows limited by their send buffers (20 ms RTT, tcp_wmem max 64 KiB), docs/playbooks/buffer-limited.yaml ($state)"
printf '%-8s %14s %12s\n' when tcp_wmem_max Mbit/s
printf '%-8s %14s %12s\n' before "$wmem1" "$mbit1" after "$wmem2" "$mbit2"
"${DCTL[@]}" playbook --state-dir "$DIR/runs" abort lab-buf >/dev/null 2>&1 || true

# --- host-wide knobs: an agent serving the host's own namespace ------------------------
# netdev_max_backlog and rmem_max are one setting for the whole host (absent
# or read-only in a child namespace), so one agent serves the host's own
# namespace for the last two sections, and their playbooks change the host's
# values: the script records them first and puts them back when it ends,
# whatever happened.
RESTORE+=("net.core.netdev_max_backlog=$(sysctl -n net.core.netdev_max_backlog)"
  "net.core.rmem_max=$(sysctl -n net.core.rmem_max)")
"$BUILD/agent/netagentd" --socket "$DIR/host.sock" --state-dir "$DIR/hoststate" \
  --bpf-pin-root "$PINS-host" --log-format json >"$DIR/host.log" 2>&1 &
PIDS+=($!)
HCTL=("$NETCTL" -t "unix://$DIR/host.sock")
for _ in $(seq 100); do "${HCTL[@]}" health >/dev/null 2>&1 && break; sleep 0.1; done

# --- efficacy: a CPU's backlog overflowing in bursts ---------------------------------
# The traffic stays in two namespaces of its own (softnet drops are counted
# per CPU for the whole host): RPS hands every packet r0 receives to CPU 1,
# 200 iptables string matches make each one slow there, and a sender on
# CPU 0 sends bursts of 1,500 datagrams (about 1 ms each) every second: CPU 1
# keeps up on average, but each burst outruns a backlog of 1,000. Softnet
# drops/s over 5 s, before and after softnet-drops.yaml (the finding's step:
# 2,048).
if [ "$(nproc)" -ge 2 ]; then
  RA="na-bench-pbra-$$"
  RB="na-bench-pbrb-$$"
  veth_pair "$RA" r0 "$RB" r1 10.74.0
  ip netns exec "$RA" sh -c 'for q in /sys/class/net/r0/queues/rx-*; do echo 2 > $q/rps_cpus; done'
  {
    echo "*raw"
    for i in $(seq 0 199); do
      echo "-A PREROUTING -p udp -m string --algo kmp --string needle$i --to 1500 -j ACCEPT"
    done
    echo COMMIT
  } | ip netns exec "$RA" iptables-restore
  ip netns exec "$RB" taskset -c 0 /usr/bin/python3 -c "
import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,32,32<<20)  # SO_SNDBUFFORCE: the burst is not held back here
b=bytes(1000)
while True:
  for i in range(1500): s.sendto(b,('10.74.0.1',7000))
  time.sleep(1)" >/dev/null 2>&1 &
  BURST=$!
  PIDS+=("$BURST")
  # The host's softnet drops per second over 5 s, all CPUs.
  softnet_drops() {
    "${HCTL[@]}" -o json softnet --window 5s |
      /usr/bin/python3 -c "import json,sys; print('%.1f' % sum(c.get('rate', {}).get('dropped', 0) for c in json.load(sys.stdin)['result']['cpus']))"
  }
  sleep 2
  backlog1="$(sysctl -n net.core.netdev_max_backlog)"
  sdrop1=$(softnet_drops)
  state=$(play "$DIR/softnet.out" lab-softnet softnet-drops.yaml "${HCTL[@]}")
  backlog2="$(sysctl -n net.core.netdev_max_backlog)"
  sdrop2=$(softnet_drops)
  "${HCTL[@]}" playbook --state-dir "$DIR/runs" abort lab-softnet >/dev/null 2>&1 || true
  echo
  echo "efficacy: a CPU's backlog overflowing in bursts (1,500 datagrams a second into CPU 1), docs/playbooks/softnet-drops.yaml ($state)"
  printf '%-8s %20s %16s\n' when netdev_max_backlog drops_per_s
  printf '%-8s %20s %16s\n' before "$backlog1" "$sdrop1" after "$backlog2" "$sdrop2"
  echo "netdev_max_backlog after the abort: $(sysctl -n net.core.netdev_max_backlog)"
  kill "$BURST" 2>/dev/null || true
fi

# --- efficacy: UDP receive buffers overflowing in bursts ---------------------------------
# On the host's loopback (UdpRcvbufErrors is counted per namespace, and the
# knob is the host's): a receiver that asks for 32 MiB of receive buffer
# (SO_RCVBUF, asked again every second, as a service does when it restarts;
# the kernel caps it at rmem_max) and reads about 5,500 datagrams a second;
# a sender that sends bursts of 8,000 datagrams of 1,000 bytes every 2 s.
# The receiver keeps up on average, but a burst does not fit the capped
# buffer. UdpRcvbufErrors/s over 5 s before and after udp-rcvbuf.yaml (the
# finding's step: rmem_max x 4).
/usr/bin/python3 -c "
import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.bind(('127.0.0.1',0)); open('$DIR/udp.port','w').write(str(s.getsockname()[1]))
s.setblocking(False); last=0
while True:
  if time.time()-last>1: s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,32<<20); last=time.time()
  for i in range(500):
    try: s.recv(2048)
    except BlockingIOError: break
  time.sleep(0.09)" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$DIR/udp.port" ] && break; sleep 0.1; done
/usr/bin/python3 -c "
import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
b=bytes(1000); port=int(open('$DIR/udp.port').read())
while True:
  for i in range(8000):
    try: s.sendto(b,('127.0.0.1',port))
    except OSError: pass
  time.sleep(2)" >/dev/null 2>&1 &
UDPSEND=$!
PIDS+=("$UDPSEND")
udp_errors() {
  "${HCTL[@]}" counters --window 5s --filter '^UdpRcvbufErrors$' | awk 'NR == 2 { print $NF }'
}
sleep 3
rmem1="$(sysctl -n net.core.rmem_max)"
uerr1=$(udp_errors)
state=$(play "$DIR/udp.out" lab-udp udp-rcvbuf.yaml "${HCTL[@]}")
rmem2="$(sysctl -n net.core.rmem_max)"
uerr2=$(udp_errors)
"${HCTL[@]}" playbook --state-dir "$DIR/runs" abort lab-udp >/dev/null 2>&1 || true
kill "$UDPSEND" 2>/dev/null || true
echo
echo "efficacy: UDP receive buffers overflowing in bursts (8,000 datagrams every 2 s on loopback), docs/playbooks/udp-rcvbuf.yaml ($state)"
printf '%-8s %12s %18s\n' when rmem_max rcvbuf_errors_per_s
printf '%-8s %12s %18s\n' before "$rmem1" "$uerr1" after "$rmem2" "$uerr2"
echo "rmem_max after the abort: $(sysctl -n net.core.rmem_max)"
