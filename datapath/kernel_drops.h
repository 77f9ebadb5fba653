// Kernel drops by reason, the pure half of the skb:kfree_skb collector
// (drop_collector.h does the I/O): the running kernel's reason names, count
// records decoded and summed over CPUs, two snapshots turned into deltas and
// rates, flow samples filtered, and the source prefixes most samples come
// from. Reason values change between kernels (TCP_LISTEN_OVERFLOW is 40 on
// one, something else on the next): they are only ever named through
// DropReasonNames, built from the kernel's own enum.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "netagent_drops.h"

namespace netagent::datapath {

// One enumerator of a kernel enum, as BTF lists it.
struct EnumValue {
  std::string name;
  int64_t value = 0;
};

// The running kernel's enum skb_drop_reason, named without the
// SKB_DROP_REASON_ prefix (NO_SOCKET, TCP_LISTEN_OVERFLOW, NETFILTER_DROP).
class DropReasonNames {
 public:
  // `reasons`: the enumerators of enum skb_drop_reason; `subsystems`: those of
  // enum skb_drop_reason_subsys (empty on kernels without it). Markers that
  // are no reason (SKB_DROP_REASON_MAX, SKB_DROP_REASON_SUBSYS_MASK) are left
  // out; of two names for one value the first stays.
  static DropReasonNames FromEnums(const std::vector<EnumValue>& reasons,
                                   const std::vector<EnumValue>& subsystems = {});

  // A value the kernel does not list: "<SUBSYSTEM>/<code>" for a reason of
  // another subsystem (the upper 16 bits: OPENVSWITCH/3), else "UNKNOWN_<value>".
  std::string Name(uint32_t value) const;
  // By name, case-insensitive, with or without the SKB_DROP_REASON_ prefix.
  std::optional<uint32_t> Value(absl::string_view name) const;

  // The values that are not drops on this kernel (5.19+ and 6.1+ have them;
  // 5.17's first value was NOT_SPECIFIED, a drop).
  std::optional<uint32_t> not_dropped_yet() const { return not_dropped_yet_; }
  std::optional<uint32_t> consumed() const { return consumed_; }
  // Every drop reason (the two above excluded), by value.
  const std::map<uint32_t, std::string>& reasons() const { return names_; }

 private:
  std::map<uint32_t, std::string> names_;
  std::map<std::string, uint32_t> by_name_;  // upper case
  std::map<uint32_t, std::string> subsystems_;
  std::optional<uint32_t> not_dropped_yet_, consumed_;
};

// "ipv4/tcp", "ipv6/udp", "ipv6/icmpv6", "ipv4/47", "arp", "0x88b5";
// "unknown" when the skb had no protocol set.
std::string ProtocolName(uint16_t ethertype, uint8_t ip_protocol);

struct KernelDropKey {
  uint32_t reason = 0;
  uint32_t ifindex = 0;  // 0: the skb had no device
  uint16_t ethertype = 0;
  uint8_t ip_protocol = 0;
  auto operator<=>(const KernelDropKey&) const = default;
};

// What the program counted besides drops (nd_event), summed over CPUs.
struct KernelDropEvents {
  uint64_t sampled = 0;
  uint64_t sample_capped = 0;  // passed over by the rate cap (derived, see below)
  uint64_t sample_lost = 0;    // ring buffer full
  uint64_t table_full = 0;     // drops counted nowhere: no room for a new key
  uint64_t no_netns = 0;       // drops of an unknown namespace (no device, no socket)
};
// `per_event`: nd_events by index. Every drop the program counts (or could
// not count for want of room) goes through the sampler when `sampling`:
// those neither sampled nor lost were capped; `counted` is the sum of the
// counts read with the events (a read races with new drops: never below 0).
KernelDropEvents EventsFromCounts(const std::vector<uint64_t>& per_event, uint64_t counted,
                                  bool sampling);

struct KernelDropSnapshot {
  absl::Time taken;
  std::map<KernelDropKey, uint64_t> counts;
  KernelDropEvents events;
  // ifindex -> name in the served namespace when the snapshot was taken.
  std::map<uint32_t, std::string> devices;
  // Keys in the overflow hash (drop_counts): some CPU's table had no free
  // slot among those the key may use. Many of them: the tables are crowded.
  uint64_t overflow_keys = 0;
};

// A drop_counts entry: the key's bytes and the value's (one u64 per possible
// CPU, as the kernel returns per-CPU values). Adds the sum to `counts`;
// false when the sizes are not those of nd_key / a u64 per CPU.
bool AddCountRecord(const std::string& key, const std::string& value,
                    std::map<KernelDropKey, uint64_t>& counts);
// The drop_slots value: one struct nd_slots per possible CPU. Adds every used
// slot's count to its key; false when the size is not a whole number of tables.
bool AddSlotTables(const std::string& value, std::map<KernelDropKey, uint64_t>& counts);

struct KernelDropSample {
  absl::Time at;
  KernelDropKey key;
  uint32_t length = 0;
  int family = 0;  // AF_INET, AF_INET6, or 0: no addresses
  std::array<uint8_t, 16> source{}, destination{};
  std::optional<uint16_t> source_port, destination_port;  // host byte order
};
KernelDropSample SampleFromRecord(const nd_sample& s, absl::Time at);
// The sample's source or destination as text ("" without addresses).
std::string FormatAddress(int family, const std::array<uint8_t, 16>& addr);

struct KernelDropQuery {
  std::set<uint32_t> reasons;     // empty: every reason
  std::set<std::string> devices;  // device names; empty: every device
  size_t max_samples = 20;        // newest first
  size_t top_sources = 5;
  int source_prefix4 = 24;  // how sources are grouped
  int source_prefix6 = 64;
};

struct KernelDropRow {
  KernelDropKey key;
  std::string reason, device, protocol;
  uint64_t count = 0;
  // With a window: the change over it and per second.
  std::optional<uint64_t> delta;
  std::optional<double> rate;
};

struct KernelDropSampleView {
  KernelDropSample sample;
  std::string reason, device, protocol, source, destination;
};

struct DropSourceRow {
  std::string prefix;  // 10.1.2.0/24, 2001:db8::/64
  uint64_t samples = 0;
  std::string top_reason;  // the reason most of its samples had
};

struct KernelDropReport {
  absl::Time taken;
  std::optional<absl::Duration> window;
  // Sorted by delta (with a window), then count, descending; then by name.
  std::vector<KernelDropRow> rows;
  std::vector<KernelDropSampleView> samples;  // newest first
  std::vector<DropSourceRow> top_sources;
  uint64_t total = 0;                   // of the rows
  std::optional<uint64_t> total_delta;  // with a window
  KernelDropEvents events;              // at `taken`
};

// `before` is null without a window. `samples` are those the collector kept;
// with a window only those taken inside it are used.
KernelDropReport BuildKernelDropReport(const KernelDropSnapshot* before,
                                       const KernelDropSnapshot& after,
                                       const std::vector<KernelDropSample>& samples,
                                       const DropReasonNames& names, const KernelDropQuery& query);

// Samples grouped by source prefix (/prefix4, /prefix6), most samples first
// (then by prefix); at most `top`. Samples without addresses are left out.
std::vector<DropSourceRow> TopSourcePrefixes(const std::vector<KernelDropSample>& samples,
                                             const DropReasonNames& names, size_t top,
                                             int prefix4 = 24, int prefix6 = 64);

}  // namespace netagent::datapath
