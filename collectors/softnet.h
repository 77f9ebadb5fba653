// /proc/net/softnet_stat: per-CPU packet processing counters.
//
// The file's width grew with the kernel: 9 columns (2.6.23), 10 (+received_rps,
// 2.6.39), 11 (+flow_limit_count, 3.11), 13 (+backlog_len and the CPU id,
// 5.10), 15 (+input and process queue lengths, 6.x). The parser takes every
// width of at least 9; columns it does not know are ignored. Counters are
// 32-bit in the kernel and wrap, so deltas are taken modulo 2^32.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace netagent::collectors {

enum class CpuIdSource { kColumn, kOnlineOrder, kLineIndex };

struct SoftnetCounters {
  uint64_t processed = 0;
  uint64_t dropped = 0;
  uint64_t time_squeeze = 0;
  uint64_t cpu_collision = 0;
  std::optional<uint64_t> received_rps;
  std::optional<uint64_t> flow_limit_count;

  SoftnetCounters& operator+=(const SoftnetCounters& other);
};

struct SoftnetRow {
  uint32_t cpu = 0;
  SoftnetCounters counters;  // raw 32-bit values
  std::optional<uint32_t> backlog_len;
  std::optional<uint32_t> input_queue_len;
  std::optional<uint32_t> process_queue_len;
};

struct SoftnetSample {
  std::vector<SoftnetRow> rows;
  int columns = 0;
  CpuIdSource cpu_id_source = CpuIdSource::kColumn;
  absl::Time taken;
};

// `online_cpus` maps line i to a CPU id on kernels without the id column.
absl::StatusOr<SoftnetSample> ParseSoftnet(absl::string_view text,
                                           const std::vector<uint32_t>& online_cpus);

// Reads proc_net/softnet_stat and the online CPU list; stamps the time.
absl::StatusOr<SoftnetSample> ReadSoftnet(const std::string& proc_net = "/proc/net",
                                          const std::string& sysfs = "/sys");

// after - before for counters the kernel keeps as u32.
inline uint64_t Delta32(uint64_t before, uint64_t after) {
  return static_cast<uint32_t>(static_cast<uint32_t>(after) - static_cast<uint32_t>(before));
}

SoftnetCounters DiffSoftnetCounters(const SoftnetCounters& before, const SoftnetCounters& after);

// Per second over `elapsed`; 0 for an empty window.
double PerSecond(double delta, absl::Duration elapsed);

struct SoftnetRates {
  double processed = 0, dropped = 0, time_squeeze = 0, cpu_collision = 0;
  std::optional<double> received_rps, flow_limit_count;
};
SoftnetRates SoftnetRate(const SoftnetCounters& delta, absl::Duration elapsed);

struct SoftnetReading {
  SoftnetRow row;
  std::optional<SoftnetCounters> delta;  // when the CPU was in both samples
};

struct SoftnetReport {
  std::vector<SoftnetReading> cpus;
  SoftnetReading total;
  int columns = 0;
  CpuIdSource cpu_id_source = CpuIdSource::kColumn;
  absl::Time taken;
  std::optional<absl::Duration> window;
};

// One sample, or the deltas between two (matched by CPU id).
SoftnetReport BuildSoftnetReport(const SoftnetSample* before, const SoftnetSample& after);

}  // namespace netagent::collectors
