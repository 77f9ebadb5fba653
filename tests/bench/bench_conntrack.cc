// The conntrack collector alone, in process: one full dump of the current
// namespace's table, every entry parsed; then the same converted to the API
// messages and serialized, as the agent does before sending.
// Also the statistics call (no table walk), timed over 1,000 calls.
//   bench_conntrack [RUNS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "agent/conntrack_service.h"
#include "collectors/conntrack.h"

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  netagent::collectors::ConntrackQuery q;
  for (int convert = 0; convert < 2; ++convert) {
    double best = 1e9, sum = 0;
    uint64_t entries = 0, bytes = 0;
    for (int i = 0; i < runs; ++i) {
      auto start = std::chrono::steady_clock::now();
      netagent::v1::ListConntrackResponse batch;
      std::string wire;
      auto report = netagent::collectors::DumpConntrack(
          q, [&](const netagent::collectors::ConntrackEntry& e) {
            if (convert) {
              netagent::agent::ToProto(e, batch.add_entries());
              if (batch.entries_size() >= 1024) {
                batch.SerializeToString(&wire);
                bytes += wire.size();
                batch.Clear();
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
        "%s entries=%llu best_s=%.4f mean_s=%.4f%s\n",
        convert ? "parse+convert+serialize" : "parse", static_cast<unsigned long long>(entries),
        best, sum / runs,
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
