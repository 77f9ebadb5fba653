// The collector's side of tests/bench/drop_reasons.sh: starts the kernel-drop
// collector (netagent_drops on skb:kfree_skb) for one network namespace,
// holds it until SIGTERM or SIGINT, then prints what it counted and detaches.
//
//   bench_drop_reasons NETNS SAMPLES_PER_SECOND [--stats]
//       prints "ready prog_id=N" once attached; at the signal:
//       "drops=N reason=R:N ... sampled=S capped=C lost=L"
//       and with --stats (the kernel's BPF run-time statistics, on while this
//       process holds them: they add two clock reads per run, so never in the
//       runs that are compared) "runs=N run_ns=T ns_per_run=X"
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "datapath/drop_collector.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "bench_drop_reasons: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && std::strcmp(argv[3], "--stats") != 0)) {
    std::fprintf(stderr, "usage: bench_drop_reasons NETNS SAMPLES_PER_SECOND [--stats]\n");
    return 2;
  }
  const std::string ns = argv[1];
  const std::string path = ns.find('/') == std::string::npos ? "/run/netns/" + ns : ns;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Fail(path + ": " + std::strerror(errno));
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  netagent::datapath::DropCollectorOptions o;
  o.netns_inode = static_cast<uint32_t>(st.st_ino);
  o.samples_per_second = static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10));
  auto c = netagent::datapath::DropCollector::Start(o);
  if (!c.ok()) return Fail(std::string(c.status().message()));
  int stats_fd = -1;
  if (argc == 4) {
    stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (stats_fd < 0) return Fail(std::string("bpf_enable_stats: ") + std::strerror(errno));
  }
  std::printf("ready prog_id=%u\n", (*c)->prog_id());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);

  auto s = (*c)->Snapshot();
  if (!s.ok()) return Fail(std::string(s.status().message()));
  uint64_t total = 0;
  std::map<std::string, uint64_t> by_reason;
  for (const auto& [k, v] : s->counts) {
    total += v;
    by_reason[(*c)->names().Name(k.reason)] += v;
  }
  std::printf("drops=%" PRIu64, total);
  for (const auto& [r, v] : by_reason) std::printf(" reason=%s:%" PRIu64, r.c_str(), v);
  std::printf(" sampled=%" PRIu64 " capped=%" PRIu64 " lost=%" PRIu64, s->events.sampled,
              s->events.sample_capped, s->events.sample_lost);
  if (stats_fd >= 0) {
    const int fd = bpf_prog_get_fd_by_id((*c)->prog_id());
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      std::printf(" runs=%" PRIu64 " run_ns=%" PRIu64 " ns_per_run=%.1f",
                  static_cast<uint64_t>(info.run_cnt), static_cast<uint64_t>(info.run_time_ns),
                  info.run_cnt ? static_cast<double>(info.run_time_ns) / info.run_cnt : 0.0);
    }
    if (fd >= 0) close(fd);
    close(stats_fd);
  }
  std::printf("\n");
  return 0;
}
