#include "collectors/sockets.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "collectors/socket_summary.h"
#include "kernel/fd.h"
#include "kernel/netlink.h"
#include "tests/common/ss_output.h"
#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

using netagent::testing::Fixture;

std::vector<SocketRecord> ReplaySockets(const std::string& rel, int protocol) {
  std::vector<SocketRecord> out;
  SocketRecord r;
  absl::Status st = kernel::ReplayRecording(Fixture(rel), "sock_diag", [&](const nlmsghdr& m) {
    absl::Status p = ParseSocket(m, protocol, r);
    if (p.ok()) out.push_back(r);
    return p;
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

TEST(ParseSocket, RecordedDumpAgreesWithSsOnTheSameSockets) {
  auto ours = ReplaySockets("netlink/linux-6.18/sock_diag_tcp4.bin", IPPROTO_TCP);
  auto ss = netagent::testing::ParseSsOutput(Fixture("netlink/linux-6.18/sock_diag_tcp4.ss.txt"));
  ASSERT_EQ(ours.size(), ss.size());
  ASSERT_GE(ours.size(), 12u);
  std::map<uint64_t, const netagent::testing::SsSocket*> by_inode_cookie;
  for (const auto& s : ss) by_inode_cookie[s.cookie] = &s;
  std::map<std::string, int> states;
  for (const SocketRecord& r : ours) {
    ++states[std::string(SocketStateLabel(r.state))];
    auto it = by_inode_cookie.find(r.cookie);
    ASSERT_NE(it, by_inode_cookie.end()) << "cookie " << r.cookie;
    const netagent::testing::SsSocket& s = *it->second;
    EXPECT_EQ(SocketStateLabel(r.state), s.state);
    EXPECT_EQ(r.rqueue, s.rq);
    EXPECT_EQ(r.wqueue, s.sq);
    EXPECT_EQ(FormatEndpoint(r.local, r.local_port), s.local);
    EXPECT_EQ(r.inode, s.inode);
    if (r.state == 1) {  // established: the tcp_info ss prints
      ASSERT_TRUE(r.has_tcp_info());
      EXPECT_EQ(r.tcp_info_length, 248);
      EXPECT_EQ(absl::StrCat(r.tcp_info.snd_cwnd), s.info.at("cwnd"));
      EXPECT_EQ(absl::StrCat(r.tcp_info.snd_mss), s.info.at("mss"));
      EXPECT_EQ(absl::StrCat(r.tcp_info.wscale & 0xf, ",", r.tcp_info.wscale >> 4),
                s.info.at("wscale"));
      EXPECT_EQ(absl::StrCat(r.tcp_info.rto / 1000), s.info.at("rto"));
      EXPECT_TRUE(s.info.count(r.congestion)) << r.congestion;
      EXPECT_EQ(r.memory.count, 9);
      EXPECT_TRUE(r.bbr.has_value());  // bbr is this kernel's default
    }
  }
  EXPECT_EQ(states["LISTEN"], 3);
  EXPECT_EQ(states["TIME-WAIT"], 1);
  EXPECT_EQ(states["CLOSE-WAIT"], 1);
  EXPECT_EQ(states["SYN-RECV"], 1);
}

TEST(ParseSocket, AShorterTcpInfoFromAnOlderKernelIsZeroFilled) {
  // inet_diag_msg followed by INET_DIAG_INFO of 104 bytes: the 3.x layout,
  // which ends before tcpi_pacing_rate.
  kernel::NetlinkMessage m(SOCK_DIAG_BY_FAMILY, 0);
  auto* msg = m.PutHeader<inet_diag_msg>();
  msg->idiag_family = AF_INET;
  msg->idiag_state = 1;
  msg->id.idiag_sport = htons(22);
  KernelTcpInfo old{};
  old.snd_cwnd = 42;
  old.total_retrans = 7;
  m.PutBytes(INET_DIAG_INFO, &old, 104);
  SocketRecord r;
  r.tcp_info.pacing_rate = 999;  // left over from an earlier socket
  ASSERT_TRUE(ParseSocket(*m.header(), IPPROTO_TCP, r).ok());
  EXPECT_EQ(r.tcp_info_length, 104);
  EXPECT_EQ(r.tcp_info.snd_cwnd, 42u);
  EXPECT_EQ(r.tcp_info.total_retrans, 7u);
  EXPECT_EQ(r.tcp_info.pacing_rate, 0u);
  EXPECT_EQ(r.local_port, 22);
}

TEST(ParseSocket, TooShortIsDataLoss) {
  kernel::NetlinkMessage m(SOCK_DIAG_BY_FAMILY, 0);
  m.PutU32(1, 0);
  SocketRecord r;
  EXPECT_EQ(ParseSocket(*m.header(), IPPROTO_TCP, r).code(), absl::StatusCode::kDataLoss);
}

// The kernel's inet_diag_bc_audit and inet_diag_bc_run, restated for tests.
struct Entry {
  int family;
  std::array<uint8_t, 16> src{}, dst{};
  uint16_t sport, dport;
};

bool Audit(const std::string& bc) {
  const int len = static_cast<int>(bc.size());
  std::vector<int> boundaries;
  for (int off = 0; off < len;) {
    boundaries.push_back(off);
    inet_diag_bc_op op;
    std::memcpy(&op, bc.data() + off, sizeof(op));
    const int rem = len - off;
    if (op.yes < 4 || op.yes > rem + 4 || (op.yes & 3)) return false;
    if (op.no < 4 || op.no > rem + 4 || (op.no & 3)) return false;
    off += op.yes;
  }
  return true;
}

bool RunBytecode(const std::string& bc, const Entry& e) {
  int len = static_cast<int>(bc.size());
  const char* p = bc.data();
  while (len > 0) {
    inet_diag_bc_op op;
    std::memcpy(&op, p, sizeof(op));
    bool yes = true;
    auto next_port = [&] {
      inet_diag_bc_op o2;
      std::memcpy(&o2, p + sizeof(op), sizeof(o2));
      return o2.no;
    };
    switch (op.code) {
      case INET_DIAG_BC_S_GE:
        yes = e.sport >= next_port();
        break;
      case INET_DIAG_BC_S_LE:
        yes = e.sport <= next_port();
        break;
      case INET_DIAG_BC_D_GE:
        yes = e.dport >= next_port();
        break;
      case INET_DIAG_BC_D_LE:
        yes = e.dport <= next_port();
        break;
      case INET_DIAG_BC_S_COND:
      case INET_DIAG_BC_D_COND: {
        inet_diag_hostcond hc;
        std::memcpy(&hc, p + sizeof(op), sizeof(hc));
        Prefix pre;
        pre.address.family = hc.family;
        std::memcpy(pre.address.bytes.data(), p + sizeof(op) + sizeof(hc), pre.address.size());
        pre.length = hc.prefix_len;
        IpAddress a;
        a.family = e.family;
        a.bytes = op.code == INET_DIAG_BC_S_COND ? e.src : e.dst;
        yes = hc.family == e.family && pre.Contains(a);
        break;
      }
    }
    const int jump = yes ? op.yes : op.no;
    len -= jump;
    p += jump;
  }
  return len == 0;
}

Entry V4(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  Entry e{AF_INET, {}, {}, sport, dport};
  inet_pton(AF_INET, src, e.src.data());
  inet_pton(AF_INET, dst, e.dst.data());
  return e;
}

TEST(BuildBytecode, EmptyWithoutAddressOrPortFilters) {
  SocketQuery q;
  q.states = 1 << 1;
  EXPECT_EQ(BuildBytecode(q), "");
}

TEST(BuildBytecode, ConditionsAndTogether) {
  SocketQuery q;
  q.source = *ParsePrefix("10.1.0.0/16", "source");
  q.destination_port = *ParsePortRange("443", "dport");
  q.source_port = *ParsePortRange("1024-65535", "sport");
  const std::string bc = BuildBytecode(q);
  ASSERT_TRUE(Audit(bc));
  EXPECT_TRUE(RunBytecode(bc, V4("10.1.2.3", 40000, "1.1.1.1", 443)));
  EXPECT_FALSE(RunBytecode(bc, V4("10.2.2.3", 40000, "1.1.1.1", 443)));  // source outside /16
  EXPECT_FALSE(RunBytecode(bc, V4("10.1.2.3", 40000, "1.1.1.1", 444)));  // wrong dport
  EXPECT_FALSE(RunBytecode(bc, V4("10.1.2.3", 80, "1.1.1.1", 443)));     // sport below range
  // The lower bound 1024 needs a test; the upper 65535 does not.
  EXPECT_EQ(bc.size(), sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + 4 + 3 * 8u);
}

TEST(BuildBytecode, Ipv6Prefix) {
  SocketQuery q;
  q.destination = *ParsePrefix("fd00::/64", "destination");
  const std::string bc = BuildBytecode(q);
  ASSERT_TRUE(Audit(bc));
  Entry in{AF_INET6, {}, {}, 1, 2}, out{AF_INET6, {}, {}, 1, 2};
  inet_pton(AF_INET6, "fd00::7", in.dst.data());
  inet_pton(AF_INET6, "fd01::7", out.dst.data());
  EXPECT_TRUE(RunBytecode(bc, in));
  EXPECT_FALSE(RunBytecode(bc, out));
  EXPECT_FALSE(RunBytecode(bc, V4("1.1.1.1", 1, "2.2.2.2", 2)));  // other family
}

TEST(ParseSocketStates, NamesAndGroups) {
  EXPECT_EQ(*ParseSocketStates({}, "states"), kAllStates);
  EXPECT_EQ(*ParseSocketStates({"established", "listening"}, "states"), (1u << 1) | (1u << 10));
  EXPECT_EQ(*ParseSocketStates({"connected"}, "states"), kAllStates & ~((1u << 10) | (1u << 7)));
  auto bad = ParseSocketStates({"estab"}, "filter.states");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().rfind("filter.states: unknown state \"estab\"", 0), 0u);
}

TEST(ParsePrefix, FormsAndErrors) {
  auto p = ParsePrefix("192.168.0.0/16", "f");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->length, 16);
  EXPECT_EQ(ParsePrefix("10.0.0.1", "f")->length, 32);
  EXPECT_EQ(ParsePrefix("::1", "f")->length, 128);
  EXPECT_EQ(ParsePrefix("0.0.0.0/0", "f")->length, 0);
  for (const char* bad : {"10.0.0.1/8", "10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/",
                          "10.0.0.0/x", "10.0.0.0/+8", "300.1.1.1"}) {
    auto r = ParsePrefix(bad, "filter.source");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().rfind("filter.source:", 0), 0u) << r.status();
  }
}

TEST(ParsePortRange, FormsAndErrors) {
  EXPECT_EQ(ParsePortRange("80", "f")->low, 80);
  EXPECT_EQ(ParsePortRange("80", "f")->high, 80);
  EXPECT_EQ(ParsePortRange("1024-2048", "f")->high, 2048);
  for (const char* bad : {"", "-", "80-", "-80", "70000", "90-80", "x", "+80"}) {
    EXPECT_FALSE(ParsePortRange(bad, "f").ok()) << bad;
  }
}

TEST(SocketSummarizer, ListenersTimeWaitAndPeers) {
  SocketSummarizer sum;
  auto rec = [](uint8_t state, const char* local, uint16_t lport, const char* peer,
                uint16_t pport) {
    SocketRecord r;
    r.state = state;
    r.local.family = r.peer.family = AF_INET;
    inet_pton(AF_INET, local, r.local.bytes.data());
    inet_pton(AF_INET, peer, r.peer.bytes.data());
    r.local_port = lport;
    r.peer_port = pport;
    return r;
  };
  SocketRecord l = rec(10, "0.0.0.0", 80, "0.0.0.0", 0);
  l.rqueue = 3;
  l.wqueue = 4;
  sum.Add(l);
  sum.Add(rec(3, "10.0.0.1", 80, "10.9.9.9", 5555));  // SYN_RECV on the wildcard listener
  sum.Add(rec(3, "10.0.0.1", 81, "10.9.9.9", 5556));  // another port
  for (int i = 0; i < 5; ++i) sum.Add(rec(6, "10.0.0.1", 40000 + i, "10.2.2.2", 443));
  sum.Add(rec(6, "10.0.0.1", 41000, "10.3.3.3", 443));
  SocketRecord slow = rec(1, "10.0.0.1", 42000, "10.4.4.4", 443);
  slow.tcp_info_length = 248;
  slow.tcp_info.rtt = 80000;
  slow.tcp_info.total_retrans = 9;
  sum.Add(slow);
  SocketRecord fast = rec(1, "10.0.0.1", 42001, "10.5.5.5", 443);
  fast.tcp_info_length = 248;
  fast.tcp_info.rtt = 1000;
  sum.Add(fast);
  SocketSummary s = sum.Finish(1, PortRange{32768, 60999});
  EXPECT_EQ(s.total, 11u);
  ASSERT_EQ(s.listeners.size(), 1u);
  EXPECT_DOUBLE_EQ(s.listeners[0].fill_percent, 75.0);
  EXPECT_EQ(s.listeners[0].syn_recv, 1u);
  EXPECT_EQ(s.time_wait.count, 6u);
  EXPECT_EQ(s.time_wait.busiest_peer, "10.2.2.2:443");
  EXPECT_EQ(s.time_wait.busiest_peer_count, 5u);
  EXPECT_EQ(s.time_wait.ephemeral_ports, 28232u);
  ASSERT_EQ(s.top_retransmitting.size(), 1u);
  EXPECT_EQ(FormatAddress(s.top_retransmitting[0].address), "10.4.4.4");
  ASSERT_EQ(s.top_rtt.size(), 1u);  // top 1
  EXPECT_DOUBLE_EQ(s.top_rtt[0].mean_rtt_ms(), 80.0);
  ASSERT_EQ(s.top_syn_recv_sources.size(), 1u);
  EXPECT_EQ(FormatAddress(s.top_syn_recv_sources[0].first), "10.9.9.0");  // its /24
  EXPECT_EQ(s.top_syn_recv_sources[0].second, 2u);
  EXPECT_TRUE(s.busiest_flows.empty()) << "no busy time in these tcp_info";
}

// A dual-stack (::) listener's IPv4 clients are ::ffff:a.b.c.d: grouped by
// their IPv4 /24, not all into ::/64 (which would make a flood spoofed over
// many networks look as if it came from one).
TEST(SocketSummarizer, HalfOpenSourcesOfADualStackListenerAreGroupedAsIpv4) {
  SocketSummarizer sum;
  auto half_open = [&](const char* peer) {
    SocketRecord r;
    r.state = 3;
    r.local.family = r.peer.family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.0.0.1", r.local.bytes.data());
    inet_pton(AF_INET6, peer, r.peer.bytes.data());
    r.local_port = 80;
    r.peer_port = 5555;
    sum.Add(r);
  };
  half_open("::ffff:198.51.100.7");
  half_open("::ffff:198.51.100.9");
  half_open("::ffff:203.0.113.1");
  half_open("2001:db8::1");
  SocketSummary s = sum.Finish(10, PortRange{32768, 60999});
  ASSERT_EQ(s.top_syn_recv_sources.size(), 3u);
  EXPECT_EQ(s.top_syn_recv_sources[0].first.family, AF_INET);
  EXPECT_EQ(FormatAddress(s.top_syn_recv_sources[0].first), "198.51.100.0");
  EXPECT_EQ(s.top_syn_recv_sources[0].second, 2u);
  EXPECT_EQ(FormatAddress(s.top_syn_recv_sources[1].first), "203.0.113.0");
  EXPECT_EQ(FormatAddress(s.top_syn_recv_sources[2].first), "2001:db8::");
  IpAddress plain;
  plain.family = AF_INET6;
  inet_pton(AF_INET6, "::1", plain.bytes.data());
  EXPECT_EQ(UnmapV4(plain), plain);
}

// The 64 flows with the most busy time are kept, busiest first; a tcp_info
// too short to hold the limited times (kernels before 4.10) is skipped.
TEST(SocketSummarizer, BusiestFlowsByBusyTime) {
  SocketSummarizer sum;
  for (uint64_t i = 1; i <= 100; ++i) {
    SocketRecord r;
    r.state = 1;
    r.local.family = r.peer.family = AF_INET;
    r.local_port = 5201;
    r.peer_port = static_cast<uint16_t>(40000 + i);
    r.cookie = i;
    r.tcp_info_length = 248;
    r.tcp_info.busy_time = i * 1000;
    r.tcp_info.sndbuf_limited = i * 500;
    sum.Add(r);
  }
  SocketRecord old;
  old.state = 1;
  old.tcp_info_length = 104;  // no busy time there
  old.tcp_info.busy_time = 1 << 30;
  sum.Add(old);
  SocketSummary s = sum.Finish(10, PortRange{32768, 60999});
  ASSERT_EQ(s.busiest_flows.size(), 64u);
  EXPECT_EQ(s.busiest_flows.front().cookie, 100u);
  EXPECT_EQ(s.busiest_flows.back().cookie, 37u);
  EXPECT_EQ(s.busiest_flows.front().sndbuf_limited_us, 50000u);
  EXPECT_EQ(s.busiest_flows.front().peer, "0.0.0.0:40100");
}

// Connections with RTOs in a row and data outstanding, the worst first.
TEST(SocketSummarizer, StalledConnections) {
  SocketSummarizer sum;
  for (uint8_t rtos : {1, 4, 2, 6}) {
    SocketRecord r;
    r.state = 1;
    r.local.family = r.peer.family = AF_INET;
    r.tcp_info_length = 248;
    r.tcp_info.retransmits = rtos;
    r.tcp_info.unacked = 3;
    r.tcp_info.snd_mss = 1448;
    r.tcp_info.bytes_acked = 517;
    sum.Add(r);
  }
  SocketRecord idle;  // RTOs but nothing outstanding: not stalled
  idle.state = 1;
  idle.tcp_info_length = 248;
  idle.tcp_info.retransmits = 9;
  sum.Add(idle);
  SocketSummary s = sum.Finish(10, PortRange{32768, 60999});
  ASSERT_EQ(s.stalled.size(), 3u);
  EXPECT_EQ(s.stalled[0].retransmits, 6);
  EXPECT_EQ(s.stalled[2].retransmits, 2);
  EXPECT_EQ(s.stalled[0].bytes_acked, 517u);
}

}  // namespace
}  // namespace netagent::collectors

namespace netagent::collectors {
namespace {

// Against the kernel, in a network namespace of this thread's own holding
// kListeners TCP listeners: the dump asks whether to go on every
// kSocketCheckEvery sockets read, those skipped to reach a page included.
TEST(DumpSockets, AsksWhetherToGoOnAlsoWhileSkippingToAPage) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  constexpr uint32_t kListeners = 600;
  std::thread([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    std::vector<kernel::UniqueFd> fds;
    for (uint32_t i = 0; i < kListeners; ++i) {
      kernel::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      ASSERT_TRUE(fd.valid()) << std::strerror(errno);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      ASSERT_EQ(::listen(fd.get(), 1), 0);
      fds.push_back(std::move(fd));
    }
    SocketQuery q;
    q.families = {AF_INET};
    uint64_t checks = 0, given = 0;
    auto count = [&](const SocketRecord&) {
      ++given;
      return absl::OkStatus();
    };
    auto stop_at_first = [&] {
      return ++checks == 1 ? absl::CancelledError("caller went away") : absl::OkStatus();
    };
    // A page past the end: every socket is skipped, none given, yet it asks.
    auto skipping = DumpSockets(q, count, SocketCursor{0, 1000000}, stop_at_first);
    EXPECT_TRUE(absl::IsCancelled(skipping.status())) << skipping.status();
    EXPECT_EQ(given, 0u);
    EXPECT_EQ(checks, 1u);
    // From the start: the sockets before the first check, then the stop.
    checks = given = 0;
    auto early = DumpSockets(q, count, SocketCursor{}, stop_at_first);
    EXPECT_TRUE(absl::IsCancelled(early.status())) << early.status();
    EXPECT_EQ(given, kSocketCheckEvery - 1);
    // Nobody gives up: every socket, a check every 256.
    checks = given = 0;
    auto all = DumpSockets(q, count, SocketCursor{}, [&] {
      ++checks;
      return absl::OkStatus();
    });
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(all->sockets, kListeners);
    EXPECT_EQ(given, kListeners);
    EXPECT_EQ(checks, kListeners / kSocketCheckEvery);
  }).join();
}

}  // namespace
}  // namespace netagent::collectors
