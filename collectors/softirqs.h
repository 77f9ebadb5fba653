// /proc/softirqs: per-CPU counts of each softirq (NET_RX, NET_TX, ...), the
// columns in the order of the header's CPU ids.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::collectors {

struct Softirqs {
  std::vector<uint32_t> cpus;  // from the header: CPU0 CPU1 ...
  std::map<std::string, std::vector<uint64_t>> counts;  // "NET_RX" -> one per CPU
};

// DATA_LOSS for a header without CPU columns, a row with more values than
// CPUs or a value that is not a number. Rows may have fewer values (CPUs
// that went offline are shown, hot-added ones may lag): those are zero.
absl::StatusOr<Softirqs> ParseSoftirqs(absl::string_view text);
absl::StatusOr<Softirqs> ReadSoftirqs(const std::string& proc = "/proc");

}  // namespace netagent::collectors
