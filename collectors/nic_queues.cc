#include "collectors/nic_queues.h"

#include <dirent.h>
#include <linux/genetlink.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/genl.h"
#include "kernel/netlink.h"
#include "re2/re2.h"

namespace netagent::collectors {
namespace {

// NETDEV_A_QSTATS_* (6.9+): ids 8..34 are counters.
constexpr uint8_t kCmdQstatsGet = 12;
constexpr uint16_t kQstatsIfindex = 1, kQstatsQueueType = 2, kQstatsQueueId = 3, kQstatsScope = 4;
constexpr uint16_t kQstatsFirstCounter = 8;
constexpr std::array<const char*, 27> kQstatsNames = {"rx-packets",
                                                      "rx-bytes",
                                                      "tx-packets",
                                                      "tx-bytes",
                                                      "rx-alloc-fail",
                                                      "rx-hw-drops",
                                                      "rx-hw-drop-overruns",
                                                      "rx-csum-complete",
                                                      "rx-csum-unnecessary",
                                                      "rx-csum-none",
                                                      "rx-csum-bad",
                                                      "rx-hw-gro-packets",
                                                      "rx-hw-gro-bytes",
                                                      "rx-hw-gro-wire-packets",
                                                      "rx-hw-gro-wire-bytes",
                                                      "rx-hw-drop-ratelimits",
                                                      "tx-hw-drops",
                                                      "tx-hw-drop-errors",
                                                      "tx-csum-none",
                                                      "tx-needs-csum",
                                                      "tx-hw-gso-packets",
                                                      "tx-hw-gso-bytes",
                                                      "tx-hw-gso-wire-packets",
                                                      "tx-hw-gso-wire-bytes",
                                                      "tx-hw-drop-ratelimits",
                                                      "tx-stop",
                                                      "tx-wake"};

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

std::string ReadOr(const std::string& path) {
  auto v = kernel::ReadLine(path);
  return v.ok() ? *v : "";
}

std::optional<uint32_t> ReadU32(const std::string& path) {
  auto v = kernel::ReadLine(path);
  uint32_t n;
  if (v.ok() && absl::SimpleAtoi(*v, &n)) return n;
  return std::nullopt;
}

// The last component of a sysfs symlink ("virtio-pci" for .../drivers/virtio-pci).
std::string LinkName(const std::string& path) {
  char buf[4096];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  absl::string_view target(buf, static_cast<size_t>(n));
  const size_t slash = target.rfind('/');
  return std::string(slash == absl::string_view::npos ? target : target.substr(slash + 1));
}

// A device on the virtio bus whose parent runs a virtio transport driver
// (virtio-pci, virtio-mmio).
bool IsVirtioDevice(const std::string& device) {
  return LinkName(device + "/subsystem") == "virtio" &&
         absl::StartsWith(LinkName(device + "/../driver"), "virtio");
}

}  // namespace

bool ActionsNameDevice(absl::string_view actions, absl::string_view dev) {
  if (dev.empty()) return false;
  for (absl::string_view name :
       absl::StrSplit(actions, absl::ByAnyChar(", \t"), absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&name, dev)) continue;
    if (name.empty() || name[0] == '-' || name[0] == ':') return true;
  }
  return false;
}

absl::StatusOr<QueueConfig> ReadQueueConfig(const std::string& dev, const std::string& sysfs_root) {
  const std::string base = absl::StrCat(sysfs_root, "/class/net/", dev, "/queues");
  struct stat st;
  if (::stat(base.c_str(), &st) != 0) return kernel::LastErrnoStatus(absl::StrCat("read ", base));
  QueueConfig q;
  for (const std::string& name : ListDir(base)) {
    absl::string_view v = name;
    uint32_t id;
    const std::string dir = absl::StrCat(base, "/", name);
    if (absl::ConsumePrefix(&v, "rx-") && absl::SimpleAtoi(v, &id)) {
      q.rx.push_back({id, ReadOr(dir + "/rps_cpus"), ReadU32(dir + "/rps_flow_cnt")});
    } else if (absl::ConsumePrefix(&v, "tx-") && absl::SimpleAtoi(v, &id)) {
      q.tx.push_back(
          {id, ReadOr(dir + "/xps_cpus"), ReadOr(dir + "/xps_rxqs"), ReadU32(dir + "/tx_maxrate")});
    }
  }
  std::sort(q.rx.begin(), q.rx.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::sort(q.tx.begin(), q.tx.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return q;
}

absl::StatusOr<QueueStats> ParseQueueStats(const nlmsghdr& nlh) {
  QueueStats q;
  bool typed = false;
  kernel::ForEachAttr(nlh, GENL_HDRLEN, [&](const nlattr& a) {
    const uint16_t type = a.nla_type & NLA_TYPE_MASK;
    const std::optional<uint64_t> value = kernel::ScalarValue(a);
    if (!value) return;
    const uint64_t v = *value;
    if (type == kQstatsQueueType) {
      q.type = v == 0 ? "rx" : "tx";
      typed = true;
    } else if (type == kQstatsQueueId) {
      q.id = static_cast<uint32_t>(v);
    } else if (type >= kQstatsFirstCounter) {
      const size_t i = type - kQstatsFirstCounter;
      q.values.emplace_back(i < kQstatsNames.size() ? kQstatsNames[i] : absl::StrCat("attr-", type),
                            v);
    }
  });
  if (!typed) return absl::DataLossError("netdev qstats: reply without a queue type");
  return q;
}

absl::StatusOr<std::vector<QueueStats>> GetQueueStats(uint32_t ifindex) {
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_GENERIC));
  auto family = kernel::ResolveGenlFamily(sock, "netdev");
  if (!family.ok()) {
    return absl::UnimplementedError(
        absl::StrCat("no netdev netlink family (kernel 6.3+): ", family.status().message()));
  }
  if (!family->HasOp(kCmdQstatsGet)) {
    return absl::UnimplementedError("the netdev family has no qstats-get (kernel 6.9+)");
  }
  kernel::NetlinkMessage req(family->id, NLM_F_DUMP);
  auto* g = req.PutHeader<genlmsghdr>();
  g->cmd = kCmdQstatsGet;
  g->version = 1;
  req.PutU32(kQstatsIfindex, ifindex);
  req.PutU32(kQstatsScope, 1);  // per queue
  std::vector<QueueStats> out;
  NETAGENT_RETURN_IF_ERROR(sock.Request(req, "netdev qstats-get", [&](const nlmsghdr& m) {
    NETAGENT_ASSIGN_OR_RETURN(QueueStats q, ParseQueueStats(m));
    out.push_back(std::move(q));
    return absl::OkStatus();
  }));
  if (out.empty()) return absl::UnimplementedError("the driver reports no per-queue statistics");
  return out;
}

std::map<uint32_t, InterruptLine> ParseInterrupts(absl::string_view text) {
  std::map<uint32_t, InterruptLine> out;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.empty()) return out;
  const size_t cpus =
      std::vector<absl::string_view>(absl::StrSplit(lines[0], ' ', absl::SkipEmpty())).size();
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<absl::string_view> w =
        absl::StrSplit(lines[i], absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (w.empty()) continue;
    absl::string_view irq_text = w[0];
    uint32_t irq;
    if (!absl::ConsumeSuffix(&irq_text, ":") || !absl::SimpleAtoi(irq_text, &irq)) continue;
    InterruptLine line;
    size_t k = 1;
    for (; k <= cpus && k < w.size(); ++k) {
      uint64_t c;
      if (!absl::SimpleAtoi(w[k], &c)) break;
      line.count += c;
    }
    // Then the controller, the hardware IRQ and trigger, and the action names.
    if (k + 2 < w.size()) {
      line.name = absl::StrJoin(w.begin() + static_cast<long>(k + 2), w.end(), " ");
    }
    out[irq] = std::move(line);
  }
  return out;
}

absl::StatusOr<std::vector<IrqInfo>> ReadDeviceIrqs(const std::string& dev,
                                                    const std::string& sysfs_root,
                                                    const std::string& proc_root) {
  const std::string device = absl::StrCat(sysfs_root, "/class/net/", dev, "/device");
  struct stat st;
  if (::stat(device.c_str(), &st) != 0) {
    return absl::UnimplementedError(
        absl::StrCat(dev, " is a virtual device: it has no interrupts of its own"));
  }
  std::set<uint32_t> irqs;
  std::vector<std::string> msi = ListDir(device + "/msi_irqs");
  // A virtio device's interrupts are its transport's (virtio-pci's MSI-X):
  // the parent's list, for virtio only. Another parent's (the PCI function
  // of a subfunction, say) are not this device's.
  if (msi.empty() && IsVirtioDevice(device)) msi = ListDir(device + "/../msi_irqs");
  for (const std::string& m : msi) {
    uint32_t n;
    if (absl::SimpleAtoi(m, &n)) irqs.insert(n);
  }
  const auto lines = ParseInterrupts(kernel::ReadFile(proc_root + "/interrupts").value_or(""));
  for (const auto& [irq, line] : lines) {
    if (ActionsNameDevice(line.name, dev)) irqs.insert(irq);
  }
  std::vector<IrqInfo> out;
  for (uint32_t irq : irqs) {
    IrqInfo info;
    info.irq = irq;
    if (auto it = lines.find(irq); it != lines.end()) {
      info.name = it->second.name;
      info.count = it->second.count;
    }
    const std::string dir = absl::StrCat(proc_root, "/irq/", irq);
    info.affinity_list = ReadOr(dir + "/smp_affinity_list");
    info.effective_affinity_list = ReadOr(dir + "/effective_affinity_list");
    out.push_back(std::move(info));
  }
  return out;
}

namespace {

RxQueueCounters& QueueOf(std::map<uint32_t, RxQueueCounters>& by_queue, uint32_t id) {
  RxQueueCounters& q = by_queue[id];
  q.queue = id;
  return q;
}

std::vector<RxQueueCounters> Values(std::map<uint32_t, RxQueueCounters>& by_queue) {
  std::vector<RxQueueCounters> out;
  for (auto& [id, q] : by_queue) out.push_back(std::move(q));
  return out;
}

void AddTo(std::optional<uint64_t>& total, std::string& from, uint64_t v, absl::string_view what) {
  total = total.value_or(0) + v;
  if (!from.empty()) from += " + ";
  from += std::string(what);
}

}  // namespace

std::vector<RxQueueCounters> RxQueuesFromQstats(const std::vector<QueueStats>& queues) {
  std::map<uint32_t, RxQueueCounters> by_queue;
  for (const QueueStats& q : queues) {
    if (q.type != "rx") continue;
    RxQueueCounters& r = QueueOf(by_queue, q.id);
    for (const auto& [name, value] : q.values) {
      if (name == "rx-packets") {
        AddTo(r.packets, r.packets_from, value, "qstats rx-packets");
      } else if (name == "rx-hw-drops" || name == "rx-hw-drop-overruns") {
        AddTo(r.drops, r.drops_from, value, "qstats " + name);
      }
    }
  }
  return Values(by_queue);
}

std::vector<RxQueueCounters> RxQueuesFromDriverStats(const NamedValues& stats) {
  // The queue's number and the field, by the naming schemes of the common
  // drivers: ixgbe, igb, ice, veth (rx_queue_N_x), i40e (rx-N.x), mlx5 and
  // virtio_net (rxN_x), ena (queue_N_rx_x), bnxt ("[N]: rx_x").
  static const RE2* const kSchemes[] = {new RE2(R"(rx_queue_(\d+)_(\w+))"),
                                        new RE2(R"(rx-(\d+)\.(\w+))"), new RE2(R"(rx(\d+)_(\w+))"),
                                        new RE2(R"(queue_(\d+)_rx_(\w+))"),
                                        new RE2(R"(\[(\d+)\]: rx_(\w+))")};
  std::map<uint32_t, RxQueueCounters> by_queue;
  // Per queue, the plain packet count if there is one, else unicast +
  // multicast + broadcast (bnxt counts them apart).
  std::map<uint32_t, bool> plain;
  for (const auto& [name, value] : stats) {
    uint32_t id = 0;
    std::string field;
    bool matched = false;
    for (const RE2* scheme : kSchemes) {
      if (RE2::FullMatch(name, *scheme, &id, &field)) {
        matched = true;
        break;
      }
    }
    if (!matched) continue;
    const std::string what = "driver " + name;
    if (field == "packets" || field == "cnt") {
      RxQueueCounters& r = QueueOf(by_queue, id);
      r.packets = value;
      r.packets_from = what;
      plain[id] = true;
    } else if ((field == "ucast_packets" || field == "mcast_packets" || field == "bcast_packets") &&
               !plain[id]) {
      RxQueueCounters& r = QueueOf(by_queue, id);
      AddTo(r.packets, r.packets_from, value, what);
    } else if (field == "drops" || field == "dropped" || field == "discards") {
      RxQueueCounters& r = QueueOf(by_queue, id);
      AddTo(r.drops, r.drops_from, value, what);
    }
  }
  return Values(by_queue);
}

std::vector<RxQueueCounters> MergeRxQueues(std::vector<RxQueueCounters> qstats,
                                           const std::vector<RxQueueCounters>& driver) {
  std::map<uint32_t, RxQueueCounters> by_queue;
  for (auto& q : qstats) by_queue[q.queue] = std::move(q);
  for (const RxQueueCounters& d : driver) {
    RxQueueCounters& r = QueueOf(by_queue, d.queue);
    if (!r.packets && d.packets) {
      r.packets = d.packets;
      r.packets_from = d.packets_from;
    }
    if (!r.drops && d.drops) {
      r.drops = d.drops;
      r.drops_from = d.drops_from;
    }
  }
  return Values(by_queue);
}

}  // namespace netagent::collectors
