// Sockets of the served namespace through sock_diag (NETLINK_SOCK_DIAG), as
// `ss` reads them: one dump per family and protocol, the state mask and an
// inet_diag bytecode filter applied by the kernel, tcp_info, congestion
// control, BBR state (the VEGASINFO bit brings it) and skmeminfo on request.
//
// Records are handed to a callback as each datagram is parsed; nothing holds
// the whole table, and a callback error (the client went away) closes the
// netlink socket, which ends the dump in the kernel.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "collectors/inet.h"
#include "collectors/tcp_info.h"

namespace netagent::collectors {

// Kernel TCP states (include/net/tcp_states.h).
inline constexpr uint32_t kAllStates = 0xffe;      // 1..11
absl::string_view SocketStateName(uint8_t state);  // "established", "listening", ...
// ss's short form for tables: ESTAB, LISTEN, TIME-WAIT, UNCONN...
absl::string_view SocketStateLabel(uint8_t state);

// ss state names (and "all", "connected") to a mask of 1 << state.
absl::StatusOr<uint32_t> ParseSocketStates(const std::vector<std::string>& names,
                                           absl::string_view field);

struct SocketQuery {
  std::vector<int> protocols = {IPPROTO_TCP};  // IPPROTO_TCP, IPPROTO_UDP
  std::vector<int> families = {AF_INET, AF_INET6};
  uint32_t states = kAllStates;
  std::optional<Prefix> source, destination;
  std::optional<PortRange> source_port, destination_port;
  bool tcp_info = false;
  bool memory = false;
};

// The inet_diag bytecode for the address and port filters of `q` (empty when
// there is nothing to filter). The filters AND; a
// failing test jumps past the end, which the kernel reads as "reject".
std::string BuildBytecode(const SocketQuery& q);

struct SkMemInfo {
  uint32_t values[9] = {};  // SK_MEMINFO_RMEM_ALLOC .. SK_MEMINFO_DROPS
  uint8_t count = 0;        // how many the kernel sent
};

struct SocketRecord {
  uint8_t protocol = IPPROTO_TCP;
  uint8_t state = 0;
  uint8_t timer = 0;
  uint8_t timer_retransmits = 0;
  uint32_t timer_expires_ms = 0;
  IpAddress local, peer;
  uint16_t local_port = 0, peer_port = 0;
  uint32_t ifindex = 0;
  uint64_t cookie = 0;
  uint32_t rqueue = 0, wqueue = 0, uid = 0;
  uint64_t inode = 0;
  std::optional<uint32_t> mark;
  std::optional<uint64_t> cgroup_id;
  std::optional<uint8_t> shutdown;
  uint16_t tcp_info_length = 0;  // 0: no tcp_info
  KernelTcpInfo tcp_info{};
  char congestion[16] = {};
  std::optional<KernelBbrInfo> bbr;
  SkMemInfo memory;

  bool has_tcp_info() const { return tcp_info_length > 0; }
};

// Parses one SOCK_DIAG_BY_FAMILY reply of `protocol` into `out` (reused across
// messages: no allocation per socket). DATA_LOSS for a malformed message.
absl::Status ParseSocket(const nlmsghdr& nlh, int protocol, SocketRecord& out);

// Where a dump stopped, so a page can continue: the index of the
// (protocol, family) pass and how many sockets of it were already given.
struct SocketCursor {
  uint32_t pass = 0;
  uint64_t skip = 0;
};

struct SocketDumpReport {
  uint64_t sockets = 0;
  std::vector<std::string> warnings;  // interrupted passes
  SocketCursor stopped_at;            // valid when the callback stopped it
};

// Return from the callback to end the dump early (a full page), not an error.
absl::Status StopDump();
bool IsStopDump(const absl::Status& status);

// Dumps every pass of `q` from `from`, calling `on_socket` for each socket.
absl::StatusOr<SocketDumpReport> DumpSockets(
    const SocketQuery& q, absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
    SocketCursor from = {});
// The same, asking `keep_going` after every kSocketCheckEvery sockets read
// from the kernel, those skipped to reach `from` included: a non-OK status
// (the caller went away, the agent stops) ends the dump with it.
inline constexpr uint64_t kSocketCheckEvery = 256;
absl::StatusOr<SocketDumpReport> DumpSockets(
    const SocketQuery& q, absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
    SocketCursor from, absl::FunctionRef<absl::Status()> keep_going);

}  // namespace netagent::collectors
