// One table of packets, one rule set, every build of the verdict pipeline
// (netagent_guard.h): the XDP program and the TC guard must give the same
// verdict and count the same reason and rule. Each is run twice: with the
// usual switches (the constant-switch copy) and with one switch off that the
// table does not depend on (the copy that reads them).
#include <gtest/gtest.h>

#include <memory>

#include "tests/bpf/tc_guard_harness.h"

namespace netagent::bpftest {
namespace {

constexpr uint64_t kT0 = 1000ull * 1000000000ull;

struct Fixture {
  const char* name;
  Bytes pkt;
  uint32_t reason;
  bool dropped;
};

// The rules every program gets (rule ids in parentheses in the names below).
void WriteRules(Guard& g) {
  ASSERT_EQ(g.AddExact4("10.9.9.9", 1), 0);
  ASSERT_EQ(g.AddExact4("10.8.8.8", 2, NA_ACT_ALLOW), 0);
  ASSERT_EQ(g.AddExact6("2001:db8::9", 3), 0);
  ASSERT_EQ(g.AddExact6("2001:db8::8", 4, NA_ACT_ALLOW), 0);
  ASSERT_EQ(g.AddCidr4(NA_LIST_BLOCK, "198.51.100.0", 24, 5), 0);
  ASSERT_EQ(g.AddCidr4(NA_LIST_ALLOW, "198.51.100.128", 25, 6), 0);
  ASSERT_EQ(g.AddCidr6(NA_LIST_BLOCK, "2001:db8:bad::", 48, 7), 0);
  ASSERT_EQ(g.AddCidr6(NA_LIST_ALLOW, "2001:db8:bad:1::", 64, 8), 0);
  ASSERT_EQ(g.SetPort(23, NA_PORT_BLOCK_TCP, 9), 0);
  ASSERT_EQ(g.SetPort(53, NA_PORT_BLOCK_UDP, 10), 0);
  na_config c{};
  c.malformed_drop = 1;
  c.syn_rate = 1;
  c.syn_burst = 2;
  c.syn_prefix4 = 32;
  c.syn_prefix6 = 128;
  c.test_clock_ns = kT0;
  ASSERT_EQ(g.SetConfig(c), 0);
}

std::vector<Fixture> Fixtures() {
  Ip4Opts later, first, ihl4, long_tot, opts;
  later.frag = 0x0010;
  first.frag = 0x2000;
  ihl4.ihl = 4;
  long_tot.tot_len = 200;
  opts.options = Bytes(12, 1);
  Bytes ip = Ip4("10.9.9.9", kTcp, Tcp(80));
  Bytes seven;
  for (int i = 0; i < 6; i++) seven = Cat({seven, Ext6(kDst)});
  seven = Cat({seven, Ext6(kUdp), Udp(5353)});
  Bytes cut_tcp = Truncate(Tcp(80), 10);
  return {
      // Plain traffic.
      {"tcp4 ack", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(443, kAck))), NA_R_PASS, false},
      {"udp4", Eth(kEthIp, Ip4("10.0.0.1", kUdp, Udp(5353))), NA_R_PASS, false},
      {"icmp4", Eth(kEthIp, Ip4("10.0.0.1", kIcmp, Icmp())), NA_R_PASS, false},
      {"gre", Eth(kEthIp, Ip4("10.0.0.1", 47, Bytes(24, 0))), NA_R_PASS, false},
      {"ipv4 options", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(443, kAck), opts)), NA_R_PASS, false},
      {"icmp6", Eth(kEthIp6, Ip6("2001:db8::1", kIcmp6, Icmp(128))), NA_R_PASS, false},
      {"arp", Eth(kEthArp, Bytes(28, 0)), NA_R_NON_IP, false},
      {"arp in QinQ", Eth(kEthArp, Bytes(28, 0), {kQinQ, kVlan}), NA_R_NON_IP, false},
      // The SYN guard: burst 2, then over the rate.
      {"syn 1", Syn4("10.3.3.3", 443), NA_R_SYN_OK, false},
      {"syn 2", Syn4("10.3.3.3", 443), NA_R_SYN_OK, false},
      {"syn 3", Syn4("10.3.3.3", 443), NA_R_SYN_RATE, true},
      {"syn6 1", Syn6("2001:db8::3", 443), NA_R_SYN_OK, false},
      // Address rules (ids 1-8).
      {"exact block (1)", Syn4("10.9.9.9"), NA_R_BLOCK, true},
      {"exact allow (2)", Syn4("10.8.8.8", 23), NA_R_ALLOW, false},
      {"exact block v6 (3)", Syn6("2001:db8::9"), NA_R_BLOCK, true},
      {"exact allow v6 (4)", Syn6("2001:db8::8", 23), NA_R_ALLOW, false},
      {"cidr block (5)", Syn4("198.51.100.5"), NA_R_BLOCK, true},
      {"cidr allow inside the block (6)", Syn4("198.51.100.200"), NA_R_ALLOW, false},
      {"cidr block v6 (7)", Syn6("2001:db8:bad:2::1"), NA_R_BLOCK, true},
      {"cidr allow v6 (8)", Syn6("2001:db8:bad:1::1"), NA_R_ALLOW, false},
      {"blocked source in a VLAN", Eth(kEthIp, ip, {kVlan}), NA_R_BLOCK, true},
      {"blocked source in QinQ", Eth(kEthIp, ip, {kQinQ, kVlan}), NA_R_BLOCK, true},
      // Port rules (9, 10).
      {"tcp/23 (9)", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(23, kAck))), NA_R_BLOCK_PORT, true},
      {"udp/53 (10)", Eth(kEthIp, Ip4("10.0.0.1", kUdp, Udp(53))), NA_R_BLOCK_PORT, true},
      {"udp6/53 (10)", Eth(kEthIp6, Ip6("2001:db8::1", kUdp, Udp(53))), NA_R_BLOCK_PORT, true},
      {"tcp/53", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(53, kAck))), NA_R_PASS, false},
      {"ext chain to tcp/23",
       Eth(kEthIp6, Ip6("2001:db8::1", kHop,
                        Cat({Ext6(kRouting, 1), Ext6(kFrag, 0), Frag6(kAh, 0, false), Ah6(kDst, 4),
                             Ext6(kTcp, 2), Tcp(23, kAck)}))),
       NA_R_BLOCK_PORT, true},
      // Fragments (passed by policy; the first one meets the port rules).
      {"later fragment", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(23), later)), NA_R_FRAGMENT, false},
      {"first fragment to tcp/23", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(23, kAck), first)),
       NA_R_BLOCK_PORT, true},
      {"later fragment v6",
       Eth(kEthIp6, Ip6("2001:db8::1", kFrag, Cat({Frag6(kTcp, 100, false), Bytes(16, 0)}))),
       NA_R_FRAGMENT, false},
      {"blocked source, later fragment", Eth(kEthIp, Ip4("10.9.9.9", kTcp, Bytes(8, 0), later)),
       NA_R_BLOCK, true},
      // Malformed (dropped by policy).
      {"three tags", Eth(kEthIp, ip, {kQinQ, kVlan, kVlan}), NA_R_BAD_VLAN, true},
      {"IHL 4", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(80), ihl4)), NA_R_BAD_IP4, true},
      {"total length > frame", Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(80), long_tot)), NA_R_BAD_IP4,
       true},
      {"ipv6 payload length > frame", Eth(kEthIp6, Ip6("2001:db8::1", kTcp, Tcp(80), 100)),
       NA_R_BAD_IP6, true},
      {"seven extension headers", Eth(kEthIp6, Ip6("2001:db8::1", kDst, seven)), NA_R_BAD_IP6_EXT,
       true},
      {"tcp cut", Eth(kEthIp, Ip4("10.0.0.1", kTcp, cut_tcp)), NA_R_BAD_L4, true},
      {"udp cut", Eth(kEthIp, Ip4("10.0.0.1", kUdp, Bytes(5, 0))), NA_R_BAD_L4, true},
      {"icmp6 cut", Eth(kEthIp6, Ip6("2001:db8::1", kIcmp6, Bytes(2, 0))), NA_R_BAD_L4, true},
      // The blocklist comes before the transport header; the allowlist does not.
      {"blocked source, tcp cut", Eth(kEthIp, Ip4("10.9.9.9", kTcp, cut_tcp)), NA_R_BLOCK, true},
      {"allowed source, tcp cut", Eth(kEthIp, Ip4("10.8.8.8", kTcp, cut_tcp)), NA_R_BAD_L4, true},
      {"blocked source, bad total length", Eth(kEthIp, Ip4("10.9.9.9", kTcp, Tcp(80), long_tot)),
       NA_R_BAD_IP4, true},
  };
}

// Runs the table through `g` and checks every verdict and reason counter.
void RunTable(Guard& g, const std::string& what) {
  WriteRules(g);
  for (const Fixture& f : Fixtures()) {
    SCOPED_TRACE(what + ": " + f.name);
    const na_counter before = g.Counter(f.reason, f.dropped);
    RunOut r = g.Run(f.pkt);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(g.Dropped(r.retval), f.dropped) << "retval " << static_cast<int32_t>(r.retval);
    const na_counter after = g.Counter(f.reason, f.dropped);
    EXPECT_EQ(after.packets, before.packets + 1) << "reason " << f.reason << " not counted";
    EXPECT_EQ(after.bytes, before.bytes + f.pkt.size());
  }
  for (uint32_t rule = 1; rule <= 10; rule++)
    EXPECT_GT(g.RuleHits(rule).packets, 0u) << what << ": rule " << rule << " never counted";
}

class VerdictTable : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = BpfUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  }
};

TEST_F(VerdictTable, XdpConstantSwitches) {
  Xdp x([](netagent_xdp* s) { s->rodata->use_test_clock = 1; });
  ASSERT_TRUE(x.ok()) << x.error();
  RunTable(x, "xdp");
}

TEST_F(VerdictTable, XdpLoadedSwitches) {
  // Samples off (the table samples nothing): the copy that reads the switches.
  Xdp x([](netagent_xdp* s) {
    s->rodata->use_test_clock = 1;
    s->rodata->en_samples = 0;
  });
  ASSERT_TRUE(x.ok()) << x.error();
  RunTable(x, "xdp, switches read");
}

TEST_F(VerdictTable, TcGuardConstantSwitches) {
  TcGuard t([](netagent_tc_guard* s) { s->rodata->use_test_clock = 1; });
  ASSERT_TRUE(t.ok()) << t.error();
  RunTable(t, "tc");
}

TEST_F(VerdictTable, TcGuardLoadedSwitches) {
  TcGuard t([](netagent_tc_guard* s) {
    s->rodata->use_test_clock = 1;
    s->rodata->en_samples = 0;
  });
  ASSERT_TRUE(t.ok()) << t.error();
  RunTable(t, "tc, switches read");
}

// A pass lets the next filter on the hook run; a drop is final.
TEST_F(VerdictTable, TcGuardVerdictCodes) {
  TcGuard t;
  ASSERT_TRUE(t.ok()) << t.error();
  ASSERT_EQ(t.AddExact4("10.9.9.9", 1), 0);
  EXPECT_EQ(static_cast<int32_t>(t.Run(Syn4("10.0.0.1")).retval), TC_ACT_UNSPEC);
  EXPECT_EQ(static_cast<int32_t>(t.Run(Syn4("10.9.9.9")).retval), TC_ACT_SHOT);
}

// Drop samples from an skb: the packet's first bytes, its length, the reason
// and rule, the device it came in on.
TEST_F(VerdictTable, TcGuardSamples) {
  TcGuard t([](netagent_tc_guard* s) { s->rodata->use_test_clock = 1; });
  ASSERT_TRUE(t.ok()) << t.error();
  na_config c{};
  c.sample_every = 2;
  c.test_clock_ns = kT0;
  ASSERT_EQ(t.SetConfig(c), 0);
  ASSERT_EQ(t.AddExact4("10.0.0.66", 77), 0);
  Bytes small = Syn4("10.0.0.66");
  Bytes big = Eth(kEthIp, Ip4("10.0.0.66", kUdp, Udp(9, 400)));
  for (int i = 0; i < 4; i++) ASSERT_TRUE(t.Dropped(t.Run(i == 2 ? big : small).retval));
  std::vector<na_sample> got = t.Samples();
  ASSERT_EQ(got.size(), 2u);  // drops 1 and 3
  EXPECT_EQ(t.Event(NA_EV_SAMPLED), 2u);
  EXPECT_EQ(got[0].reason, static_cast<uint32_t>(NA_R_BLOCK));
  EXPECT_EQ(got[0].rule_id, 77u);
  EXPECT_EQ(got[0].pkt_len, small.size());
  EXPECT_EQ(got[0].cap_len, small.size());
  EXPECT_EQ(0, std::memcmp(got[0].data, small.data(), small.size()));
  EXPECT_EQ(got[1].pkt_len, big.size());
  EXPECT_EQ(got[1].cap_len, static_cast<uint32_t>(NA_SAMPLE_SNAP));
  EXPECT_EQ(0, std::memcmp(got[1].data, big.data(), NA_SAMPLE_SNAP));
}

}  // namespace
}  // namespace netagent::bpftest
