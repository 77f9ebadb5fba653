// CPU lists in the kernel's list format ("0-3,8,10-11", also the "a-b:n/m"
// stride form of bitmap_parselist) and the CPU/NUMA topology from sysfs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::kernel {

// Sorted, de-duplicated CPU ids. At most kMaxCpu, and at most kMaxCpu
// comma-separated elements; an empty or all-blank list is valid and empty.
inline constexpr uint32_t kMaxCpu = 8192;
absl::StatusOr<std::vector<uint32_t>> ParseCpuList(absl::string_view text);

// The shortest list form of a sorted set of CPU ids ("0-3,8").
std::string FormatCpuList(const std::vector<uint32_t>& cpus);

// CPU masks in the kernel's hex form (rps_cpus, xps_cpus, smp_affinity):
// comma-separated groups of up to 8 hex digits, most significant group first
// ("ff,00000001"). Parsing accepts any group count and leading zeros.
absl::StatusOr<std::vector<uint32_t>> ParseCpuMask(absl::string_view text);
// The shortest form: no leading all-zero groups, "0" for no CPU.
std::string FormatCpuMask(const std::vector<uint32_t>& cpus);

struct CpuInfo {
  uint32_t id = 0;
  int32_t numa_node = -1;
};

struct CpuTopology {
  std::string online_list;
  std::string possible_list;
  std::vector<CpuInfo> online;
  uint32_t numa_nodes = 0;
};

// Reads /sys/devices/system/cpu and /sys/devices/system/node under sysfs_root.
absl::StatusOr<CpuTopology> ReadCpuTopology(const std::string& sysfs_root = "/sys");

// CPUs isolated from the scheduler (isolcpus=), which tuning keeps
// network work off. Empty when the file is absent or blank.
std::vector<uint32_t> ReadIsolatedCpus(const std::string& sysfs_root = "/sys");

absl::StatusOr<std::vector<uint32_t>> ReadOnlineCpus(const std::string& sysfs_root = "/sys");

}  // namespace netagent::kernel
