#include "agent/metrics_compat.h"

#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "re2/re2.h"

namespace netagent::agent {
namespace {

using Index = std::map<std::string, const MetricFamily*, std::less<>>;

const std::string* Label(const MetricSample& s, absl::string_view name) {
  for (const auto& [k, v] : s.labels) {
    if (k == name) return &v;
  }
  return nullptr;
}

// A sample's value as an unsigned number (counters and counts; a negative
// value is 0).
uint64_t Unsigned(const MetricSample::Value& v) {
  if (const auto* u = std::get_if<uint64_t>(&v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v)) return *i < 0 ? 0 : static_cast<uint64_t>(*i);
  const double d = std::get<double>(v);
  return d < 0 ? 0 : static_cast<uint64_t>(d);
}

MetricFamily& Add(Families& out, std::string name, MetricType type, std::string help) {
  out.push_back({std::move(name), type, std::move(help), "", {}});
  return out.back();
}

void Softnet(const Index& ours, Families& out) {
  for (const char* column : {"processed", "dropped", "times_squeezed"}) {
    auto it = ours.find(absl::StrCat("netagent_softnet_", column));
    if (it == ours.end()) continue;
    MetricFamily& f =
        Add(out, absl::StrCat("node_softnet_", column), MetricType::kCounter,
            absl::StrCat("Number of ", column, " packets (netagent_softnet_", column, ")"));
    f.samples = it->second->samples;
  }
}

void Netstat(const Index& ours, Families& out) {
  for (const char* family : {"netagent_snmp", "netagent_snmp_value"}) {
    auto it = ours.find(family);
    if (it == ours.end()) continue;
    for (const MetricSample& s : it->second->samples) {
      const std::string* nstat = Label(s, "name");
      if (nstat == nullptr) continue;
      auto split = SplitNstatName(*nstat);
      if (!split) continue;
      Add(out, absl::StrCat("node_netstat_", split->first, "_", split->second),
          MetricType::kUntyped,
          absl::StrCat("Statistic ", split->first, split->second, " (netagent_snmp)"))
          .samples.push_back({{}, s.value});
    }
  }
}

void Sockstat(const Index& ours, int64_t page_size, Families& out) {
  if (auto it = ours.find("netagent_sockstat_sockets"); it != ours.end()) {
    for (const MetricSample& s : it->second->samples) {
      const std::string* protocol = Label(s, "protocol");
      const std::string* kind = Label(s, "kind");
      if (protocol == nullptr || kind == nullptr) continue;
      Add(out, absl::StrCat("node_sockstat_", *protocol, "_", *kind), MetricType::kGauge,
          absl::StrCat("Number of ", *protocol, " sockets in state ", *kind, "."))
          .samples.push_back({{}, s.value});
    }
  }
  if (auto it = ours.find("netagent_sockstat_memory_bytes"); it != ours.end()) {
    for (const MetricSample& s : it->second->samples) {
      const std::string* protocol = Label(s, "protocol");
      if (protocol == nullptr) continue;
      const uint64_t bytes = Unsigned(s.value);
      Add(out, absl::StrCat("node_sockstat_", *protocol, "_mem"), MetricType::kGauge,
          absl::StrCat("Number of ", *protocol, " sockets in state mem (pages)."))
          .samples.push_back({{}, page_size > 0 ? bytes / static_cast<uint64_t>(page_size) : 0});
      Add(out, absl::StrCat("node_sockstat_", *protocol, "_mem_bytes"), MetricType::kGauge,
          absl::StrCat("Number of ", *protocol, " sockets in state mem_bytes."))
          .samples.push_back({{}, bytes});
    }
  }
}

void Conntrack(const Index& ours, Families& out) {
  for (const char* name : {"entries", "entries_limit"}) {
    if (auto it = ours.find(absl::StrCat("netagent_conntrack_", name)); it != ours.end()) {
      MetricFamily& f = Add(out, absl::StrCat("node_nf_conntrack_", name), MetricType::kGauge,
                            absl::StrCat("conntrack ", name, " (netagent_conntrack_", name, ")"));
      f.samples = it->second->samples;
    }
  }
  // The eight /proc/net/stat/nf_conntrack columns node_exporter reads, as
  // gauges there. Netlink's statistics have no "ignore": current kernels
  // write a constant 0 in that column of the file (the counter is gone), and
  // so does this when the others are there.
  const bool stats = ours.count("netagent_conntrack_stat_found") > 0;
  for (const char* stat : {"found", "invalid", "ignore", "insert", "insert_failed", "drop",
                           "early_drop", "search_restart"}) {
    auto it = ours.find(absl::StrCat("netagent_conntrack_stat_", stat));
    if (it == ours.end() && !(stats && std::string_view(stat) == "ignore")) continue;
    MetricFamily& f = Add(out, absl::StrCat("node_nf_conntrack_stat_", stat), MetricType::kGauge,
                          absl::StrCat("Number of conntrack ", stat, ", summed over the CPUs."));
    if (it != ours.end()) {
      f.samples = it->second->samples;
    } else {
      f.samples.push_back({{}, uint64_t{0}});
    }
  }
}

// netagent_sockets' TCP states in node_exporter's tcpstat words.
void Tcpstat(const Index& ours, Families& out) {
  auto it = ours.find("netagent_sockets");
  if (it == ours.end()) return;
  static const std::map<std::string, std::string, std::less<>> kStates = {
      {"established", "established"}, {"syn-sent", "syn_sent"},    {"syn-recv", "syn_recv"},
      {"new-syn-recv", "syn_recv"},   {"fin-wait-1", "fin_wait1"}, {"fin-wait-2", "fin_wait2"},
      {"time-wait", "time_wait"},     {"closed", "close"},         {"close-wait", "close_wait"},
      {"last-ack", "last_ack"},       {"listening", "listen"},     {"closing", "closing"}};
  std::map<std::string, uint64_t> counts;
  for (const MetricSample& s : it->second->samples) {
    const std::string* protocol = Label(s, "protocol");
    const std::string* state = Label(s, "state");
    if (protocol == nullptr || state == nullptr || *protocol != "tcp") continue;
    auto name = kStates.find(*state);
    const uint64_t n = Unsigned(s.value);
    if (n > 0) counts[name == kStates.end() ? "unknown" : name->second] += n;
  }
  MetricFamily& f =
      Add(out, "node_tcp_connection_states", MetricType::kGauge, "Number of connection states.");
  for (const auto& [state, n] : counts) f.samples.push_back({{{"state", state}}, n});
}

// node_exporter's netdev names (its default, /proc/net/dev's columns) from
// rtnl_link_stats64, with the same sums the kernel makes for that file.
void Netdev(const Index& ours, Families& out) {
  struct Column {
    const char* name;
    std::vector<const char*> stats;
  };
  static const std::vector<Column> kColumns = {
      {"receive_bytes", {"rx_bytes"}},
      {"receive_packets", {"rx_packets"}},
      {"receive_errs", {"rx_errors"}},
      {"receive_drop", {"rx_dropped", "rx_missed_errors"}},
      {"receive_fifo", {"rx_fifo_errors"}},
      {"receive_frame", {"rx_frame_errors", "rx_length_errors", "rx_over_errors", "rx_crc_errors"}},
      {"receive_compressed", {"rx_compressed"}},
      {"receive_multicast", {"multicast"}},
      {"receive_nohandler", {"rx_nohandler"}},
      {"transmit_bytes", {"tx_bytes"}},
      {"transmit_packets", {"tx_packets"}},
      {"transmit_errs", {"tx_errors"}},
      {"transmit_drop", {"tx_dropped"}},
      {"transmit_fifo", {"tx_fifo_errors"}},
      {"transmit_colls", {"collisions"}},
      {"transmit_carrier",
       {"tx_carrier_errors", "tx_aborted_errors", "tx_heartbeat_errors", "tx_window_errors"}},
      {"transmit_compressed", {"tx_compressed"}},
  };
  for (const Column& c : kColumns) {
    std::map<std::string, uint64_t> per_device;
    for (const char* stat : c.stats) {
      auto it = ours.find(absl::StrCat("netagent_link_", stat));
      if (it == ours.end()) continue;
      for (const MetricSample& s : it->second->samples) {
        if (const std::string* dev = Label(s, "device")) per_device[*dev] += Unsigned(s.value);
      }
    }
    MetricFamily& f = Add(out, absl::StrCat("node_network_", c.name), MetricType::kCounter,
                          absl::StrCat("Network device statistic ", c.name, "."));
    for (const auto& [dev, v] : per_device) f.samples.push_back({{{"device", dev}}, v});
  }
}

void Ethtool(const Index& ours, Families& out) {
  if (auto it = ours.find("netagent_nic_driver"); it != ours.end()) {
    MetricFamily& f = Add(out, "node_ethtool", MetricType::kInfo,
                          "A metric with a constant '1' value labeled by bus_info, device, "
                          "driver, expansion_rom_version, firmware_version, version.");
    for (const MetricSample& s : it->second->samples) {
      auto get = [&](absl::string_view k) {
        const std::string* v = Label(s, k);
        return v == nullptr ? std::string() : *v;
      };
      f.samples.push_back({{{"bus_info", get("bus_info")},
                            {"device", get("device")},
                            {"driver", get("driver")},
                            {"expansion_rom_version", get("expansion_rom_version")},
                            {"firmware_version", get("firmware_version")},
                            {"version", get("version")}},
                           uint64_t{1}});
    }
  }
  auto it = ours.find("netagent_nic_driver_stat");
  if (it == ours.end()) return;
  // Names that two statistics of one device reduce to are left out, all of
  // them, as node_exporter does.
  std::map<std::pair<std::string, std::string>, int> uses;  // (device, name)
  for (const MetricSample& s : it->second->samples) {
    const std::string* dev = Label(s, "device");
    const std::string* stat = Label(s, "stat");
    if (dev != nullptr && stat != nullptr) ++uses[{*dev, NodeExporterEthtoolName(*stat)}];
  }
  // One family per name, its devices in the order met.
  std::map<std::string, MetricFamily*> by_name;
  for (const MetricSample& s : it->second->samples) {
    const std::string* dev = Label(s, "device");
    const std::string* stat = Label(s, "stat");
    if (dev == nullptr || stat == nullptr) continue;
    const std::string name = NodeExporterEthtoolName(*stat);
    if (uses[{*dev, name}] > 1) continue;
    MetricFamily*& f = by_name[name];
    if (f == nullptr) {
      f = &Add(out, name, MetricType::kUntyped,
               absl::StrCat("Network interface ", *stat));  // node_exporter's help
    }
    f->samples.push_back({{{"device", *dev}}, s.value});
  }
}

}  // namespace

std::optional<std::pair<std::string, std::string>> SplitNstatName(absl::string_view name) {
  // The groups of /proc/net/netstat, snmp and snmp6 (longest first where one
  // begins another).
  static const char* const kGroups[] = {"IcmpMsg", "Icmp6",    "Icmp",   "IpExt", "Ip6",
                                        "Ip",      "MPTcpExt", "TcpExt", "Tcp",   "UdpLite6",
                                        "UdpLite", "Udp6",     "Udp"};
  for (const char* g : kGroups) {
    absl::string_view rest = name;
    if (!absl::ConsumePrefix(&rest, g) || rest.empty()) continue;
    // The field starts a new word: "Ip" is no prefix of "IpExtInOctets".
    const std::string_view group(g);
    const bool six = group.back() == '6';
    if (!six && !absl::ascii_isupper(static_cast<unsigned char>(rest[0]))) continue;
    return std::make_pair(std::string(g), std::string(rest));
  }
  return std::nullopt;
}

std::string NodeExporterEthtoolName(absl::string_view stat) {
  static const std::map<std::string, std::string, std::less<>> kTotals = {
      {"rx_bytes", "received_bytes_total"},       {"rx_dropped", "received_dropped_total"},
      {"rx_errors", "received_errors_total"},     {"rx_packets", "received_packets_total"},
      {"tx_bytes", "transmitted_bytes_total"},    {"tx_errors", "transmitted_errors_total"},
      {"tx_packets", "transmitted_packets_total"}};
  if (auto t = kTotals.find(stat); t != kTotals.end()) return "node_ethtool_" + t->second;
  static const RE2 kInvalid("_*[^0-9A-Za-z_]+_*");
  static const RE2 kRx("(^|_)rx(_|$)");
  static const RE2 kTx("(^|_)tx(_|$)");
  std::string name(stat);
  RE2::GlobalReplace(&name, kInvalid, "_");
  absl::AsciiStrToLower(&name);
  name.erase(0, name.find_first_not_of('_'));
  RE2::GlobalReplace(&name, kRx, "\\1received\\2");
  RE2::GlobalReplace(&name, kTx, "\\1transmitted\\2");
  return "node_ethtool_" + name;
}

void AddNodeExporterFamilies(const Families& ours, int64_t page_size, Families& out) {
  Index index;
  for (const MetricFamily& f : ours) index.emplace(f.name, &f);
  Softnet(index, out);
  Netstat(index, out);
  Sockstat(index, page_size, out);
  Conntrack(index, out);
  Tcpstat(index, out);
  Netdev(index, out);
  Ethtool(index, out);
}

}  // namespace netagent::agent
