// The collector's side of tests/bench/drop_reasons.sh: starts the kernel-drop
// collector (netagent_drops on skb:kfree_skb) for one network namespace,
// holds it until SIGTERM or SIGINT, then prints what it counted and detaches.
//
//   bench_drop_reasons [--stats] [--empty] NETNS SAMPLES_PER_SECOND
//       prints "ready prog_id=N" once attached; at the signal:
//       "drops=N reason=R:N ... sampled=S capped=C lost=L"
//       and with --stats (the kernel's BPF run-time statistics, on while this
//       process holds them: they add two clock reads per run, so never in the
//       runs that are compared) "runs=N run_ns=T ns_per_run=X".
//       --empty attaches a program that does nothing to the same tracepoint
//       instead (the floor: what any program there costs); it counts nothing.
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
#include <memory>
#include <string>
#include <vector>

#include "datapath/drop_collector.h"
#include "kfree_skb_empty.skel.h"

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "bench_drop_reasons: %s\n", what.c_str());
  return 1;
}

}  // namespace

void PrintStats(uint32_t prog_id) {
  const int fd = bpf_prog_get_fd_by_id(prog_id);
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    std::printf(" runs=%" PRIu64 " run_ns=%" PRIu64 " ns_per_run=%.1f",
                static_cast<uint64_t>(info.run_cnt), static_cast<uint64_t>(info.run_time_ns),
                info.run_cnt ? static_cast<double>(info.run_time_ns) / info.run_cnt : 0.0);
  }
  if (fd >= 0) close(fd);
}

uint32_t ProgId(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

int main(int argc, char** argv) {
  bool stats = false, empty = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--stats") == 0) {
      stats = true;
    } else if (std::strcmp(argv[i], "--empty") == 0) {
      empty = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  if (args.size() != 2) {
    std::fprintf(stderr,
                 "usage: bench_drop_reasons [--stats] [--empty] NETNS SAMPLES_PER_SECOND\n");
    return 2;
  }
  const std::string& ns = args[0];
  const std::string path = ns.find('/') == std::string::npos ? "/run/netns/" + ns : ns;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Fail(path + ": " + std::strerror(errno));
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::unique_ptr<netagent::datapath::DropCollector> collector;
  kfree_skb_empty* floor = nullptr;
  uint32_t prog_id = 0;
  if (empty) {
    floor = kfree_skb_empty__open_and_load();
    if (floor == nullptr || kfree_skb_empty__attach(floor) != 0)
      return Fail(std::string("empty program: ") + std::strerror(errno));
    prog_id = ProgId(bpf_program__fd(floor->progs.kfree_skb_empty));
  } else {
    netagent::datapath::DropCollectorOptions o;
    o.netns_inode = static_cast<uint32_t>(st.st_ino);
    o.samples_per_second = static_cast<uint32_t>(std::strtoul(args[1].c_str(), nullptr, 10));
    auto c = netagent::datapath::DropCollector::Start(o);
    if (!c.ok()) return Fail(std::string(c.status().message()));
    collector = std::move(*c);
    prog_id = collector->prog_id();
  }
  int stats_fd = -1;
  if (stats) {
    stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (stats_fd < 0) return Fail(std::string("bpf_enable_stats: ") + std::strerror(errno));
  }
  std::printf("ready prog_id=%u\n", prog_id);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);

  if (collector) {
    auto s = collector->Snapshot();
    if (!s.ok()) return Fail(std::string(s.status().message()));
    uint64_t total = 0;
    std::map<std::string, uint64_t> by_reason;
    for (const auto& [k, v] : s->counts) {
      total += v;
      by_reason[collector->names().Name(k.reason)] += v;
    }
    std::printf("drops=%" PRIu64, total);
    for (const auto& [r, v] : by_reason) std::printf(" reason=%s:%" PRIu64, r.c_str(), v);
    std::printf(" sampled=%" PRIu64 " capped=%" PRIu64 " lost=%" PRIu64, s->events.sampled,
                s->events.sample_capped, s->events.sample_lost);
  } else {
    std::printf("empty");
  }
  if (stats_fd >= 0) {
    PrintStats(prog_id);
    close(stats_fd);
  }
  std::printf("\n");
  if (floor) kfree_skb_empty__destroy(floor);
  return 0;
}
