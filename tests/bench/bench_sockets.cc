// The socket collector alone, in process: one full TCP dump of the current
// namespace with tcp_info, congestion control and memory, every record
// decoded (ParseSocket) and touched, nothing printed.
//   bench_sockets [RUNS]   prints sockets and seconds per run (best, mean)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "collectors/sockets.h"

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  netagent::collectors::SocketQuery q;
  q.tcp_info = true;
  q.memory = true;
  double best = 1e9, sum = 0;
  uint64_t sockets = 0, checksum = 0;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto report =
        netagent::collectors::DumpSockets(q, [&](const netagent::collectors::SocketRecord& r) {
          checksum += r.tcp_info.snd_cwnd + r.memory.values[0] + r.local_port;
          return absl::OkStatus();
        });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!report.ok()) {
      std::fprintf(stderr, "%s\n", std::string(report.status().message()).c_str());
      return 1;
    }
    sockets = report->sockets;
    best = std::min(best, s);
    sum += s;
  }
  std::printf("sockets=%llu best_s=%.4f mean_s=%.4f (checksum %llu)\n",
              static_cast<unsigned long long>(sockets), best, sum / runs,
              static_cast<unsigned long long>(checksum));
  return 0;
}
