// What the agent's /metrics reads, source by source: the collectors (each a
// MetricsSource that reads the kernel at scrape time), the continuous
// diagnosis' open findings, the tuning journal and the fast path's counters.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/context.h"
#include "agent/metrics.h"

namespace netagent::datapath {
class DatapathManager;
}
namespace netagent::diagnosis {
class Monitor;
}
namespace netagent::tuners {
class TuningManager;
}

namespace netagent::agent {

struct MetricsSelection {
  std::string counters;                  // RE2 over nstat names; empty: all
  std::string devices, devices_exclude;  // RE2 over device names; empty: all / none
  // RE2 over device names: whose ethtool statistics are exported (driver,
  // standard groups, per-queue); empty: none (the source is off).
  std::string ethtool_devices;
  size_t max_listeners = 200;
  // Also node_exporter's names for the same data (agent/metrics_compat.h).
  bool node_exporter_names = false;
};

// The sources; each pointer may be null (that part is off). Everything
// pointed to must outlive the scraper that runs them. INVALID_ARGUMENT
// naming the setting when a pattern does not compile.
absl::StatusOr<std::vector<MetricsSource>> AgentMetricsSources(const MetricsSelection& selection,
                                                               const AgentContext& ctx,
                                                               const diagnosis::Monitor* monitor,
                                                               tuners::TuningManager* tuning,
                                                               datapath::DatapathManager* datapath);

// Logs a source's failure as a warning: once per distinct message, again
// after 10 minutes of the same one (a source that fails every scrape must not
// fill the log).
std::function<void(const std::string& source, const absl::Status&)> MetricsFailureLog();

// The fast path's counters of one device (pure).
struct DatapathDeviceMetrics {
  std::string device, mode;
  uint64_t revision = 0;
  size_t rules = 0;
  struct Verdict {
    std::string reason;
    bool dropped = false;
    uint64_t packets = 0, bytes = 0;
  };
  std::vector<Verdict> verdicts;
};
void AddDatapathMetrics(const std::vector<DatapathDeviceMetrics>& devices, Families& out);

}  // namespace netagent::agent
