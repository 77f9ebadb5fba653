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
  r.last_ack_recv_ms = 700;
  r.sndbuf = 87040;
  r.bytes_acked = 1000;
  r.bytes_sent = 2000;
  r.delivery_rate = 125000;
  r.busy_us = 900;
  r.rwnd_limited_us = 200;
  r.sndbuf_limited_us = 300;
  return r;
}

std::string Bytes(const ns_socket& r) {
  return std::string(reinterpret_cast<const char*>(&r), sizeof(r));
}

TEST(ParseIterRecord, EstablishedIPv4WithItsFigures) {
  SocketRecord s;
  ASSERT_TRUE(ParseIterRecord(Bytes(Established()), s).ok());
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
  EXPECT_EQ(s.tcp_info.last_ack_recv, 700u);
  EXPECT_EQ(s.tcp_info.bytes_acked, 1000u);
  EXPECT_EQ(s.tcp_info.bytes_sent, 2000u);
  EXPECT_EQ(s.tcp_info.delivery_rate, 125000u);
  EXPECT_EQ(s.tcp_info.busy_time, 900u);
  EXPECT_EQ(s.tcp_info.rwnd_limited, 200u);
  EXPECT_EQ(s.tcp_info.sndbuf_limited, 300u);
  ASSERT_GT(s.memory.count, SK_MEMINFO_SNDBUF);
  EXPECT_EQ(s.memory.values[SK_MEMINFO_SNDBUF], 87040u);
}

// A record reused for the next one keeps nothing of the last: a listener
// after an established socket has no tcp_info, no memory, no cookie's bytes
// in its address.
TEST(ParseIterRecord, ReusedRecordKeepsNothingOfTheLast) {
  SocketRecord s;
  ASSERT_TRUE(ParseIterRecord(Bytes(Established()), s).ok());
  ns_socket l{};
  l.magic = NS_RECORD_MAGIC;
  l.family = AF_INET6;
  l.state = 10;
  l.local_port = 443;
  l.rqueue = 7;
  l.wqueue = 128;
  inet_pton(AF_INET6, "2001:db8::1", l.local);
  ASSERT_TRUE(ParseIterRecord(Bytes(l), s).ok());
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

TEST(ParseIterRecord, RefusesWhatIsNotARecord) {
  SocketRecord s;
  const std::string good = Bytes(Established());
  EXPECT_TRUE(absl::IsDataLoss(ParseIterRecord(good.substr(0, 135), s)));
  EXPECT_TRUE(absl::IsDataLoss(ParseIterRecord(good + "x", s)));
  EXPECT_TRUE(absl::IsDataLoss(ParseIterRecord("", s)));
  ns_socket r = Established();
  r.magic = 0;
  EXPECT_TRUE(absl::IsDataLoss(ParseIterRecord(Bytes(r), s)));
  r = Established();
  r.family = 1;  // AF_UNIX
  EXPECT_TRUE(absl::IsDataLoss(ParseIterRecord(Bytes(r), s)));
  for (uint8_t state : {0, 13, 255}) {
    r = Established();
    r.state = state;
    EXPECT_TRUE(absl::IsDataLoss(ParseIterRecord(Bytes(r), s))) << int(state);
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
  int with_info = 0;
  for (size_t off = 0; off < bytes.size(); off += kIterRecordSize) {
    ASSERT_TRUE(ParseIterRecord(absl::string_view(bytes).substr(off, kIterRecordSize), s).ok());
    ++ours[kLabel.at(s.state)];
    with_info += s.has_tcp_info();
  }
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
