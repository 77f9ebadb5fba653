// netagent_xdp through BPF_PROG_TEST_RUN: verdicts, reasons and counters for
// packets of every shape, the address/port rules, the SYN guard on an
// injected clock, and drop samples. Nothing is attached or pinned.
#include <gtest/gtest.h>

#include <random>

#include "tests/bpf/xdp_harness.h"

namespace netagent::bpftest {
namespace {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kT0 = 1000 * kSec;  // the injected clock starts here

class XdpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = BpfUnavailableReason();
    if (!why.empty()) GTEST_SKIP() << why;
    Load();
  }

  // Loads (again) with the test clock on and `tweak` applied.
  void Load(const Xdp::Tweak& tweak = {}) {
    xdp_.reset();
    xdp_ = std::make_unique<Xdp>([&](netagent_xdp* s) {
      s->rodata->use_test_clock = 1;
      if (tweak) tweak(s);
    });
    if (!xdp_->ok()) GTEST_SKIP() << "cannot load the XDP program here: " << xdp_->error();
    cfg_ = {};
    cfg_.malformed_drop = 1;
    cfg_.syn_prefix4 = 32;
    cfg_.syn_prefix6 = 128;
    cfg_.test_clock_ns = kT0;
    ASSERT_EQ(xdp_->SetConfig(cfg_), 0);
  }

  void Apply() { ASSERT_EQ(xdp_->SetConfig(cfg_), 0); }
  void Advance(uint64_t ns) {
    cfg_.test_clock_ns += ns;
    Apply();
  }

  // Runs one packet and returns its action; fails the test if the run failed.
  uint32_t Act(const Bytes& pkt) {
    RunOut r = xdp_->Run(pkt);
    EXPECT_EQ(r.err, 0) << std::strerror(-r.err);
    return r.retval;
  }

  // Runs `pkt` and checks the action and that exactly this (reason, verdict)
  // counter moved by one packet of pkt.size() bytes.
  void Expect(const Bytes& pkt, uint32_t reason, bool dropped, const char* what = "") {
    SCOPED_TRACE(what);
    na_counter before = xdp_->Counter(reason, dropped);
    uint32_t act = Act(pkt);
    EXPECT_EQ(act, dropped ? XDP_DROP : XDP_PASS) << "reason " << reason;
    na_counter after = xdp_->Counter(reason, dropped);
    EXPECT_EQ(after.packets, before.packets + 1) << "reason " << reason << " not counted";
    EXPECT_EQ(after.bytes, before.bytes + pkt.size());
  }
  void ExpectDrop(const Bytes& pkt, uint32_t reason, const char* what = "") {
    Expect(pkt, reason, true, what);
  }
  void ExpectPass(const Bytes& pkt, uint32_t reason, const char* what = "") {
    Expect(pkt, reason, false, what);
  }

  std::unique_ptr<Xdp> xdp_;
  na_config cfg_{};
  netagent_xdp* s() { return xdp_->skel(); }
};

// --- parsing ---------------------------------------------------------------

TEST_F(XdpTest, PlainPacketsPassAndAreCounted) {
  ExpectPass(Syn4("10.0.0.1"), NA_R_PASS, "tcp4");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kUdp, Udp(53))), NA_R_PASS, "udp4");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kIcmp, Icmp())), NA_R_PASS, "icmp4");
  ExpectPass(Syn6("2001:db8::1"), NA_R_PASS, "tcp6");
  ExpectPass(Eth(kEthIp6, Ip6("2001:db8::1", kIcmp6, Icmp(128))), NA_R_PASS, "icmp6");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", 47, Bytes(24, 0))), NA_R_PASS, "gre: no L4 parse");
  ExpectPass(Eth(kEthArp, Bytes(28, 0)), NA_R_NON_IP, "arp");
  // Ethernet padding after the IP datagram is fine.
  Bytes padded = Syn4("10.0.0.1");
  padded.resize(padded.size() + 6, 0);
  ExpectPass(padded, NA_R_PASS, "trailing padding");
}

TEST_F(XdpTest, TruncatedEthernetIsRefusedOrMalformed) {
  // The kernel refuses test runs shorter than an Ethernet header; if it ever
  // accepts them, the program must call them malformed.
  for (size_t n = 1; n < 14; n++) {
    RunOut r = xdp_->Run(Truncate(Syn4("10.0.0.1"), n));
    if (r.err == 0) {
      EXPECT_EQ(r.retval, XDP_DROP) << n;
    } else {
      EXPECT_EQ(r.err, -EINVAL) << n;
    }
  }
  ExpectDrop(Eth(kEthIp, {}), NA_R_BAD_IP4, "ethernet header only");
  ExpectDrop(Eth(kEthIp6, {}), NA_R_BAD_IP6, "ethernet header only, v6");
}

TEST_F(XdpTest, VlanStacks) {
  ASSERT_EQ(xdp_->AddExact4("10.9.9.9", 1), 0);
  Bytes ip = Ip4("10.9.9.9", kTcp, Tcp(80));
  // Parsed through one and two tags: the blocklisted source is found.
  ExpectDrop(Eth(kEthIp, ip, {kVlan}), NA_R_BLOCK, "802.1Q");
  ExpectDrop(Eth(kEthIp, ip, {kQinQ, kVlan}), NA_R_BLOCK, "802.1ad + 802.1Q");
  ExpectDrop(Eth(kEthIp, ip, {kVlan, kVlan}), NA_R_BLOCK, "802.1Q twice");
  ExpectPass(Eth(kEthArp, Bytes(28, 0), {kQinQ, kVlan}), NA_R_NON_IP, "arp in QinQ");
  // Three tags: malformed.
  ExpectDrop(Eth(kEthIp, ip, {kQinQ, kVlan, kVlan}), NA_R_BAD_VLAN, "three tags");
  ExpectDrop(Eth(kEthIp, ip, {kQinQ, kQinQ, kQinQ}), NA_R_BAD_VLAN, "three 802.1ad tags");
  // A tag cut short, first and second.
  ExpectDrop(Truncate(Eth(kEthIp, ip, {kVlan}), 16), NA_R_BAD_VLAN, "first tag cut");
  ExpectDrop(Truncate(Eth(kEthIp, ip, {kQinQ, kVlan}), 20), NA_R_BAD_VLAN, "second tag cut");
  // Tags complete, IP missing.
  ExpectDrop(Eth(kEthIp, {}, {kQinQ, kVlan}), NA_R_BAD_IP4, "no IP after tags");
}

TEST_F(XdpTest, BadIpv4Headers) {
  Bytes tcp = Tcp(80);
  for (size_t n = 0; n < 20; n++)
    ExpectDrop(Eth(kEthIp, Truncate(Ip4("10.0.0.1", kTcp, tcp), n)), NA_R_BAD_IP4, "short header");
  Ip4Opts o;
  o.ihl = 4;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp, o)), NA_R_BAD_IP4, "IHL 4");
  o = {};
  o.ihl = 0;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp, o)), NA_R_BAD_IP4, "IHL 0");
  o = {};
  o.version = 6;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp, o)), NA_R_BAD_IP4, "version 6 in 0x0800");
  // IHL claims options that are not there (15 * 4 = 60 > 40 bytes available).
  o = {};
  o.ihl = 15;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp, o)), NA_R_BAD_IP4, "IHL past the end");
  // Options present and cut short.
  o = {};
  o.options = Bytes(12, 1);
  Bytes with_opts = Ip4("10.0.0.1", kTcp, tcp, o);
  for (size_t n = 20; n < 32; n++)
    ExpectDrop(Eth(kEthIp, Truncate(with_opts, n)), NA_R_BAD_IP4, "options cut");
  ExpectPass(Eth(kEthIp, with_opts), NA_R_PASS, "options complete");
  // Total length: longer than the frame, shorter than the header.
  o = {};
  o.tot_len = 200;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp, o)), NA_R_BAD_IP4, "total length > frame");
  o = {};
  o.tot_len = 19;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp, o)), NA_R_BAD_IP4, "total length < IHL");
}

TEST_F(XdpTest, TruncatedTransportHeaders) {
  Bytes tcp = Tcp(80, kSyn, 12);
  for (size_t n = 0; n < tcp.size(); n++) {
    ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Truncate(tcp, n))), NA_R_BAD_L4, "tcp4 cut");
    ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kTcp, Truncate(tcp, n))), NA_R_BAD_L4, "tcp6 cut");
  }
  Bytes bad_doff = Tcp(80);
  bad_doff[12] = 4 << 4;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, bad_doff)), NA_R_BAD_L4, "TCP data offset 4");
  bad_doff[12] = 15 << 4;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, bad_doff)), NA_R_BAD_L4, "TCP data offset past end");
  Bytes udp = Udp(53, 0);
  for (size_t n = 0; n < udp.size(); n++) {
    ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kUdp, Truncate(udp, n))), NA_R_BAD_L4, "udp4 cut");
    ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kUdp, Truncate(udp, n))), NA_R_BAD_L4, "udp6 cut");
  }
  for (size_t n = 0; n < 4; n++) {
    ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kIcmp, Truncate(Icmp(), n))), NA_R_BAD_L4, "icmp cut");
    ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kIcmp6, Truncate(Icmp(128), n))), NA_R_BAD_L4,
               "icmp6 cut");
  }
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, tcp)), NA_R_PASS, "tcp with options");
}

TEST_F(XdpTest, BadIpv6Headers) {
  Bytes full = Ip6("2001:db8::1", kTcp, Tcp(80));
  for (size_t n = 0; n < 40; n++)
    ExpectDrop(Eth(kEthIp6, Truncate(full, n)), NA_R_BAD_IP6, "short header");
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kTcp, Tcp(80), -1, 4)), NA_R_BAD_IP6, "version 4");
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kTcp, Tcp(80), 100)), NA_R_BAD_IP6,
             "payload length > frame");
  ExpectPass(Eth(kEthIp6, Ip6("2001:db8::1", kNone, {})), NA_R_PASS, "no next header");
}

TEST_F(XdpTest, Ipv6ExtensionHeaders) {
  ASSERT_EQ(xdp_->SetPort(80, NA_PORT_BLOCK_TCP, 9), 0);
  // A full chain is walked to TCP: the port rule sees port 80.
  Bytes chain = Cat({Ext6(kRouting, 1), Ext6(kFrag, 0), Frag6(kAh, 0, false), Ah6(kDst, 4),
                     Ext6(kTcp, 2), Tcp(80)});
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kHop, chain)), NA_R_BLOCK_PORT, "hop,rt,frag,ah,dst");
  ExpectPass(Eth(kEthIp6, Ip6("2001:db8::1", kDst, Cat({Ext6(kUdp), Udp(80)}))), NA_R_PASS,
             "dst opts + udp");
  // Each kind cut short (its fixed part, then its declared length).
  struct Case {
    const char* name;
    uint8_t nh;
    Bytes ext;
  } cases[] = {{"hop-by-hop", kHop, Ext6(kTcp, 1)},
               {"routing", kRouting, Ext6(kTcp, 2)},
               {"destination", kDst, Ext6(kTcp, 0)},
               {"fragment", kFrag, Frag6(kTcp, 0, true)},
               {"ah", kAh, Ah6(kTcp, 4)}};
  for (const Case& c : cases) {
    for (size_t n = 0; n < c.ext.size(); n++)
      ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", c.nh, Truncate(c.ext, n))), NA_R_BAD_IP6_EXT,
                 c.name);
    ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", c.nh, c.ext)), NA_R_BAD_L4,
               "header complete, TCP missing");
  }
  // Declared length larger than the packet.
  Bytes big = Ext6(kTcp, 0);
  big[1] = 200;
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kHop, Cat({big, Tcp(80)}))), NA_R_BAD_IP6_EXT,
             "length past the end");
  // Six extension headers are walked, a seventh is too many.
  Bytes six, seven;
  for (int i = 0; i < 5; i++) six = Cat({six, Ext6(kDst)});
  six = Cat({six, Ext6(kUdp), Udp(53)});
  ExpectPass(Eth(kEthIp6, Ip6("2001:db8::1", kDst, six)), NA_R_PASS, "six");
  for (int i = 0; i < 6; i++) seven = Cat({seven, Ext6(kDst)});
  seven = Cat({seven, Ext6(kUdp), Udp(53)});
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kDst, seven)), NA_R_BAD_IP6_EXT, "seven");
}

TEST_F(XdpTest, MalformedPolicyPass) {
  cfg_.malformed_drop = 0;
  Apply();
  ExpectPass(Eth(kEthIp, Truncate(Ip4("10.0.0.1", kTcp, Tcp(80)), 10)), NA_R_BAD_IP4, "short v4");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, {}), {kVlan, kVlan, kVlan}), NA_R_BAD_VLAN,
             "three tags");
  EXPECT_EQ(xdp_->Counter(NA_R_BAD_IP4, true).packets, 0u);
}

// --- fragments ----------------------------------------------------------------

TEST_F(XdpTest, FragmentsPolicyPass) {
  ASSERT_EQ(xdp_->SetPort(80, NA_PORT_BLOCK_TCP, 3), 0);
  ASSERT_EQ(xdp_->AddExact4("10.6.6.6", 4), 0);
  Ip4Opts first, later;
  first.frag = 0x2000;  // MF, offset 0
  later.frag = 0x0010;  // offset 16 * 8, last
  // The first fragment carries the TCP header and meets the port rule.
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(80), first)), NA_R_BLOCK_PORT, "first v4");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(443), first)), NA_R_PASS, "first v4, 443");
  // A later one has no transport header: its bytes are not read as ports.
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(80), later)), NA_R_FRAGMENT, "later v4");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Bytes(3, 0), later)), NA_R_FRAGMENT,
             "later v4, 3 bytes");
  // Address rules still apply to fragments.
  ExpectDrop(Eth(kEthIp, Ip4("10.6.6.6", kTcp, Bytes(8, 0), later)), NA_R_BLOCK, "blocked src");

  Bytes f6first = Cat({Frag6(kTcp, 0, true), Tcp(80)});
  Bytes f6later = Cat({Frag6(kTcp, 100, false), Bytes(16, 0)});
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kFrag, f6first)), NA_R_BLOCK_PORT, "first v6");
  ExpectPass(Eth(kEthIp6, Ip6("2001:db8::1", kFrag, f6later)), NA_R_FRAGMENT, "later v6");
  // An atomic fragment (offset 0, no M) is a whole packet.
  ExpectPass(Eth(kEthIp6, Ip6("2001:db8::1", kFrag, Cat({Frag6(kTcp, 0, false), Tcp(443)}))),
             NA_R_PASS, "atomic v6");
}

TEST_F(XdpTest, FragmentsPolicyDrop) {
  cfg_.frag_drop = 1;
  Apply();
  ASSERT_EQ(xdp_->AddExact4("10.1.1.1", 5, NA_ACT_ALLOW), 0);
  Ip4Opts first, later;
  first.frag = 0x2000;
  later.frag = 0x0010;
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(443), first)), NA_R_FRAGMENT, "first v4");
  ExpectDrop(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(443), later)), NA_R_FRAGMENT, "later v4");
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kFrag, Cat({Frag6(kTcp, 0, true), Tcp(443)}))),
             NA_R_FRAGMENT, "first v6");
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kFrag, Cat({Frag6(kTcp, 9, false), Bytes(8, 0)}))),
             NA_R_FRAGMENT, "later v6");
  // The allowlist is checked first.
  ExpectPass(Eth(kEthIp, Ip4("10.1.1.1", kTcp, Tcp(443), later)), NA_R_ALLOW, "allowlisted");
  ExpectPass(Syn4("10.0.0.1", 443), NA_R_PASS, "not a fragment");
}

// --- address and port rules -----------------------------------------------

TEST_F(XdpTest, CidrEdgeCases) {
  // /0 catches everything of its family only.
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "0.0.0.0", 0, 10), 0);
  ExpectDrop(Syn4("203.0.113.7"), NA_R_BLOCK, "/0 v4");
  ExpectPass(Syn6("2001:db8::7"), NA_R_PASS, "/0 v4 leaves v6 alone");
  EXPECT_EQ(xdp_->RuleHits(10).packets, 1u);
  ASSERT_EQ(xdp_->RemoveCidr4(NA_LIST_BLOCK, "0.0.0.0", 0), 0);
  ExpectPass(Syn4("203.0.113.7"), NA_R_PASS, "/0 removed");

  // /32 and /128 as CIDR rules: only that address.
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "198.51.100.1", 32, 11), 0);
  ExpectDrop(Syn4("198.51.100.1"), NA_R_BLOCK, "/32");
  ExpectPass(Syn4("198.51.100.2"), NA_R_PASS, "/32 neighbour");
  ASSERT_EQ(xdp_->AddCidr6(NA_LIST_BLOCK, "2001:db8::1", 128, 12), 0);
  ExpectDrop(Syn6("2001:db8::1"), NA_R_BLOCK, "/128");
  ExpectPass(Syn6("2001:db8::2"), NA_R_PASS, "/128 neighbour");

  // Overlapping prefixes: the longest wins (and is the one counted).
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "10.0.0.0", 8, 20), 0);
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "10.1.0.0", 16, 21), 0);
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "10.1.2.0", 24, 22), 0);
  ExpectDrop(Syn4("10.1.2.3"), NA_R_BLOCK);
  ExpectDrop(Syn4("10.1.3.3"), NA_R_BLOCK);
  ExpectDrop(Syn4("10.2.3.3"), NA_R_BLOCK);
  EXPECT_EQ(xdp_->RuleHits(22).packets, 1u);
  EXPECT_EQ(xdp_->RuleHits(21).packets, 1u);
  EXPECT_EQ(xdp_->RuleHits(20).packets, 1u);
  ExpectPass(Syn4("11.0.0.1"), NA_R_PASS, "outside /8");
  ASSERT_EQ(xdp_->AddCidr6(NA_LIST_BLOCK, "2001:db8::", 32, 30), 0);
  ASSERT_EQ(xdp_->AddCidr6(NA_LIST_BLOCK, "2001:db8:1::", 48, 31), 0);
  ExpectDrop(Syn6("2001:db8:1::5"), NA_R_BLOCK);
  ExpectDrop(Syn6("2001:db8:2::5"), NA_R_BLOCK);
  EXPECT_EQ(xdp_->RuleHits(31).packets, 1u);
  EXPECT_EQ(xdp_->RuleHits(30).packets, 1u);
  ExpectPass(Syn6("2001:db9::1"), NA_R_PASS, "outside /32");

  // Allow beats block: a narrower or wider allow, exact or CIDR.
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_ALLOW, "10.1.2.128", 25, 40), 0);
  ExpectPass(Syn4("10.1.2.200"), NA_R_ALLOW, "allow /25 inside block /24");
  ExpectDrop(Syn4("10.1.2.100"), NA_R_BLOCK, "outside the allow /25");
  ASSERT_EQ(xdp_->AddExact4("10.1.2.5", 41, NA_ACT_ALLOW), 0);
  ExpectPass(Syn4("10.1.2.5"), NA_R_ALLOW, "exact allow inside a blocked /24");
  ASSERT_EQ(xdp_->AddExact4("10.1.2.201", 42), 0);
  ExpectPass(Syn4("10.1.2.201"), NA_R_ALLOW, "exact block inside an allowed /25");
  ASSERT_EQ(xdp_->AddCidr6(NA_LIST_ALLOW, "2001:db8:1::", 64, 43), 0);
  ExpectPass(Syn6("2001:db8:1::5"), NA_R_ALLOW, "allow v6 /64");
  EXPECT_EQ(xdp_->RuleHits(40).packets, 2u);
  EXPECT_EQ(xdp_->RuleHits(41).packets, 1u);
  EXPECT_EQ(xdp_->RuleHits(42).packets, 0u);
  EXPECT_EQ(xdp_->RuleHits(43).packets, 1u);
}

TEST_F(XdpTest, Cidr4MatchesReferenceOnRandomRules) {
  // Random overlapping prefixes of every length in both lists; addresses
  // drawn inside rules (and a few anywhere). The program must give the
  // verdict and the rule of a plain longest-prefix match with allow first.
  std::mt19937 rng(1234);
  auto ip = [](uint32_t h) {
    in_addr a{htonl(h)};
    return std::string(inet_ntoa(a));
  };
  std::vector<std::pair<uint32_t, uint32_t>> rules;
  uint32_t id = 1000;
  for (int i = 0; i < 600; i++) {
    uint32_t base = 0x0a000000u | (rng() & 0x00ffffffu);  // within 10/8: lots of overlap
    uint32_t plen = i < 4 ? 4 + 4 * i : 8 + rng() % 25;
    if (i % 97 == 0) base = rng();
    int list = rng() % 4 == 0 ? NA_LIST_ALLOW : NA_LIST_BLOCK;
    ASSERT_EQ(xdp_->AddCidr4(list, ip(base), plen, id++), 0);
    rules.push_back({base, plen});
  }
  // Remove some again: the directory must forget them.
  for (int i = 0; i < 60; i++) {
    auto [base, plen] = rules[rng() % rules.size()];
    ASSERT_EQ(xdp_->RemoveCidr4(NA_LIST_BLOCK, ip(base), plen), 0);
    ASSERT_EQ(xdp_->RemoveCidr4(NA_LIST_ALLOW, ip(base), plen), 0);
  }
  const datapath::Cidr4Index& ref = xdp_->cidr4();
  int allowed = 0, blocked = 0, passed = 0;
  for (int i = 0; i < 1500; i++) {
    uint32_t a;
    if (i % 10 == 0) {
      a = rng();
    } else {
      auto [base, plen] = rules[rng() % rules.size()];
      a = (base & datapath::Mask4(plen)) | (rng() & ~datapath::Mask4(plen));
    }
    std::optional<uint32_t> allow = ref.Match(NA_LIST_ALLOW, a);
    std::optional<uint32_t> block = ref.Match(NA_LIST_BLOCK, a);
    uint32_t want_rule = allow ? *allow : block ? *block : 0;
    uint64_t before = want_rule ? xdp_->RuleHits(want_rule).packets : 0;
    uint32_t act = Act(Syn4(ip(a)));
    SCOPED_TRACE(ip(a));
    if (allow) {
      EXPECT_EQ(act, XDP_PASS);
      allowed++;
    } else if (block) {
      EXPECT_EQ(act, XDP_DROP);
      blocked++;
    } else {
      EXPECT_EQ(act, XDP_PASS);
      passed++;
    }
    if (want_rule) {
      EXPECT_EQ(xdp_->RuleHits(want_rule).packets, before + 1) << "rule " << want_rule;
    }
  }
  EXPECT_GT(allowed, 50);
  EXPECT_GT(blocked, 50);
  EXPECT_GT(passed, 10);
  EXPECT_EQ(xdp_->Counter(NA_R_ALLOW, false).packets, static_cast<uint64_t>(allowed));
  EXPECT_EQ(xdp_->Counter(NA_R_BLOCK, true).packets, static_cast<uint64_t>(blocked));
}

TEST_F(XdpTest, ExactBeforeCidrAndPerRuleHits) {
  ASSERT_EQ(xdp_->AddExact4("192.0.2.10", 100), 0);
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "192.0.2.0", 24, 101), 0);
  ASSERT_EQ(xdp_->AddExact6("2001:db8::10", 102), 0);
  for (int i = 0; i < 3; i++) ExpectDrop(Syn4("192.0.2.10"), NA_R_BLOCK, "exact");
  for (int i = 0; i < 2; i++) ExpectDrop(Syn4("192.0.2.11"), NA_R_BLOCK, "cidr");
  ExpectDrop(Syn6("2001:db8::10"), NA_R_BLOCK, "exact v6");
  ExpectPass(Syn6("2001:db8::11"), NA_R_PASS, "v6 neighbour");
  na_counter h = xdp_->RuleHits(100);
  EXPECT_EQ(h.packets, 3u);
  EXPECT_EQ(h.bytes, 3 * Syn4("192.0.2.10").size());
  EXPECT_EQ(xdp_->RuleHits(101).packets, 2u);
  EXPECT_EQ(xdp_->RuleHits(102).packets, 1u);
  EXPECT_EQ(xdp_->Counter(NA_R_BLOCK, true).packets, 6u);
}

TEST_F(XdpTest, PortRules) {
  ASSERT_EQ(xdp_->SetPort(80, NA_PORT_BLOCK_TCP, 7), 0);
  ASSERT_EQ(xdp_->SetPort(53, NA_PORT_BLOCK_UDP, 8), 0);
  ExpectDrop(Syn4("10.0.0.1", 80), NA_R_BLOCK_PORT, "tcp/80");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kUdp, Udp(80))), NA_R_PASS, "udp/80");
  ExpectDrop(Eth(kEthIp6, Ip6("2001:db8::1", kUdp, Udp(53))), NA_R_BLOCK_PORT, "udp6/53");
  ExpectPass(Syn4("10.0.0.1", 53), NA_R_PASS, "tcp/53");
  EXPECT_EQ(xdp_->RuleHits(7).packets, 1u);
  EXPECT_EQ(xdp_->RuleHits(8).packets, 1u);
  ASSERT_EQ(xdp_->AddExact4("10.0.0.2", 9, NA_ACT_ALLOW), 0);
  ExpectPass(Syn4("10.0.0.2", 80), NA_R_ALLOW, "allowlisted source skips port rules");
}

TEST_F(XdpTest, DisabledFeaturesDoNothing) {
  Load([](netagent_xdp* s) {
    s->rodata->en_block_exact = 0;
    s->rodata->en_ports = 0;
  });
  ASSERT_EQ(xdp_->AddExact4("10.0.0.1", 1), 0);
  ASSERT_EQ(xdp_->SetPort(80, NA_PORT_BLOCK_TCP, 2), 0);
  ExpectPass(Syn4("10.0.0.1", 80), NA_R_PASS, "rules present, features off");
  ASSERT_EQ(xdp_->AddCidr4(NA_LIST_BLOCK, "10.0.0.0", 8, 3), 0);
  ExpectDrop(Syn4("10.0.0.1", 80), NA_R_BLOCK, "CIDR still on");
}

TEST_F(XdpTest, DisabledFeaturesAreRemovedByTheVerifier) {
  auto xlated = [](Xdp& x) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(x.prog_fd(), &info, &len), 0);
    return info.xlated_prog_len;
  };
  uint32_t all = xlated(*xdp_);
  Xdp parse_only([](netagent_xdp* s) {
    auto* r = s->rodata;
    r->en_allow_exact = r->en_allow_cidr = r->en_block_exact = r->en_block_cidr = 0;
    r->en_ports = r->en_syn_guard = r->en_rule_hits = r->en_samples = 0;
  });
  ASSERT_TRUE(parse_only.ok()) << parse_only.error();
  uint32_t none = xlated(parse_only);
  Xdp no_syn([](netagent_xdp* s) { s->rodata->en_syn_guard = 0; });
  ASSERT_TRUE(no_syn.ok()) << no_syn.error();
  EXPECT_LT(none, all / 2) << "parse-only program: " << none << " bytes, full: " << all;
  EXPECT_LT(xlated(no_syn), all) << "the SYN guard's code stayed";
}

// --- SYN guard ---------------------------------------------------------------

TEST_F(XdpTest, TokenBucketBurstDropRefill) {
  cfg_.syn_rate = 1;
  cfg_.syn_burst = 3;
  Apply();
  Bytes syn = Syn4("10.0.0.1");
  for (int i = 0; i < 3; i++) ExpectPass(syn, NA_R_SYN_OK, "burst");
  ExpectDrop(syn, NA_R_SYN_RATE, "over the burst");
  ExpectDrop(syn, NA_R_SYN_RATE, "still over");
  // Non-SYN TCP and SYN-ACKs are not limited.
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(80, kAck))), NA_R_PASS, "ack");
  ExpectPass(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(80, kSyn | kAck))), NA_R_PASS, "syn-ack");
  Advance(kSec / 2);
  ExpectDrop(syn, NA_R_SYN_RATE, "half a token");
  Advance(kSec / 2);
  ExpectPass(syn, NA_R_SYN_OK, "one token after 1 s");
  ExpectDrop(syn, NA_R_SYN_RATE, "and only one");
  Advance(100 * kSec);
  for (int i = 0; i < 3; i++) ExpectPass(syn, NA_R_SYN_OK, "refilled to the burst, not more");
  ExpectDrop(syn, NA_R_SYN_RATE, "capped at the burst");
  // Other sources have their own bucket.
  ExpectPass(Syn4("10.0.0.2"), NA_R_SYN_OK, "another source");
  EXPECT_EQ(xdp_->Event(NA_EV_SYN_NEW_SOURCE), 2u);
}

TEST_F(XdpTest, TokenBucketRateAbove1) {
  cfg_.syn_rate = 1000;
  cfg_.syn_burst = 10;
  Apply();
  Bytes syn = Syn6("2001:db8::1");
  int passed = 0;
  for (int i = 0; i < 20; i++) passed += Act(syn) == XDP_PASS;
  EXPECT_EQ(passed, 10);
  Advance(5 * kSec / 1000);  // 5 ms at 1000/s: 5 tokens
  passed = 0;
  for (int i = 0; i < 20; i++) passed += Act(syn) == XDP_PASS;
  EXPECT_EQ(passed, 5);
}

TEST_F(XdpTest, AggregationPrefixGroupsSources) {
  cfg_.syn_rate = 1;
  cfg_.syn_burst = 2;
  cfg_.syn_prefix4 = 24;
  cfg_.syn_prefix6 = 64;
  Apply();
  ExpectPass(Syn4("10.1.1.1"), NA_R_SYN_OK);
  ExpectPass(Syn4("10.1.1.2"), NA_R_SYN_OK, "same /24");
  ExpectDrop(Syn4("10.1.1.3"), NA_R_SYN_RATE, "the /24's bucket is empty");
  ExpectPass(Syn4("10.1.2.1"), NA_R_SYN_OK, "another /24");
  ExpectPass(Syn6("2001:db8:0:1::1"), NA_R_SYN_OK);
  ExpectPass(Syn6("2001:db8:0:1::2"), NA_R_SYN_OK, "same /64");
  ExpectDrop(Syn6("2001:db8:0:1:ffff::3"), NA_R_SYN_RATE, "same /64, empty");
  ExpectPass(Syn6("2001:db8:0:2::1"), NA_R_SYN_OK, "another /64");
  EXPECT_EQ(xdp_->Event(NA_EV_SYN_NEW_SOURCE), 4u);
  // /0 puts every source of a family in one bucket.
  cfg_.syn_prefix4 = 0;
  Apply();
  ExpectPass(Syn4("1.2.3.4"), NA_R_SYN_OK);
  ExpectPass(Syn4("5.6.7.8"), NA_R_SYN_OK);
  ExpectDrop(Syn4("9.9.9.9"), NA_R_SYN_RATE, "one bucket for all of IPv4");
}

TEST_F(XdpTest, GlobalGuardRationsNewSources) {
  cfg_.syn_rate = 10;
  cfg_.syn_burst = 5;
  cfg_.global_rate = 1;
  cfg_.global_burst = 3;
  Apply();
  for (int i = 1; i <= 3; i++) ExpectPass(Syn4("10.0.0." + std::to_string(i)), NA_R_SYN_OK);
  // A spoofed flood of new sources: none of them gets a slot.
  for (int i = 4; i <= 50; i++)
    ExpectDrop(Syn4("10.0.0." + std::to_string(i)), NA_R_SYN_GLOBAL, "new source");
  // Known sources are not affected.
  ExpectPass(Syn4("10.0.0.1"), NA_R_SYN_OK, "known source");
  EXPECT_EQ(xdp_->Event(NA_EV_SYN_NEW_SOURCE), 3u);
  unsigned int n = 0;
  uint32_t k = 0, next = 0;
  void* prev = nullptr;
  while (bpf_map_get_next_key(bpf_map__fd(s()->maps.syn_src4), prev, &next) == 0) {
    n++;
    k = next;
    prev = &k;
  }
  EXPECT_EQ(n, 3u) << "the flood churned the source table";
  Advance(kSec);
  ExpectPass(Syn4("10.0.0.60"), NA_R_SYN_OK, "one new source per second");
  ExpectDrop(Syn4("10.0.0.61"), NA_R_SYN_GLOBAL);
}

TEST_F(XdpTest, SynGuardOnlyOnListedPorts) {
  Load([](netagent_xdp* s) { s->rodata->syn_ports_only = 1; });
  cfg_.syn_rate = 1;
  cfg_.syn_burst = 1;
  Apply();
  ASSERT_EQ(xdp_->SetPort(443, NA_PORT_SYN_GUARD, 0), 0);
  ExpectPass(Syn4("10.0.0.1", 443), NA_R_SYN_OK);
  ExpectDrop(Syn4("10.0.0.1", 443), NA_R_SYN_RATE, "guarded port");
  for (int i = 0; i < 5; i++) ExpectPass(Syn4("10.0.0.1", 22), NA_R_PASS, "port not listed");
}

TEST_F(XdpTest, SynGuardOffWhenRateIsZero) {
  for (int i = 0; i < 5; i++) ExpectPass(Syn4("10.0.0.1"), NA_R_PASS);
}

// --- drop samples --------------------------------------------------------------

TEST_F(XdpTest, SamplesOneInN) {
  cfg_.sample_every = 4;
  Apply();
  ASSERT_EQ(xdp_->AddExact4("10.0.0.66", 77), 0);
  Bytes small = Syn4("10.0.0.66");
  Bytes big = Eth(kEthIp, Ip4("10.0.0.66", kUdp, Udp(9, 400)));
  for (int i = 0; i < 12; i++) ASSERT_EQ(Act(i == 4 ? big : small), XDP_DROP);
  for (int i = 0; i < 5; i++) ASSERT_EQ(Act(Syn4("10.0.0.1")), XDP_PASS);  // not sampled
  std::vector<na_sample> got = xdp_->Samples();
  ASSERT_EQ(got.size(), 3u);  // drops 1, 5 and 9
  EXPECT_EQ(xdp_->Event(NA_EV_SAMPLED), 3u);
  for (const na_sample& sm : got) {
    EXPECT_EQ(sm.reason, static_cast<uint32_t>(NA_R_BLOCK));
    EXPECT_EQ(sm.rule_id, 77u);
  }
  EXPECT_EQ(got[0].pkt_len, small.size());
  EXPECT_EQ(got[0].cap_len, small.size());
  EXPECT_EQ(0, std::memcmp(got[0].data, small.data(), small.size()));
  EXPECT_EQ(got[1].pkt_len, big.size());
  EXPECT_EQ(got[1].cap_len, static_cast<uint32_t>(NA_SAMPLE_SNAP));
  EXPECT_EQ(0, std::memcmp(got[1].data, big.data(), NA_SAMPLE_SNAP));
}

TEST_F(XdpTest, SamplesRateCapped) {
  cfg_.sample_every = 1;
  cfg_.sample_max_per_sec = 2;
  Apply();
  ASSERT_EQ(xdp_->AddExact4("10.0.0.66", 5), 0);
  for (int i = 0; i < 10; i++) ASSERT_EQ(Act(Syn4("10.0.0.66")), XDP_DROP);
  EXPECT_EQ(xdp_->Samples().size(), 2u);
  EXPECT_EQ(xdp_->Event(NA_EV_SAMPLE_CAPPED), 8u);
  Advance(kSec);
  for (int i = 0; i < 10; i++) ASSERT_EQ(Act(Syn4("10.0.0.66")), XDP_DROP);
  EXPECT_EQ(xdp_->Samples().size(), 2u) << "a new second, a new allowance";
  // Every drop is still counted.
  EXPECT_EQ(xdp_->Counter(NA_R_BLOCK, true).packets, 20u);
}

TEST_F(XdpTest, SamplesOffByDefault) {
  ASSERT_EQ(xdp_->AddExact4("10.0.0.66", 5), 0);
  for (int i = 0; i < 10; i++) ASSERT_EQ(Act(Syn4("10.0.0.66")), XDP_DROP);
  EXPECT_TRUE(xdp_->Samples().empty());
}

}  // namespace
}  // namespace netagent::bpftest
