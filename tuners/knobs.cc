#include "tuners/knobs.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "collectors/inet.h"
#include "kernel/cpus.h"
#include "kernel/errors.h"
#include "kernel/text.h"

namespace netagent::tuners {
namespace {

constexpr int64_t kKiB = 1024, kMiB = 1024 * kKiB, kGiB = 1024 * kMiB;

std::vector<SysctlSpec> BuildRegistry() {
  using K = ValueKind;
  std::vector<SysctlSpec> r;
  auto add = [&](SysctlSpec s) { r.push_back(s); };
  // Buffers.
  add({"net.ipv4.tcp_rmem", "buffers", K::kIntVector, 4 * kKiB, kGiB, 16, nullptr, true,
       Risk::kMedium, "TCP receive buffer: min, default, max (autotuning grows up to max)"});
  add({"net.ipv4.tcp_wmem", "buffers", K::kIntVector, 4 * kKiB, kGiB, 16, nullptr, true,
       Risk::kMedium, "TCP send buffer: min, default, max"});
  add({"net.core.rmem_max", "buffers", K::kInt, 212992, kGiB, 16, nullptr, false, Risk::kMedium,
       "largest SO_RCVBUF an application may ask for"});
  add({"net.core.wmem_max", "buffers", K::kInt, 212992, kGiB, 16, nullptr, false, Risk::kMedium,
       "largest SO_SNDBUF an application may ask for"});
  add({"net.ipv4.tcp_moderate_rcvbuf", "buffers", K::kInt, 0, 1, 0, "1", true, Risk::kLow,
       "receive buffer autotuning"});
  add({"net.ipv4.tcp_notsent_lowat", "limits", K::kInt, 16 * kKiB, 4294967295LL, 0, "4294967295",
       true, Risk::kLow, "unsent bytes a socket may queue before it stops being writable"});
  add({"net.ipv4.tcp_slow_start_after_idle", "limits", K::kInt, 0, 1, 0, "1", true, Risk::kLow,
       "restart from the initial window after an idle period"});
  // Congestion control.
  add({"net.ipv4.tcp_congestion_control", "congestion", K::kWord, 0, 0, 0, nullptr, true,
       Risk::kMedium, "default congestion control for new connections"});
  add({"net.core.default_qdisc", "congestion", K::kWord, 0, 0, 0, "pfifo_fast", false,
       Risk::kMedium, "qdisc given to devices created or brought up from now on"});
  // Steering.
  SysctlSpec flows{"net.core.rps_sock_flow_entries",
                   "steering",
                   K::kInt,
                   0,
                   1 << 26,
                   0,
                   "0",
                   false,
                   Risk::kLow,
                   "RFS global flow table size (0: RFS off)"};
  flows.power_of_two = true;
  add(flows);
  // Limits.
  add({"net.core.somaxconn", "limits", K::kInt, 128, 65535, 16, "4096", true, Risk::kLow,
       "largest listen() backlog"});
  add({"net.ipv4.tcp_max_syn_backlog", "limits", K::kInt, 128, 1 << 20, 16, nullptr, true,
       Risk::kLow, "half-open connections per listener before SYN cookies or drops"});
  SysctlSpec cookies{"net.ipv4.tcp_syncookies",
                     "limits",
                     K::kInt,
                     0,
                     2,
                     0,
                     "1",
                     true,
                     Risk::kMedium,
                     "SYN cookies when the SYN queue overflows"};
  cookies.refused_value = 2;
  cookies.refused_reason =
      "2 sends cookies for every connection, even without a flood, and loses TCP options; use 1";
  add(cookies);
  add({"net.ipv4.tcp_synack_retries", "limits", K::kInt, 1, 10, 0, "5", true, Risk::kLow,
       "SYN-ACK retransmissions before a half-open connection is dropped"});
  add({"net.ipv4.tcp_abort_on_overflow", "limits", K::kInt, 0, 1, 0, "0", true, Risk::kHigh,
       "reset (instead of dropping) connections a full accept queue cannot take"});
  add({"net.ipv4.tcp_tw_reuse", "limits", K::kInt, 0, 2, 0, "2", true, Risk::kLow,
       "reuse TIME_WAIT sockets for new outgoing connections (2: loopback only)"});
  add({"net.ipv4.ip_local_port_range", "limits", K::kIntVector, 1024, 65535, 0, "32768 60999", true,
       Risk::kMedium, "ephemeral ports for outgoing connections: first, last"});
  add({"net.ipv4.tcp_fin_timeout", "limits", K::kInt, 5, 120, 0, "60", true, Risk::kLow,
       "seconds an orphaned connection stays in FIN_WAIT_2"});
  add({"net.ipv4.tcp_mtu_probing", "limits", K::kInt, 0, 2, 0, "0", true, Risk::kLow,
       "packetization-layer path MTU discovery (1: after a black hole is detected)"});
  add({"net.ipv4.tcp_base_mss", "limits", K::kInt, 512, 8192, 0, "1024", true, Risk::kLow,
       "MSS that MTU probing starts from"});
  add({"net.core.netdev_max_backlog", "limits", K::kInt, 100, 262144, 16, "1000", false, Risk::kLow,
       "packets queued per CPU for the stack (RPS, veth, loopback)"});
  add({"net.core.netdev_budget", "limits", K::kInt, 50, 3000, 8, "300", false, Risk::kMedium,
       "packets one NAPI softirq round may process"});
  add({"net.core.netdev_budget_usecs", "limits", K::kInt, 1000, 20000, 8, nullptr, false,
       Risk::kMedium, "microseconds one NAPI softirq round may run (capped at 20 ms)"});
  add({"net.netfilter.nf_conntrack_max", "limits", K::kInt, 1024, 1 << 24, 16, nullptr, true,
       Risk::kMedium, "conntrack entries before new flows are dropped"});
  for (const char* name :
       {"net.ipv4.neigh.default.gc_thresh3", "net.ipv6.neigh.default.gc_thresh3"}) {
    // The neighbour tables are the host's: visible in every namespace, one
    // value for all.
    add({name, "limits", K::kInt, 128, 1 << 20, 16, "1024", false, Risk::kLow,
         "neighbour entries above which new ones are refused (after a forced collection)"});
  }
  add({"net.netfilter.nf_conntrack_buckets", "limits", K::kInt, 1024, 1 << 22, 16, nullptr, false,
       Risk::kMedium, "conntrack hash buckets (resizes the table)"});
  return r;
}

absl::Status Refuse(absl::string_view knob, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(knob, ": ", why));
}

}  // namespace

absl::string_view RiskName(Risk r) {
  switch (r) {
    case Risk::kLow:
      return "low";
    case Risk::kMedium:
      return "medium";
    case Risk::kHigh:
      return "high";
  }
  return "unknown";
}

const std::vector<SysctlSpec>& SysctlRegistry() {
  static const std::vector<SysctlSpec>* r = new std::vector<SysctlSpec>(BuildRegistry());
  return *r;
}

const SysctlSpec* FindSysctl(absl::string_view name) {
  const SysctlSpec* by_last = nullptr;
  int matches = 0;
  for (const auto& s : SysctlRegistry()) {
    if (name == s.name) return &s;
    absl::string_view full = s.name;
    if (absl::EndsWith(full, name) && full.size() > name.size() &&
        full[full.size() - name.size() - 1] == '.') {
      by_last = &s;
      ++matches;
    }
  }
  return matches == 1 ? by_last : nullptr;
}

std::string SysctlKey(absl::string_view name) { return std::string(name); }
std::string QueueKey(absl::string_view dev, absl::string_view queue, absl::string_view file) {
  return absl::StrCat(dev, ":", queue, "/", file);
}
std::string DeviceKey(absl::string_view dev, absl::string_view area, absl::string_view name) {
  return absl::StrCat(dev, ":", area, "/", name);
}
std::string IrqKey(uint32_t irq) { return absl::StrCat("irq/", irq, "/smp_affinity_list"); }
std::string DatapathBlockKey(absl::string_view dev, absl::string_view prefix) {
  return absl::StrCat(dev, ":xdp-block/", prefix);
}

absl::StatusOr<std::string> CanonicalPrefix(absl::string_view text, absl::string_view field) {
  if (text.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not an address or CIDR prefix"));
  }
  NETAGENT_ASSIGN_OR_RETURN(collectors::Prefix p, collectors::ParsePrefix(text, field));
  const size_t max = p.address.family == AF_INET ? 32 : 128;
  return p.length == max ? collectors::FormatAddress(p.address)
                         : absl::StrCat(collectors::FormatAddress(p.address), "/", p.length);
}

absl::StatusOr<KnobKey> ParseKnobKey(absl::string_view key) {
  KnobKey k;
  const size_t colon = key.find(':');
  if (colon != absl::string_view::npos) {
    k.device = std::string(key.substr(0, colon));
    absl::string_view rest = key.substr(colon + 1);
    const size_t slash = rest.find('/');
    if (k.device.empty() || slash == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("knob ", kernel::Quote(key), ": malformed"));
    }
    absl::string_view area = rest.substr(0, slash), name = rest.substr(slash + 1);
    if (area == "channels" && name == "counts") {
      k.type = KnobType::kChannels;
    } else if (area == "coalesce") {
      k.type = KnobType::kCoalesce;
    } else if (area == "rss" && name == "indir") {
      k.type = KnobType::kRss;
    } else if (area == "xdp-block") {
      NETAGENT_ASSIGN_OR_RETURN(std::string canonical, CanonicalPrefix(name, "knob"));
      if (canonical != name) {
        return absl::InvalidArgumentError(
            absl::StrCat("knob ", kernel::Quote(key), ": the prefix's form is ", canonical));
      }
      k.type = KnobType::kDatapathBlock;
    } else if ((absl::StartsWith(area, "rx-") && (name == "rps_cpus" || name == "rps_flow_cnt")) ||
               (absl::StartsWith(area, "tx-") && name == "xps_cpus")) {
      uint32_t q;
      if (!absl::SimpleAtoi(area.substr(3), &q)) {
        return absl::InvalidArgumentError(absl::StrCat("knob ", kernel::Quote(key), ": bad queue"));
      }
      k.type = KnobType::kQueue;
      k.path = std::string(rest);
      return k;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("knob ", kernel::Quote(key), ": unknown"));
    }
    k.path = std::string(name);
    return k;
  }
  if (absl::StartsWith(key, "irq/")) {
    std::vector<absl::string_view> parts = absl::StrSplit(key, '/');
    uint32_t irq;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &irq) || parts[2] != "smp_affinity_list") {
      return absl::InvalidArgumentError(absl::StrCat("knob ", kernel::Quote(key), ": malformed"));
    }
    k.type = KnobType::kIrq;
    k.path = std::string(parts[1]);
    return k;
  }
  if (FindSysctl(key) == nullptr || FindSysctl(key)->name != key) {
    return absl::InvalidArgumentError(
        absl::StrCat("knob ", kernel::Quote(key), ": not a sysctl the agent manages"));
  }
  k.type = KnobType::kSysctl;
  k.path = std::string(key);
  return k;
}

absl::StatusOr<std::vector<int64_t>> ParseInts(absl::string_view value, absl::string_view field) {
  std::vector<int64_t> out;
  for (absl::string_view w : absl::StrSplit(value, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    int64_t v;
    if (!absl::SimpleAtoi(w, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", kernel::Quote(value), " is not a list of integers"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty value"));
  return out;
}

std::string JoinInts(const std::vector<int64_t>& v) { return absl::StrJoin(v, " "); }

absl::StatusOr<std::string> Normalize(absl::string_view key, absl::string_view value) {
  NETAGENT_ASSIGN_OR_RETURN(KnobKey k, ParseKnobKey(key));
  value = absl::StripAsciiWhitespace(value);
  switch (k.type) {
    case KnobType::kSysctl: {
      const SysctlSpec* s = FindSysctl(k.path);
      if (s->kind == ValueKind::kWord) return std::string(value);
      NETAGENT_ASSIGN_OR_RETURN(auto ints, ParseInts(value, key));
      return JoinInts(ints);
    }
    case KnobType::kQueue:
      if (absl::EndsWith(k.path, "_cpus")) {
        NETAGENT_ASSIGN_OR_RETURN(auto cpus, kernel::ParseCpuMask(value));
        return kernel::FormatCpuMask(cpus);
      }
      [[fallthrough]];
    case KnobType::kChannels:
    case KnobType::kCoalesce:
    case KnobType::kRss: {
      NETAGENT_ASSIGN_OR_RETURN(auto ints, ParseInts(value, key));
      return JoinInts(ints);
    }
    case KnobType::kIrq: {
      NETAGENT_ASSIGN_OR_RETURN(auto cpus, kernel::ParseCpuList(value));
      return kernel::FormatCpuList(cpus);
    }
    case KnobType::kDatapathBlock:
      if (value != kBlockOn && value != kBlockOff && value != kBlockOperator) {
        return absl::InvalidArgumentError(
            absl::StrCat(key, ": ", kernel::Quote(value), " is not on or off"));
      }
      return std::string(value);
  }
  return std::string(value);
}

absl::StatusOr<std::string> CheckSysctlValue(const SysctlSpec& spec, absl::string_view old_value,
                                             absl::string_view new_value, bool clamp,
                                             std::string* note) {
  const std::string knob = spec.name;
  if (spec.kind == ValueKind::kWord) {
    const std::string w(absl::StripAsciiWhitespace(new_value));
    if (w.empty() || w.find_first_of(" \t") != std::string::npos) {
      return Refuse(knob, absl::StrCat(kernel::Quote(new_value), " is not one word"));
    }
    return w;
  }
  NETAGENT_ASSIGN_OR_RETURN(std::vector<int64_t> want, ParseInts(new_value, knob));
  std::vector<int64_t> old;
  if (auto o = ParseInts(old_value, knob); o.ok()) old = *o;
  const size_t arity = spec.kind == ValueKind::kInt ? 1 : (old.empty() ? want.size() : old.size());
  if (want.size() != arity) {
    return Refuse(knob, absl::StrCat("takes ", arity, " integer", arity == 1 ? "" : "s", ", got ",
                                     want.size()));
  }
  std::vector<std::string> notes;
  for (size_t i = 0; i < want.size(); ++i) {
    int64_t& v = want[i];
    const std::string which =
        want.size() > 1 ? absl::StrCat(" (value ", i + 1, " of ", want.size(), ")") : "";
    if (spec.refused_value >= 0 && v == spec.refused_value) {
      return Refuse(knob, absl::StrCat(v, " is refused: ", spec.refused_reason));
    }
    if (spec.power_of_two && v > 0 && (v & (v - 1)) != 0) {
      if (!clamp)
        return Refuse(knob, absl::StrCat(v, " is not a power of two (the kernel would round it)"));
      int64_t p = 1;
      while (p <= v / 2) p *= 2;  // not p * 2 <= v: that overflows above 2^62
      notes.push_back(absl::StrCat(v, " rounded down to the power of two ", p));
      v = p;
    }
    if (v < spec.floor || v > spec.ceiling) {
      const bool low = v < spec.floor;
      const std::string bound =
          absl::StrCat(low ? "floor " : "ceiling ", low ? spec.floor : spec.ceiling);
      if (!clamp) return Refuse(knob, absl::StrCat(v, which, " is outside the ", bound));
      notes.push_back(absl::StrCat(v, which, " clamped to the ", bound));
      v = low ? spec.floor : spec.ceiling;
    }
    if (spec.max_step > 0 && i < old.size() && old[i] > 0 && v > 0) {
      const double ratio = static_cast<double>(v) / static_cast<double>(old[i]);
      if (ratio > spec.max_step || ratio < 1.0 / spec.max_step) {
        const int64_t limit = ratio > 1 ? static_cast<int64_t>(std::floor(old[i] * spec.max_step))
                                        : static_cast<int64_t>(std::ceil(old[i] / spec.max_step));
        const std::string bound =
            absl::StrCat("largest step (x", spec.max_step, " from ", old[i], ", so ",
                         ratio > 1 ? "at most " : "at least ", limit, ")");
        if (!clamp) return Refuse(knob, absl::StrCat(v, which, " exceeds the ", bound));
        notes.push_back(
            absl::StrCat(v, which, " limited by the ", bound, "; apply again to go further"));
        v = std::clamp(limit, spec.floor, spec.ceiling);
      }
    }
  }
  if (spec.kind == ValueKind::kIntVector && want.size() >= 2) {
    for (size_t i = 1; i < want.size(); ++i) {
      if (want[i] < want[i - 1]) {
        return Refuse(knob, absl::StrCat("values must not decrease (", JoinInts(want), ")"));
      }
    }
  }
  if (note) *note = absl::StrJoin(notes, "; ");
  return JoinInts(want);
}

}  // namespace netagent::tuners
