#include "collectors/sockets.h"

#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernel/errors.h"
#include "kernel/netlink.h"
#include "kernel/text.h"

namespace netagent::collectors {
namespace {

struct StateName {
  absl::string_view name;   // filter and API spelling
  absl::string_view label;  // ss's table spelling
};

// Index = kernel state (include/net/tcp_states.h).
constexpr std::array<StateName, 13> kStates = {{
    {"unknown", "UNKNOWN"},
    {"established", "ESTAB"},
    {"syn-sent", "SYN-SENT"},
    {"syn-recv", "SYN-RECV"},
    {"fin-wait-1", "FIN-WAIT-1"},
    {"fin-wait-2", "FIN-WAIT-2"},
    {"time-wait", "TIME-WAIT"},
    {"closed", "UNCONN"},
    {"close-wait", "CLOSE-WAIT"},
    {"last-ack", "LAST-ACK"},
    {"listening", "LISTEN"},
    {"closing", "CLOSING"},
    {"new-syn-recv", "SYN-RECV"},
}};

constexpr uint8_t kListen = 10;
constexpr uint8_t kClose = 7;

constexpr absl::string_view kStopMessage = "netagent: stop dump";

void AppendOp(std::string& bc, uint8_t code, uint8_t yes, uint16_t no) {
  inet_diag_bc_op op{code, yes, no};
  bc.append(reinterpret_cast<const char*>(&op), sizeof(op));
}

// One test of the AND chain: its bytes, with `no` patched later.
struct Block {
  std::string bytes;
};

Block HostCond(uint8_t code, const Prefix& p) {
  Block b;
  inet_diag_hostcond hc{};
  hc.family = static_cast<uint8_t>(p.address.family);
  hc.prefix_len = p.length;
  hc.port = -1;
  const size_t addr_len = p.address.size();
  AppendOp(b.bytes, code, static_cast<uint8_t>(sizeof(inet_diag_bc_op) + sizeof(hc) + addr_len), 0);
  b.bytes.append(reinterpret_cast<const char*>(&hc), sizeof(hc));
  b.bytes.append(reinterpret_cast<const char*>(p.address.bytes.data()), addr_len);
  return b;
}

// S_GE / S_LE / D_GE / D_LE: the op, then an op whose `no` holds the port.
Block PortCmp(uint8_t code, uint16_t port) {
  Block b;
  AppendOp(b.bytes, code, 2 * sizeof(inet_diag_bc_op), 0);
  AppendOp(b.bytes, 0, 0, port);
  return b;
}

}  // namespace

absl::string_view SocketStateName(uint8_t state) {
  return state < kStates.size() ? kStates[state].name : "unknown";
}

absl::string_view SocketStateLabel(uint8_t state) {
  return state < kStates.size() ? kStates[state].label : "UNKNOWN";
}

absl::StatusOr<uint32_t> ParseSocketStates(const std::vector<std::string>& names,
                                           absl::string_view field) {
  if (names.empty()) return kAllStates;
  uint32_t mask = 0;
  for (const std::string& n : names) {
    if (n == "all") {
      mask |= kAllStates;
      continue;
    }
    if (n == "connected") {
      mask |= kAllStates & ~((1u << kListen) | (1u << kClose));
      continue;
    }
    bool found = false;
    for (uint8_t s = 1; s <= 11; ++s) {
      if (kStates[s].name == n) {
        mask |= 1u << s;
        found = true;
      }
    }
    if (!found) {
      std::vector<absl::string_view> known;
      for (uint8_t s = 1; s <= 11; ++s) known.push_back(kStates[s].name);
      return absl::InvalidArgumentError(absl::StrCat(field, ": unknown state ", kernel::Quote(n),
                                                     "; known: ", absl::StrJoin(known, ", "),
                                                     ", all, connected"));
    }
  }
  return mask;
}

std::string BuildBytecode(const SocketQuery& q) {
  std::vector<Block> blocks;
  if (q.source) blocks.push_back(HostCond(INET_DIAG_BC_S_COND, *q.source));
  if (q.destination) blocks.push_back(HostCond(INET_DIAG_BC_D_COND, *q.destination));
  if (q.source_port) {
    if (q.source_port->low > 0) blocks.push_back(PortCmp(INET_DIAG_BC_S_GE, q.source_port->low));
    if (q.source_port->high < 65535) {
      blocks.push_back(PortCmp(INET_DIAG_BC_S_LE, q.source_port->high));
    }
  }
  if (q.destination_port) {
    if (q.destination_port->low > 0) {
      blocks.push_back(PortCmp(INET_DIAG_BC_D_GE, q.destination_port->low));
    }
    if (q.destination_port->high < 65535) {
      blocks.push_back(PortCmp(INET_DIAG_BC_D_LE, q.destination_port->high));
    }
  }
  size_t total = 0;
  for (const Block& b : blocks) total += b.bytes.size();
  std::string out;
  out.reserve(total);
  for (Block& b : blocks) {
    // Failing a test jumps 4 bytes past the end: the kernel's "reject".
    const uint16_t reject = static_cast<uint16_t>(total - out.size() + 4);
    std::memcpy(&b.bytes[offsetof(inet_diag_bc_op, no)], &reject, sizeof(reject));
    out += b.bytes;
  }
  return out;
}

absl::Status ParseSocket(const nlmsghdr& nlh, int protocol, SocketRecord& out) {
  if (nlh.nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
    return absl::DataLossError("sock_diag: message shorter than inet_diag_msg");
  }
  inet_diag_msg m;
  std::memcpy(&m, NLMSG_DATA(&nlh), sizeof(m));
  out.protocol = static_cast<uint8_t>(protocol);
  out.state = m.idiag_state;
  out.timer = m.idiag_timer;
  out.timer_retransmits = m.idiag_retrans;
  out.timer_expires_ms = m.idiag_expires;
  out.local.family = out.peer.family = m.idiag_family;
  out.local.bytes = {};
  out.peer.bytes = {};
  const size_t alen = m.idiag_family == AF_INET ? 4 : 16;
  std::memcpy(out.local.bytes.data(), m.id.idiag_src, alen);
  std::memcpy(out.peer.bytes.data(), m.id.idiag_dst, alen);
  out.local_port = ntohs(m.id.idiag_sport);
  out.peer_port = ntohs(m.id.idiag_dport);
  out.ifindex = m.id.idiag_if;
  out.cookie = static_cast<uint64_t>(m.id.idiag_cookie[0]) |
               (static_cast<uint64_t>(m.id.idiag_cookie[1]) << 32);
  out.rqueue = m.idiag_rqueue;
  out.wqueue = m.idiag_wqueue;
  out.uid = m.idiag_uid;
  out.inode = m.idiag_inode;
  out.mark.reset();
  out.cgroup_id.reset();
  out.shutdown.reset();
  out.tcp_info_length = 0;
  out.congestion[0] = '\0';
  out.bbr.reset();
  out.memory.count = 0;

  kernel::ForEachAttr(nlh, sizeof(inet_diag_msg), [&](const nlattr& a) {
    const void* data = reinterpret_cast<const char*>(&a) + NLA_HDRLEN;
    const size_t len = a.nla_len - NLA_HDRLEN;
    switch (a.nla_type & NLA_TYPE_MASK) {
      case INET_DIAG_INFO:
        if (protocol == IPPROTO_TCP && len > 0) {
          out.tcp_info = {};
          const size_t n = std::min(len, sizeof(KernelTcpInfo));
          std::memcpy(&out.tcp_info, data, n);
          out.tcp_info_length = static_cast<uint16_t>(n);
        }
        break;
      case INET_DIAG_CONG: {
        const size_t n =
            strnlen(static_cast<const char*>(data), std::min(len, sizeof(out.congestion) - 1));
        std::memcpy(out.congestion, data, n);
        out.congestion[n] = '\0';
        break;
      }
      case INET_DIAG_BBRINFO:
        if (len >= sizeof(KernelBbrInfo)) {
          KernelBbrInfo b;
          std::memcpy(&b, data, sizeof(b));
          out.bbr = b;
        }
        break;
      case INET_DIAG_SKMEMINFO: {
        const size_t n = std::min<size_t>(len / sizeof(uint32_t), 9);
        std::memcpy(out.memory.values, data, n * sizeof(uint32_t));
        out.memory.count = static_cast<uint8_t>(n);
        break;
      }
      case INET_DIAG_MARK:
        if (len >= 4) {
          uint32_t v;
          std::memcpy(&v, data, 4);
          out.mark = v;
        }
        break;
      case INET_DIAG_CGROUP_ID:
        if (len >= 8) {
          uint64_t v;
          std::memcpy(&v, data, 8);
          out.cgroup_id = v;
        }
        break;
      case INET_DIAG_SHUTDOWN:
        if (len >= 1) out.shutdown = *static_cast<const uint8_t*>(data);
        break;
    }
  });
  return absl::OkStatus();
}

absl::Status StopDump() {
  return kernel::WithKind(absl::OutOfRangeError(kStopMessage), "stop-dump");
}

bool IsStopDump(const absl::Status& status) { return kernel::HasKind(status, "stop-dump"); }

absl::StatusOr<SocketDumpReport> DumpSockets(
    const SocketQuery& q, absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
    SocketCursor from) {
  return DumpSockets(q, on_socket, from, [] { return absl::OkStatus(); });
}

absl::StatusOr<SocketDumpReport> DumpSockets(
    const SocketQuery& q, absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
    SocketCursor from, absl::FunctionRef<absl::Status()> keep_going) {
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_SOCK_DIAG));
  const std::string bytecode = BuildBytecode(q);
  uint8_t ext = 0;
  if (q.tcp_info) {
    // BBRINFO cannot be asked for (idiag_ext is 8 bits); the kernel sends it
    // when INFO or VEGASINFO is requested.
    ext |= 1 << (INET_DIAG_INFO - 1);
    ext |= 1 << (INET_DIAG_VEGASINFO - 1);
    ext |= 1 << (INET_DIAG_CONG - 1);
  }
  if (q.memory) ext |= 1 << (INET_DIAG_SKMEMINFO - 1);

  SocketDumpReport report;
  SocketRecord record;
  uint64_t examined = 0;
  uint32_t pass = 0;
  for (int protocol : q.protocols) {
    for (int family : q.families) {
      if (pass < from.pass) {
        ++pass;
        continue;
      }
      uint64_t seen = 0;
      const uint64_t skip = pass == from.pass ? from.skip : 0;
      kernel::NetlinkMessage req(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, 4096);
      auto* r = req.PutHeader<inet_diag_req_v2>();
      r->sdiag_family = static_cast<uint8_t>(family);
      r->sdiag_protocol = static_cast<uint8_t>(protocol);
      r->idiag_ext = ext;
      r->idiag_states = q.states;
      if (!bytecode.empty()) {
        req.PutBytes(INET_DIAG_REQ_BYTECODE, bytecode.data(), bytecode.size());
      }
      const std::string what = absl::StrCat("sock_diag ", protocol == IPPROTO_TCP ? "tcp" : "udp",
                                            family == AF_INET ? "4" : "6", " dump");
      absl::Status st = sock.Request(req, what, [&](const nlmsghdr& m) -> absl::Status {
        NETAGENT_RETURN_IF_ERROR(ParseSocket(m, protocol, record));
        if (++examined % kSocketCheckEvery == 0) NETAGENT_RETURN_IF_ERROR(keep_going());
        if (seen++ < skip) return absl::OkStatus();
        ++report.sockets;
        absl::Status cb = on_socket(record);
        if (IsStopDump(cb)) report.stopped_at = {pass, seen};
        return cb;
      });
      if (kernel::IsDumpInterrupted(st)) {
        report.warnings.push_back(std::string(st.message()));
      } else if (IsStopDump(st)) {
        return report;
      } else if (!st.ok()) {
        return st;
      }
      ++pass;
    }
  }
  report.stopped_at = {pass, 0};
  return report;
}

}  // namespace netagent::collectors
