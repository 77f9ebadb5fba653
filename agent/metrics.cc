#include "agent/metrics.h"

#include <netinet/in.h>

#include <algorithm>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "collectors/sockets.h"
#include "re2/re2.h"

namespace netagent::agent {
namespace {

MetricFamily& Add(Families& out, std::string name, MetricType type, std::string help,
                  std::string unit = "") {
  out.push_back({std::move(name), type, std::move(help), std::move(unit), {}});
  return out.back();
}

double Seconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

// The socket's IP protocol as conntrack names it ("tcp"), or its number.
std::string ProtocolName(uint8_t protocol) {
  const absl::string_view name = collectors::ConntrackProtocolName(protocol);
  return name.empty() ? absl::StrCat(protocol) : std::string(name);
}

}  // namespace

void AddSoftnetMetrics(const collectors::SoftnetSample& s, Families& out) {
  using C = collectors::SoftnetCounters;
  struct Column {
    const char* name;
    const char* help;
    std::optional<uint64_t> (*get)(const C&);
  };
  static const Column kColumns[] = {
      {"netagent_softnet_processed",
       "Packets the CPU took from its backlog and NAPI polls (softnet_stat column 1; 32 bits, "
       "wraps)",
       [](const C& c) -> std::optional<uint64_t> { return c.processed; }},
      {"netagent_softnet_dropped",
       "Packets dropped because the CPU's backlog was full (net.core.netdev_max_backlog)",
       [](const C& c) -> std::optional<uint64_t> { return c.dropped; }},
      {"netagent_softnet_times_squeezed",
       "NET_RX runs that ended with work left (net.core.netdev_budget or netdev_budget_usecs "
       "spent)",
       [](const C& c) -> std::optional<uint64_t> { return c.time_squeeze; }},
      {"netagent_softnet_cpu_collisions", "Times a transmit lock was found taken",
       [](const C& c) -> std::optional<uint64_t> { return c.cpu_collision; }},
      {"netagent_softnet_received_rps", "RPS inter-processor interrupts this CPU received",
       [](const C& c) { return c.received_rps; }},
      {"netagent_softnet_flow_limit", "Packets dropped by the RPS flow limit",
       [](const C& c) { return c.flow_limit_count; }},
  };
  for (const Column& col : kColumns) {
    MetricFamily& f = Add(out, col.name, MetricType::kCounter, col.help);
    for (const auto& row : s.rows) {
      if (auto v = col.get(row.counters)) {
        f.samples.push_back({{{"cpu", absl::StrCat(row.cpu)}}, *v});
      }
    }
  }
  MetricFamily& backlog = Add(out, "netagent_softnet_backlog_packets", MetricType::kGauge,
                              "Packets waiting in the CPU's backlog (input and process queues)");
  for (const auto& row : s.rows) {
    if (row.backlog_len) {
      backlog.samples.push_back({{{"cpu", absl::StrCat(row.cpu)}}, uint64_t{*row.backlog_len}});
    }
  }
}

void AddCounterMetrics(const collectors::CounterSample& s, const re2::RE2* allow, Families& out) {
  MetricFamily& counters = Add(out, "netagent_snmp", MetricType::kCounter,
                               "SNMP and netstat MIB counters of the namespace by nstat name "
                               "(/proc/net/snmp, netstat, snmp6, sctp/snmp)");
  MetricFamily& gauges = Add(out, "netagent_snmp_value", MetricType::kGauge,
                             "SNMP MIB settings and current values by nstat name (TcpCurrEstab, "
                             "IpDefaultTTL)");
  for (const auto& v : s.values) {
    std::string nstat = v.name();
    if (allow != nullptr && !RE2::PartialMatch(nstat, *allow)) continue;
    if (v.gauge || v.value < 0) {
      gauges.samples.push_back({{{"name", std::move(nstat)}}, v.value});
    } else {
      counters.samples.push_back({{{"name", std::move(nstat)}}, static_cast<uint64_t>(v.value)});
    }
  }
}

void AddSocketMetrics(const collectors::SocketSummary& s, size_t max_listeners, Families& out) {
  MetricFamily& states =
      Add(out, "netagent_sockets", MetricType::kGauge, "Sockets by protocol and state");
  for (const auto& [key, count] : s.states) {
    states.samples.push_back({{{"protocol", ProtocolName(key.first)},
                               {"state", std::string(collectors::SocketStateName(key.second))}},
                              count});
  }
  Add(out, "netagent_tcp_ephemeral_ports", MetricType::kGauge,
      "Ports in net.ipv4.ip_local_port_range")
      .samples.push_back({{}, uint64_t{s.time_wait.ephemeral_ports}});
  Add(out, "netagent_tcp_time_wait_busiest_peer_ratio", MetricType::kGauge,
      "TIME_WAIT sockets to the busiest peer over the ephemeral ports (1: no port left for a "
      "new connection to it)")
      .samples.push_back({{}, s.time_wait.busiest_peer_fill_percent / 100.0});

  std::vector<const collectors::ListenerStats*> listeners;
  for (const auto& l : s.listeners) listeners.push_back(&l);
  std::stable_sort(listeners.begin(), listeners.end(),
                   [](const auto* a, const auto* b) { return a->fill_percent > b->fill_percent; });
  const size_t omitted = listeners.size() > max_listeners ? listeners.size() - max_listeners : 0;
  listeners.resize(listeners.size() - omitted);
  const auto labels = [](const collectors::ListenerStats& l) -> MetricLabels {
    return {{"protocol", ProtocolName(l.protocol)},
            {"address", collectors::FormatAddress(l.address)},
            {"port", absl::StrCat(l.port)}};
  };
  MetricFamily& queue = Add(out, "netagent_listener_accept_queue", MetricType::kGauge,
                            "Connections waiting for accept() on a listener");
  MetricFamily& backlog = Add(out, "netagent_listener_backlog", MetricType::kGauge,
                              "A listener's accept queue limit (min of listen() and somaxconn)");
  MetricFamily& syn = Add(out, "netagent_listener_syn_recv", MetricType::kGauge,
                          "Handshakes in progress (SYN_RECV) towards a listener");
  for (const auto* l : listeners) {
    queue.samples.push_back({labels(*l), uint64_t{l->accept_queue}});
    backlog.samples.push_back({labels(*l), uint64_t{l->backlog}});
    syn.samples.push_back({labels(*l), l->syn_recv});
  }
  Add(out, "netagent_listeners_omitted", MetricType::kGauge,
      "Listeners left out of the per-listener series (the cap on their number)")
      .samples.push_back({{}, uint64_t{omitted}});
}

void AddSockstatMetrics(const collectors::Sockstat& s, int64_t page_size, Families& out) {
  MetricFamily& sockets =
      Add(out, "netagent_sockstat_sockets", MetricType::kGauge,
          "/proc/net/sockstat: sockets by protocol and kind (inuse, orphan, tw, alloc)");
  MetricFamily& memory =
      Add(out, "netagent_sockstat_memory_bytes", MetricType::kGauge,
          "/proc/net/sockstat: memory the protocol's sockets hold (host-wide)", "bytes");
  for (const auto& [protocol, fields] : s) {
    for (const auto& [kind, value] : fields) {
      if (kind == "mem") {
        memory.samples.push_back({{{"protocol", protocol}}, value * page_size});
      } else {
        sockets.samples.push_back({{{"protocol", protocol}, {"kind", kind}}, value});
      }
    }
  }
}

void AddConntrackMetrics(const collectors::ConntrackStats& s, Families& out) {
  if (s.count) {
    Add(out, "netagent_conntrack_entries", MetricType::kGauge, "Connections tracked")
        .samples.push_back({{}, *s.count});
  }
  if (s.max) {
    Add(out, "netagent_conntrack_entries_limit", MetricType::kGauge,
        "The table's limit (net.netfilter.nf_conntrack_max)")
        .samples.push_back({{}, *s.max});
  }
  for (const auto& [name, value] : s.total) {
    Add(out, absl::StrCat("netagent_conntrack_stat_", SanitizeMetricName(name)),
        MetricType::kCounter, absl::StrCat("conntrack -S ", name, ", summed over the CPUs"))
        .samples.push_back({{}, value});
  }
}

bool DeviceFilter::Matches(const std::string& device) const {
  if (include && !RE2::FullMatch(device, *include)) return false;
  return !(exclude && RE2::FullMatch(device, *exclude));
}

void AddLinkMetrics(const std::vector<collectors::LinkRecord>& links, const DeviceFilter& filter,
                    Families& out) {
  std::vector<const collectors::LinkRecord*> shown;
  for (const auto& l : links) {
    if (filter.Matches(l.name)) shown.push_back(&l);
  }
  for (int i = 0; i < collectors::kLinkStatCount; ++i) {
    const std::string stat = collectors::kLinkStatNames[i];
    MetricFamily& f = Add(out, absl::StrCat("netagent_link_", stat), MetricType::kCounter,
                          absl::StrCat("rtnl_link_stats64 ", stat),
                          absl::EndsWith(stat, "_bytes") ? "bytes" : "");
    for (const auto* l : shown) {
      if (i < l->stats_count) f.samples.push_back({{{"device", l->name}}, l->stats[i]});
    }
  }
  MetricFamily& up = Add(out, "netagent_link_up", MetricType::kGauge,
                         "1 when the device's operational state is up");
  MetricFamily& mtu = Add(out, "netagent_link_mtu_bytes", MetricType::kGauge, "MTU", "bytes");
  MetricFamily& carrier = Add(out, "netagent_link_carrier_changes", MetricType::kCounter,
                              "Times the carrier went up or down");
  MetricFamily& info = Add(out, "netagent_link", MetricType::kInfo,
                           "A device's kind (empty: physical), state, qdisc and address");
  for (const auto* l : shown) {
    const MetricLabels dev = {{"device", l->name}};
    up.samples.push_back({dev, uint64_t{l->operstate == 6 /* IF_OPER_UP */ ? 1u : 0u}});
    mtu.samples.push_back({dev, uint64_t{l->mtu}});
    if (l->carrier_changes) carrier.samples.push_back({dev, uint64_t{*l->carrier_changes}});
    info.samples.push_back({{{"device", l->name},
                             {"kind", l->kind},
                             {"operstate", collectors::OperStateName(l->operstate)},
                             {"qdisc", l->qdisc},
                             {"address", l->address}},
                            uint64_t{1}});
  }
}

void AddDriverMetrics(const std::vector<DeviceDriverStats>& devices, Families& out) {
  MetricFamily& info = Add(out, "netagent_nic_driver", MetricType::kInfo,
                           "A device's driver, its version, firmware and bus (ethtool -i)");
  MetricFamily& stat = Add(out, "netagent_nic_driver_stat", MetricType::kUntyped,
                           "A driver's own statistic by the name ethtool -S gives it (most count "
                           "since the driver loaded; some drivers report gauges)");
  MetricFamily& failed =
      Add(out, "netagent_nic_stats_failed", MetricType::kGauge,
          "1 for each part of a device's statistics that failed in this scrape (the device "
          "has it, but reading it did not work)");
  MetricFamily& standard =
      Add(out, "netagent_nic_standard_stat", MetricType::kCounter,
          "A device's standard statistic by group (eth-mac, eth-phy, eth-ctrl, rmon) and the "
          "name ethtool -S --groups gives it");
  for (const auto& d : devices) {
    if (d.info) {
      info.samples.push_back({{{"device", d.device},
                               {"driver", d.info->driver},
                               {"version", d.info->version},
                               {"firmware_version", d.info->firmware},
                               {"expansion_rom_version", d.info->expansion_rom},
                               {"bus_info", d.info->bus_info}},
                              uint64_t{1}});
    }
    std::set<std::string, std::less<>> seen;
    for (const auto& [name, value] : d.stats) {
      if (!seen.insert(name).second) continue;
      stat.samples.push_back({{{"device", d.device}, {"stat", name}}, value});
    }
    for (const auto& part : d.failed) {
      failed.samples.push_back({{{"device", d.device}, {"part", part}}, uint64_t{1}});
    }
    for (const auto& g : d.standard) {
      for (const auto& [name, value] : g.stats) {
        standard.samples.push_back(
            {{{"device", d.device}, {"group", g.name}, {"stat", name}}, value});
      }
    }
  }
  // One family per qstats counter, in the order first met.
  std::map<std::string, MetricFamily*> queue;
  for (const auto& d : devices) {
    for (const auto& q : d.queues) {
      for (const auto& [name, value] : q.values) {
        MetricFamily*& f = queue[name];
        if (f == nullptr) {
          const std::string snake = SanitizeMetricName(name);
          f = &Add(out, absl::StrCat("netagent_nic_queue_", snake), MetricType::kCounter,
                   absl::StrCat("A queue's ", name, " (the netdev family's qstats)"),
                   absl::EndsWith(snake, "_bytes") ? "bytes" : "");
        }
        f->samples.push_back({{{"device", d.device}, {"queue", absl::StrCat(q.id)}}, value});
      }
    }
  }
}

void AddFindingMetrics(const std::vector<OpenFinding>& open, Families& out) {
  constexpr size_t kMaxEvidence = 16;
  MetricFamily& finding =
      Add(out, "netagent_finding", MetricType::kGauge,
          "1 for each finding the continuous diagnosis has open (netctl doctor explains it)");
  MetricFamily& since = Add(out, "netagent_finding_open_since_seconds", MetricType::kGauge,
                            "When the finding opened (Unix time)", "seconds");
  MetricFamily& evidence = Add(out, "netagent_finding_evidence", MetricType::kGauge,
                               "An open finding's evidence, in the unit its label names");
  for (const auto& o : open) {
    const auto& f = o.finding;
    finding.samples.push_back({{{"rule", f.rule},
                                {"severity", std::string(diagnosis::SeverityName(f.severity))},
                                {"title", f.title}},
                               uint64_t{1}});
    since.samples.push_back({{{"rule", f.rule}}, Seconds(o.since)});
    for (size_t i = 0; i < f.evidence.size() && i < kMaxEvidence; ++i) {
      const auto& e = f.evidence[i];
      evidence.samples.push_back(
          {{{"rule", f.rule}, {"evidence", e.name}, {"unit", e.unit}}, e.value});
    }
  }
}

void AddTuningMetrics(const std::vector<tuners::ChangeRecord>& changes, Families& out) {
  using S = tuners::ChangeState;
  std::map<S, uint64_t> by_state;
  for (S s : {S::kApplying, S::kPending, S::kConfirmed, S::kRolledBack, S::kExpired, S::kFailed,
              S::kRollbackFailed}) {
    by_state[s] = 0;
  }
  for (const auto& c : changes) ++by_state[c.state];
  MetricFamily& states = Add(out, "netagent_tuning_changes", MetricType::kGauge,
                             "Change sets in the journal by state (rolled_back and expired: "
                             "undone; rollback_failed: values may be mixed)");
  for (const auto& [state, n] : by_state) {
    states.samples.push_back({{{"state", std::string(tuners::ChangeStateName(state))}}, n});
  }
  MetricFamily& deadline = Add(out, "netagent_tuning_confirm_deadline_seconds", MetricType::kGauge,
                               "When a pending change set is rolled back unless confirmed "
                               "(Unix time)",
                               "seconds");
  MetricFamily& value = Add(out, "netagent_tuning_value", MetricType::kGauge,
                            "A knob's value as an active change set wrote it (numbers only; "
                            "`field` numbers the values of a multi-value sysctl)");
  std::map<std::string, std::string> latest;  // knob -> value of the newest active change
  for (const auto& c : changes) {
    if (c.state == tuners::ChangeState::kPending && c.confirm_deadline) {
      deadline.samples.push_back({{{"change", c.id}}, Seconds(*c.confirm_deadline)});
    }
    if (!tuners::IsActive(c.state)) continue;
    for (const auto& k : c.knobs) latest.emplace(k.knob, k.new_value);
  }
  for (const auto& [knob, text] : latest) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    std::vector<double> numbers;
    for (absl::string_view f : fields) {
      double d;
      if (!absl::SimpleAtod(f, &d)) break;
      numbers.push_back(d);
    }
    if (numbers.empty() || numbers.size() != fields.size()) continue;
    for (size_t i = 0; i < numbers.size(); ++i) {
      MetricLabels labels = {{"knob", knob}};
      if (numbers.size() > 1) labels.push_back({"field", absl::StrCat(i)});
      value.samples.push_back({std::move(labels), numbers[i]});
    }
  }
}

void AddScrapeMetrics(const std::vector<SourceResult>& results, Families& out) {
  MetricFamily& took = Add(out, "netagent_scrape_collector_duration_seconds", MetricType::kGauge,
                           "How long the source took in this scrape", "seconds");
  MetricFamily& ok = Add(out, "netagent_scrape_collector_success", MetricType::kGauge,
                         "1 when the source answered in time in this scrape (the agent's log "
                         "says why not)");
  for (const auto& r : results) {
    took.samples.push_back({{{"collector", r.name}}, absl::ToDoubleSeconds(r.took)});
    ok.samples.push_back({{{"collector", r.name}}, uint64_t{r.ok ? 1u : 0u}});
  }
}

void AddBuildMetrics(absl::string_view version, absl::Time started, Families& out) {
  Add(out, "netagent_build", MetricType::kInfo, "The agent's version")
      .samples.push_back({{{"version", std::string(version)}}, uint64_t{1}});
  Add(out, "netagent_start_time_seconds", MetricType::kGauge, "When the agent started (Unix time)",
      "seconds")
      .samples.push_back({{}, Seconds(started)});
}

// ---- the scrape ----

// A source's state across scrapes: whether a run is still going (a hung
// read), and the result of the run a scrape waits for.
struct MetricsScraper::Slot {
  std::mutex mu;
  std::condition_variable cv;
  bool busy = false;
  absl::Time busy_since;
  uint64_t run = 0;  // which run the result below is of
  std::optional<absl::StatusOr<Families>> result;
  absl::Duration took;
};

std::shared_ptr<const std::string> MetricsScraper::Scrape::Body(ExpositionFormat format,
                                                                bool gzip) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto& body = bodies_[{format, gzip}];
  if (!body) {
    auto& plain = bodies_[{format, false}];
    if (!plain) plain = std::make_shared<const std::string>(WriteExposition(families_, format));
    body = gzip ? std::make_shared<const std::string>(Gzip(*plain)) : plain;
  }
  return body;
}

MetricsScraper::MetricsScraper(std::vector<MetricsSource> sources, Options options)
    : sources_(std::move(sources)), options_(std::move(options)) {
  for (size_t i = 0; i < sources_.size(); ++i) slots_.push_back(std::make_shared<Slot>());
}

MetricsScraper::~MetricsScraper() {
  const absl::Time until = absl::Now() + options_.timeout;
  for (const auto& slot : slots_) {
    std::unique_lock<std::mutex> lock(slot->mu);
    while (slot->busy && absl::Now() < until) {
      slot->cv.wait_for(lock, std::chrono::milliseconds(20));
    }
  }
}

uint64_t MetricsScraper::collections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

std::shared_ptr<const MetricsScraper::Scrape> MetricsScraper::Collect() {
  std::unique_lock<std::mutex> lock(mu_);
  if (running_) {
    // Share the collection in flight.
    const uint64_t gen = generation_;
    cv_.wait(lock, [&] { return !running_ || generation_ != gen; });
    return last_;
  }
  running_ = true;
  ++generation_;
  lock.unlock();
  std::shared_ptr<const Scrape> scrape = Run();
  lock.lock();
  last_ = scrape;
  running_ = false;
  cv_.notify_all();
  return scrape;
}

std::shared_ptr<MetricsScraper::Scrape> MetricsScraper::Run() {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.timeout;
  std::vector<uint64_t> runs(sources_.size(), 0);
  std::vector<std::string> skipped(sources_.size());
  for (size_t i = 0; i < sources_.size(); ++i) {
    std::shared_ptr<Slot> slot = slots_[i];
    std::lock_guard<std::mutex> lock(slot->mu);
    if (slot->busy) {
      skipped[i] = absl::StrCat("still running since ", absl::FormatTime(slot->busy_since),
                                " (an earlier scrape)");
      continue;
    }
    slot->busy = true;
    slot->busy_since = start;
    slot->result.reset();
    runs[i] = ++slot->run;
    // The thread owns what it touches (the slot and a copy of the source):
    // a source that outlives the scrape finds them still there.
    std::thread([slot, collect = sources_[i].collect, run = runs[i]] {
      const absl::Time t0 = absl::Now();
      absl::StatusOr<Families> r = collect();
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->busy = false;
      if (slot->run == run) {
        slot->result = std::move(r);
        slot->took = absl::Now() - t0;
      }
      slot->cv.notify_all();
    }).detach();
  }
  auto scrape = std::make_shared<Scrape>();
  std::vector<SourceResult> results;
  for (size_t i = 0; i < sources_.size(); ++i) {
    SourceResult res{sources_[i].name, absl::ZeroDuration(), false};
    absl::Status failure;
    if (!skipped[i].empty()) {
      failure = absl::DeadlineExceededError(skipped[i]);
    } else {
      Slot& slot = *slots_[i];
      std::unique_lock<std::mutex> lock(slot.mu);
      while (!slot.result && absl::Now() < deadline) {
        slot.cv.wait_for(lock, absl::ToChronoMilliseconds(
                                   std::max(deadline - absl::Now(), absl::Milliseconds(1))));
      }
      if (!slot.result) {
        res.took = absl::Now() - start;
        failure = absl::DeadlineExceededError(
            absl::StrCat("no answer within ", absl::FormatDuration(options_.timeout)));
      } else {
        res.took = slot.took;
        if (slot.result->ok()) {
          res.ok = true;
          for (MetricFamily& f : **slot.result) scrape->families_.push_back(std::move(f));
        } else {
          failure = slot.result->status();
        }
        slot.result.reset();
      }
    }
    if (!res.ok && options_.on_failure) options_.on_failure(res.name, failure);
    results.push_back(std::move(res));
  }
  if (options_.finish) options_.finish(scrape->families_);
  AddScrapeMetrics(results, scrape->families_);
  return scrape;
}

}  // namespace netagent::agent
