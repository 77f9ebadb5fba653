#include "collectors/socket_iter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/sock_diag.h>

#include <cstring>
#include <map>
#include <sstream>

#include "collectors/bpf/netagent_sockets.h"
#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

ns_socket Established() {
  ns_socket r{};
  r.magic = NS_RECORD_MAGIC;
  r.family = AF_INET;
  r.state = 1;
  r.flags = NS_HAS_INFO;
  r.local_port = 8080;
  r.peer_port = 40000;
  const uint8_t local[4] = {10, 0, 0, 1}, peer[4] = {10, 0, 0, 2};
  std::memcpy(r.local, local, 4);
  std::memcpy(r.peer, peer, 4);
  r.cookie = 77;
  r.rqueue = 3;
  r.wqueue = 4;
  r.retransmits = 2;
  r.rtt_us = 1500;
  r.total_retrans = 9;
  r.snd_mss = 1448;
  r.pmtu = 1500;
  r.unacked = 5;
  r.last_ack_recv_jiffies = 175;
  r.sndbuf = 87040;
  r.bytes_acked = 1000;
  r.bytes_sent = 2000;
  r.delivery_rate = 125000;
  r.busy_jiffies = 9;
  r.rwnd_limited_jiffies = 2;
  r.sndbuf_limited_jiffies = 3;
  return r;
}

std::string Bytes(const ns_socket& r) {
  return std::string(reinterpret_cast<const char*>(&r), sizeof(r));
}

// Parses one record at HZ 250; true for a socket.
bool Parse(const std::string& bytes, SocketRecord& s, uint32_t hz = 250) {
  IterFooter footer;
  auto r = ParseIterRecord(bytes, hz, s, footer);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() && *r;
}

TEST(ParseIterRecord, EstablishedIPv4WithItsFigures) {
  SocketRecord s;
  ASSERT_TRUE(Parse(Bytes(Established()), s));
  EXPECT_EQ(s.protocol, IPPROTO_TCP);
  EXPECT_EQ(s.state, 1);
  EXPECT_EQ(s.local.family, AF_INET);
  EXPECT_EQ(FormatEndpoint(s.local, s.local_port), "10.0.0.1:8080");
  EXPECT_EQ(FormatEndpoint(s.peer, s.peer_port), "10.0.0.2:40000");
  EXPECT_EQ(s.cookie, 77u);
  EXPECT_EQ(s.rqueue, 3u);
  EXPECT_EQ(s.wqueue, 4u);
  ASSERT_TRUE(s.has_tcp_info());
  EXPECT_EQ(s.tcp_info_length, sizeof(KernelTcpInfo));
  EXPECT_EQ(s.tcp_info.retransmits, 2);
  EXPECT_EQ(s.tcp_info.rtt, 1500u);
  EXPECT_EQ(s.tcp_info.total_retrans, 9u);
  EXPECT_EQ(s.tcp_info.snd_mss, 1448u);
  EXPECT_EQ(s.tcp_info.pmtu, 1500u);
  EXPECT_EQ(s.tcp_info.unacked, 5u);
  EXPECT_EQ(s.tcp_info.last_ack_recv, 700u);  // 175 jiffies at HZ 250
  EXPECT_EQ(s.tcp_info.bytes_acked, 1000u);
  EXPECT_EQ(s.tcp_info.bytes_sent, 2000u);
  EXPECT_EQ(s.tcp_info.delivery_rate, 125000u);
  // As tcp_get_info(): 4,000 us a jiffy, busy time the sum of the three.
  EXPECT_EQ(s.tcp_info.rwnd_limited, 8000u);
  EXPECT_EQ(s.tcp_info.sndbuf_limited, 12000u);
  EXPECT_EQ(s.tcp_info.busy_time, 56000u);
  ASSERT_GT(s.memory.count, SK_MEMINFO_SNDBUF);
  EXPECT_EQ(s.memory.values[SK_MEMINFO_SNDBUF], 87040u);
}

// A record reused for the next one keeps nothing of the last: a listener
// after an established socket has no tcp_info, no memory, no cookie's bytes
// in its address.
TEST(ParseIterRecord, ReusedRecordKeepsNothingOfTheLast) {
  SocketRecord s;
  ASSERT_TRUE(Parse(Bytes(Established()), s));
  ns_socket l{};
  l.magic = NS_RECORD_MAGIC;
  l.family = AF_INET6;
  l.state = 10;
  l.local_port = 443;
  l.rqueue = 7;
  l.wqueue = 128;
  inet_pton(AF_INET6, "2001:db8::1", l.local);
  ASSERT_TRUE(Parse(Bytes(l), s));
  EXPECT_EQ(s.state, 10);
  EXPECT_EQ(s.local.family, AF_INET6);
  EXPECT_EQ(FormatEndpoint(s.local, s.local_port), "[2001:db8::1]:443");
  EXPECT_EQ(FormatEndpoint(s.peer, s.peer_port), "[::]:0");
  EXPECT_FALSE(s.has_tcp_info());
  EXPECT_EQ(s.memory.count, 0);
  EXPECT_EQ(s.cookie, 0u);
  EXPECT_EQ(s.rqueue, 7u);
  EXPECT_EQ(s.wqueue, 128u);
}

// jiffies_to_msecs() rounds up where HZ does not divide 1000; microseconds a
// jiffy are whole (3,333 at HZ 300), as the kernel multiplies.
TEST(ParseIterRecord, JiffiesAsTheKernelConvertsThem) {
  ns_socket r = Established();
  r.last_ack_recv_jiffies = 1;
  r.busy_jiffies = 3;
  r.rwnd_limited_jiffies = r.sndbuf_limited_jiffies = 0;
  SocketRecord s;
  ASSERT_TRUE(Parse(Bytes(r), s, 300));
  EXPECT_EQ(s.tcp_info.last_ack_recv, 4u);
  EXPECT_EQ(s.tcp_info.busy_time, 9999u);
  ASSERT_TRUE(Parse(Bytes(r), s, 1000));
  EXPECT_EQ(s.tcp_info.last_ack_recv, 1u);
  EXPECT_EQ(s.tcp_info.busy_time, 3000u);
  // Without a measured HZ there are no figures to give.
  ASSERT_TRUE(Parse(Bytes(r), s, 0));
  EXPECT_FALSE(s.has_tcp_info());
}

TEST(ParseIterRecord, TheFooterIsNotASocket) {
  ns_footer f{};
  f.magic = NS_FOOTER_MAGIC;
  f.jiffies = 4294937296ull;
  f.ktime_ns = 123456789;
  SocketRecord s;
  IterFooter footer;
  auto r =
      ParseIterRecord(std::string(reinterpret_cast<const char*>(&f), sizeof(f)), 250, s, footer);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(footer.jiffies, 4294937296ull);
  EXPECT_EQ(footer.ktime_ns, 123456789u);
}

TEST(HzFromFooters, TheNearestRateKernelsAreBuiltWith) {
  const IterFooter a{1000, 5'000'000'000};
  EXPECT_EQ(*HzFromFooters(a, {1000 + 62, 5'250'000'000}), 250u);  // 62 ticks in 250 ms
  EXPECT_EQ(*HzFromFooters(a, {1000 + 26, 5'250'000'000}), 100u);  // a tick over 100/s
  EXPECT_EQ(*HzFromFooters(a, {1000 + 24, 5'250'000'000}), 100u);  // a tick under
  EXPECT_EQ(*HzFromFooters(a, {1000 + 76, 5'250'000'000}), 300u);
  EXPECT_EQ(*HzFromFooters(a, {1000 + 249, 5'250'000'000}), 1000u);
  EXPECT_FALSE(HzFromFooters(a, {1000 + 40, 5'250'000'000}).ok());  // 160/s
  EXPECT_FALSE(HzFromFooters(a, {1000 + 6, 5'020'000'000}).ok());   // too close together
  EXPECT_FALSE(HzFromFooters(a, {900, 5'250'000'000}).ok());        // backwards
}

// Reads give any number of bytes: records come out whole whatever the cut.
TEST(IterRecordStream, RecordsWholeAcrossAnyCut) {
  std::string walk;
  for (int i = 0; i < 5; ++i) {
    ns_socket r = Established();
    r.cookie = i;
    walk += Bytes(r);
  }
  for (size_t cut : {1u, 7u, 135u, 136u, 137u, 300u, 680u}) {
    IterRecordStream stream;
    std::vector<uint64_t> cookies;
    for (size_t off = 0; off < walk.size(); off += cut) {
      ASSERT_TRUE(stream
                      .Feed(absl::string_view(walk).substr(off, cut),
                            [&](absl::string_view rec) {
                              EXPECT_EQ(rec.size(), kIterRecordSize);
                              ns_socket r;
                              std::memcpy(&r, rec.data(), sizeof(r));
                              cookies.push_back(r.cookie);
                              return absl::OkStatus();
                            })
                      .ok());
    }
    EXPECT_TRUE(stream.Finish().ok()) << cut;
    EXPECT_EQ(cookies, (std::vector<uint64_t>{0, 1, 2, 3, 4})) << cut;
  }
  IterRecordStream cut_short;
  ASSERT_TRUE(cut_short
                  .Feed(absl::string_view(walk).substr(0, 200),
                        [](absl::string_view) { return absl::OkStatus(); })
                  .ok());
  EXPECT_TRUE(absl::IsDataLoss(cut_short.Finish()));
}

TEST(ParseIterRecord, RefusesWhatIsNotARecord) {
  SocketRecord s;
  IterFooter footer;
  const std::string good = Bytes(Established());
  auto loss = [&](const std::string& b) {
    return absl::IsDataLoss(ParseIterRecord(b, 250, s, footer).status());
  };
  EXPECT_TRUE(loss(good.substr(0, 135)));
  EXPECT_TRUE(loss(good + "x"));
  EXPECT_TRUE(loss(""));
  ns_socket r = Established();
  r.magic = 0;
  EXPECT_TRUE(loss(Bytes(r)));
  r = Established();
  r.family = 1;  // AF_UNIX
  EXPECT_TRUE(loss(Bytes(r)));
  for (uint8_t state : {0, 13, 255}) {
    r = Established();
    r.state = state;
    EXPECT_TRUE(loss(Bytes(r))) << int(state);
  }
}

TEST(TcpSocketIterator, WalksOnlyWhatItAnswersBetterThanSockDiag) {
  SocketQuery q;
  EXPECT_TRUE(TcpSocketIterator::CanWalk(q));
  q.states = 1u << 10;  // listeners alone: sock_diag skips the connections
  EXPECT_FALSE(TcpSocketIterator::CanWalk(q));
  q.states = (1u << 10) | (1u << 1);
  EXPECT_TRUE(TcpSocketIterator::CanWalk(q));
  q = SocketQuery{};
  q.protocols = {IPPROTO_TCP, IPPROTO_UDP};
  EXPECT_FALSE(TcpSocketIterator::CanWalk(q));
  q = SocketQuery{};
  q.source_port = PortRange{80, 80};
  EXPECT_FALSE(TcpSocketIterator::CanWalk(q));
  q = SocketQuery{};
  Prefix p;
  p.address.family = AF_INET;
  q.destination = p;
  EXPECT_FALSE(TcpSocketIterator::CanWalk(q));
}

// A walk recorded on 6.18 (a namespace with sockets in six states, IPv4, IPv6
// and a dual-stack listener) against `ss -tanH` of the same namespace.
TEST(ParseIterRecord, RecordedWalkCountsAsSs) {
  const std::string bytes = netagent::testing::Fixture("bpf_iter/linux-6.18/tcp_iter.bin");
  const std::string ss = netagent::testing::Fixture("bpf_iter/linux-6.18/tcp_iter.ss");
  ASSERT_FALSE(bytes.empty());
  ASSERT_EQ(bytes.size() % kIterRecordSize, 0u);
  static const std::map<int, std::string> kLabel = {
      {1, "ESTAB"},      {2, "SYN-SENT"},  {3, "SYN-RECV"}, {4, "FIN-WAIT-1"},
      {5, "FIN-WAIT-2"}, {6, "TIME-WAIT"}, {7, "UNCONN"},   {8, "CLOSE-WAIT"},
      {9, "LAST-ACK"},   {10, "LISTEN"},   {11, "CLOSING"}};
  std::map<std::string, int> ours, theirs;
  SocketRecord s;
  IterFooter footer;
  int with_info = 0, footers = 0;
  for (size_t off = 0; off < bytes.size(); off += kIterRecordSize) {
    auto r = ParseIterRecord(absl::string_view(bytes).substr(off, kIterRecordSize), 250, s, footer);
    ASSERT_TRUE(r.ok()) << r.status();
    if (!*r) {
      ++footers;
      EXPECT_EQ(off + kIterRecordSize, bytes.size()) << "a footer before the end";
      continue;
    }
    ++ours[kLabel.at(s.state)];
    with_info += s.has_tcp_info();
  }
  EXPECT_EQ(footers, 1);
  EXPECT_GT(footer.jiffies, 0u);
  std::istringstream lines(ss);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) ++theirs[line.substr(0, line.find(' '))];
  }
  EXPECT_EQ(ours, theirs);
  EXPECT_GE(ours.size(), 6u);
  EXPECT_GT(with_info, 0);
}

}  // namespace
}  // namespace netagent::collectors
