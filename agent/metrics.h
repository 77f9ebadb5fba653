// The agent's Prometheus metrics: what each collector read, as metric
// families (pure functions, one per source), and the scrape that runs the
// sources. The HTTP side is agent/metrics_server.h.
//
// Names: netagent_<area>_<what>[_<unit>], snake_case; counters get "_total"
// when written. SNMP and netstat counters keep nstat's names, in a label
// (netagent_snmp_total{name="TcpExtListenOverflows"}), so they are found by
// the name every runbook uses and the metric names stay snake_case.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/exposition.h"
#include "collectors/conntrack.h"
#include "collectors/counters.h"
#include "collectors/ethtool.h"
#include "collectors/links.h"
#include "collectors/nic_queues.h"
#include "collectors/socket_summary.h"
#include "collectors/sockstat.h"
#include "collectors/softnet.h"
#include "diagnosis/finding.h"
#include "tuners/journal.h"

namespace re2 {
class RE2;
}

namespace netagent::agent {

// Per CPU: processed, dropped, time squeezed, collisions, RPS and flow
// limit (counters), and the backlog length (gauge) where the kernel has it.
void AddSoftnetMetrics(const collectors::SoftnetSample& s, Families& out);

// Every SNMP/netstat/snmp6/sctp counter whose nstat name matches `allow`
// (null: all), in netagent_snmp_total{name}; settings and current values
// (TcpCurrEstab) in netagent_snmp_value{name}.
void AddCounterMetrics(const collectors::CounterSample& s, const re2::RE2* allow, Families& out);

// Sockets per protocol and state, TIME_WAIT against the ephemeral ports, and
// each listener's accept queue, its backlog and handshakes in progress: at
// most `max_listeners` listeners, the fullest first (the rest are counted in
// netagent_listeners_omitted).
void AddSocketMetrics(const collectors::SocketSummary& s, size_t max_listeners, Families& out);

// /proc/net/sockstat: sockets in use per protocol and kind; memory in bytes.
void AddSockstatMetrics(const collectors::Sockstat& s, int64_t page_size, Families& out);

// Entries and their limit; conntrack -S's counters summed over the CPUs.
void AddConntrackMetrics(const collectors::ConntrackStats& s, Families& out);

// Which devices are exported (include/exclude, RE2 on the name; null: all).
struct DeviceFilter {
  std::shared_ptr<const re2::RE2> include, exclude;
  bool Matches(const std::string& device) const;
};
// Per device: its 64-bit counters, up (operstate), MTU, carrier changes,
// and an info series with kind, operstate and qdisc.
void AddLinkMetrics(const std::vector<collectors::LinkRecord>& links, const DeviceFilter& filter,
                    Families& out);

// A device's driver as ethtool names it, its private statistics (ethtool
// -S), its standard statistics (ethtool -S --groups: eth-mac, eth-phy,
// eth-ctrl, rmon) and its per-queue counters (the netdev family's qstats,
// 6.9+); each empty where the driver has none.
struct DeviceDriverStats {
  std::string device;
  std::optional<collectors::DriverInfo> info;
  collectors::NamedValues stats;
  std::vector<collectors::StatGroup> standard;
  std::vector<collectors::QueueStats> queues;
  // The parts that failed for another reason than the device not having
  // them ("driver_stats", "queue_stats"...).
  std::vector<std::string> failed;
};
// netagent_nic_driver_info{device,driver,...}; one
// netagent_nic_driver_stat{device,stat} per private statistic (untyped: a
// driver does not say which of its numbers are counters);
// netagent_nic_standard_stat_total{device,group,stat}; per qstats counter
// netagent_nic_queue_<name>_total{device,queue}
// (netagent_nic_queue_rx_hw_drops_total); netagent_nic_stats_failed{device,
// part}. A statistic name a driver repeats (some do, per queue) is written
// once, its first value.
void AddDriverMetrics(const std::vector<DeviceDriverStats>& devices, Families& out);

// One series per open finding (rule, severity, title) with the time it
// opened, and each of its evidence values (rule, evidence name, unit).
struct OpenFinding {
  diagnosis::Finding finding;
  absl::Time since;
};
void AddFindingMetrics(const std::vector<OpenFinding>& open, Families& out);

// Changes by state; for each change waiting for confirmation, its deadline;
// for each knob an active change set wrote, its value as the newest one set
// it (numbers only). `changes` newest first, as TuningManager::List gives them.
void AddTuningMetrics(const std::vector<tuners::ChangeRecord>& changes, Families& out);

// How each source of one scrape went.
struct SourceResult {
  std::string name;
  absl::Duration took;
  bool ok = false;
};
void AddScrapeMetrics(const std::vector<SourceResult>& results, Families& out);

void AddBuildMetrics(absl::string_view version, absl::Time started, Families& out);

// A source of metrics: its name (the `collector` label) and what it reads.
struct MetricsSource {
  std::string name;
  std::function<absl::StatusOr<Families>()> collect;
};

// Runs every source at scrape time, each on its own thread and bounded by
// `timeout`: a slow source never holds the others, it is reported as failed
// for that scrape. Scrapes that arrive while a collection runs share it. A
// source still running from an earlier scrape is not started again (it is
// reported as failed until it returns), so a hung read costs one thread, not
// one per scrape.
class MetricsScraper {
 public:
  struct Options {
    absl::Duration timeout = absl::Seconds(5);
    std::function<void(const std::string& source, const absl::Status&)> on_failure;
    // Called with every source's families of a scrape, before the scrape's
    // own metrics are added (node_exporter's names for the same data).
    std::function<void(Families&)> finish;
  };
  // A finished collection and its rendering, made once per format.
  class Scrape {
   public:
    const Families& families() const { return families_; }
    // The exposition in `format`, gzipped when asked.
    std::shared_ptr<const std::string> Body(ExpositionFormat format, bool gzip) const;

   private:
    friend class MetricsScraper;
    Families families_;
    mutable std::mutex mu_;
    mutable std::map<std::pair<ExpositionFormat, bool>, std::shared_ptr<const std::string>> bodies_;
  };

  MetricsScraper(std::vector<MetricsSource> sources, Options options);
  // Waits for the sources still running (at most `timeout` more).
  ~MetricsScraper();
  MetricsScraper(const MetricsScraper&) = delete;
  MetricsScraper& operator=(const MetricsScraper&) = delete;

  std::shared_ptr<const Scrape> Collect();

  // Collections started (tests: concurrent scrapes share one).
  uint64_t collections() const;

 private:
  struct Slot;
  std::shared_ptr<Scrape> Run();

  std::vector<MetricsSource> sources_;
  Options options_;
  std::vector<std::shared_ptr<Slot>> slots_;  // one per source
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;
  std::shared_ptr<const Scrape> last_;
  uint64_t generation_ = 0;
};

}  // namespace netagent::agent
