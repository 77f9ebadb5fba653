#include "diagnosis/snapshot.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernel/errors.h"
#include "kernel/sysctl.h"

namespace netagent::diagnosis {
namespace {

constexpr uint32_t kListenState = 10;

absl::Duration Mono() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::DurationFromTimespec(ts);
}

// A status message for `unavailable`, once per input.
void Note(std::vector<std::string>* unavailable, absl::string_view input, const absl::Status& s) {
  if (unavailable == nullptr) return;
  const std::string line = absl::StrCat(input, ": ", s.message());
  for (const std::string& u : *unavailable)
    if (u == line) return;
  unavailable->push_back(line);
}

collectors::PortRange EphemeralRange(const Snapshot& s) {
  auto it = s.sysctls.find("net.ipv4.ip_local_port_range");
  return collectors::ParseEphemeralRange(it == s.sysctls.end() ? "" : it->second);
}

absl::StatusOr<collectors::SocketSummary> Summarize(const CollectOptions& o, uint32_t states,
                                                    const collectors::PortRange& ephemeral) {
  collectors::SocketQuery q;
  q.states = states;
  q.tcp_info = states != (1u << kListenState);
  q.memory = q.tcp_info;  // each flow's send buffer
  auto walk = collectors::SummarizeSockets(
      q, o.top, ephemeral, 1,
      [&] {
        o.yield();
        return o.keep_going();
      },
      o.socket_iter ? o.socket_iter->get() : nullptr);
  if (!walk.ok()) return walk.status();
  return std::move(walk->summary);
}

}  // namespace

absl::StatusOr<Snapshot> CollectSnapshot(const CollectOptions& o,
                                         std::vector<std::string>* unavailable) {
  Snapshot s;
  std::vector<std::string> missing;
  for (const std::string& name : DiagnosisSysctls()) {
    if (auto v = kernel::ReadSysctl(name); v.ok()) {
      s.sysctls[name] = *v;
    } else {
      missing.push_back(name);
    }
  }
  if (!missing.empty()) {
    // Host-wide settings are not visible from a child namespace: the rules
    // that compare against them say less there.
    Note(unavailable, "sysctls",
         absl::InvalidArgumentError(absl::StrCat(absl::StrJoin(missing, ", "),
                                                 " (not visible in this network namespace)")));
  }
  s.taken = absl::Now();
  s.mono = Mono();
  if (auto c = collectors::ReadCounters(); c.ok()) {
    s.counters = std::move(*c);
  } else {
    Note(unavailable, "counters", c.status());
  }
  if (auto v = collectors::ReadSoftnet(); v.ok()) {
    s.softnet = std::move(*v);
  } else {
    Note(unavailable, "softnet", v.status());
  }
  if (auto v = collectors::ReadSockstat(); v.ok()) {
    s.sockstat = std::move(*v);
  } else {
    Note(unavailable, "sockstat", v.status());
  }
  if (auto v = collectors::ReadSoftirqs(); v.ok()) {
    s.softirqs = std::move(*v);
  } else {
    Note(unavailable, "softirqs", v.status());
  }
  if (auto v = collectors::ReadNeighbourStats(); v.ok()) {
    s.neighbours = std::move(*v);
  } else {
    Note(unavailable, "neighbour tables", v.status());
  }
  if (auto v = collectors::ReadConntrackStats(); v.ok()) {
    s.conntrack = std::move(*v);
  } else {
    Note(unavailable, "conntrack", v.status());
  }
  if (auto v = collectors::DumpLinks(); v.ok()) {
    s.links = std::move(*v);
    if (o.rx_queues) {
      for (const std::string& dev : QueueDevices(*s.links)) {
        uint32_t ifindex = 0;
        for (const auto& l : *s.links)
          if (l.name == dev) ifindex = l.ifindex;
        // Most devices have no per-queue counters: not worth a note.
        if (auto q = o.rx_queues(dev, ifindex); q.ok() && !q->empty()) {
          s.rx_queues[dev] = std::move(*q);
        }
      }
    }
  } else {
    Note(unavailable, "devices", v.status());
  }
  if (o.drops) {
    if (auto v = o.drops(); v.ok()) {
      s.drops = std::move(*v);
    } else {
      Note(unavailable, "kernel drops", v.status());
    }
  }
  if (o.fast_paths) s.fast_paths = o.fast_paths();
  NETAGENT_RETURN_IF_ERROR(o.keep_going());
  auto sum = Summarize(o, collectors::kAllStates, EphemeralRange(s));
  if (sum.ok()) {
    s.sockets = std::move(*sum);
  } else if (absl::Status stop = o.keep_going(); !stop.ok()) {
    return stop;
  } else {
    Note(unavailable, "sockets", sum.status());
  }
  NETAGENT_RETURN_IF_ERROR(o.keep_going());
  return s;
}

const std::vector<std::string>& DiagnosisSysctls() {
  static const std::vector<std::string> names = {
      "net.core.somaxconn",
      "net.ipv4.tcp_max_syn_backlog",
      "net.ipv4.tcp_syncookies",
      "net.ipv4.tcp_abort_on_overflow",
      "net.ipv4.ip_local_port_range",
      "net.ipv4.tcp_tw_reuse",
      "net.ipv4.tcp_timestamps",
      "net.ipv4.tcp_fin_timeout",
      "net.ipv4.tcp_max_tw_buckets",
      "net.ipv4.tcp_max_orphans",
      "net.ipv4.tcp_mem",
      "net.ipv4.tcp_rmem",
      "net.ipv4.tcp_wmem",
      "net.ipv4.udp_mem",
      "net.core.rmem_max",
      "net.core.rmem_default",
      "net.core.netdev_max_backlog",
      "net.core.netdev_budget",
      "net.core.netdev_budget_usecs",
      "net.ipv4.tcp_mtu_probing",
      "net.netfilter.nf_conntrack_max",
      "net.ipv4.neigh.default.gc_thresh3",
      "net.ipv6.neigh.default.gc_thresh3",
  };
  return names;
}

absl::StatusOr<collectors::NamedValues> DefaultRings(const std::string& dev) {
  NETAGENT_ASSIGN_OR_RETURN(collectors::EthtoolClient client, collectors::EthtoolClient::Open());
  collectors::Section<collectors::NamedValues> rings = client.GetRings(dev);
  if (!rings.ok()) return rings.status;
  return std::move(rings.value);
}

std::vector<std::string> QueueDevices(const std::vector<collectors::LinkRecord>& links) {
  std::vector<std::string> out;
  for (const auto& l : links) {
    constexpr uint32_t kLoopback = 0x8;  // IFF_LOOPBACK
    if (l.kind.empty() && !(l.flags & kLoopback)) out.push_back(l.name);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > kMaxQueueDevices) out.resize(kMaxQueueDevices);
  return out;
}

absl::StatusOr<std::vector<collectors::RxQueueCounters>> QstatsRxQueues(const std::string&,
                                                                        uint32_t ifindex) {
  NETAGENT_ASSIGN_OR_RETURN(std::vector<collectors::QueueStats> q,
                            collectors::GetQueueStats(ifindex));
  return collectors::RxQueuesFromQstats(q);
}

absl::StatusOr<std::vector<collectors::RxQueueCounters>> DefaultRxQueues(const std::string& dev,
                                                                         uint32_t ifindex) {
  std::vector<collectors::RxQueueCounters> qstats, driver;
  if (auto q = collectors::GetQueueStats(ifindex); q.ok()) {
    qstats = collectors::RxQueuesFromQstats(*q);
  }
  if (auto d = collectors::GetDriverStats(dev); d.ok()) {
    driver = collectors::RxQueuesFromDriverStats(*d);
  }
  return collectors::MergeRxQueues(std::move(qstats), driver);
}

std::vector<std::string> HardwareLossDevices(const Snapshot& before, const Snapshot& after,
                                             size_t max) {
  std::vector<std::pair<uint64_t, std::string>> lost;
  if (!before.links || !after.links) return {};
  std::vector<int> hw;
  for (int i = 0; i < collectors::kLinkStatCount; ++i) {
    const absl::string_view n = collectors::kLinkStatNames[i];
    if (n == "rx_missed_errors" || n == "rx_fifo_errors" || n == "rx_over_errors") hw.push_back(i);
  }
  for (const auto& a : *after.links) {
    for (const auto& b : *before.links) {
      if (b.ifindex != a.ifindex) continue;
      uint64_t n = 0;
      for (int i : hw)
        if (i < a.stats_count && i < b.stats_count && a.stats[i] > b.stats[i])
          n += a.stats[i] - b.stats[i];
      if (n > 0) lost.push_back({n, a.name});
    }
  }
  std::sort(lost.begin(), lost.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < lost.size() && i < max; ++i) out.push_back(lost[i].second);
  return out;
}

void AddRings(const CollectOptions& o, SnapshotPair& pair) {
  if (!o.rings) return;
  for (const std::string& dev : HardwareLossDevices(pair.before, pair.after, kMaxRingDevices)) {
    if (auto r = o.rings(dev); r.ok()) {
      pair.rings[dev] = std::move(*r);
    } else {
      Note(&pair.unavailable, absl::StrCat("rings of ", dev), r.status());
    }
  }
}

void FoldListeners(SnapshotPair& pair, const std::vector<collectors::ListenerStats>& listeners) {
  ++pair.listener_samples;
  for (const collectors::ListenerStats& l : listeners) {
    ListenerWatch& w = pair.listeners[collectors::FormatEndpoint(l.address, l.port)];
    w.backlog = l.backlog;
    w.max_queue = std::max(w.max_queue, l.accept_queue);
    ++w.samples;
    // The kernel drops once the queue holds more than the backlog
    // (sk_ack_backlog > sk_max_ack_backlog).
    if (l.accept_queue > l.backlog) ++w.full;
  }
}

absl::StatusOr<SnapshotPair> CollectPair(const CollectOptions& o) {
  SnapshotPair pair;
  NETAGENT_ASSIGN_OR_RETURN(pair.before, CollectSnapshot(o, &pair.unavailable));
  if (pair.before.sockets) FoldListeners(pair, pair.before.sockets->listeners);
  // Scheduled on the monotonic clock: a wall clock step does not stretch or
  // cut the window.
  const absl::Duration end = pair.before.mono + o.window;
  const collectors::PortRange ephemeral = EphemeralRange(pair.before);
  for (;;) {
    const absl::Duration now = Mono();
    if (now >= end) break;
    o.sleep(std::min(o.listener_every, end - now));
    NETAGENT_RETURN_IF_ERROR(o.keep_going());
    if (Mono() >= end) break;
    auto l = Summarize(o, 1u << kListenState, ephemeral);
    if (l.ok()) {
      FoldListeners(pair, l->listeners);
    } else if (absl::Status stop = o.keep_going(); !stop.ok()) {
      return stop;
    }
  }
  NETAGENT_ASSIGN_OR_RETURN(pair.after, CollectSnapshot(o, &pair.unavailable));
  if (pair.after.sockets) FoldListeners(pair, pair.after.sockets->listeners);
  if (pair.after.drops && o.drop_sources) pair.drop_sources = o.drop_sources(pair.before.taken);
  AddRings(o, pair);
  return pair;
}

}  // namespace netagent::diagnosis
