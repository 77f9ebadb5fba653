#include "collectors/socket_iter.h"

#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "collectors/bpf/netagent_sockets.h"

namespace netagent::collectors {
namespace {

static_assert(sizeof(ns_socket) == kIterRecordSize);

constexpr uint8_t kMaxTcpState = 12;  // TCP_NEW_SYN_RECV; the record never says it

}  // namespace

absl::Status ParseIterRecord(absl::string_view bytes, SocketRecord& out) {
  if (bytes.size() != sizeof(ns_socket)) {
    return absl::DataLossError(absl::StrCat("socket iterator record of ", bytes.size(),
                                            " bytes, expected ", sizeof(ns_socket)));
  }
  ns_socket r;
  std::memcpy(&r, bytes.data(), sizeof(r));
  if (r.magic != NS_RECORD_MAGIC) {
    return absl::DataLossError(
        absl::StrCat("socket iterator record without its magic (0x", absl::Hex(r.magic), ")"));
  }
  if (r.family != AF_INET && r.family != AF_INET6) {
    return absl::DataLossError(absl::StrCat("socket iterator record of address family ", r.family));
  }
  if (r.state == 0 || r.state > kMaxTcpState) {
    return absl::DataLossError(absl::StrCat("socket iterator record in TCP state ", r.state));
  }
  out.protocol = IPPROTO_TCP;
  out.state = r.state;
  out.timer = out.timer_retransmits = 0;
  out.timer_expires_ms = 0;
  out.local.family = out.peer.family = r.family;
  const size_t n = r.family == AF_INET ? 4 : 16;
  out.local.bytes.fill(0);
  out.peer.bytes.fill(0);
  std::memcpy(out.local.bytes.data(), r.local, n);
  std::memcpy(out.peer.bytes.data(), r.peer, n);
  out.local_port = r.local_port;
  out.peer_port = r.peer_port;
  out.ifindex = 0;
  out.cookie = r.cookie;
  out.rqueue = r.rqueue;
  out.wqueue = r.wqueue;
  out.uid = 0;
  out.inode = 0;
  out.mark.reset();
  out.cgroup_id.reset();
  out.shutdown.reset();
  out.congestion[0] = '\0';
  out.bbr.reset();
  out.memory = SkMemInfo{};
  if (!(r.flags & NS_HAS_INFO)) {
    out.tcp_info_length = 0;
    return absl::OkStatus();
  }
  out.tcp_info = KernelTcpInfo{};
  out.tcp_info_length = sizeof(KernelTcpInfo);
  KernelTcpInfo& t = out.tcp_info;
  t.state = r.state;
  t.retransmits = r.retransmits;
  t.snd_mss = r.snd_mss;
  t.unacked = r.unacked;
  t.last_ack_recv = r.last_ack_recv_ms;
  t.pmtu = r.pmtu;
  t.rtt = r.rtt_us;
  t.total_retrans = r.total_retrans;
  t.bytes_acked = r.bytes_acked;
  t.delivery_rate = r.delivery_rate;
  t.busy_time = r.busy_us;
  t.rwnd_limited = r.rwnd_limited_us;
  t.sndbuf_limited = r.sndbuf_limited_us;
  t.bytes_sent = r.bytes_sent;
  out.memory.values[SK_MEMINFO_SNDBUF] = r.sndbuf;
  out.memory.count = SK_MEMINFO_SNDBUF + 1;
  return absl::OkStatus();
}

bool TcpSocketIterator::CanWalk(const SocketQuery& q) {
  constexpr uint32_t kListen = 1u << 10;
  // Listeners only: sock_diag reads the listening table alone, the iterator
  // would walk every connection to skip it.
  return q.protocols.size() == 1 && q.protocols[0] == IPPROTO_TCP && !q.source && !q.destination &&
         !q.source_port && !q.destination_port && (q.states & ~kListen) != 0;
}

}  // namespace netagent::collectors
