// Connection tracking of the served namespace through ctnetlink (nfnetlink):
// the entry count and limit, per-CPU statistics (what `conntrack -S` shows),
// and the table itself, streamed with the filters the kernel can apply (family,
// zone, mark/mask, exact tuple fields on 5.8+) and the rest applied here.
// Never a full dump on a timer: callers ask.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "collectors/ethtool.h"
#include "collectors/inet.h"

namespace netagent::collectors {

struct ConntrackCpuStats {
  uint32_t cpu = 0;
  NamedValues values;  // conntrack -S's names: found, invalid, insert, insert_failed, ...
};

struct ConntrackStats {
  std::optional<uint64_t> count, max;
  std::vector<ConntrackCpuStats> cpus;
  NamedValues total;   // per-CPU values summed
  std::string source;  // "netlink" or "procfs"
};

// One IPCTNL_MSG_CT_GET_STATS_CPU message.
absl::StatusOr<ConntrackCpuStats> ParseConntrackCpuStats(const nlmsghdr& nlh);
// The IPCTNL_MSG_CT_GET_STATS reply: the table's count and limit into `stats`.
absl::Status ParseConntrackGlobalStats(const nlmsghdr& nlh, ConntrackStats& stats);
// /proc/net/stat/nf_conntrack: a header line, then one hex row per CPU (the
// "entries" column is the global count, repeated, not a per-CPU value).
absl::StatusOr<std::vector<ConntrackCpuStats>> ParseProcConntrackStat(absl::string_view text);

// Netlink first; without it (no CAP_NET_ADMIN, no ctnetlink) /proc/net/stat
// and the sysctls; FAILED_PRECONDITION with both reasons when neither works.
absl::StatusOr<ConntrackStats> ReadConntrackStats();

struct ConntrackTuple {
  IpAddress src, dst;
  uint8_t protocol = 0;
  uint16_t src_port = 0, dst_port = 0;  // TCP, UDP, SCTP, DCCP, UDP-Lite
  uint16_t icmp_id = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
};

struct ConntrackEntry {
  uint8_t family = 0;
  ConntrackTuple original, reply;
  uint32_t status = 0;  // IPS_* bits
  uint32_t timeout = 0;
  uint32_t mark = 0;
  uint32_t use = 0;
  uint32_t id = 0;
  uint16_t zone = 0;
  std::optional<uint8_t> tcp_state;                                              // TCP_CONNTRACK_*
  std::optional<uint64_t> orig_packets, orig_bytes, reply_packets, reply_bytes;  // acct on
  std::optional<uint64_t> start_ns, stop_ns;                                     // timestamps on
};

absl::Status ParseConntrackEntry(const nlmsghdr& nlh, ConntrackEntry& out);

// TCP_CONNTRACK_* names as conntrack -L prints them (ESTABLISHED, TIME_WAIT...).
absl::string_view ConntrackTcpStateName(uint8_t state);
absl::StatusOr<uint8_t> ParseConntrackTcpState(absl::string_view name, absl::string_view field);
absl::string_view ConntrackProtocolName(uint8_t protocol);  // "tcp", or "" when unnamed
std::string ConntrackProtocolLabel(uint8_t protocol);       // the name, or the number
absl::StatusOr<uint8_t> ParseProtocol(absl::string_view name, absl::string_view field);
// UNREPLIED, ASSURED ... as conntrack prints them, without allocating.
void ForEachStatusFlag(uint32_t status, absl::FunctionRef<void(absl::string_view)> fn);

struct ConntrackQuery {
  int family = AF_UNSPEC;
  std::optional<uint16_t> zone;
  std::optional<uint32_t> mark, mark_mask;
  std::optional<uint8_t> protocol;
  std::set<uint8_t> tcp_states;
  // On the original direction, like conntrack -L -s/-d/--sport/--dport.
  std::optional<Prefix> source, destination;
  std::optional<PortRange> source_port, destination_port;

  bool Matches(const ConntrackEntry& e) const;
};

struct ConntrackDumpReport {
  uint64_t entries = 0;   // passed to the callback
  uint64_t examined = 0;  // read from the kernel
  bool kernel_tuple_filter = false;
  std::vector<std::string> warnings;
};

// `keep_going` is asked after every kConntrackCheckEvery entries read from the
// kernel, matched or not (a selective filter may match none of a huge table):
// a non-OK status (the caller went away, the agent stops) ends the dump with
// it, and closing the socket ends the kernel's walk.
inline constexpr uint64_t kConntrackCheckEvery = 256;
absl::StatusOr<ConntrackDumpReport> DumpConntrack(
    const ConntrackQuery& q, absl::FunctionRef<absl::Status(const ConntrackEntry&)> on_entry,
    absl::FunctionRef<absl::Status()> keep_going);
absl::StatusOr<ConntrackDumpReport> DumpConntrack(
    const ConntrackQuery& q, absl::FunctionRef<absl::Status(const ConntrackEntry&)> on_entry);

}  // namespace netagent::collectors

namespace netagent::collectors {

// Counts per protocol and TCP state, and the busiest original sources.
class ConntrackSummarizer {
 public:
  void Add(const ConntrackEntry& e);

  struct Count {
    std::string protocol;
    std::string state;
    uint64_t count = 0;
  };
  std::vector<Count> Counts() const;
  std::vector<std::pair<IpAddress, uint64_t>> TopSources(size_t n) const;
  uint64_t matched() const { return matched_; }

 private:
  uint64_t matched_ = 0;
  std::map<std::pair<uint8_t, int>, uint64_t> counts_;  // (protocol, tcp state or -1)
  std::map<IpAddress, uint64_t> sources_;
};

}  // namespace netagent::collectors
