# Sourced by the benchmarks that run on the collectors' workload. Needs BUILD,
# DIR and a PIDS array (the caller's cleanup kills them).
#
# collectors_workload NS PAIRS_PER_PROCESS ENTRIES: the namespace NS with lo
# and a veth pair (veth0, veth1) up, ENTRIES UDP conntrack entries (udpspray,
# an hour's timeout) and six sockfarm processes holding PAIRS established
# TCP connections each; returns once every farm says ready.
collectors_workload() {
  local ns=$1 pairs=$2 entries=$3 procs=6 i
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add veth0 type veth peer name veth1
  ip -n "$ns" link set veth0 up
  ip -n "$ns" link set veth1 up
  ip netns exec "$ns" iptables -A OUTPUT -m conntrack --ctstate NEW -j ACCEPT
  ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3600
  ip netns exec "$ns" "$BUILD/tests/udpspray" "$entries" >/dev/null
  for i in $(seq 0 $((procs - 1))); do
    ip netns exec "$ns" "$BUILD/tests/sockfarm" --port $((6000 + i)) --established "$pairs" \
      >"$DIR/farm$i.out" 2>&1 &
    PIDS+=($!)
  done
  for i in $(seq 0 $((procs - 1))); do
    for _ in $(seq 600); do grep -q ready "$DIR/farm$i.out" && break; sleep 0.1; done
    grep -q ready "$DIR/farm$i.out" || { cat "$DIR/farm$i.out"; exit 1; }
  done
}

# CPU seconds (user + system) process PID has used.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }
