// GetSoftnet + GetCounters round trips against a running agent, as one client
// keeping its channel: what a poller (Prometheus bridge, fleet controller) pays.
//   bench_telemetry unix:///path/agent.sock CALLS
// Prints: calls, mean/p50/p99 microseconds per round trip (both RPCs).
#include <grpcpp/create_channel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "netagent/v1/telemetry.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_telemetry TARGET CALLS\n");
    return 2;
  }
  const int calls = std::stoi(argv[2]);
  const bool softnet_only = getenv("BENCH_SOFTNET_ONLY") != nullptr;
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  netagent::v1::TelemetryService::Stub stub(channel);
  std::vector<double> us;
  us.reserve(calls);
  size_t counters = 0;
  for (int i = 0; i < calls; ++i) {
    auto start = std::chrono::steady_clock::now();
    grpc::ClientContext c1, c2;
    netagent::v1::GetSoftnetResponse softnet;
    netagent::v1::GetCountersResponse counters_resp;
    grpc::Status s1 = stub.GetSoftnet(&c1, {}, &softnet);
    grpc::Status s2 = softnet_only ? grpc::Status::OK : stub.GetCounters(&c2, {}, &counters_resp);
    if (!s1.ok() || !s2.ok()) {
      std::fprintf(stderr, "call failed: %s %s\n", s1.error_message().c_str(),
                   s2.error_message().c_str());
      return 1;
    }
    counters = counters_resp.counters_size();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::vector<double> sorted = us;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (double v : us) sum += v;
  std::printf("calls=%d counters=%zu mean_us=%.1f p50_us=%.1f p99_us=%.1f\n", calls, counters,
              sum / calls, sorted[calls / 2], sorted[std::min(calls - 1, calls * 99 / 100)]);
  return 0;
}
