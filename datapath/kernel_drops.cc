#include "datapath/kernel_drops.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace netagent::datapath {
namespace {

constexpr absl::string_view kReasonPrefix = "SKB_DROP_REASON_";
constexpr absl::string_view kSubsysPrefix = "SKB_DROP_REASON_SUBSYS_";
// The subsystem sits in the upper 16 bits (SKB_DROP_REASON_SUBSYS_SHIFT, a
// #define the kernel's BTF does not carry).
constexpr int kSubsysShift = 16;

constexpr uint16_t kEthIp = 0x0800;
constexpr uint16_t kEthIp6 = 0x86dd;

absl::string_view L3Name(uint16_t ethertype) {
  switch (ethertype) {
    case kEthIp:
      return "ipv4";
    case kEthIp6:
      return "ipv6";
    case 0x0806:
      return "arp";
    case 0x8100:
      return "802.1q";
    case 0x88a8:
      return "802.1ad";
    case 0x8847:
      return "mpls";
    case 0x88cc:
      return "lldp";
    case 0x8035:
      return "rarp";
    default:
      return "";
  }
}

absl::string_view L4Name(uint16_t ethertype, uint8_t proto) {
  switch (proto) {
    case 0:
      return ethertype == kEthIp6 ? "hopopts" : "";
    case 1:
      return "icmp";
    case 2:
      return "igmp";
    case 4:
      return "ipip";
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 41:
      return "ipv6";
    case 44:
      return "fragment";
    case 47:
      return "gre";
    case 50:
      return "esp";
    case 51:
      return "ah";
    case 58:
      return "icmpv6";
    case 132:
      return "sctp";
    case 136:
      return "udplite";
    default:
      return "";
  }
}

// The prefix of `addr` (family's length) masked to `bits`, as "a/b".
std::string PrefixOf(int family, const std::array<uint8_t, 16>& addr, int bits) {
  const int len = family == AF_INET ? 4 : 16;
  bits = std::clamp(bits, 0, len * 8);
  std::array<uint8_t, 16> masked{};
  for (int i = 0; i < len; ++i) {
    const int keep = std::clamp(bits - i * 8, 0, 8);
    masked[i] = keep == 0 ? 0 : static_cast<uint8_t>(addr[i] & (0xff << (8 - keep)));
  }
  return absl::StrCat(FormatAddress(family, masked), "/", bits);
}

bool Wanted(const KernelDropQuery& q, uint32_t reason, const std::string& device) {
  if (!q.reasons.empty() && !q.reasons.count(reason)) return false;
  if (!q.devices.empty() && !q.devices.count(device)) return false;
  return true;
}

std::string DeviceName(const KernelDropSnapshot& s, uint32_t ifindex) {
  auto it = s.devices.find(ifindex);
  return it == s.devices.end() ? "" : it->second;
}

}  // namespace

DropReasonNames DropReasonNames::FromEnums(const std::vector<EnumValue>& reasons,
                                           const std::vector<EnumValue>& subsystems) {
  DropReasonNames n;
  for (const EnumValue& e : reasons) {
    if (e.value < 0 || e.value > UINT32_MAX) continue;
    const uint32_t v = static_cast<uint32_t>(e.value);
    absl::string_view name = e.name;
    if (name == "SKB_NOT_DROPPED_YET") {
      if (!n.not_dropped_yet_) n.not_dropped_yet_ = v;
      continue;
    }
    if (name == "SKB_CONSUMED") {
      if (!n.consumed_) n.consumed_ = v;
      continue;
    }
    if (!absl::ConsumePrefix(&name, kReasonPrefix)) absl::ConsumePrefix(&name, "SKB_");
    if (name.empty() || name == "MAX" || absl::StartsWith(name, "SUBSYS_")) continue;
    if (n.names_.count(v)) continue;
    n.names_[v] = std::string(name);
    n.by_name_.emplace(absl::AsciiStrToUpper(name), v);
  }
  for (const EnumValue& e : subsystems) {
    absl::string_view name = e.name;
    if (!absl::ConsumePrefix(&name, kSubsysPrefix) || name == "NUM" || e.value < 0 ||
        e.value > 0xffff) {
      continue;
    }
    n.subsystems_.emplace(static_cast<uint32_t>(e.value), std::string(name));
  }
  return n;
}

std::string DropReasonNames::Name(uint32_t value) const {
  if (auto it = names_.find(value); it != names_.end()) return it->second;
  if (not_dropped_yet_ == value) return "NOT_DROPPED_YET";
  if (consumed_ == value) return "CONSUMED";
  const uint32_t subsys = value >> kSubsysShift;
  if (subsys != 0) {
    auto it = subsystems_.find(subsys);
    return absl::StrCat(it != subsystems_.end() ? it->second : absl::StrCat("SUBSYS_", subsys), "/",
                        value & 0xffff);
  }
  return absl::StrCat("UNKNOWN_", value);
}

std::optional<uint32_t> DropReasonNames::Value(absl::string_view name) const {
  std::string upper = absl::AsciiStrToUpper(name);
  absl::string_view key = upper;
  absl::ConsumePrefix(&key, kReasonPrefix);
  auto it = by_name_.find(std::string(key));
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::string ProtocolName(uint16_t ethertype, uint8_t ip_protocol) {
  if (ethertype == 0) return "unknown";
  const absl::string_view l3 = L3Name(ethertype);
  if (ethertype != kEthIp && ethertype != kEthIp6) {
    return l3.empty() ? absl::StrFormat("0x%04x", ethertype) : std::string(l3);
  }
  const absl::string_view l4 = L4Name(ethertype, ip_protocol);
  return absl::StrCat(l3, "/", l4.empty() ? absl::StrCat(ip_protocol) : std::string(l4));
}

KernelDropEvents EventsFromCounts(const std::vector<uint64_t>& v, uint64_t counted, bool sampling) {
  auto at = [&](size_t i) { return i < v.size() ? v[i] : 0; };
  KernelDropEvents e;
  e.sampled = at(ND_EV_SAMPLED);
  e.sample_lost = at(ND_EV_SAMPLE_LOST);
  e.table_full = at(ND_EV_TABLE_FULL);
  e.no_netns = at(ND_EV_NO_NETNS);
  const uint64_t seen = counted + e.table_full, used = e.sampled + e.sample_lost;
  if (sampling && seen > used) e.sample_capped = seen - used;
  return e;
}

bool AddCountRecord(const std::string& key, const std::string& value,
                    std::map<KernelDropKey, uint64_t>& counts) {
  if (key.size() != sizeof(nd_key) || value.empty() || value.size() % 8 != 0) return false;
  nd_key k;
  std::memcpy(&k, key.data(), sizeof(k));
  uint64_t sum = 0;
  for (size_t off = 0; off < value.size(); off += 8) {
    uint64_t v;
    std::memcpy(&v, value.data() + off, 8);
    sum += v;
  }
  counts[KernelDropKey{k.reason, k.ifindex, k.l3_proto, k.l4_proto}] += sum;
  return true;
}

bool AddSlotTables(const std::string& value, std::map<KernelDropKey, uint64_t>& counts) {
  if (value.empty() || value.size() % sizeof(nd_slots) != 0) return false;
  for (size_t table = 0; table < value.size(); table += sizeof(nd_slots)) {
    for (size_t i = 0; i < ND_SLOTS; ++i) {
      nd_slot s;
      std::memcpy(&s, value.data() + table + offsetof(nd_slots, slot) + i * sizeof(nd_slot),
                  sizeof(s));
      if (s.count == 0) continue;
      counts[KernelDropKey{s.key.reason, s.key.ifindex, s.key.l3_proto, s.key.l4_proto}] += s.count;
    }
  }
  return true;
}

KernelDropSample SampleFromRecord(const nd_sample& s, absl::Time at) {
  KernelDropSample out;
  out.at = at;
  out.key = KernelDropKey{s.reason, s.ifindex, s.l3_proto, s.l4_proto};
  out.length = s.len;
  if (s.l3_proto == kEthIp || s.l3_proto == kEthIp6) {
    out.family = s.l3_proto == kEthIp ? AF_INET : AF_INET6;
    const size_t len = s.l3_proto == kEthIp ? 4 : 16;
    std::memcpy(out.source.data(), s.saddr, len);
    std::memcpy(out.destination.data(), s.daddr, len);
  }
  if (s.has_ports) {
    out.source_port = ntohs(s.sport);
    out.destination_port = ntohs(s.dport);
  }
  return out;
}

std::string FormatAddress(int family, const std::array<uint8_t, 16>& addr) {
  if (family != AF_INET && family != AF_INET6) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, addr.data(), buf, sizeof(buf)) == nullptr) return "";
  return buf;
}

std::vector<DropSourceRow> TopSourcePrefixes(const std::vector<KernelDropSample>& samples,
                                             const DropReasonNames& names, size_t top, int prefix4,
                                             int prefix6) {
  struct Group {
    uint64_t samples = 0;
    std::map<uint32_t, uint64_t> reasons;
  };
  std::map<std::string, Group> groups;
  for (const KernelDropSample& s : samples) {
    if (s.family != AF_INET && s.family != AF_INET6) continue;
    Group& g = groups[PrefixOf(s.family, s.source, s.family == AF_INET ? prefix4 : prefix6)];
    ++g.samples;
    ++g.reasons[s.key.reason];
  }
  std::vector<DropSourceRow> out;
  out.reserve(groups.size());
  for (const auto& [prefix, g] : groups) {
    // The most frequent reason; of equals, the lowest value (stable output).
    auto best = std::max_element(g.reasons.begin(), g.reasons.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    out.push_back({prefix, g.samples, names.Name(best->first)});
  }
  std::stable_sort(out.begin(), out.end(), [](const DropSourceRow& a, const DropSourceRow& b) {
    return a.samples > b.samples;
  });
  if (out.size() > top) out.resize(top);
  return out;
}

KernelDropReport BuildKernelDropReport(const KernelDropSnapshot* before,
                                       const KernelDropSnapshot& after,
                                       const std::vector<KernelDropSample>& samples,
                                       const DropReasonNames& names, const KernelDropQuery& query) {
  KernelDropReport r;
  r.taken = after.taken;
  r.events = after.events;
  if (before) {
    r.window = after.taken - before->taken;
    r.total_delta = 0;
  }
  const double seconds = r.window ? absl::ToDoubleSeconds(*r.window) : 0;
  for (const auto& [key, count] : after.counts) {
    KernelDropRow row;
    row.key = key;
    row.device = DeviceName(after, key.ifindex);
    if (!Wanted(query, key.reason, row.device)) continue;
    row.reason = names.Name(key.reason);
    row.protocol = ProtocolName(key.ethertype, key.ip_protocol);
    row.count = count;
    if (before) {
      auto it = before->counts.find(key);
      const uint64_t was = it == before->counts.end() ? 0 : it->second;
      // Counts only grow while the program is loaded; a smaller one means it
      // was loaded again in between, and everything counted is new.
      row.delta = count >= was ? count - was : count;
      row.rate = seconds > 0 ? static_cast<double>(*row.delta) / seconds : 0.0;
      *r.total_delta += *row.delta;
    }
    r.total += count;
    r.rows.push_back(std::move(row));
  }
  std::sort(r.rows.begin(), r.rows.end(), [](const KernelDropRow& a, const KernelDropRow& b) {
    const uint64_t da = a.delta.value_or(0), db = b.delta.value_or(0);
    if (da != db) return da > db;
    if (a.count != b.count) return a.count > b.count;
    return std::tie(a.reason, a.device, a.protocol, a.key) <
           std::tie(b.reason, b.device, b.protocol, b.key);
  });

  std::vector<KernelDropSample> kept;
  for (const KernelDropSample& s : samples) {
    if (before && s.at < before->taken) continue;
    if (!Wanted(query, s.key.reason, DeviceName(after, s.key.ifindex))) continue;
    kept.push_back(s);
  }
  std::stable_sort(
      kept.begin(), kept.end(),
      [](const KernelDropSample& a, const KernelDropSample& b) { return a.at > b.at; });
  r.top_sources =
      TopSourcePrefixes(kept, names, query.top_sources, query.source_prefix4, query.source_prefix6);
  for (size_t i = 0; i < kept.size() && i < query.max_samples; ++i) {
    KernelDropSampleView v;
    v.sample = kept[i];
    v.reason = names.Name(kept[i].key.reason);
    v.device = DeviceName(after, kept[i].key.ifindex);
    v.protocol = ProtocolName(kept[i].key.ethertype, kept[i].key.ip_protocol);
    v.source = FormatAddress(kept[i].family, kept[i].source);
    v.destination = FormatAddress(kept[i].family, kept[i].destination);
    r.samples.push_back(std::move(v));
  }
  return r;
}

}  // namespace netagent::datapath
