// Parser micro benchmarks on recorded 6.18 files (Google Benchmark).
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "collectors/counters.h"
#include "collectors/softnet.h"

namespace {

std::string Fixture(const std::string& rel) {
  std::ifstream in(std::string(NETAGENT_FIXTURES) + "/" + rel);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void BM_ParseNetstat(benchmark::State& state) {
  const std::string text = Fixture("procfs/linux-6.18/netstat");
  for (auto _ : state) {
    auto v =
        netagent::collectors::ParseSnmpPairs(text, netagent::collectors::CounterSource::kNetstat);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_ParseNetstat);

void BM_ParseSoftnet(benchmark::State& state) {
  const std::string text = Fixture("procfs/linux-6.18/softnet_stat");
  for (auto _ : state) {
    auto v = netagent::collectors::ParseSoftnet(text, {0, 1});
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_ParseSoftnet);

void BM_ReadCountersLive(benchmark::State& state) {
  for (auto _ : state) {
    auto v = netagent::collectors::ReadCounters();
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_ReadCountersLive);

}  // namespace

BENCHMARK_MAIN();
