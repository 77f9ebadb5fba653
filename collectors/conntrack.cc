#include "collectors/conntrack.h"

#include <arpa/inet.h>
#include <endian.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/netlink.h"
#include "kernel/text.h"

namespace netagent::collectors {
namespace {

// conntrack -S's names for CTA_STATS_* (1..15).
constexpr std::array<const char*, 16> kStatNames = {
    nullptr,  "searched",       "found",         "new",           "invalid", "ignore",
    "delete", "delete_list",    "insert",        "insert_failed", "drop",    "early_drop",
    "error",  "search_restart", "clash_resolve", "chaintoolong"};

// Columns of /proc/net/stat/nf_conntrack renamed as conntrack -S spells them.
std::string ProcColumnName(absl::string_view c) {
  if (c == "clashres") return "clash_resolve";
  if (c == "chainlength") return "chaintoolong";
  if (c == "icmp_error") return "error";
  return std::string(c);
}

constexpr std::array<const char*, 10> kTcpStates = {
    "NONE",       "SYN_SENT", "SYN_RECV",  "ESTABLISHED", "FIN_WAIT",
    "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",       "SYN_SENT2"};

// Kernel-internal CTA_FILTER flags (net/netfilter/nf_conntrack_netlink.c).
constexpr uint32_t kFilterIpSrc = 1 << 0;
constexpr uint32_t kFilterIpDst = 1 << 1;
constexpr uint32_t kFilterProtoNum = 1 << 3;
constexpr uint32_t kFilterProtoSrcPort = 1 << 4;
constexpr uint32_t kFilterProtoDstPort = 1 << 5;

constexpr uint16_t Msg(uint8_t type) { return (NFNL_SUBSYS_CTNETLINK << 8) | type; }

kernel::NetlinkMessage Request(uint8_t type, uint16_t flags, int family) {
  kernel::NetlinkMessage m(Msg(type), flags);
  auto* nfg = m.PutHeader<nfgenmsg>();
  nfg->nfgen_family = static_cast<uint8_t>(family);
  nfg->version = NFNETLINK_V0;
  return m;
}

void ParseTuple(const nlattr* nest, uint8_t family, ConntrackTuple& t) {
  kernel::AttrTable tuple(nest, CTA_TUPLE_MAX);
  kernel::AttrTable ip(tuple.get(CTA_TUPLE_IP), CTA_IP_MAX);
  t.src.family = t.dst.family = family;
  const uint16_t src = family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC;
  const uint16_t dst = family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST;
  const size_t alen = family == AF_INET ? 4 : 16;
  absl::string_view s = ip.bytes(src), d = ip.bytes(dst);
  t.src.bytes = {};
  t.dst.bytes = {};
  if (s.size() >= alen) std::memcpy(t.src.bytes.data(), s.data(), alen);
  if (d.size() >= alen) std::memcpy(t.dst.bytes.data(), d.data(), alen);
  kernel::AttrTable proto(tuple.get(CTA_TUPLE_PROTO), CTA_PROTO_MAX);
  t.protocol = proto.u8(CTA_PROTO_NUM).value_or(0);
  t.src_port = proto.be16(CTA_PROTO_SRC_PORT).value_or(0);
  t.dst_port = proto.be16(CTA_PROTO_DST_PORT).value_or(0);
  t.icmp_id = proto.be16(CTA_PROTO_ICMP_ID).value_or(proto.be16(CTA_PROTO_ICMPV6_ID).value_or(0));
  t.icmp_type = proto.u8(CTA_PROTO_ICMP_TYPE).value_or(proto.u8(CTA_PROTO_ICMPV6_TYPE).value_or(0));
  t.icmp_code = proto.u8(CTA_PROTO_ICMP_CODE).value_or(proto.u8(CTA_PROTO_ICMPV6_CODE).value_or(0));
}

void PutTupleFilter(kernel::NetlinkMessage& m, const ConntrackQuery& q, uint32_t flags) {
  void* orig = m.BeginNest(CTA_TUPLE_ORIG);
  if (flags & (kFilterIpSrc | kFilterIpDst)) {
    void* ip = m.BeginNest(CTA_TUPLE_IP);
    const bool v4 = q.family == AF_INET;
    if (flags & kFilterIpSrc) {
      m.PutBytes(v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, q.source->address.bytes.data(), v4 ? 4 : 16);
    }
    if (flags & kFilterIpDst) {
      m.PutBytes(v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, q.destination->address.bytes.data(),
                 v4 ? 4 : 16);
    }
    m.EndNest(ip);
  }
  void* proto = m.BeginNest(CTA_TUPLE_PROTO);
  m.PutU8(CTA_PROTO_NUM, *q.protocol);
  if (flags & kFilterProtoSrcPort) m.PutU16(CTA_PROTO_SRC_PORT, htons(q.source_port->low));
  if (flags & kFilterProtoDstPort) m.PutU16(CTA_PROTO_DST_PORT, htons(q.destination_port->low));
  m.EndNest(proto);
  m.EndNest(orig);
  void* filter = m.BeginNest(CTA_FILTER);
  m.PutU32(CTA_FILTER_ORIG_FLAGS, flags);
  m.PutU32(CTA_FILTER_REPLY_FLAGS, 0);
  m.EndNest(filter);
}

// The exact-match part of the query the kernel's tuple filter can take.
uint32_t TupleFilterFlags(const ConntrackQuery& q) {
  if (!q.protocol || q.family == AF_UNSPEC) return 0;
  uint32_t flags = kFilterProtoNum;
  const uint8_t full = q.family == AF_INET ? 32 : 128;
  if (q.source && q.source->length == full) flags |= kFilterIpSrc;
  if (q.destination && q.destination->length == full) flags |= kFilterIpDst;
  const bool ports = *q.protocol == IPPROTO_TCP || *q.protocol == IPPROTO_UDP;
  if (ports && q.source_port && q.source_port->low == q.source_port->high)
    flags |= kFilterProtoSrcPort;
  if (ports && q.destination_port && q.destination_port->low == q.destination_port->high) {
    flags |= kFilterProtoDstPort;
  }
  return flags;
}

}  // namespace

absl::StatusOr<ConntrackCpuStats> ParseConntrackCpuStats(const nlmsghdr& nlh) {
  if (nlh.nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) {
    return absl::DataLossError("ctnetlink stats: message too short");
  }
  nfgenmsg nfg;
  std::memcpy(&nfg, NLMSG_DATA(&nlh), sizeof(nfg));
  ConntrackCpuStats s;
  s.cpu = ntohs(nfg.res_id);
  kernel::AttrTable t(nlh, sizeof(nfgenmsg), CTA_STATS_MAX);
  for (uint16_t type = 1; type < kStatNames.size(); ++type) {
    if (auto v = t.be32(type)) s.values.emplace_back(kStatNames[type], *v);
  }
  return s;
}

absl::Status ParseConntrackGlobalStats(const nlmsghdr& nlh, ConntrackStats& stats) {
  kernel::AttrTable t(nlh, sizeof(nfgenmsg), CTA_STATS_GLOBAL_MAX);
  if (auto v = t.be32(CTA_STATS_GLOBAL_ENTRIES)) stats.count = *v;
  if (auto v = t.be32(CTA_STATS_GLOBAL_MAX_ENTRIES)) stats.max = *v;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ConntrackCpuStats>> ParseProcConntrackStat(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::DataLossError("nf_conntrack stat: empty");
  std::vector<absl::string_view> header = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  std::vector<ConntrackCpuStats> out;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<absl::string_view> cols = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    if (cols.size() != header.size()) {
      return absl::DataLossError(absl::StrCat("nf_conntrack stat line ", i + 1, ": ", cols.size(),
                                              " columns, header has ", header.size()));
    }
    ConntrackCpuStats s;
    s.cpu = static_cast<uint32_t>(i - 1);
    for (size_t k = 0; k < cols.size(); ++k) {
      uint64_t v;
      if (!absl::SimpleHexAtoi(cols[k], &v)) {
        return absl::DataLossError(
            absl::StrCat("nf_conntrack stat line ", i + 1, ": \"", cols[k], "\" is not hex"));
      }
      if (header[k] == "entries" || absl::StartsWith(header[k], "expect_")) continue;
      s.values.emplace_back(ProcColumnName(header[k]), v);
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

void Sum(ConntrackStats& stats) {
  stats.total.clear();
  for (const auto& c : stats.cpus) {
    for (const auto& value : c.values) {
      // Not a structured binding: clang 14 cannot capture one in a lambda.
      auto it = std::find_if(stats.total.begin(), stats.total.end(),
                             [&](const auto& kv) { return kv.first == value.first; });
      if (it == stats.total.end()) {
        stats.total.push_back(value);
      } else {
        it->second += value.second;
      }
    }
  }
}

absl::StatusOr<ConntrackStats> ReadViaNetlink() {
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_NETFILTER));
  ConntrackStats stats;
  stats.source = "netlink";
  kernel::NetlinkMessage global = Request(IPCTNL_MSG_CT_GET_STATS, 0, AF_UNSPEC);
  NETAGENT_RETURN_IF_ERROR(sock.Request(global, "conntrack statistics", [&](const nlmsghdr& m) {
    return ParseConntrackGlobalStats(m, stats);
  }));
  kernel::NetlinkMessage cpu = Request(IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_DUMP, AF_UNSPEC);
  NETAGENT_RETURN_IF_ERROR(
      sock.Request(cpu, "conntrack per-CPU statistics", [&](const nlmsghdr& m) {
        NETAGENT_ASSIGN_OR_RETURN(ConntrackCpuStats s, ParseConntrackCpuStats(m));
        stats.cpus.push_back(std::move(s));
        return absl::OkStatus();
      }));
  Sum(stats);
  return stats;
}

std::optional<uint64_t> ReadNumber(const std::string& path) {
  auto text = kernel::ReadLine(path);
  uint64_t v;
  if (text.ok() && absl::SimpleAtoi(*text, &v)) return v;
  return std::nullopt;
}

absl::StatusOr<ConntrackStats> ReadViaProc() {
  ConntrackStats stats;
  stats.source = "procfs";
  stats.count = ReadNumber("/proc/sys/net/netfilter/nf_conntrack_count");
  stats.max = ReadNumber("/proc/sys/net/netfilter/nf_conntrack_max");
  NETAGENT_ASSIGN_OR_RETURN(std::string text, kernel::ReadFile("/proc/net/stat/nf_conntrack"));
  NETAGENT_ASSIGN_OR_RETURN(stats.cpus, ParseProcConntrackStat(text));
  Sum(stats);
  return stats;
}

}  // namespace

absl::StatusOr<ConntrackStats> ReadConntrackStats() {
  auto netlink = ReadViaNetlink();
  if (netlink.ok()) return netlink;
  auto proc = ReadViaProc();
  if (proc.ok()) return proc;
  return absl::FailedPreconditionError(
      absl::StrCat("conntrack statistics unavailable: netlink: ", netlink.status().message(),
                   "; /proc/net/stat/nf_conntrack: ", proc.status().message(),
                   " (CONFIG_NF_CONNTRACK_PROCFS is off by default since 5.15)"));
}

absl::Status ParseConntrackEntry(const nlmsghdr& nlh, ConntrackEntry& out) {
  if (nlh.nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) {
    return absl::DataLossError("ctnetlink: message too short");
  }
  nfgenmsg nfg;
  std::memcpy(&nfg, NLMSG_DATA(&nlh), sizeof(nfg));
  out.family = nfg.nfgen_family;
  kernel::AttrTable t(nlh, sizeof(nfgenmsg), CTA_MAX);
  if (!t.has(CTA_TUPLE_ORIG))
    return absl::DataLossError("ctnetlink: entry without an original tuple");
  ParseTuple(t.get(CTA_TUPLE_ORIG), out.family, out.original);
  ParseTuple(t.get(CTA_TUPLE_REPLY), out.family, out.reply);
  out.status = t.be32(CTA_STATUS).value_or(0);
  out.timeout = t.be32(CTA_TIMEOUT).value_or(0);
  out.mark = t.be32(CTA_MARK).value_or(0);
  out.use = t.be32(CTA_USE).value_or(0);
  out.id = t.be32(CTA_ID).value_or(0);
  out.zone = t.be16(CTA_ZONE).value_or(0);
  out.tcp_state.reset();
  if (const nlattr* pi = t.get(CTA_PROTOINFO)) {
    kernel::AttrTable info(pi, CTA_PROTOINFO_MAX);
    kernel::AttrTable tcp(info.get(CTA_PROTOINFO_TCP), CTA_PROTOINFO_TCP_MAX);
    if (auto s = tcp.u8(CTA_PROTOINFO_TCP_STATE)) out.tcp_state = *s;
  }
  auto counters = [](const nlattr* nest, std::optional<uint64_t>& packets,
                     std::optional<uint64_t>& bytes) {
    packets.reset();
    bytes.reset();
    if (nest == nullptr) return;
    kernel::AttrTable c(nest, CTA_COUNTERS_MAX);
    packets = c.be64(CTA_COUNTERS_PACKETS);
    bytes = c.be64(CTA_COUNTERS_BYTES);
  };
  counters(t.get(CTA_COUNTERS_ORIG), out.orig_packets, out.orig_bytes);
  counters(t.get(CTA_COUNTERS_REPLY), out.reply_packets, out.reply_bytes);
  out.start_ns.reset();
  out.stop_ns.reset();
  if (const nlattr* ts = t.get(CTA_TIMESTAMP)) {
    kernel::AttrTable s(ts, CTA_TIMESTAMP_MAX);
    out.start_ns = s.be64(CTA_TIMESTAMP_START);
    out.stop_ns = s.be64(CTA_TIMESTAMP_STOP);
  }
  return absl::OkStatus();
}

absl::string_view ConntrackTcpStateName(uint8_t state) {
  return state < kTcpStates.size() ? kTcpStates[state] : "UNKNOWN";
}

absl::StatusOr<uint8_t> ParseConntrackTcpState(absl::string_view name, absl::string_view field) {
  const std::string upper = absl::AsciiStrToUpper(name);
  for (uint8_t s = 1; s < kTcpStates.size(); ++s) {
    if (upper == kTcpStates[s]) return s;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": unknown TCP conntrack state ", kernel::Quote(name),
      "; known: SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, "
      "CLOSE, SYN_SENT2"));
}

absl::string_view ConntrackProtocolName(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "icmpv6";
    case IPPROTO_SCTP:
      return "sctp";
    case IPPROTO_DCCP:
      return "dccp";
    case IPPROTO_UDPLITE:
      return "udplite";
    case IPPROTO_GRE:
      return "gre";
    default:
      return "";
  }
}

std::string ConntrackProtocolLabel(uint8_t protocol) {
  absl::string_view name = ConntrackProtocolName(protocol);
  return name.empty() ? absl::StrCat(protocol) : std::string(name);
}

absl::StatusOr<uint8_t> ParseProtocol(absl::string_view name, absl::string_view field) {
  static constexpr int kKnown[] = {IPPROTO_TCP,  IPPROTO_UDP,  IPPROTO_ICMP,    IPPROTO_ICMPV6,
                                   IPPROTO_SCTP, IPPROTO_DCCP, IPPROTO_UDPLITE, IPPROTO_GRE};
  for (int p : kKnown) {
    if (absl::AsciiStrToLower(name) == ConntrackProtocolName(static_cast<uint8_t>(p))) {  // NOLINT
      return static_cast<uint8_t>(p);
    }
  }
  uint32_t n;
  if (absl::SimpleAtoi(name, &n) && n < 256) return static_cast<uint8_t>(n);
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", kernel::Quote(name),
      " is not a protocol (tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre or a number)"));
}

void ForEachStatusFlag(uint32_t status, absl::FunctionRef<void(absl::string_view)> fn) {
  if (!(status & IPS_SEEN_REPLY)) fn("UNREPLIED");
  if (status & IPS_ASSURED) fn("ASSURED");
  if (status & IPS_OFFLOAD) fn("OFFLOAD");
  if (status & IPS_SRC_NAT) fn("SNAT");
  if (status & IPS_DST_NAT) fn("DNAT");
  if (status & IPS_DYING) fn("DYING");
}

bool ConntrackQuery::Matches(const ConntrackEntry& e) const {
  if (family != AF_UNSPEC && e.family != family) return false;
  if (zone && e.zone != *zone) return false;
  if (mark && (e.mark & mark_mask.value_or(0xffffffff)) != *mark) return false;
  if (protocol && e.original.protocol != *protocol) return false;
  if (!tcp_states.empty() && (!e.tcp_state || !tcp_states.count(*e.tcp_state))) return false;
  if (source && !source->Contains(e.original.src)) return false;
  if (destination && !destination->Contains(e.original.dst)) return false;
  if (source_port && !source_port->Contains(e.original.src_port)) return false;
  if (destination_port && !destination_port->Contains(e.original.dst_port)) return false;
  return true;
}

absl::StatusOr<ConntrackDumpReport> DumpConntrack(
    const ConntrackQuery& q, absl::FunctionRef<absl::Status(const ConntrackEntry&)> on_entry) {
  return DumpConntrack(q, on_entry, [] { return absl::OkStatus(); });
}

absl::StatusOr<ConntrackDumpReport> DumpConntrack(
    const ConntrackQuery& q, absl::FunctionRef<absl::Status(const ConntrackEntry&)> on_entry,
    absl::FunctionRef<absl::Status()> keep_going) {
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_NETFILTER));
  ConntrackDumpReport report;
  uint32_t tuple_flags = TupleFilterFlags(q);
  ConntrackEntry entry;
  for (int attempt = 0;; ++attempt) {
    kernel::NetlinkMessage req = Request(IPCTNL_MSG_CT_GET, NLM_F_DUMP, q.family);
    if (q.mark) {
      req.PutU32(CTA_MARK, htonl(*q.mark));
      req.PutU32(CTA_MARK_MASK, htonl(q.mark_mask.value_or(0xffffffff)));
    }
    if (q.zone) req.PutU16(CTA_ZONE, htons(*q.zone));
    if (tuple_flags) PutTupleFilter(req, q, tuple_flags);
    report.entries = report.examined = 0;
    absl::Status st = sock.Request(req, "conntrack dump", [&](const nlmsghdr& m) -> absl::Status {
      NETAGENT_RETURN_IF_ERROR(ParseConntrackEntry(m, entry));
      if (++report.examined % kConntrackCheckEvery == 0) NETAGENT_RETURN_IF_ERROR(keep_going());
      // Everything again here: a kernel may ignore filters it does not know.
      if (!q.Matches(entry)) return absl::OkStatus();
      ++report.entries;
      return on_entry(entry);
    });
    if (st.ok()) {
      report.kernel_tuple_filter = tuple_flags != 0;
      return report;
    }
    // Kernels before 5.8 refuse CTA_FILTER: filter here alone. Only before
    // any entry went out, so nothing is given twice.
    if (tuple_flags && report.examined == 0 &&
        (absl::IsInvalidArgument(st) || absl::IsUnimplemented(st))) {
      report.warnings.push_back(
          absl::StrCat("kernel tuple filter refused (", st.message(), "); filtering in the agent"));
      tuple_flags = 0;
      continue;
    }
    if (kernel::IsDumpInterrupted(st)) {
      report.warnings.push_back(std::string(st.message()));
      return report;
    }
    return st;
  }
}

}  // namespace netagent::collectors

namespace netagent::collectors {

void ConntrackSummarizer::Add(const ConntrackEntry& e) {
  ++matched_;
  ++counts_[{e.original.protocol, e.tcp_state ? *e.tcp_state : -1}];
  ++sources_[e.original.src];
}

std::vector<ConntrackSummarizer::Count> ConntrackSummarizer::Counts() const {
  std::vector<Count> out;
  for (const auto& [key, n] : counts_) {
    out.push_back({ConntrackProtocolLabel(key.first),
                   key.second < 0 ? "" : std::string(ConntrackTcpStateName(key.second)), n});
  }
  return out;
}

std::vector<std::pair<IpAddress, uint64_t>> ConntrackSummarizer::TopSources(size_t n) const {
  std::vector<std::pair<IpAddress, uint64_t>> out(sources_.begin(), sources_.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (out.size() > n) out.resize(n);
  return out;
}

}  // namespace netagent::collectors
