#include "agent/metrics_sources.h"

#include <unistd.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "collectors/sockets.h"
#include "datapath/manager.h"
#include "diagnosis/monitor.h"
#include "kernel/errors.h"
#include "re2/re2.h"
#include "spdlog/spdlog.h"
#include "tuners/manager.h"

namespace netagent::agent {
namespace {

// A feature this host does not have (no conntrack module, IPv6 off) is no
// failure of the scrape: the source answers with what it has.
bool Absent(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) || absl::IsNotFound(s) || absl::IsUnimplemented(s);
}

template <typename Read, typename Render>
MetricsSource Source(std::string name, Read read, Render render) {
  return {std::move(name), [read, render]() -> absl::StatusOr<Families> {
            auto v = read();
            Families out;
            if (!v.ok()) {
              if (Absent(v.status())) return out;
              return v.status();
            }
            render(*v, out);
            return out;
          }};
}

}  // namespace

void AddDatapathMetrics(const std::vector<DatapathDeviceMetrics>& devices, Families& out) {
  auto& packets = out.emplace_back(
      MetricFamily{"netagent_datapath_packets",
                   MetricType::kCounter,
                   "Packets the fast path judged, by verdict and reason (netctl datapath stats)",
                   "",
                   {}});
  MetricFamily bytes{"netagent_datapath_bytes",
                     MetricType::kCounter,
                     "Bytes the fast path judged, by verdict and reason",
                     "bytes",
                     {}};
  MetricFamily rules{"netagent_datapath_rules", MetricType::kGauge, "Rules in force", "", {}};
  MetricFamily revision{"netagent_datapath_revision",
                        MetricType::kGauge,
                        "The rule set's revision (UpdateRules returns it)",
                        "",
                        {}};
  for (const auto& d : devices) {
    const MetricLabels dev = {{"device", d.device}, {"mode", d.mode}};
    rules.samples.push_back({dev, uint64_t{d.rules}});
    revision.samples.push_back({dev, d.revision});
    for (const auto& v : d.verdicts) {
      MetricLabels l = {
          {"device", d.device}, {"verdict", v.dropped ? "drop" : "pass"}, {"reason", v.reason}};
      packets.samples.push_back({l, v.packets});
      bytes.samples.push_back({std::move(l), v.bytes});
    }
  }
  out.push_back(std::move(bytes));
  out.push_back(std::move(rules));
  out.push_back(std::move(revision));
}

std::function<void(const std::string&, const absl::Status&)> MetricsFailureLog() {
  struct Seen {
    std::mutex mu;
    std::map<std::string, std::pair<std::string, absl::Time>> last;  // source -> message, when
  };
  auto seen = std::make_shared<Seen>();
  return [seen](const std::string& source, const absl::Status& st) {
    const std::string msg(st.message());
    const absl::Time now = absl::Now();
    {
      std::lock_guard<std::mutex> lock(seen->mu);
      auto& [last, at] = seen->last[source];
      if (last == msg && now - at < absl::Minutes(10)) return;
      last = msg;
      at = now;
    }
    spdlog::warn("metrics: source {} failed: {}", source, msg);
  };
}

absl::StatusOr<std::vector<MetricsSource>> AgentMetricsSources(
    const MetricsSelection& sel, const AgentContext& ctx, const diagnosis::Monitor* monitor,
    tuners::TuningManager* tuning, datapath::DatapathManager* datapath) {
  std::shared_ptr<const re2::RE2> counters;
  if (!sel.counters.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(counters,
                              collectors::CompileNameFilter(sel.counters, "metrics_counters"));
  }
  DeviceFilter devices;
  const auto whole = [](const std::string& p) { return absl::StrCat("(?:", p, ")"); };
  if (!sel.devices.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(devices.include,
                              collectors::CompileNameFilter(whole(sel.devices), "metrics_devices"));
  }
  if (!sel.devices_exclude.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(
        devices.exclude,
        collectors::CompileNameFilter(whole(sel.devices_exclude), "metrics_devices_exclude"));
  }
  std::shared_ptr<const re2::RE2> ethtool;
  if (!sel.ethtool_devices.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(ethtool, collectors::CompileNameFilter(whole(sel.ethtool_devices),
                                                                     "metrics_ethtool_devices"));
  }
  std::vector<MetricsSource> s;
  s.push_back({"agent", [version = ctx.version, started = ctx.started_at] {
                 Families out;
                 AddBuildMetrics(version, started, out);
                 return absl::StatusOr<Families>(std::move(out));
               }});
  s.push_back(Source(
      "softnet", [] { return collectors::ReadSoftnet(); },
      [](const collectors::SoftnetSample& v, Families& out) { AddSoftnetMetrics(v, out); }));
  s.push_back(Source(
      "snmp", [] { return collectors::ReadCounters(); },
      [counters](const collectors::CounterSample& v, Families& out) {
        AddCounterMetrics(v, counters.get(), out);
      }));
  s.push_back(Source(
      "sockstat", [] { return collectors::ReadSockstat(); },
      [page = static_cast<int64_t>(::sysconf(_SC_PAGESIZE))](
          const collectors::Sockstat& v, Families& out) { AddSockstatMetrics(v, page, out); }));
  s.push_back(Source(
      "sockets",
      [iter = ctx.socket_iter.get()]() -> absl::StatusOr<collectors::SummaryWalk> {
        // States and queues only: no tcp_info, no memory (a scrape must stay
        // cheap on a host with a hundred thousand sockets). TCP walked by
        // the BPF iterator once it has loaded (a third of a dump's kernel
        // CPU), UDP by sock_diag, one summary.
        const collectors::PortRange ephemeral = collectors::ReadEphemeralRange();
        const auto go_on = [] { return absl::OkStatus(); };
        collectors::SocketQuery tcp, udp;
        tcp.protocols = {IPPROTO_TCP};
        udp.protocols = {IPPROTO_UDP};
        NETAGENT_ASSIGN_OR_RETURN(
            collectors::SummaryWalk walk,
            collectors::SummarizeSockets(tcp, 0, ephemeral, 2, go_on,
                                         iter != nullptr ? iter->get() : nullptr));
        NETAGENT_ASSIGN_OR_RETURN(collectors::SummaryWalk u,
                                  collectors::SummarizeSockets(udp, 0, ephemeral, 2, go_on));
        for (const auto& [key, count] : u.summary.states) walk.summary.states[key] += count;
        for (auto& l : u.summary.listeners) walk.summary.listeners.push_back(std::move(l));
        return walk;
      },
      [max = sel.max_listeners](const collectors::SummaryWalk& v, Families& out) {
        AddSocketMetrics(v.summary, max, out);
      }));
  s.push_back(Source(
      "conntrack", [] { return collectors::ReadConntrackStats(); },
      [](const collectors::ConntrackStats& v, Families& out) { AddConntrackMetrics(v, out); }));
  s.push_back(Source(
      "links", [] { return collectors::DumpLinks(); },
      [devices](const std::vector<collectors::LinkRecord>& v, Families& out) {
        AddLinkMetrics(v, devices, out);
      }));
  // Opt-in, as node_exporter's ethtool collector: some drivers answer
  // ethtool -S from their firmware under the rtnl lock, and a port can have
  // thousands of statistics.
  if (ethtool) {
    s.push_back(Source(
        "ethtool", [] { return collectors::DumpLinks(); },
        [devices, ethtool](const std::vector<collectors::LinkRecord>& links, Families& out) {
          // Per device ETHTOOL_GDRVINFO, the driver's statistics, the
          // standard groups and qstats: a part the device does not have is
          // left out; one that fails otherwise is reported per device.
          std::vector<DeviceDriverStats> drivers;
          auto genl = collectors::EthtoolClient::Open();
          for (const auto& l : links) {
            if (!devices.Matches(l.name) || !RE2::FullMatch(l.name, *ethtool)) continue;
            DeviceDriverStats d;
            d.device = l.name;
            auto note = [&d](const absl::Status& st, const char* part) {
              if (!st.ok() && !Absent(st)) d.failed.push_back(part);
            };
            auto info = collectors::GetDriverInfo(l.name);
            if (info.ok()) d.info = std::move(*info);
            note(info.status(), "driver_info");
            auto stats = collectors::GetDriverStats(l.name);
            if (stats.ok()) d.stats = std::move(*stats);
            note(stats.status(), "driver_stats");
            if (genl.ok()) {
              auto groups = genl->GetStandardStats(l.name);
              if (groups.ok()) d.standard = std::move(groups.value);
              note(groups.status, "standard_stats");
            }
            auto queues = collectors::GetQueueStats(l.ifindex);
            if (queues.ok()) d.queues = std::move(*queues);
            note(queues.status(), "queue_stats");
            if (d.info || !d.stats.empty() || !d.standard.empty() || !d.queues.empty() ||
                !d.failed.empty()) {
              drivers.push_back(std::move(d));
            }
          }
          AddDriverMetrics(drivers, out);
        }));
  }
  if (monitor != nullptr) {
    s.push_back({"findings", [monitor] {
                   std::vector<OpenFinding> open;
                   for (const auto& [rule, since] : monitor->OpenSince()) {
                     if (auto f = monitor->Current(rule)) open.push_back({std::move(*f), since});
                   }
                   Families out;
                   AddFindingMetrics(open, out);
                   return absl::StatusOr<Families>(std::move(out));
                 }});
  }
  if (tuning != nullptr) {
    s.push_back({"tuning", [tuning] {
                   Families out;
                   AddTuningMetrics(tuning->List(1000, false), out);
                   return absl::StatusOr<Families>(std::move(out));
                 }});
  }
  if (datapath != nullptr) {
    s.push_back(
        {"datapath", [datapath]() -> absl::StatusOr<Families> {
           std::vector<DatapathDeviceMetrics> devices;
           for (const auto& st : datapath->Status()) {
             DatapathDeviceMetrics d{st.info.device, st.info.mode, st.meta.revision, st.rules, {}};
             auto stats = datapath->GetStats(st.info.device, false);
             if (!stats.ok()) continue;  // detached meanwhile
             for (const auto& v : stats->total) {
               d.verdicts.push_back(
                   {std::string(datapath::ReasonName(v.reason)), v.dropped, v.packets, v.bytes});
             }
             devices.push_back(std::move(d));
           }
           Families out;
           AddDatapathMetrics(devices, out);
           return out;
         }});
  }
  return s;
}

}  // namespace netagent::agent
