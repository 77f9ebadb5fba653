#include "collectors/socket_iter.h"

#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "collectors/bpf/netagent_sockets.h"
#include "kernel/errors.h"

namespace netagent::collectors {
namespace {

static_assert(sizeof(ns_socket) == kIterRecordSize);

constexpr uint8_t kMaxTcpState = 12;  // TCP_NEW_SYN_RECV; the record never says it

// jiffies_to_msecs(): exact where HZ divides 1000, rounded up elsewhere.
uint32_t JiffiesToMs(uint32_t j, uint32_t hz) {
  if (1000 % hz == 0) return j * (1000 / hz);
  return static_cast<uint32_t>((static_cast<uint64_t>(j) * 1000 + hz - 1) / hz);
}

}  // namespace

absl::StatusOr<bool> ParseIterRecord(absl::string_view bytes, uint32_t hz, SocketRecord& out,
                                     IterFooter& footer) {
  if (bytes.size() != sizeof(ns_socket)) {
    return absl::DataLossError(absl::StrCat("socket iterator record of ", bytes.size(),
                                            " bytes, expected ", sizeof(ns_socket)));
  }
  ns_socket r;
  std::memcpy(&r, bytes.data(), sizeof(r));
  if (r.magic == NS_FOOTER_MAGIC) {
    ns_footer f;
    std::memcpy(&f, bytes.data(), sizeof(f));
    footer.jiffies = f.jiffies;
    footer.ktime_ns = f.ktime_ns;
    return false;
  }
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
  if (!(r.flags & NS_HAS_INFO) || hz == 0) {
    out.tcp_info_length = 0;
    return true;
  }
  out.tcp_info = KernelTcpInfo{};
  out.tcp_info_length = sizeof(KernelTcpInfo);
  KernelTcpInfo& t = out.tcp_info;
  t.state = r.state;
  t.retransmits = r.retransmits;
  t.snd_mss = r.snd_mss;
  t.unacked = r.unacked;
  t.last_ack_recv = JiffiesToMs(r.last_ack_recv_jiffies, hz);
  t.pmtu = r.pmtu;
  t.rtt = r.rtt_us;
  t.total_retrans = r.total_retrans;
  t.bytes_acked = r.bytes_acked;
  t.delivery_rate = r.delivery_rate;
  // As tcp_get_info_chrono_stats(): each in whole microseconds per jiffy,
  // busy time the sum of the three.
  const uint64_t per = 1000000 / hz;
  t.rwnd_limited = r.rwnd_limited_jiffies * per;
  t.sndbuf_limited = r.sndbuf_limited_jiffies * per;
  t.busy_time = r.busy_jiffies * per + t.rwnd_limited + t.sndbuf_limited;
  t.bytes_sent = r.bytes_sent;
  out.memory.values[SK_MEMINFO_SNDBUF] = r.sndbuf;
  out.memory.count = SK_MEMINFO_SNDBUF + 1;
  return true;
}

absl::Status IterRecordStream::Feed(
    absl::string_view chunk, absl::FunctionRef<absl::Status(absl::string_view record)> on_record) {
  if (!partial_.empty()) {
    const size_t take = std::min(chunk.size(), kIterRecordSize - partial_.size());
    partial_.append(chunk.data(), take);
    chunk.remove_prefix(take);
    if (partial_.size() < kIterRecordSize) return absl::OkStatus();
    const std::string whole = std::move(partial_);
    partial_.clear();
    NETAGENT_RETURN_IF_ERROR(on_record(whole));
  }
  while (chunk.size() >= kIterRecordSize) {
    NETAGENT_RETURN_IF_ERROR(on_record(chunk.substr(0, kIterRecordSize)));
    chunk.remove_prefix(kIterRecordSize);
  }
  partial_.assign(chunk.data(), chunk.size());
  return absl::OkStatus();
}

absl::Status IterRecordStream::Finish() const {
  if (partial_.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("the socket iterator ended inside a record (", partial_.size(), " bytes)"));
}

absl::StatusOr<uint32_t> HzFromFooters(const IterFooter& first, const IterFooter& second) {
  if (second.ktime_ns < first.ktime_ns + 100'000'000 || second.jiffies < first.jiffies) {
    return absl::FailedPreconditionError(
        "the socket iterator's two walks were too close together to measure HZ");
  }
  const double ns = static_cast<double>(second.ktime_ns - first.ktime_ns);
  const double rate = static_cast<double>(second.jiffies - first.jiffies) * 1e9 / ns;
  // Each end of the count may be off by a tick: 1.5 ticks over the time
  // between, and 2% besides.
  const double slack = 1.5e9 / ns;
  for (uint32_t hz : {100u, 250u, 300u, 1000u}) {
    if (std::abs(rate - hz) <= 0.02 * hz + slack) return hz;
  }
  return absl::FailedPreconditionError(absl::StrCat("jiffies advance ", static_cast<int64_t>(rate),
                                                    " times a second, not a HZ this agent knows"));
}

bool TcpSocketIterator::CanWalk(const SocketQuery& q) {
  constexpr uint32_t kListen = 1u << 10;
  // Listeners only: sock_diag reads the listening table alone, the iterator
  // would walk every connection to skip it.
  return q.protocols.size() == 1 && q.protocols[0] == IPPROTO_TCP && !q.source && !q.destination &&
         !q.source_port && !q.destination_port && (q.states & ~kListen) != 0;
}

}  // namespace netagent::collectors
