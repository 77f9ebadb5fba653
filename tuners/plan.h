// Intents (what an operator asks for) and plans (the knob changes that get it).
// A plan is computed by a pure planner from a snapshot of the host; applying
// it is the applier's business. Nothing here does I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "tuners/knobs.h"

namespace netagent::tuners {

struct BdpIntent {
  uint64_t bandwidth_bps = 0;  // with rtt; or observed
  absl::Duration rtt = absl::ZeroDuration();
  bool observed = false;  // from the busiest current flows: delivery rate x min RTT
  uint64_t ceiling_bytes = 256ull << 20;
};

struct CongestionIntent {
  std::string algorithm;
};

// RPS, XPS and IRQ affinity: CPUs for a device's queues. Empty cpus: chosen
// from the topology (online, the device's NUMA node, not isolated).
struct RpsIntent {
  std::string device;
  std::string cpus;
  bool disable = false;
};
struct XpsIntent {
  std::string device;
  std::string cpus;
  bool disable = false;
};
struct IrqAffinityIntent {
  std::string device;
  std::string cpus;
};

struct RfsIntent {
  std::string device;
  uint32_t flow_entries = 32768;  // a power of two; the global table
  bool disable = false;
};

struct ChannelsIntent {
  std::string device;
  std::optional<uint32_t> combined, rx, tx, other;
};

struct RssIntent {
  std::string device;
  uint32_t queues = 0;            // 0: every receive channel
  std::vector<uint32_t> weights;  // one per queue; empty: even spread
};

struct CoalesceIntent {
  std::string device;
  std::string profile;                                   // "latency", "throughput" or empty
  std::vector<std::pair<std::string, uint64_t>> values;  // ethtool names: rx-usecs=50
};

using Settings = std::vector<std::pair<std::string, std::string>>;
// The limits the incidents call for (the "limits" group of the registry).
struct LimitsIntent {
  Settings settings;
};
// Any sysctl of the registry.
struct SysctlIntent {
  Settings settings;
};

// Sources the fast path on `device` blocks: one knob per prefix
// (DatapathBlockKey), on or off.
struct DatapathBlockIntent {
  std::string device;
  std::vector<std::string> prefixes;
  bool remove = false;  // lift the blocks instead
};

struct Intent {
  std::variant<BdpIntent, CongestionIntent, RpsIntent, RfsIntent, XpsIntent, ChannelsIntent,
               RssIntent, IrqAffinityIntent, CoalesceIntent, LimitsIntent, SysctlIntent,
               DatapathBlockIntent>
      what;
  // Explicit values out of bounds are moved into them (and the plan says so)
  // instead of refused.
  bool clamp = false;
};

// "bdp bandwidth=1000000000bit/s rtt=200ms": for the journal and logs.
std::string DescribeIntent(const Intent& intent);
// The device an intent is about, or empty.
std::string IntentDevice(const Intent& intent);

struct Change {
  std::string knob;
  std::string old_value;
  std::string new_value;
  std::string reason;
  Risk risk = Risk::kLow;
  std::vector<std::string> warnings;
};

struct Plan {
  std::vector<Change> changes;
  // About the plan as a whole: knobs left alone and why (read-only in this
  // namespace, not supported by the driver), fairness and side effects.
  std::vector<std::string> warnings;
  // Why an apply of this plan would be refused here, found while planning
  // (a knob read-only in this namespace, an algorithm a namespace other than
  // the initial one may not choose): PlanTuning shows them, ApplyTuning
  // refuses with them and changes nothing.
  std::vector<std::string> refusals;

  // A digest of the changes (knobs, old and new values): an apply may insist
  // on exactly the plan it was shown.
  std::string Digest() const;
};

}  // namespace netagent::tuners
