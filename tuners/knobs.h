// The knobs the agent may change, each with its guard rails: a floor, a
// ceiling and a largest step (a factor between the old and the new value),
// the kernel's default, and whether the knob follows the network namespace.
//
// A knob is named by a key:
//   net.ipv4.tcp_rmem                 a sysctl of the registry below
//   <dev>:rx-<n>/rps_cpus             a queue file under /sys/class/net
//   <dev>:rx-<n>/rps_flow_cnt, <dev>:tx-<n>/xps_cpus
//   <dev>:channels/counts                      ethtool channels: "combined rx tx other"
//   <dev>:coalesce/<ethtool name>              ethtool coalescing
//   <dev>:rss/indir                            the RSS indirection table
//   irq/<n>/smp_affinity_list                  an IRQ's CPUs
//   <dev>:xdp-block/<prefix>                   a block rule of the fast path
//                                              on the device: on or off
// Interface names cannot contain ':' or '/', sysctl names here contain
// neither, so the forms cannot be confused. Values are kept in one canonical
// form per kind (Normalize), so a read-back compares equal to what was written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::tuners {

enum class Risk { kLow, kMedium, kHigh };
absl::string_view RiskName(Risk r);

enum class ValueKind {
  kInt,        // one integer
  kIntVector,  // integers separated by whitespace (tcp_rmem: min default max)
  kWord,       // one word from a set (congestion control, qdisc)
  kCpuMask,    // the kernel's hex CPU mask
  kCpuList,    // the kernel's CPU list
};

struct SysctlSpec {
  const char* name;
  const char* group;  // "buffers", "congestion", "steering", "limits"
  ValueKind kind = ValueKind::kInt;
  // Bounds of each integer (kIntVector: of every component).
  int64_t floor = 0;
  int64_t ceiling = 0;
  // Largest factor between old and new value (0: any step within the bounds).
  // A move from or to 0 is not a step: 0 means "off" for these knobs.
  double max_step = 0;
  // The kernel's built-in default; nullptr when it depends on the machine
  // (memory size): then the value the agent first saw stands in for it.
  const char* kernel_default = nullptr;
  bool per_netns = true;
  Risk risk = Risk::kLow;
  const char* help = "";
  // Values a kInt knob may take although within its bounds they are refused,
  // with the reason (tcp_syncookies=2).
  int64_t refused_value = -1;
  const char* refused_reason = "";
  // The kernel rounds other values up (rps_sock_flow_entries): 0 or a power of two.
  bool power_of_two = false;
};

// Every sysctl the agent manages. Nothing outside this list is ever written.
const std::vector<SysctlSpec>& SysctlRegistry();
// By full name, or by a last component that is unique ("somaxconn").
const SysctlSpec* FindSysctl(absl::string_view name);

enum class KnobType { kSysctl, kQueue, kChannels, kCoalesce, kRss, kIrq, kDatapathBlock };

struct KnobKey {
  KnobType type = KnobType::kSysctl;
  std::string device;  // queue, channels, coalesce, rss
  std::string path;    // sysctl name; "rx-0/rps_cpus"; "combined"; "rx-usecs"; irq number
};
absl::StatusOr<KnobKey> ParseKnobKey(absl::string_view key);
std::string SysctlKey(absl::string_view name);
std::string QueueKey(absl::string_view dev, absl::string_view queue, absl::string_view file);
std::string DeviceKey(absl::string_view dev, absl::string_view area, absl::string_view name);
std::string IrqKey(uint32_t irq);
// The values of a block knob: the agent's own rule blocks the prefix, none
// does, or only an operator's rule does (read, never written).
inline constexpr char kBlockOn[] = "on";
inline constexpr char kBlockOff[] = "off";
inline constexpr char kBlockOperator[] = "operator";
// `prefix` in its canonical form (CanonicalPrefix).
std::string DatapathBlockKey(absl::string_view dev, absl::string_view prefix);
// An address or CIDR prefix in one form per network: the address as
// inet_ntop writes it, "/len" unless it is one address ("10.1.2.0/24",
// "2001:db8::1"). INVALID_ARGUMENT naming `field`; host bits must be zero.
absl::StatusOr<std::string> CanonicalPrefix(absl::string_view text, absl::string_view field);

// The canonical form of a value of `key` as read from or written to the
// kernel: integers without padding, vectors joined by one space, masks in the
// shortest hex form, CPU lists in the shortest list form.
absl::StatusOr<std::string> Normalize(absl::string_view key, absl::string_view value);

// Integers of a kInt / kIntVector value; INVALID_ARGUMENT naming `field`.
absl::StatusOr<std::vector<int64_t>> ParseInts(absl::string_view value, absl::string_view field);
std::string JoinInts(const std::vector<int64_t>& v);

// Bounds and step of a sysctl value change. `clamp` moves a value into the
// bounds (and the step) instead of refusing it; `note` then says what moved.
// Refusals are INVALID_ARGUMENT naming the knob and the bound.
absl::StatusOr<std::string> CheckSysctlValue(const SysctlSpec& spec, absl::string_view old_value,
                                             absl::string_view new_value, bool clamp,
                                             std::string* note);

}  // namespace netagent::tuners
