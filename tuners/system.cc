#include "tuners/system.h"

#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "collectors/links.h"
#include "collectors/sockets.h"
#include "kernel/cpus.h"
#include "kernel/errors.h"
#include "kernel/fd.h"
#include "kernel/files.h"
#include "kernel/netns.h"
#include "kernel/probe.h"
#include "kernel/sysctl.h"

namespace netagent::tuners {
namespace {

// RSS_SET (6.16) and its attributes, newer than Debian 12's UAPI headers.
constexpr uint8_t kMsgRssSet = 48;
constexpr uint16_t kRssIndir = 4;

std::string QueuePath(const SystemPaths& p, const KnobKey& k) {
  return absl::StrCat(p.sysfs, "/class/net/", k.device, "/queues/", k.path);
}

// Channel counts as one value, so a change between combined and separate
// rx/tx queues is one CHANNELS_SET (the kernel refuses the states between).
constexpr uint16_t kChannelAttrs[4] = {ETHTOOL_A_CHANNELS_COMBINED_COUNT,
                                       ETHTOOL_A_CHANNELS_RX_COUNT, ETHTOOL_A_CHANNELS_TX_COUNT,
                                       ETHTOOL_A_CHANNELS_OTHER_COUNT};

absl::Status SetIndirectionIoctl(const std::string& dev, const std::vector<uint32_t>& table) {
  kernel::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return kernel::LastErrnoStatus("socket for SIOCETHTOOL");
  std::vector<uint32_t> buf(sizeof(ethtool_rxfh_indir) / 4 + table.size());
  auto* indir = reinterpret_cast<ethtool_rxfh_indir*>(buf.data());
  indir->cmd = ETHTOOL_SRXFHINDIR;
  indir->size = static_cast<uint32_t>(table.size());
  std::memcpy(indir->ring_index, table.data(), table.size() * 4);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(indir);
  if (::ioctl(fd.get(), SIOCETHTOOL, &ifr) < 0) {
    return kernel::LastErrnoStatus(absl::StrCat("SIOCETHTOOL SRXFHINDIR ", dev));
  }
  return absl::OkStatus();
}

int32_t ReadNumaNode(const SystemPaths& p, const std::string& dev) {
  auto v = kernel::ReadLine(absl::StrCat(p.sysfs, "/class/net/", dev, "/device/numa_node"));
  int32_t n = -1;
  if (v.ok() && absl::SimpleAtoi(*v, &n)) return n;
  return -1;
}

// Read once (kallsyms is slow to read): the first snapshot pays, or
// WarmSnapshotCaches at start.
const std::map<std::string, absl::Status>& Qdiscs() {
  static std::map<std::string, absl::Status>* q = [] {
    auto* m = new std::map<std::string, absl::Status>();
    for (const auto& [kind, c] : kernel::ProbeQdiscs(
             {"pfifo_fast", "fq", "fq_codel", "cake", "sfq", "fq_pie", "pfifo", "bfifo"})) {
      (*m)[kind] = c.available ? absl::OkStatus() : absl::UnavailableError(c.reason);
    }
    return m;
  }();
  return *q;
}

// The fast path's rules belong to the agent's datapath manager, which the
// agent puts in front of these knobs (tuners/ does not reach it).
absl::Status NotHere(const std::string& key) {
  return absl::UnimplementedError(
      absl::StrCat(key, ": the fast path's rules are read and written by the agent"));
}

}  // namespace

void WarmSnapshotCaches() { (void)Qdiscs(); }

absl::StatusOr<std::string> SystemKnobs::Read(const std::string& key) {
  NETAGENT_ASSIGN_OR_RETURN(KnobKey k, ParseKnobKey(key));
  switch (k.type) {
    case KnobType::kSysctl: {
      NETAGENT_ASSIGN_OR_RETURN(std::string v, kernel::ReadSysctl(k.path));
      return Normalize(key, v);
    }
    case KnobType::kQueue: {
      NETAGENT_ASSIGN_OR_RETURN(std::string v, kernel::ReadLine(QueuePath(paths_, k)));
      return Normalize(key, v);
    }
    case KnobType::kIrq: {
      NETAGENT_ASSIGN_OR_RETURN(std::string v, kernel::ReadLine(absl::StrCat(
                                                   paths_.irq, "/", k.path, "/smp_affinity_list")));
      return Normalize(key, v);
    }
    case KnobType::kDatapathBlock:
      return NotHere(key);
    default:
      break;
  }
  NETAGENT_ASSIGN_OR_RETURN(auto ethtool, collectors::EthtoolClient::Open());
  if (k.type == KnobType::kChannels) {
    auto ch = ethtool.GetChannels(k.device);
    if (!ch.ok()) return ch.status;
    return ChannelCounts(ch.value);
  }
  if (k.type == KnobType::kCoalesce) {
    auto co = ethtool.GetCoalesce(k.device);
    if (!co.ok()) return co.status;
    for (const auto& [name, v] : co.value) {
      if (name == k.path) return absl::StrCat(v);
    }
    return absl::NotFoundError(absl::StrCat(key, ": not supported by the driver"));
  }
  auto rss = ethtool.GetRss(k.device);
  if (!rss.ok()) return rss.status;
  return absl::StrJoin(rss.value.indirection, " ");
}

absl::Status SystemKnobs::Write(const std::string& key, const std::string& value) {
  NETAGENT_ASSIGN_OR_RETURN(KnobKey k, ParseKnobKey(key));
  if (failing_.count(key)) {
    return absl::UnavailableError(absl::StrCat(key, ": write failed (injected fault)"));
  }
  switch (k.type) {
    case KnobType::kSysctl:
      return kernel::WriteSysctl(k.path, value);
    case KnobType::kQueue:
      return kernel::WriteFile(QueuePath(paths_, k), value);
    case KnobType::kIrq: {
      absl::Status st =
          kernel::WriteFile(absl::StrCat(paths_.irq, "/", k.path, "/smp_affinity_list"), value);
      if (!st.ok() && absl::StrContains(st.message(), "Input/output error")) {
        return absl::FailedPreconditionError(absl::StrCat(
            "IRQ ", k.path, ": its affinity is managed by the kernel (EIO): not tunable"));
      }
      return st;
    }
    case KnobType::kDatapathBlock:
      return NotHere(key);
    default:
      break;
  }
  NETAGENT_ASSIGN_OR_RETURN(auto ethtool, collectors::EthtoolClient::Open());
  NETAGENT_ASSIGN_OR_RETURN(auto ints, ParseInts(value, key));
  const uint8_t cmd = SetCommand(k.type);
  if (k.type == KnobType::kRss && !ethtool.HasOp(cmd)) {
    return SetIndirectionIoctl(k.device, std::vector<uint32_t>(ints.begin(), ints.end()));
  }
  absl::Status built;
  absl::Status st = ethtool.Set(
      cmd, k.device, [&](kernel::NetlinkMessage& m) { built = PutSetAttributes(k, ints, m); });
  return built.ok() ? st : built;
}

uint8_t SetCommand(KnobType type) {
  switch (type) {
    case KnobType::kChannels:
      return ETHTOOL_MSG_CHANNELS_SET;
    case KnobType::kCoalesce:
      return ETHTOOL_MSG_COALESCE_SET;
    case KnobType::kRss:
      return kMsgRssSet;
    default:
      return 0;
  }
}

absl::Status PutSetAttributes(const KnobKey& k, const std::vector<int64_t>& ints,
                              kernel::NetlinkMessage& m) {
  if (ints.empty()) return absl::InvalidArgumentError("empty value");
  for (int64_t v : ints) {
    if (v < 0 || v > 0xffffffffLL) return absl::InvalidArgumentError("value out of range");
  }
  switch (k.type) {
    case KnobType::kChannels: {
      if (ints.size() != 4) return absl::InvalidArgumentError("channels: combined rx tx other");
      for (int i = 0; i < 4; ++i) m.PutU32(kChannelAttrs[i], static_cast<uint32_t>(ints[i]));
      break;
    }
    case KnobType::kCoalesce: {
      auto attr = collectors::CoalesceAttr(k.path);
      if (!attr) return absl::InvalidArgumentError(absl::StrCat(k.path, ": unknown parameter"));
      if (collectors::CoalesceAttrIsFlag(*attr)) {
        m.PutU8(*attr, static_cast<uint8_t>(ints[0] != 0));
      } else {
        m.PutU32(*attr, static_cast<uint32_t>(ints[0]));
      }
      break;
    }
    case KnobType::kRss: {
      std::vector<uint32_t> table(ints.begin(), ints.end());
      m.PutBytes(kRssIndir, table.data(), table.size() * 4);
      break;
    }
    default:
      return absl::InvalidArgumentError("not an ethtool knob");
  }
  return m.status();
}

SnapshotRequest SnapshotFor(const Intent& intent) {
  SnapshotRequest r;
  r.device = IntentDevice(intent);
  if (const auto* block = std::get_if<DatapathBlockIntent>(&intent.what)) {
    // Its state is the fast path's, not the device's queues or ethtool.
    r.device.clear();
    r.datapath_device = block->device;
  }
  if (const auto* bdp = std::get_if<BdpIntent>(&intent.what)) r.flows = bdp->observed;
  r.congestion = std::holds_alternative<CongestionIntent>(intent.what);
  return r;
}

bool ReadOnlyMount(const std::string& path) {
  struct statvfs fs;
  return ::statvfs(path.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0;
}

std::vector<TreeAccess> SummarizeTrees(const std::vector<KnobAccess>& knobs) {
  struct Seen {
    TreeAccess tree;
    bool read_only_mount = false;
    std::vector<std::string> initial_only, read_only, absent;
  };
  std::vector<Seen> trees;
  for (const KnobAccess& k : knobs) {
    const size_t first = k.name.find('.');
    const size_t second = first == std::string::npos ? first : k.name.find('.', first + 1);
    const std::string tree = k.name.substr(0, second);
    auto it = std::find_if(trees.begin(), trees.end(),
                           [&](const Seen& s) { return s.tree.name == tree; });
    if (it == trees.end()) {
      trees.push_back({});
      it = trees.end() - 1;
      it->tree.name = tree;
    }
    const std::string leaf = second == std::string::npos ? k.name : k.name.substr(second + 1);
    if (!k.access.exists) {
      it->absent.push_back(leaf);
      continue;
    }
    ++it->tree.knobs;
    if (k.access.writable && !k.host_wide) {
      ++it->tree.writable_knobs;
    } else if (k.host_wide) {  // first what no mount fixes
      it->initial_only.push_back(leaf);
    } else if (k.access.read_only_mount) {
      it->read_only_mount = true;
    } else {
      it->read_only.push_back(leaf);
    }
  }
  std::vector<TreeAccess> out;
  for (Seen& s : trees) {
    TreeAccess& t = s.tree;
    t.writable = t.knobs > 0 && t.writable_knobs == t.knobs;
    t.read_only_mount = s.read_only_mount;
    std::vector<std::string> why;
    if (s.read_only_mount) {
      why.push_back(absl::StrCat("a ", ReadOnlySysctlsWhy()));
    }
    if (!s.initial_only.empty()) {
      why.push_back(absl::StrCat("set only from the initial namespace: ",
                                 absl::StrJoin(s.initial_only, " ")));
    }
    if (!s.read_only.empty()) {
      why.push_back(absl::StrCat("read-only here: ", absl::StrJoin(s.read_only, " ")));
    }
    if (!s.absent.empty()) {
      why.push_back(absl::StrCat("not in this namespace: ", absl::StrJoin(s.absent, " ")));
    }
    t.reason = absl::StrJoin(why, "; ");
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<TreeAccess> ProbeWritableTrees(const SystemPaths& paths) {
  auto ns = kernel::CurrentNetns();
  const bool initial = !ns.ok() || ns->initial;
  std::vector<KnobAccess> knobs;
  for (const auto& spec : SysctlRegistry()) {
    KnobAccess k;
    k.name = spec.name;
    if (auto a = kernel::ProbeSysctl(spec.name); a.ok()) k.access = *a;
    k.host_wide = k.access.exists && !spec.per_netns && !initial;
    knobs.push_back(std::move(k));
  }
  std::vector<TreeAccess> trees = SummarizeTrees(knobs);
  for (TreeAccess& t : trees) {
    // net.ipv4 -> <the sys/net tree>/ipv4
    const size_t dot = t.name.find('.');
    t.path = absl::StrCat(kernel::ProcTree(absl::StrCat("sys/", t.name.substr(0, dot))), "/",
                          t.name.substr(dot + 1));
  }
  // The devices' queue files (RPS, XPS, RFS) and IRQ affinity.
  const std::string queues = absl::StrCat(paths.sysfs, "/class/net");
  for (const auto& [name, dir, probe, why] :
       {std::tuple(std::string("sysfs"), queues, queues, ReadOnlyQueuesWhy()),
        std::tuple(std::string("irq"), paths.irq, absl::StrCat(paths.irq, "/default_smp_affinity"),
                   ReadOnlyIrqWhy())}) {
    TreeAccess t;
    t.name = name;
    t.path = dir;
    t.read_only_mount = ReadOnlyMount(dir);
    t.writable = !t.read_only_mount && ::access(probe.c_str(), W_OK) == 0;
    if (t.read_only_mount) {
      t.reason = absl::StrCat("a ", why);
    } else if (!t.writable) {
      t.reason = absl::StrCat(probe, " is not writable here");
    }
    trees.push_back(std::move(t));
  }
  return trees;
}

absl::StatusOr<HostSnapshot> TakeSnapshot(const SnapshotRequest& req, const SystemPaths& paths,
                                          const std::map<std::string, std::string>& baseline) {
  HostSnapshot h;
  // The agent serves one namespace for its whole life (entered at start).
  static const bool initial = [] {
    auto ns = kernel::CurrentNetns();
    return !ns.ok() || ns->initial;
  }();
  h.initial_netns = initial;
  if (ReadOnlyMount(absl::StrCat(paths.sysfs, "/class/net"))) {
    h.queues_read_only = absl::StrCat("on a ", ReadOnlyQueuesWhy());
  }
  if (ReadOnlyMount(paths.irq)) h.irq_read_only = absl::StrCat("on a ", ReadOnlyIrqWhy());
  for (const auto& spec : SysctlRegistry()) {
    NETAGENT_ASSIGN_OR_RETURN(kernel::SysctlAccess a, kernel::ProbeSysctl(spec.name));
    SysctlState st;
    st.exists = a.exists;
    st.writable = a.writable;
    st.read_only_mount = a.read_only_mount;
    if (a.exists && !spec.per_netns && !h.initial_netns) {
      st.writable = false;
      st.host_wide = true;
    }
    if (a.exists) {
      auto v = kernel::ReadSysctl(spec.name);
      if (v.ok()) {
        auto n = Normalize(spec.name, *v);
        st.value = n.ok() ? *n : *v;
      } else {
        st.exists = false;
      }
    }
    h.sysctls[spec.name] = st;
    if (spec.kernel_default) {
      h.defaults[spec.name] = spec.kernel_default;
    } else if (auto it = baseline.find(spec.name); it != baseline.end()) {
      h.defaults[spec.name] = it->second;
    }
  }
  if (auto cc = kernel::ReadSysctlWords("net.ipv4.tcp_available_congestion_control"); cc.ok()) {
    h.available_cc = *cc;
  }
  if (auto cc = kernel::ReadSysctlWords("net.ipv4.tcp_allowed_congestion_control"); cc.ok()) {
    h.allowed_cc = *cc;
  }
  h.qdiscs = Qdiscs();
  NETAGENT_ASSIGN_OR_RETURN(kernel::CpuTopology topo, kernel::ReadCpuTopology("/sys"));
  for (const auto& c : topo.online) {
    h.online_cpus.push_back(c.id);
    h.cpu_node[c.id] = c.numa_node;
  }
  h.isolated_cpus = kernel::ReadIsolatedCpus("/sys");

  if (!req.device.empty()) {
    NETAGENT_RETURN_IF_ERROR(collectors::ValidateInterfaceName(req.device, "device"));
    NETAGENT_ASSIGN_OR_RETURN(collectors::LinkRecord link, collectors::GetLink(req.device));
    DeviceState d;
    d.name = link.name;
    d.numa_node = ReadNumaNode(paths, d.name);
    auto q = collectors::ReadQueueConfig(d.name, paths.sysfs);
    d.queues_status = q.status();
    if (q.ok()) d.queues = *q;
    auto ethtool = collectors::EthtoolClient::Open();
    if (ethtool.ok()) {
      d.channels = ethtool->GetChannels(d.name);
      d.coalesce = ethtool->GetCoalesce(d.name);
      d.rss = ethtool->GetRss(d.name);
    } else {
      d.channels.status = d.coalesce.status = d.rss.status = ethtool.status();
    }
    auto irqs = collectors::ReadDeviceIrqs(d.name, paths.sysfs, paths.proc);
    d.irqs_status = irqs.status();
    if (irqs.ok()) d.irqs = *irqs;
    h.device = std::move(d);
  }

  if (req.flows || req.congestion) {
    collectors::SocketQuery q;
    q.states = 1u << 1;  // established
    q.tcp_info = true;
    NETAGENT_RETURN_IF_ERROR(
        collectors::DumpSockets(q, [&](const collectors::SocketRecord& s) {
          if (req.congestion && s.congestion[0]) ++h.congestion_in_use[s.congestion];
          if (req.flows && s.has_tcp_info()) {
            FlowSample f;
            f.peer = collectors::FormatEndpoint(s.peer, s.peer_port);
            f.delivery_rate = s.tcp_info.delivery_rate;
            f.min_rtt_us = s.tcp_info.min_rtt;
            f.bytes = s.tcp_info.bytes_acked + s.tcp_info.bytes_received;
            h.flows.push_back(std::move(f));
            if (h.flows.size() > 4096) {  // keep the busiest: the planner looks at 8
              std::nth_element(
                  h.flows.begin(), h.flows.begin() + 64, h.flows.end(),
                  [](const FlowSample& a, const FlowSample& b) { return a.bytes > b.bytes; });
              h.flows.resize(64);
            }
          }
          return absl::OkStatus();
        }).status());
  }
  return h;
}

}  // namespace netagent::tuners
