// ctnetlink replies: table entries (filtered and summarized as the dump
// does), per-CPU and global statistics.
#include <netinet/in.h>

#include "collectors/conntrack.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  collectors::ConntrackEntry entry;
  collectors::ConntrackSummarizer summary;
  collectors::ConntrackQuery query;
  query.protocol = IPPROTO_TCP;
  query.source = collectors::Prefix{{AF_INET, {10}}, 8};
  query.destination_port = collectors::PortRange{1, 1023};
  collectors::ConntrackStats stats;
  fuzz::ForEachMessage(data, size, [&](const nlmsghdr& m) {
    if (collectors::ParseConntrackEntry(m, entry).ok()) {
      (void)query.Matches(entry);
      summary.Add(entry);
      collectors::ForEachStatusFlag(entry.status, [](absl::string_view) {});
      (void)collectors::ConntrackProtocolLabel(entry.original.protocol);
      if (entry.tcp_state) (void)collectors::ConntrackTcpStateName(*entry.tcp_state);
    }
    (void)collectors::ParseConntrackCpuStats(m);
    (void)collectors::ParseConntrackGlobalStats(m, stats);
  });
  (void)summary.Counts();
  (void)summary.TopSources(5);
  return 0;
}
