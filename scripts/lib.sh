# Shared by scripts/run and scripts/test: Debian packages, build.
# shellcheck shell=bash

NETAGENT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NETAGENT_BUILD="${NETAGENT_BUILD:-$NETAGENT_ROOT/build}"
# The libFuzzer harnesses' tree (tests/fuzz): clang, ASan + UBSan.
NETAGENT_FUZZ_BUILD="${NETAGENT_FUZZ_BUILD:-$NETAGENT_ROOT/build-fuzz}"

# Everything the build and the tests need, from Debian 12's archive.
NETAGENT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev libabsl-dev libre2-dev
  libssl-dev zlib1g-dev libmicrohttpd-dev libmnl-dev libnl-3-dev libnl-route-3-dev libnl-genl-3-dev
  libbpf-dev bpftool clang llvm xdp-tools
  clang-14 libclang-rt-14-dev
  libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  iproute2 openssl util-linux procps iptables ethtool conntrack hping3 iperf3 python3 python3-yaml
  prometheus prometheus-node-exporter systemd
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ensure_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root: the agent and the tests use network namespaces, netlink and bpf"
}

ensure_packages() {
  local missing=()
  for p in "${NETAGENT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages with a service (prometheus) must not start it: the tests run
  # their own, on ports they pick.
  local deny_starts=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    deny_starts=1
  fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  [ -z "$deny_starts" ] || rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

build() {
  log "building in $NETAGENT_BUILD"
  if [ ! -f "$NETAGENT_BUILD/build.ninja" ]; then
    cmake -S "$NETAGENT_ROOT" -B "$NETAGENT_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  ninja -C "$NETAGENT_BUILD" >/dev/null || ninja -C "$NETAGENT_BUILD"
}

build_fuzz() {
  log "building the fuzz harnesses in $NETAGENT_FUZZ_BUILD"
  if [ ! -f "$NETAGENT_FUZZ_BUILD/build.ninja" ]; then
    cmake -S "$NETAGENT_ROOT" -B "$NETAGENT_FUZZ_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DNETAGENT_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
  fi
  ninja -C "$NETAGENT_FUZZ_BUILD" >/dev/null || ninja -C "$NETAGENT_FUZZ_BUILD"
}
