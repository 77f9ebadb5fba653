#include "tuners/planners.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "collectors/inet.h"
#include "kernel/cpus.h"
#include "kernel/errors.h"
#include "kernel/text.h"

namespace netagent::tuners {
namespace {

constexpr uint64_t kMaxBandwidth = 1'000'000'000'000ull;  // 1 Tbit/s
constexpr absl::Duration kMaxRtt = absl::Seconds(10);

std::string Bytes(uint64_t b) {
  if (b >= (1ull << 30) && b % (1ull << 20) == 0)
    return absl::StrFormat("%.1f GiB", b / 1073741824.0);
  if (b >= (1ull << 20)) return absl::StrFormat("%.1f MiB", b / 1048576.0);
  if (b >= 1024) return absl::StrFormat("%.1f KiB", b / 1024.0);
  return absl::StrCat(b, " B");
}

std::string Rate(uint64_t bps) {
  if (bps >= 1'000'000'000) return absl::StrFormat("%.3g Gbit/s", bps / 1e9);
  if (bps >= 1'000'000) return absl::StrFormat("%.3g Mbit/s", bps / 1e6);
  return absl::StrFormat("%.3g kbit/s", bps / 1e3);
}

const SysctlState& Sysctl(const HostSnapshot& host, absl::string_view name) {
  static const SysctlState* absent = new SysctlState();
  auto it = host.sysctls.find(std::string(name));
  return it == host.sysctls.end() ? *absent : it->second;
}

}  // namespace

std::string ReadOnlyQueuesWhy() {
  return "read-only mount (a container's /sys: mount the host's /sys writable and give the agent "
         "--sys-root)";
}

std::string ReadOnlyIrqWhy() {
  return "read-only mount (a container's /proc/irq: mount the host's /proc/irq writable and give "
         "the agent --proc-root)";
}

std::string ReadOnlySysctlsWhy() {
  return "read-only mount (a container's /proc/sys: mount the host's /proc/sys/net writable and "
         "give the agent --proc-root)";
}

namespace {

// Why a knob cannot be written here, as the rest of a sentence whose subject
// is the knob.
std::string NotWritable(const SysctlState& st) {
  constexpr absl::string_view kGlobal =
      " (a global knob: set it through an agent serving the initial namespace)";
  // First what no mount fixes.
  if (st.host_wide) {
    return absl::StrCat("is one setting for the whole host, not of this network namespace",
                        kGlobal);
  }
  if (st.read_only_mount) {
    return absl::StrCat("is on a ", ReadOnlySysctlsWhy());
  }
  if (st.exists) return absl::StrCat("is read-only in this network namespace", kGlobal);
  return absl::StrCat("does not exist in this network namespace", kGlobal);
}

// Adds name=value unless it is already so; a knob this namespace cannot
// change becomes a plan warning instead.
void AddSysctl(Plan& plan, const HostSnapshot& host, absl::string_view name,
               const std::string& value, std::string reason,
               std::vector<std::string> warnings = {}) {
  const SysctlState& st = Sysctl(host, name);
  const SysctlSpec* spec = FindSysctl(name);
  if (st.exists && st.value == value) return;
  if (!st.exists || !st.writable) {
    plan.warnings.push_back(
        absl::StrCat(name, " would be ", value, " (", reason, ") but it ", NotWritable(st)));
    return;
  }
  plan.changes.push_back(
      {std::string(name), st.value, value, std::move(reason), spec->risk, std::move(warnings)});
}

// Why the kernel would refuse `alg` as this namespace's default, or empty.
std::string CongestionRefusal(const std::string& alg, const HostSnapshot& host) {
  if (host.initial_netns || host.allowed_cc.empty() ||
      std::find(host.allowed_cc.begin(), host.allowed_cc.end(), alg) != host.allowed_cc.end()) {
    return "";
  }
  return absl::StrCat("net.ipv4.tcp_congestion_control: ", kernel::Quote(alg),
                      " is not in tcp_allowed_congestion_control (",
                      absl::StrJoin(host.allowed_cc, " "),
                      "): outside the initial namespace the kernel refuses it (EPERM); allow it "
                      "there first (a global knob)");
}

absl::Status NeedDevice(const HostSnapshot& host, absl::string_view field,
                        absl::string_view device) {
  if (device.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (!host.device || host.device->name != device) {
    return absl::InternalError(absl::StrCat("no snapshot of device ", device));
  }
  return absl::OkStatus();
}

// The device's queues, for the RPS, XPS and RFS planners.
absl::StatusOr<const collectors::QueueConfig*> NeedQueues(const HostSnapshot& host,
                                                          absl::string_view field,
                                                          absl::string_view device) {
  NETAGENT_RETURN_IF_ERROR(NeedDevice(host, field, device));
  if (!host.device->queues_status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(device, ": queues: ", host.device->queues_status.message()));
  }
  return &host.device->queues;
}

absl::StatusOr<std::vector<uint32_t>> ChooseCpus(const HostSnapshot& host, absl::string_view list,
                                                 absl::string_view field, bool clamp, Plan& plan) {
  if (list.empty()) {
    std::vector<uint32_t> cpus = EligibleCpus(host);
    if (cpus.empty()) return absl::FailedPreconditionError("no eligible CPU (all isolated?)");
    return cpus;
  }
  auto parsed = kernel::ParseCpuList(list);
  if (!parsed.ok())
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", parsed.status().message()));
  std::vector<uint32_t> out;
  for (uint32_t c : *parsed) {
    if (std::binary_search(host.online_cpus.begin(), host.online_cpus.end(), c)) {
      out.push_back(c);
      continue;
    }
    if (!clamp) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": CPU ", c, " is not online (online: ",
                                                     kernel::FormatCpuList(host.online_cpus), ")"));
    }
    plan.warnings.push_back(absl::StrCat(field, ": CPU ", c, " is not online; left out"));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": no online CPU"));
  return out;
}

std::string QueueName(const char* dir, uint32_t id) { return absl::StrCat(dir, "-", id); }

std::string NormMask(const std::string& mask) {
  auto cpus = kernel::ParseCpuMask(mask);
  return cpus.ok() ? kernel::FormatCpuMask(*cpus) : mask;
}

uint32_t FloorPow2(uint64_t v) {
  uint32_t p = 1;
  while (static_cast<uint64_t>(p) * 2 <= v && p < (1u << 30)) p *= 2;
  return p;
}

}  // namespace

std::string ChannelCounts(const collectors::Channels& c) {
  return absl::StrCat(c.combined.value_or(0), " ", c.rx.value_or(0), " ", c.tx.value_or(0), " ",
                      c.other.value_or(0));
}

std::vector<uint32_t> EligibleCpus(const HostSnapshot& host) {
  std::vector<uint32_t> base;
  for (uint32_t c : host.online_cpus) {
    if (!std::binary_search(host.isolated_cpus.begin(), host.isolated_cpus.end(), c)) {
      base.push_back(c);
    }
  }
  const int32_t node = host.device ? host.device->numa_node : -1;
  if (node < 0) return base;
  std::vector<uint32_t> local;
  for (uint32_t c : base) {
    auto it = host.cpu_node.find(c);
    if (it != host.cpu_node.end() && it->second == node) local.push_back(c);
  }
  return local.empty() ? base : local;
}

std::vector<std::vector<uint32_t>> SpreadCpus(const std::vector<uint32_t>& cpus, uint32_t queues) {
  std::vector<std::vector<uint32_t>> out(queues);
  if (cpus.empty() || queues == 0) return out;
  if (queues > cpus.size()) {
    for (uint32_t q = 0; q < queues; ++q) out[q].push_back(cpus[q % cpus.size()]);
    return out;
  }
  for (size_t i = 0; i < cpus.size(); ++i) out[i % queues].push_back(cpus[i]);
  return out;
}

std::vector<uint32_t> SpreadIndirection(uint32_t size, uint32_t queues,
                                        const std::vector<uint32_t>& weights) {
  std::vector<uint32_t> table(size, 0);
  if (queues == 0) return table;
  if (weights.empty()) {
    for (uint32_t i = 0; i < size; ++i) table[i] = i % queues;
    return table;
  }
  // Entry i goes to the queue whose share of the cumulative weight covers
  // the point (i + 0.5) / size; queues keep contiguous runs, as ethtool -X
  // weight does.
  uint64_t total = 0;
  for (uint32_t w : weights) total += w;
  uint32_t q = 0;
  uint64_t cum = weights[0];
  for (uint32_t i = 0; i < size; ++i) {
    const uint64_t point = (2ull * i + 1) * total;  // x 2*size
    while (q + 1 < queues && point >= 2ull * cum * size) cum += weights[++q];
    table[i] = q;
  }
  return table;
}

absl::StatusOr<Plan> PlanBdp(const BdpIntent& in, const HostSnapshot& host) {
  Plan plan;
  if (in.ceiling_bytes < (64u << 10) || in.ceiling_bytes > (1ull << 30)) {
    return absl::InvalidArgumentError(
        "bdp.ceiling_bytes: must be within 64 KiB and 1 GiB (the registry's ceiling)");
  }
  uint64_t bdp = 0;
  std::string basis;
  if (in.observed) {
    std::vector<FlowSample> flows;
    for (const auto& f : host.flows) {
      if (f.delivery_rate > 0 && f.min_rtt_us > 0) flows.push_back(f);
    }
    if (flows.empty()) {
      return absl::FailedPreconditionError(
          "bdp: no established TCP flow has a delivery rate and min RTT to observe; give "
          "bandwidth and rtt instead");
    }
    std::sort(flows.begin(), flows.end(),
              [](const FlowSample& a, const FlowSample& b) { return a.bytes > b.bytes; });
    flows.resize(std::min<size_t>(flows.size(), 8));
    const FlowSample* best = nullptr;
    for (const auto& f : flows) {
      const uint64_t b = f.delivery_rate * f.min_rtt_us / 1'000'000;
      if (b >= bdp) {
        bdp = b;
        best = &f;
      }
    }
    basis = absl::StrFormat(
        "observed: %s delivers %s at min RTT %.1f ms (largest of the %d busiest flows)", best->peer,
        Rate(best->delivery_rate * 8), best->min_rtt_us / 1000.0, flows.size());
  } else {
    if (in.bandwidth_bps == 0 || in.bandwidth_bps > kMaxBandwidth) {
      return absl::InvalidArgumentError("bdp.bandwidth_bps: required, at most 1 Tbit/s");
    }
    if (in.rtt <= absl::ZeroDuration() || in.rtt > kMaxRtt) {
      return absl::InvalidArgumentError("bdp.rtt: required, above 0 and at most 10s");
    }
    bdp = static_cast<uint64_t>(static_cast<double>(in.bandwidth_bps) / 8 *
                                absl::ToDoubleSeconds(in.rtt));
    basis = absl::StrFormat("%s x %s", Rate(in.bandwidth_bps), absl::FormatDuration(in.rtt));
  }
  const uint64_t target = 2 * bdp;
  std::map<std::string, uint64_t> planned_max;  // per direction
  for (const char* name : {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}) {
    const SysctlState& st = Sysctl(host, name);
    const SysctlSpec* spec = FindSysctl(name);
    auto cur = ParseInts(st.value, name);
    if (!st.exists || !cur.ok() || cur->size() != 3) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, ": cannot read it (", kernel::Quote(st.value), ")"));
    }
    int64_t def_max = (*cur)[2];
    auto it = host.defaults.find(name);
    if (it != host.defaults.end()) {
      if (auto d = ParseInts(it->second, name); d.ok() && d->size() == 3) def_max = (*d)[2];
    }
    std::vector<std::string> warnings;
    int64_t want = static_cast<int64_t>(std::min<uint64_t>(target, in.ceiling_bytes));
    if (target > in.ceiling_bytes) {
      warnings.push_back(absl::StrCat("2 x BDP = ", Bytes(target), " is above the ceiling ",
                                      Bytes(in.ceiling_bytes), ": clamped"));
    }
    if (want < def_max) {
      want = def_max;
      warnings.push_back(absl::StrCat("2 x BDP = ", Bytes(target),
                                      " is below the kernel default max; the default is kept"));
    }
    std::vector<int64_t> next = *cur;
    next[2] = want;
    if (next[1] > next[2]) next[1] = next[2];
    std::string note;
    NETAGENT_ASSIGN_OR_RETURN(std::string value,
                              CheckSysctlValue(*spec, st.value, JoinInts(next), true, &note));
    if (!note.empty()) warnings.push_back(note);
    // CheckSysctlValue keeps the arity of the current value: three integers.
    NETAGENT_ASSIGN_OR_RETURN(const std::vector<int64_t> planned, ParseInts(value, name));
    planned_max[name] = planned[2];
    Risk risk = spec->risk;
    if (planned[2] < (*cur)[2]) {
      warnings.push_back(absl::StrCat("lowers the max from ", Bytes((*cur)[2]),
                                      ": flows on longer or faster paths than this one get less"));
    }
    const size_t before = plan.changes.size();
    AddSysctl(plan, host, name, value,
              absl::StrCat("max = 2 x BDP (", basis, " = ", Bytes(bdp), "), min and default kept"),
              warnings);
    if (plan.changes.size() == before) {
      for (auto& w : warnings) plan.warnings.push_back(absl::StrCat(name, ": ", w));
    } else {
      plan.changes.back().risk = risk;
    }
  }
  for (const auto& [core, tcp] :
       {std::pair<const char*, const char*>{"net.core.rmem_max", "net.ipv4.tcp_rmem"},
        {"net.core.wmem_max", "net.ipv4.tcp_wmem"}}) {
    const SysctlState& st = Sysctl(host, core);
    auto cur = ParseInts(st.value, core);
    const uint64_t want = planned_max[tcp];
    if (st.exists && (!cur.ok() || static_cast<uint64_t>((*cur)[0]) >= want)) continue;
    std::string note;
    std::string value = absl::StrCat(want);
    if (st.exists && st.writable) {
      NETAGENT_ASSIGN_OR_RETURN(value,
                                CheckSysctlValue(*FindSysctl(core), st.value, value, true, &note));
    }
    AddSysctl(
        plan, host, core, value,
        absl::StrCat("raised to ", tcp, "'s max so SO_RCVBUF/SO_SNDBUF callers can reach it too"),
        note.empty() ? std::vector<std::string>{} : std::vector<std::string>{note});
  }
  if (Sysctl(host, "net.ipv4.tcp_moderate_rcvbuf").value == "0") {
    AddSysctl(plan, host, "net.ipv4.tcp_moderate_rcvbuf", "1",
              "receive autotuning grows buffers toward the new max only when it is on");
  }
  return plan;
}

absl::StatusOr<Plan> PlanCongestion(const CongestionIntent& in, const HostSnapshot& host) {
  Plan plan;
  const std::string& alg = in.algorithm;
  if (alg.empty()) return absl::InvalidArgumentError("congestion.algorithm: required");
  if (std::find(host.available_cc.begin(), host.available_cc.end(), alg) ==
      host.available_cc.end()) {
    return absl::InvalidArgumentError(absl::StrCat("congestion.algorithm: ", kernel::Quote(alg),
                                                   " is not available in this kernel (",
                                                   absl::StrJoin(host.available_cc, " "), ")"));
  }
  if (std::string refusal = CongestionRefusal(alg, host); !refusal.empty()) {
    plan.refusals.push_back(refusal);
  }
  std::vector<std::string> warnings;
  std::vector<std::string> others;
  for (const auto& [name, n] : host.congestion_in_use) {
    if (name != alg && n > 0) others.push_back(absl::StrCat(n, " on ", name));
  }
  if (!others.empty()) {
    warnings.push_back(absl::StrCat(
        "established connections keep their algorithm (", absl::StrJoin(others, ", "),
        "); model-based (bbr) and loss-based (cubic, reno) flows sharing a bottleneck do not "
        "share it fairly: bbr tends to take more with shallow buffers, less with deep ones"));
  }
  AddSysctl(plan, host, "net.ipv4.tcp_congestion_control", alg,
            "default congestion control for new connections", warnings);
  if (alg == "bbr") {
    const SysctlState& q = Sysctl(host, "net.core.default_qdisc");
    auto fq = host.qdiscs.find("fq");
    if (!q.exists) {
      plan.warnings.push_back(
          "net.core.default_qdisc is global and not visible in this namespace; bbr paces on its "
          "own (TCP internal pacing) where the device has no fq");
    } else if (fq == host.qdiscs.end() || !fq->second.ok()) {
      plan.warnings.push_back(absl::StrCat(
          "fq is not available in this kernel (",
          fq == host.qdiscs.end() ? "unknown" : std::string(fq->second.message()),
          "): default_qdisc left as ", q.value, "; bbr paces on its own (TCP internal pacing)"));
    } else {
      AddSysctl(plan, host, "net.core.default_qdisc", "fq",
                "bbr paces best through fq; applies to devices created or brought up afterwards");
    }
  }
  return plan;
}

absl::StatusOr<Plan> PlanRps(const RpsIntent& in, const HostSnapshot& host, bool clamp) {
  NETAGENT_ASSIGN_OR_RETURN(const collectors::QueueConfig* queues,
                            NeedQueues(host, "rps.device", in.device));
  Plan plan;
  std::vector<uint32_t> cpus;
  if (!in.disable) {
    NETAGENT_ASSIGN_OR_RETURN(cpus, ChooseCpus(host, in.cpus, "rps.cpus", clamp, plan));
  }
  const std::string mask = kernel::FormatCpuMask(cpus);
  const std::string why =
      in.disable ? "RPS off"
                 : absl::StrCat("spread receive processing over CPUs ", kernel::FormatCpuList(cpus),
                                in.cpus.empty() ? " (online, not isolated, device-local)" : "");
  for (const auto& q : queues->rx) {
    const std::string old = NormMask(q.rps_cpus);
    if (old == mask) continue;
    plan.changes.push_back(
        {QueueKey(in.device, QueueName("rx", q.id), "rps_cpus"), old, mask, why, Risk::kLow, {}});
  }
  if (!in.disable && queues->rx.size() >= cpus.size() && cpus.size() > 1) {
    plan.warnings.push_back(absl::StrCat(
        in.device, " has ", queues->rx.size(), " receive queues for ", cpus.size(),
        " CPUs: hardware RSS already spreads them; RPS adds inter-processor interrupts"));
  }
  return plan;
}

absl::StatusOr<Plan> PlanXps(const XpsIntent& in, const HostSnapshot& host, bool clamp) {
  NETAGENT_ASSIGN_OR_RETURN(const collectors::QueueConfig* queues,
                            NeedQueues(host, "xps.device", in.device));
  Plan plan;
  std::vector<uint32_t> cpus;
  if (!in.disable) {
    NETAGENT_ASSIGN_OR_RETURN(cpus, ChooseCpus(host, in.cpus, "xps.cpus", clamp, plan));
  }
  const auto spread = SpreadCpus(cpus, static_cast<uint32_t>(queues->tx.size()));
  for (size_t i = 0; i < queues->tx.size(); ++i) {
    const auto& q = queues->tx[i];
    if (q.xps_cpus.empty()) {
      plan.warnings.push_back(absl::StrCat(in.device, " tx-", q.id,
                                           ": no xps_cpus (the device has no transmit steering)"));
      continue;
    }
    const std::string mask =
        kernel::FormatCpuMask(in.disable ? std::vector<uint32_t>{} : spread[i]);
    const std::string old = NormMask(q.xps_cpus);
    if (old == mask) continue;
    plan.changes.push_back(
        {QueueKey(in.device, QueueName("tx", q.id), "xps_cpus"),
         old,
         mask,
         in.disable ? "XPS off"
                    : absl::StrCat("transmit from CPUs ", kernel::FormatCpuList(spread[i]),
                                   " on this queue (one queue per CPU group)"),
         Risk::kLow,
         {}});
  }
  return plan;
}

absl::StatusOr<Plan> PlanRfs(const RfsIntent& in, const HostSnapshot& host, bool clamp) {
  NETAGENT_ASSIGN_OR_RETURN(const collectors::QueueConfig* queues,
                            NeedQueues(host, "rfs.device", in.device));
  uint32_t entries = in.disable ? 0 : in.flow_entries;
  if (!in.disable) {
    const bool pow2 = entries != 0 && (entries & (entries - 1)) == 0;
    if (!pow2 || entries < 256 || entries > (1u << 26)) {
      if (!clamp || entries == 0) {
        return absl::InvalidArgumentError(
            "rfs.flow_entries: a power of two within 256 and 67108864");
      }
      entries = std::clamp<uint32_t>(FloorPow2(entries), 256, 1u << 26);
    }
  }
  Plan plan;
  AddSysctl(plan, host, "net.core.rps_sock_flow_entries", absl::StrCat(entries),
            in.disable ? "RFS off" : "global table of the CPUs flows were last used on");
  const uint32_t nq = std::max<uint32_t>(1, queues->rx.size());
  const uint32_t per_queue = in.disable ? 0 : FloorPow2(std::max<uint32_t>(1, entries / nq));
  bool rps_on = false;
  for (const auto& q : queues->rx) {
    if (NormMask(q.rps_cpus) != "0") rps_on = true;
    if (!q.rps_flow_cnt) {
      plan.warnings.push_back(
          absl::StrCat(in.device, " rx-", q.id, ": no rps_flow_cnt (kernel without RFS)"));
      continue;
    }
    if (*q.rps_flow_cnt == per_queue) continue;
    plan.changes.push_back(
        {QueueKey(in.device, QueueName("rx", q.id), "rps_flow_cnt"),
         absl::StrCat(*q.rps_flow_cnt),
         absl::StrCat(per_queue),
         in.disable ? "RFS off" : absl::StrCat("flow_entries / ", nq, " queues, a power of two"),
         Risk::kLow,
         {}});
  }
  if (!in.disable && !rps_on) {
    plan.warnings.push_back(absl::StrCat(
        "RPS is off on every queue of ", in.device,
        ": RFS steers only packets RPS handles (or the NIC's accelerated RFS); plan rps too"));
  }
  return plan;
}

absl::StatusOr<Plan> PlanChannels(const ChannelsIntent& in, const HostSnapshot& host, bool clamp) {
  NETAGENT_RETURN_IF_ERROR(NeedDevice(host, "channels.device", in.device));
  const auto& ch = host.device->channels;
  if (!ch.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(in.device, ": channels: ", ch.status.message()));
  }
  if (!in.combined && !in.rx && !in.tx && !in.other) {
    return absl::InvalidArgumentError("channels: give combined, rx, tx or other");
  }
  Plan plan;
  struct Kind {
    const char* name;
    std::optional<uint32_t> want, cur, max;
  };
  Kind kinds[] = {{"combined", in.combined, ch.value.combined, ch.value.combined_max},
                  {"rx", in.rx, ch.value.rx, ch.value.rx_max},
                  {"tx", in.tx, ch.value.tx, ch.value.tx_max},
                  {"other", in.other, ch.value.other, ch.value.other_max}};
  uint32_t after[4];
  for (int i = 0; i < 4; ++i) {
    Kind& k = kinds[i];
    after[i] = k.cur.value_or(0);
    if (!k.want) continue;
    if (!k.max || *k.max == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("channels.", k.name, ": ", in.device, " has no ", k.name, " channels"));
    }
    uint32_t v = *k.want;
    if (v > *k.max) {
      if (!clamp) {
        return absl::InvalidArgumentError(
            absl::StrCat("channels.", k.name, ": ", v, " is above the device's maximum ", *k.max));
      }
      plan.warnings.push_back(
          absl::StrCat("channels.", k.name, ": ", v, " clamped to the maximum ", *k.max));
      v = *k.max;
    }
    after[i] = v;
  }
  if (after[0] + after[1] == 0 || after[0] + after[2] == 0) {
    return absl::InvalidArgumentError(
        "channels: the device would have no receive or no transmit queue");
  }
  std::vector<std::string> what;
  for (int i = 0; i < 4; ++i) {
    if (after[i] != kinds[i].cur.value_or(0)) {
      what.push_back(absl::StrCat(kinds[i].name, " ", kinds[i].cur.value_or(0), " -> ", after[i],
                                  " (max ", kinds[i].max.value_or(0), ")"));
    }
  }
  if (!what.empty()) {
    collectors::Channels next;
    next.combined = after[0];
    next.rx = after[1];
    next.tx = after[2];
    next.other = after[3];
    plan.changes.push_back(
        {DeviceKey(in.device, "channels", "counts"),
         ChannelCounts(ch.value),
         ChannelCounts(next),
         absl::StrCat("channels (combined rx tx other): ", absl::StrJoin(what, ", ")),
         Risk::kMedium,
         {"the driver rebuilds its queues: a short interruption of traffic; settings of removed "
          "queues (RPS, XPS, RSS entries) go with them"}});
  }
  return plan;
}

absl::StatusOr<Plan> PlanRss(const RssIntent& in, const HostSnapshot& host) {
  NETAGENT_RETURN_IF_ERROR(NeedDevice(host, "rss.device", in.device));
  const DeviceState& dev = *host.device;
  if (!dev.rss.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(in.device, ": RSS: ", dev.rss.status.message()));
  }
  const auto& indir = dev.rss.value.indirection;
  if (indir.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(in.device, ": RSS: no indirection table"));
  }
  uint32_t rx = 0;
  if (dev.channels.ok()) {
    rx = dev.channels.value.combined.value_or(0) + dev.channels.value.rx.value_or(0);
  }
  if (rx == 0) rx = *std::max_element(indir.begin(), indir.end()) + 1;
  const uint32_t queues = in.queues ? in.queues : rx;
  if (queues > rx) {
    return absl::InvalidArgumentError(absl::StrCat("rss.queues: ", queues, " is above the ", rx,
                                                   " receive channels of ", in.device));
  }
  if (!in.weights.empty()) {
    if (in.weights.size() != queues) {
      return absl::InvalidArgumentError(
          absl::StrCat("rss.weights: ", in.weights.size(), " weights for ", queues, " queues"));
    }
    uint64_t sum = 0;
    for (uint32_t w : in.weights) {
      if (w > 255) return absl::InvalidArgumentError("rss.weights: each at most 255");
      sum += w;
    }
    if (sum == 0) return absl::InvalidArgumentError("rss.weights: all zero");
  }
  const auto table = SpreadIndirection(static_cast<uint32_t>(indir.size()), queues, in.weights);
  Plan plan;
  std::vector<int64_t> cur(indir.begin(), indir.end()), next(table.begin(), table.end());
  if (cur != next) {
    plan.changes.push_back({DeviceKey(in.device, "rss", "indir"),
                            JoinInts(cur),
                            JoinInts(next),
                            in.weights.empty()
                                ? absl::StrCat("spread evenly over ", queues, " queues")
                                : absl::StrCat("spread over ", queues, " queues by weights ",
                                               absl::StrJoin(in.weights, ",")),
                            Risk::kMedium,
                            {"flows move between queues (and CPUs) once: a brief reordering"}});
  }
  return plan;
}

absl::StatusOr<Plan> PlanIrqAffinity(const IrqAffinityIntent& in, const HostSnapshot& host) {
  NETAGENT_RETURN_IF_ERROR(NeedDevice(host, "irq.device", in.device));
  const DeviceState& dev = *host.device;
  if (!dev.irqs_status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(in.device, ": IRQs: ", dev.irqs_status.message()));
  }
  if (dev.irqs.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(in.device, ": no IRQs"));
  }
  Plan plan;
  NETAGENT_ASSIGN_OR_RETURN(auto cpus, ChooseCpus(host, in.cpus, "irq.cpus", false, plan));
  for (size_t i = 0; i < dev.irqs.size(); ++i) {
    const auto& irq = dev.irqs[i];
    const std::string want = kernel::FormatCpuList({cpus[i % cpus.size()]});
    auto cur = kernel::ParseCpuList(irq.affinity_list);
    const std::string old = cur.ok() ? kernel::FormatCpuList(*cur) : irq.affinity_list;
    if (old == want) continue;
    plan.changes.push_back({IrqKey(irq.irq),
                            old,
                            want,
                            absl::StrCat(irq.name.empty() ? "IRQ" : irq.name,
                                         ": one CPU per queue interrupt, round robin"),
                            Risk::kLow,
                            {}});
  }
  if (!plan.changes.empty()) {
    plan.warnings.push_back(
        "an IRQ whose affinity the kernel manages refuses changes (EIO): the apply then fails "
        "and restores everything; irqbalance, if running, may move IRQs again (reported as drift)");
  }
  return plan;
}

absl::StatusOr<Plan> PlanCoalesce(const CoalesceIntent& in, const HostSnapshot& host, bool clamp) {
  NETAGENT_RETURN_IF_ERROR(NeedDevice(host, "coalesce.device", in.device));
  const auto& co = host.device->coalesce;
  if (!co.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(in.device, ": coalescing: ", co.status.message()));
  }
  std::vector<std::pair<std::string, uint64_t>> want;
  if (in.profile == "latency") {
    want = {{"adaptive-rx", 0}, {"adaptive-tx", 0}, {"rx-usecs", 0},
            {"rx-frames", 1},   {"tx-usecs", 0},    {"tx-frames", 1}};
  } else if (in.profile == "throughput") {
    bool adaptive = false;
    for (const auto& [n, v] : co.value) adaptive |= n == "adaptive-rx";
    if (adaptive) {
      want = {{"adaptive-rx", 1}, {"adaptive-tx", 1}};
    } else {
      want = {{"rx-usecs", 100}, {"rx-frames", 128}, {"tx-usecs", 100}, {"tx-frames", 128}};
    }
  } else if (!in.profile.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("coalesce.profile: ", kernel::Quote(in.profile), " (latency or throughput)"));
  }
  std::set<std::string> seen;
  for (const auto& [name, value] : in.values) {
    if (!collectors::CoalesceAttr(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("coalesce.values: unknown parameter ", kernel::Quote(name)));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("coalesce.values: ", kernel::Quote(name), " given twice"));
    }
    std::erase_if(want, [&](const auto& p) { return p.first == name; });
    want.emplace_back(name, value);
  }
  if (want.empty()) return absl::InvalidArgumentError("coalesce: give a profile or values");
  Plan plan;
  std::vector<std::string> unsupported;
  for (auto [name, value] : want) {
    const uint16_t attr = *collectors::CoalesceAttr(name);  // known: a profile's, or checked above
    const uint64_t ceiling = collectors::CoalesceAttrIsFlag(attr) ? 1
                             : absl::StrContains(name, "usecs")   ? 100000
                             : absl::StrContains(name, "frames")  ? 65535
                                                                  : 0xffffffffull;
    if (value > ceiling) {
      if (!clamp) {
        return absl::InvalidArgumentError(
            absl::StrCat("coalesce.values: ", name, "=", value, " is above the ceiling ", ceiling));
      }
      plan.warnings.push_back(absl::StrCat(name, "=", value, " clamped to the ceiling ", ceiling));
      value = ceiling;
    }
    auto cur = std::find_if(co.value.begin(), co.value.end(),
                            [&](const auto& p) { return p.first == name; });
    if (cur == co.value.end()) {
      unsupported.push_back(name);
      continue;
    }
    if (cur->second == value) continue;
    plan.changes.push_back({DeviceKey(in.device, "coalesce", name),
                            absl::StrCat(cur->second),
                            absl::StrCat(value),
                            in.profile.empty() ? "requested" : absl::StrCat(in.profile, " profile"),
                            Risk::kLow,
                            {}});
  }
  if (!unsupported.empty()) {
    plan.warnings.push_back(absl::StrCat("not supported by the driver of ", in.device,
                                         ", left alone: ", absl::StrJoin(unsupported, ", ")));
  }
  return plan;
}

absl::StatusOr<Plan> PlanSettings(const Settings& settings, const HostSnapshot& host, bool clamp,
                                  absl::string_view field, absl::string_view only_group) {
  if (settings.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": no settings"));
  Plan plan;
  std::set<std::string> seen, named;
  for (const auto& [name, value] : settings) {
    if (const SysctlSpec* spec = FindSysctl(name)) named.insert(spec->name);
  }
  for (const auto& [name, value] : settings) {
    const SysctlSpec* spec = FindSysctl(name);
    if (spec == nullptr) {
      std::vector<std::string> names;
      for (const auto& s : SysctlRegistry()) {
        if (only_group.empty() || only_group == s.group) names.push_back(s.name);
      }
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", kernel::Quote(name),
                                                     " is not a knob the agent manages (",
                                                     absl::StrJoin(names, " "), ")"));
    }
    if (!only_group.empty() && only_group != spec->group) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", spec->name, " is not a limit; use the sysctl intent"));
    }
    if (!seen.insert(spec->name).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", spec->name, " given twice"));
    }
    const SysctlState& st = Sysctl(host, spec->name);
    if (!st.exists || !st.writable) {
      // Planned anyway, so the plan says what an apply would meet.
      plan.refusals.push_back(absl::StrCat(spec->name, " ", NotWritable(st)));
      continue;
    }
    std::string note;
    NETAGENT_ASSIGN_OR_RETURN(std::string v,
                              CheckSysctlValue(*spec, st.value, value, clamp, &note));
    if (spec->kind == ValueKind::kWord) {
      if (std::string(spec->name) == "net.ipv4.tcp_congestion_control" &&
          std::find(host.available_cc.begin(), host.available_cc.end(), v) ==
              host.available_cc.end()) {
        return absl::InvalidArgumentError(absl::StrCat(spec->name, ": ", kernel::Quote(v),
                                                       " is not available (",
                                                       absl::StrJoin(host.available_cc, " "), ")"));
      }
      if (std::string(spec->name) == "net.ipv4.tcp_congestion_control") {
        if (std::string refusal = CongestionRefusal(v, host); !refusal.empty())
          plan.refusals.push_back(refusal);
      }
      if (std::string(spec->name) == "net.core.default_qdisc") {
        auto q = host.qdiscs.find(v);
        if (q == host.qdiscs.end() || !q->second.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              spec->name, ": ", kernel::Quote(v), " is not available in this kernel",
              q == host.qdiscs.end() ? "" : absl::StrCat(" (", q->second.message(), ")")));
        }
      }
    }
    std::vector<std::string> warnings;
    if (!note.empty()) warnings.push_back(note);
    if (spec->risk == Risk::kHigh) warnings.push_back(spec->help);
    const std::string sname = spec->name;
    if (sname == "net.ipv4.tcp_rmem" || sname == "net.ipv4.tcp_wmem") {
      // The BDP rule holds here too: the max never goes below the kernel default.
      auto want = ParseInts(v, sname);
      auto def = host.defaults.count(sname)
                     ? ParseInts(host.defaults.at(sname), sname)
                     : absl::StatusOr<std::vector<int64_t>>(absl::NotFoundError(""));
      if (want.ok() && def.ok() && want->size() == 3 && def->size() == 3 &&
          (*want)[2] < (*def)[2]) {
        return absl::InvalidArgumentError(absl::StrCat(
            sname, ": max ", (*want)[2], " is below the kernel default max ", (*def)[2]));
      }
    }
    if (sname == "net.core.rmem_max" || sname == "net.core.wmem_max") {
      const char* tcp = sname == "net.core.rmem_max" ? "net.ipv4.tcp_rmem" : "net.ipv4.tcp_wmem";
      auto t = ParseInts(Sysctl(host, tcp).value, tcp);
      auto want = ParseInts(v, sname);
      if (t.ok() && want.ok() && t->size() == 3 && (*want)[0] < (*t)[2]) {
        warnings.push_back(absl::StrCat("below ", tcp, "'s max ", (*t)[2],
                                        ": applications asking for large buffers get less than "
                                        "autotuning gives others"));
      }
    }
    const size_t before = plan.changes.size();
    AddSysctl(plan, host, spec->name, v, absl::StrCat("requested: ", spec->help), warnings);
    if (plan.changes.size() == before && !note.empty()) plan.warnings.push_back(note);
    if (std::string(spec->name) == "net.netfilter.nf_conntrack_max" &&
        named.count("net.netfilter.nf_conntrack_buckets") == 0) {
      const SysctlState& b = Sysctl(host, "net.netfilter.nf_conntrack_buckets");
      auto max = ParseInts(v, spec->name);
      auto buckets = ParseInts(b.value, "buckets");
      if (max.ok() && buckets.ok() && (*buckets)[0] < (*max)[0] / 4) {
        const int64_t want = std::max<int64_t>((*max)[0] / 4, 1024);
        if (b.writable) {
          std::string bnote;
          auto bv = CheckSysctlValue(*FindSysctl("net.netfilter.nf_conntrack_buckets"), b.value,
                                     absl::StrCat(want), true, &bnote);
          if (bv.ok()) {
            AddSysctl(plan, host, "net.netfilter.nf_conntrack_buckets", *bv,
                      "keeps chains short: max / 4 entries per bucket, the kernel's own ratio",
                      bnote.empty() ? std::vector<std::string>{} : std::vector<std::string>{bnote});
          }
        } else {
          plan.warnings.push_back(
              absl::StrCat("nf_conntrack_buckets (", b.value, ") would be ", want,
                           " for max / 4; it stays, so chains get longer: it ", NotWritable(b)));
        }
      }
    }
  }
  return plan;
}

absl::StatusOr<Plan> PlanDatapathBlock(const DatapathBlockIntent& in, const HostSnapshot& host) {
  constexpr size_t kMaxPrefixes = 256;
  if (in.prefixes.empty()) {
    return absl::InvalidArgumentError("intent.datapath_block.prefixes: at least one prefix");
  }
  if (in.prefixes.size() > kMaxPrefixes) {
    return absl::InvalidArgumentError(
        absl::StrCat("intent.datapath_block.prefixes: ", in.prefixes.size(), " prefixes; at most ",
                     kMaxPrefixes));
  }
  const DatapathState* dp = host.datapath ? &*host.datapath : nullptr;
  std::vector<collectors::Prefix> allowed;
  if (dp) {
    for (const auto& a : dp->allowed) {
      if (auto p = collectors::ParsePrefix(a, "allow"); p.ok()) allowed.push_back(*p);
    }
  }
  Plan plan;
  std::set<std::string> seen;
  for (size_t i = 0; i < in.prefixes.size(); ++i) {
    const std::string field = absl::StrCat("intent.datapath_block.prefixes[", i, "]");
    NETAGENT_ASSIGN_OR_RETURN(std::string prefix, CanonicalPrefix(in.prefixes[i], field));
    if (!seen.insert(prefix).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", prefix, " is given twice"));
    }
    const collectors::Prefix p = *collectors::ParsePrefix(prefix, field);
    const bool v4 = p.address.family == AF_INET;
    if (p.length == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", prefix, " is every address: a block would cut the host off"));
    }
    if (dp) {
      if (auto it = dp->operator_blocked.find(prefix); it != dp->operator_blocked.end()) {
        plan.warnings.push_back(
            in.remove ? absl::StrCat(prefix, " is blocked by an operator's rule ", it->second,
                                     ", not by a tuning change: left as it is (netctl datapath "
                                     "rules del ",
                                     in.device, " ", it->second, " removes it)")
                      : absl::StrCat(prefix, " is already blocked by an operator's rule ",
                                     it->second, ": left as it is"));
        continue;
      }
    }
    const std::string now = dp && dp->blocked.count(prefix) ? kBlockOn : kBlockOff;
    const std::string want = in.remove ? kBlockOff : kBlockOn;
    if (now == want) continue;
    Change c;
    c.knob = DatapathBlockKey(in.device, prefix);
    c.old_value = now;
    c.new_value = want;
    if (in.remove) {
      c.reason = absl::StrCat("lift the fast path's block of ", prefix, " on ", in.device);
      c.risk = Risk::kLow;
    } else {
      c.reason = absl::StrCat("drop every packet from ", prefix, " in the fast path on ", in.device,
                              ", before the network stack");
      c.risk = Risk::kMedium;
      // Shorter than a /16 (IPv4) or a /32 (IPv6): whole providers.
      if (p.length < (v4 ? 16 : 32)) {
        c.risk = Risk::kHigh;
        c.warnings.push_back(absl::StrCat(
            prefix, " is a wide prefix: ",
            v4 ? absl::StrCat(uint64_t{1} << (32 - p.length)) : std::string("billions of"),
            " addresses lose every connection to this host"));
      }
      for (const auto& a : allowed) {
        if (a.address.family == p.address.family &&
            (a.Contains(p.address) || p.Contains(a.address))) {
          c.warnings.push_back(
              absl::StrCat("an allow rule covers part or all of ", prefix,
                           " and allow rules are checked first: what it covers stays allowed"));
          break;
        }
      }
    }
    plan.changes.push_back(std::move(c));
  }
  if (!plan.changes.empty() && (dp == nullptr || !dp->unavailable.empty())) {
    plan.refusals.push_back(dp == nullptr
                                ? absl::StrCat("the fast path's rules on ", in.device,
                                               " cannot be read here (only the agent writes them)")
                                : dp->unavailable);
  }
  return plan;
}

namespace {

absl::StatusOr<Plan> PlanByKind(const Intent& intent, const HostSnapshot& host) {
  const bool clamp = intent.clamp;
  return std::visit(
      [&](const auto& in) -> absl::StatusOr<Plan> {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, BdpIntent>) return PlanBdp(in, host);
        if constexpr (std::is_same_v<T, CongestionIntent>) return PlanCongestion(in, host);
        if constexpr (std::is_same_v<T, RpsIntent>) return PlanRps(in, host, clamp);
        if constexpr (std::is_same_v<T, XpsIntent>) return PlanXps(in, host, clamp);
        if constexpr (std::is_same_v<T, RfsIntent>) return PlanRfs(in, host, clamp);
        if constexpr (std::is_same_v<T, ChannelsIntent>) return PlanChannels(in, host, clamp);
        if constexpr (std::is_same_v<T, RssIntent>) return PlanRss(in, host);
        if constexpr (std::is_same_v<T, IrqAffinityIntent>) return PlanIrqAffinity(in, host);
        if constexpr (std::is_same_v<T, CoalesceIntent>) return PlanCoalesce(in, host, clamp);
        if constexpr (std::is_same_v<T, LimitsIntent>) {
          return PlanSettings(in.settings, host, clamp, "limits", "limits");
        }
        if constexpr (std::is_same_v<T, SysctlIntent>) {
          return PlanSettings(in.settings, host, clamp, "sysctl", "");
        }
        if constexpr (std::is_same_v<T, DatapathBlockIntent>) return PlanDatapathBlock(in, host);
      },
      intent.what);
}

// Changes to queue files or IRQ affinity on a read-only mount (a container's
// /sys or /proc/irq) become refusals: planned as an apply would meet them.
void RefuseReadOnlyFiles(const HostSnapshot& host, Plan& plan) {
  std::vector<Change> kept;
  for (Change& c : plan.changes) {
    auto key = ParseKnobKey(c.knob);
    const std::string* why = nullptr;
    if (key.ok() && key->type == KnobType::kQueue && !host.queues_read_only.empty()) {
      why = &host.queues_read_only;
    } else if (key.ok() && key->type == KnobType::kIrq && !host.irq_read_only.empty()) {
      why = &host.irq_read_only;
    }
    if (why != nullptr) {
      plan.refusals.push_back(absl::StrCat(c.knob, " is ", *why));
    } else {
      kept.push_back(std::move(c));
    }
  }
  plan.changes = std::move(kept);
}

}  // namespace

absl::StatusOr<Plan> PlanIntent(const Intent& intent, const HostSnapshot& host) {
  NETAGENT_ASSIGN_OR_RETURN(Plan plan, PlanByKind(intent, host));
  RefuseReadOnlyFiles(host, plan);
  return plan;
}

}  // namespace netagent::tuners
