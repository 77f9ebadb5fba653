// netagent_tc through BPF_PROG_TEST_RUN: MSS clamping (the rewritten bytes
// and a still-valid TCP checksum) and per-class accounting.
#include <gtest/gtest.h>

#include "netagent_tc.skel.h"
#include "tests/bpf/xdp_harness.h"

namespace netagent::bpftest {
namespace {

class TcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = BpfUnavailableReason();
    if (!why.empty()) GTEST_SKIP() << why;
    libbpf_set_print(nullptr);
    skel_ = netagent_tc__open_and_load();
    if (!skel_) GTEST_SKIP() << "cannot load the TC program here: " << std::strerror(errno);
    na_tc_config c{1400, 1380, 0};
    uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.tc_config), &zero, &c, BPF_ANY), 0);
    ncpu_ = libbpf_num_possible_cpus();
  }
  void TearDown() override {
    if (skel_) netagent_tc__destroy(skel_);
  }

  // Runs `in` through ingress (or egress) and returns the packet it leaves as.
  Bytes Run(const Bytes& in, bool egress = false) { return RunOr(in, egress, nullptr); }
  // Same; if `err` is given, a refused run sets it instead of failing.
  Bytes RunOr(const Bytes& in, bool egress, int* err) {
    Bytes out(in.size() + 64);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(in.size()),
                .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 1);
    int fd = bpf_program__fd(egress ? skel_->progs.netagent_tc_egress
                                    : skel_->progs.netagent_tc_ingress);
    int rc = bpf_prog_test_run_opts(fd, &o);
    if (err) {
      *err = rc ? errno : 0;
      if (rc) return {};
    } else {
      EXPECT_EQ(rc, 0) << std::strerror(errno);
    }
    EXPECT_EQ(o.retval, 0u) << "TC_ACT_OK";
    out.resize(o.data_size_out);
    return out;
  }
  uint64_t Event(uint32_t ev) {
    std::vector<uint64_t> v(ncpu_);
    bpf_map_lookup_elem(bpf_map__fd(skel_->maps.tc_events), &ev, v.data());
    uint64_t s = 0;
    for (uint64_t x : v) s += x;
    return s;
  }
  na_counter Class(uint32_t dir, uint32_t proto, uint32_t cls) {
    std::vector<na_counter> v(ncpu_);
    uint32_t k = NA_TC_CNT_IDX(dir, proto, cls);
    bpf_map_lookup_elem(bpf_map__fd(skel_->maps.tc_counters), &k, v.data());
    na_counter s{};
    for (const na_counter& c : v) {
      s.packets += c.packets;
      s.bytes += c.bytes;
    }
    return s;
  }
  static uint16_t MssAt(const Bytes& f, size_t opt_off) {
    size_t p = TcpOffset(f) + 20 + opt_off + 2;
    return static_cast<uint16_t>(f[p] << 8 | f[p + 1]);
  }

  netagent_tc* skel_ = nullptr;
  int ncpu_ = 1;
};

Bytes Syn4Mss(uint16_t mss, uint8_t flags = kSyn, Bytes prefix = {}) {
  Bytes opts = prefix;
  Bytes m = MssOption(mss);
  opts.insert(opts.end(), m.begin(), m.end());
  opts.insert(opts.end(), {4, 2, 1, 1});  // SACK permitted, NOPs
  Bytes f = Eth(kEthIp, Ip4("10.0.0.1", kTcp, TcpWithOptions(443, flags, opts)));
  SetTcpChecksum(f);
  return f;
}

TEST_F(TcTest, ClampsSynAndSynAckWithValidChecksum) {
  for (uint8_t flags : {kSyn, static_cast<uint8_t>(kSyn | kAck)}) {
    Bytes in = Syn4Mss(1460, flags);
    ASSERT_TRUE(TcpChecksumValid(in));
    Bytes out = Run(in);
    ASSERT_EQ(out.size(), in.size());
    EXPECT_EQ(MssAt(out, 0), 1400);
    EXPECT_TRUE(TcpChecksumValid(out)) << "checksum not updated";
    // Only the two MSS bytes and the two checksum bytes changed.
    int changed = 0;
    for (size_t i = 0; i < in.size(); i++) changed += in[i] != out[i];
    EXPECT_LE(changed, 4);
  }
  EXPECT_EQ(Event(NA_TC_EV_MSS_CLAMPED), 2u);
}

TEST_F(TcTest, ClampsAfterOtherOptionsAndOnIpv6) {
  // NOP, NOP, timestamps (10 bytes), then MSS.
  Bytes prefix = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0};
  Bytes in = Syn4Mss(9000, kSyn, prefix);
  Bytes out = Run(in);
  EXPECT_EQ(MssAt(out, prefix.size()), 1400);
  EXPECT_TRUE(TcpChecksumValid(out));

  Bytes opts = MssOption(1440);
  Bytes f6 = Eth(kEthIp6, Ip6("2001:db8::1", kTcp, TcpWithOptions(443, kSyn, opts)));
  SetTcpChecksum(f6);
  ASSERT_TRUE(TcpChecksumValid(f6));
  Bytes o6 = Run(f6, /*egress=*/true);
  EXPECT_EQ(MssAt(o6, 0), 1380);
  EXPECT_TRUE(TcpChecksumValid(o6));
}

TEST_F(TcTest, LeavesOtherPacketsAlone) {
  Bytes small = Syn4Mss(1200);
  EXPECT_EQ(Run(small), small) << "MSS below the clamp";
  Bytes ack = Syn4Mss(1460, kAck);
  EXPECT_EQ(Run(ack), ack) << "not a SYN";
  Bytes none = Eth(kEthIp, Ip4("10.0.0.1", kTcp, TcpWithOptions(443, kSyn, {1, 1, 4, 2})));
  SetTcpChecksum(none);
  EXPECT_EQ(Run(none), none) << "no MSS option";
  // Bad option lengths: nothing written, counted.
  Bytes bad = Eth(kEthIp, Ip4("10.0.0.1", kTcp, TcpWithOptions(443, kSyn, {3, 0, 2, 4, 5, 0xb4})));
  EXPECT_EQ(Run(bad), bad);
  Bytes badmss = Eth(kEthIp, Ip4("10.0.0.1", kTcp, TcpWithOptions(443, kSyn, {2, 3, 5, 0xb4})));
  EXPECT_EQ(Run(badmss), badmss);
  EXPECT_EQ(Event(NA_TC_EV_BAD_OPTIONS), 2u);
  // An MSS option cut by the end of the options.
  Bytes cut = Eth(kEthIp, Ip4("10.0.0.1", kTcp, TcpWithOptions(443, kSyn, {1, 1, 1, 2})));
  EXPECT_EQ(Run(cut), cut);
  // Truncated headers at every length: never rewritten, never refused.
  Bytes full = Syn4Mss(1460);
  // (The kernel refuses skb test runs shorter than an IP header.)
  for (size_t n = 14; n < full.size(); n++) {
    Bytes t = Truncate(full, n);
    int err = 0;
    Bytes out = RunOr(t, false, &err);
    if (err) {
      EXPECT_EQ(err, EINVAL) << n;
      EXPECT_LT(n, kL3 + 20) << "refused although the IP header is complete";
    } else {
      EXPECT_EQ(out, t) << n;
    }
  }
  EXPECT_EQ(Event(NA_TC_EV_MSS_CLAMPED), 0u);
}

TEST_F(TcTest, CountsPerDirectionProtocolAndPortClass) {
  uint32_t k = 443, web = 3;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.tc_port_class), &k, &web, BPF_ANY), 0);
  k = 53;
  uint32_t dns = 5;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.tc_port_class), &k, &dns, BPF_ANY), 0);
  Bytes syn = Syn4("10.0.0.1", 443);
  Run(syn);
  Run(syn);
  Run(Eth(kEthIp, Ip4("10.0.0.1", kUdp, Udp(53))));
  Run(Eth(kEthIp, Ip4("10.0.0.1", kUdp, Udp(9999))));
  Run(Eth(kEthIp6, Ip6("2001:db8::1", kIcmp6, Icmp(128))));
  Run(Eth(kEthArp, Bytes(28, 0)));
  // Egress classifies by the source port: a reply from 443.
  Run(Eth(kEthIp, Ip4("10.0.0.1", kTcp, Tcp(40000, kAck, 0, 443))), true);
  EXPECT_EQ(Class(NA_TC_INGRESS, NA_TC_PROTO_TCP, web).packets, 2u);
  EXPECT_EQ(Class(NA_TC_INGRESS, NA_TC_PROTO_TCP, web).bytes, 2 * syn.size());
  EXPECT_EQ(Class(NA_TC_INGRESS, NA_TC_PROTO_UDP, dns).packets, 1u);
  EXPECT_EQ(Class(NA_TC_INGRESS, NA_TC_PROTO_UDP, 0).packets, 1u);
  EXPECT_EQ(Class(NA_TC_INGRESS, NA_TC_PROTO_ICMP, 0).packets, 1u);
  EXPECT_EQ(Class(NA_TC_INGRESS, NA_TC_PROTO_OTHER, 0).packets, 1u);
  EXPECT_EQ(Class(NA_TC_EGRESS, NA_TC_PROTO_TCP, web).packets, 1u);
  EXPECT_EQ(Class(NA_TC_EGRESS, NA_TC_PROTO_TCP, 0).packets, 0u);
}

}  // namespace
}  // namespace netagent::bpftest
