// The conntrack collector alone, in process. First the kernel's part alone:
// the table dumped through ctnetlink and every message received, none read
// (what no client of ctnetlink can avoid; conntrack -L pays it too). Then
// a full dump with every entry parsed; then the same encoded as the API's
// messages, as the agent does before sending.
// Also the statistics call (no table walk), timed over 1,000 calls.
//   bench_conntrack [RUNS]
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "agent/conntrack_service.h"
#include "agent/wire.h"
#include "collectors/conntrack.h"
#include "kernel/netlink.h"

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  {
    double best = 1e9;
    uint64_t messages = 0;
    for (int i = 0; i < runs; ++i) {
      auto sock = netagent::kernel::NetlinkSocket::Open(NETLINK_NETFILTER);
      if (!sock.ok()) return 1;
      netagent::kernel::NetlinkMessage dump((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                                            NLM_F_DUMP);
      auto* nfg = dump.PutHeader<nfgenmsg>();
      nfg->nfgen_family = AF_UNSPEC;
      nfg->version = NFNETLINK_V0;
      messages = 0;
      auto start = std::chrono::steady_clock::now();
      absl::Status st = sock->Request(dump, "conntrack dump", [&](const nlmsghdr&) {
        ++messages;
        return absl::OkStatus();
      });
      best = std::min(
          best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      if (!st.ok()) return 1;
    }
    std::printf("the kernel's dump alone (received, not parsed) entries=%llu best_s=%.4f\n",
                static_cast<unsigned long long>(messages), best);
  }
  netagent::collectors::ConntrackQuery q;
  for (int convert = 0; convert < 2; ++convert) {
    double best = 1e9, sum = 0;
    uint64_t entries = 0, bytes = 0;
    for (int i = 0; i < runs; ++i) {
      auto start = std::chrono::steady_clock::now();
      std::string batch;
      uint32_t in_batch = 0;
      auto report = netagent::collectors::DumpConntrack(
          q, [&](const netagent::collectors::ConntrackEntry& e) {
            if (convert) {
              netagent::agent::wire::Message(batch, 1, [&](std::string& out) {
                netagent::agent::EncodeConntrackEntry(e, out);
              });
              if (++in_batch >= 1024) {
                bytes += batch.size();
                batch.clear();
                in_batch = 0;
              }
            }
            return absl::OkStatus();
          });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!report.ok()) {
        std::fprintf(stderr, "%s\n", std::string(report.status().message()).c_str());
        return 1;
      }
      entries = report->entries;
      best = std::min(best, s);
      sum += s;
    }
    std::printf(
        "%s entries=%llu best_s=%.4f mean_s=%.4f%s\n", convert ? "parse+encode" : "parse",
        static_cast<unsigned long long>(entries), best, sum / runs,
        convert
            ? (" bytes_per_entry=" + std::to_string(entries ? bytes / entries / runs : 0)).c_str()
            : "");
  }
  const int calls = 1000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    if (!netagent::collectors::ReadConntrackStats().ok()) return 1;
  }
  std::printf(
      "statistics call (count, max, per-CPU) mean_ms=%.3f\n",
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
          calls);
  return 0;
}
