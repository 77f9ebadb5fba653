#!/usr/bin/env bash
# XDP cost per packet through BPF_PROG_TEST_RUN: an empty program (the
# harness, subtracted), xdp-filter's xdpfilt_alw_all from Debian's xdp-tools
# and netagent_xdp with the same exact-IP + TCP port rule, and netagent_xdp's
# full pipeline (10,000 CIDR + 100,000 exact rules, SYN guard) on its pass
# and drop paths. Same packets, same run, one CPU, ratio printed. Nothing is
# attached or pinned. Usage (root, after a build): tests/bench/xdp.sh [REPEAT] [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${NETAGENT_BUILD:-$ROOT/build}"
[ -f /usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o ] || {
  echo "xdp-tools is not installed (scripts/lib.sh lists it)" >&2
  exit 1
}
ninja -C "$BUILD" bench_xdp >/dev/null
echo "kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
  "bpf_jit_enable=$(cat /proc/sys/net/core/bpf_jit_enable)"
exec "$BUILD/tests/bench/bench_xdp" "${1:-1000000}" "${2:-20}"
