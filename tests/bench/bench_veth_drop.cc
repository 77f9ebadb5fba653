// The XDP side of tests/bench/veth_drop.sh: attaches netagent_xdp to a device
// inside a network namespace through the loader (pinned under PIN_ROOT), puts
// one source address on the exact blocklist, reads the drop counter, detaches.
//
//   bench_veth_drop attach NETNS DEV PIN_ROOT SRC_IP [auto|native|generic]
//       prints "mode=native prog_id=N" (plus "note=..." when the mode is not
//       the one asked for)
//   bench_veth_drop count PIN_ROOT DEV
//       prints "block_drops=N block_bytes=B passed=P": packets the exact
//       blocklist dropped (counters[NA_CNT_IDX(NA_R_BLOCK, 1)] summed over
//       CPUs) and packets the program passed for any reason
//   bench_veth_drop detach NETNS DEV PIN_ROOT
//       detaches, removes the pins and PIN_ROOT itself
//
// The program is loaded with the loader's default switches (every list and
// port rules on, SYN guard off, rule hit counters and the sampling code on)
// and a zero configuration (no drop samples): what the agent attaches with
// only a blocklist configured.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "datapath/loader.h"
#include "netagent_dp.h"

namespace {

using netagent::datapath::AttachMode;
using netagent::datapath::AttachSpec;

int Fail(const std::string& what) {
  std::fprintf(stderr, "bench_veth_drop: %s\n", what.c_str());
  return 1;
}

bool EnterNetns(const std::string& name) {
  const std::string path = name.find('/') == std::string::npos ? "/run/netns/" + name : name;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return ok;
}

int Attach(const std::string& netns, const std::string& dev, const std::string& pin_root,
           const std::string& src, const std::string& mode) {
  if (!EnterNetns(netns)) return Fail("cannot enter network namespace " + netns);
  in_addr a;
  if (inet_pton(AF_INET, src.c_str(), &a) != 1) return Fail(src + ": not an IPv4 address");
  AttachSpec spec;
  spec.device = dev;
  if (mode == "native")
    spec.mode = AttachMode::kNative;
  else if (mode == "generic")
    spec.mode = AttachMode::kGeneric;
  else if (mode != "auto")
    return Fail("mode: auto, native or generic");
  auto xdp = netagent::datapath::AttachXdp(spec, pin_root);
  if (!xdp.ok()) return Fail(std::string(xdp.status().message()));
  const int exact4 = (*xdp)->map_fd("exact4");
  if (exact4 < 0) return Fail("the program has no exact4 map");
  const uint32_t key = a.s_addr;  // network order, as in the packet
  const na_rule rule{.rule_id = 1, .action = NA_ACT_BLOCK};
  if (bpf_map_update_elem(exact4, &key, &rule, BPF_ANY) != 0)
    return Fail(std::string("exact4 update: ") + std::strerror(errno));
  std::printf("mode=%s prog_id=%u", (*xdp)->info().mode.c_str(), (*xdp)->info().prog_id);
  if (!(*xdp)->info().note.empty()) std::printf(" note=\"%s\"", (*xdp)->info().note.c_str());
  std::printf("\n");
  return 0;
}

int Count(const std::string& pin_root, const std::string& dev) {
  const std::string path = pin_root + "/" + dev + "/counters";
  const int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Fail("open " + path + ": " + std::strerror(errno));
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return Fail("cannot count the CPUs");
  std::vector<na_counter> per_cpu(ncpu);
  auto sum = [&](uint32_t idx, na_counter* out) {
    if (bpf_map_lookup_elem(fd, &idx, per_cpu.data()) != 0) return false;
    *out = {};
    for (const na_counter& c : per_cpu) {
      out->packets += c.packets;
      out->bytes += c.bytes;
    }
    return true;
  };
  na_counter block{};
  if (!sum(NA_CNT_IDX(NA_R_BLOCK, 1), &block)) return Fail("counters lookup failed");
  uint64_t passed = 0;
  for (uint32_t r = 0; r < NA_R_MAX; ++r) {
    na_counter c{};
    if (!sum(NA_CNT_IDX(r, 0), &c)) return Fail("counters lookup failed");
    passed += c.packets;
  }
  close(fd);
  std::printf("block_drops=%" PRIu64 " block_bytes=%" PRIu64 " passed=%" PRIu64 "\n",
              static_cast<uint64_t>(block.packets), static_cast<uint64_t>(block.bytes), passed);
  return 0;
}

int Detach(const std::string& netns, const std::string& dev, const std::string& pin_root) {
  if (!EnterNetns(netns)) return Fail("cannot enter network namespace " + netns);
  absl::Status s = netagent::datapath::DetachXdp(dev, pin_root);
  if (!s.ok()) return Fail(std::string(s.message()));
  if (rmdir(pin_root.c_str()) != 0 && errno != ENOENT)
    return Fail("rmdir " + pin_root + ": " + std::strerror(errno));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if ((a.size() == 5 || a.size() == 6) && a[0] == "attach")
    return Attach(a[1], a[2], a[3], a[4], a.size() == 6 ? a[5] : "auto");
  if (a.size() == 3 && a[0] == "count") return Count(a[1], a[2]);
  if (a.size() == 4 && a[0] == "detach") return Detach(a[1], a[2], a[3]);
  std::fprintf(stderr,
               "usage: bench_veth_drop attach NETNS DEV PIN_ROOT SRC_IP [auto|native|generic]\n"
               "       bench_veth_drop count PIN_ROOT DEV\n"
               "       bench_veth_drop detach NETNS DEV PIN_ROOT\n");
  return 2;
}
