#include "tuners/knobs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace netagent::tuners {
namespace {

using ::testing::HasSubstr;

TEST(Knobs, FindsByFullNameAndUniqueLastPart) {
  ASSERT_NE(FindSysctl("net.core.somaxconn"), nullptr);
  EXPECT_EQ(FindSysctl("somaxconn"), FindSysctl("net.core.somaxconn"));
  EXPECT_EQ(FindSysctl("tcp_syncookies")->name, std::string("net.ipv4.tcp_syncookies"));
  EXPECT_EQ(FindSysctl("net.ipv4.ip_forward"), nullptr);  // not managed
  EXPECT_EQ(FindSysctl("maxconn"), nullptr);              // a suffix, not a component
  EXPECT_EQ(FindSysctl(""), nullptr);
}

TEST(Knobs, EveryRegistryEntryIsSane) {
  for (const auto& s : SysctlRegistry()) {
    SCOPED_TRACE(s.name);
    if (s.kind != ValueKind::kWord) EXPECT_LE(s.floor, s.ceiling);
    if (s.kernel_default && s.kind != ValueKind::kWord) {
      std::string note;
      EXPECT_TRUE(CheckSysctlValue(s, s.kernel_default, s.kernel_default, false, &note).ok())
          << "the kernel default must be within the bounds";
    }
    EXPECT_STRNE(s.help, "");
  }
}

TEST(Knobs, ParsesKeys) {
  auto k = ParseKnobKey("veth0:rx-3/rps_cpus");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->type, KnobType::kQueue);
  EXPECT_EQ(k->device, "veth0");
  EXPECT_EQ(k->path, "rx-3/rps_cpus");
  EXPECT_EQ(ParseKnobKey("eth0:channels/counts")->type, KnobType::kChannels);
  EXPECT_FALSE(ParseKnobKey("eth0:channels/combined").ok());
  EXPECT_EQ(ParseKnobKey("eth0:coalesce/rx-usecs")->type, KnobType::kCoalesce);
  EXPECT_EQ(ParseKnobKey("eth0:rss/indir")->type, KnobType::kRss);
  EXPECT_EQ(ParseKnobKey("irq/45/smp_affinity_list")->path, "45");
  EXPECT_EQ(ParseKnobKey("net.ipv4.tcp_rmem")->type, KnobType::kSysctl);
  for (const char* bad :
       {"net.ipv4.ip_forward", "eth0:", "eth0:rx-x/rps_cpus", "eth0:tx-0/rps_cpus",
        "irq/x/smp_affinity_list", "irq/1/affinity", "eth0:foo/bar", "somaxconn"}) {
    EXPECT_FALSE(ParseKnobKey(bad).ok()) << bad;
  }
}

TEST(Knobs, FastPathBlocksAreKnobsInOneFormPerPrefix) {
  auto k = ParseKnobKey("veth0:xdp-block/203.0.113.0/24");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->type, KnobType::kDatapathBlock);
  EXPECT_EQ(k->device, "veth0");
  EXPECT_EQ(k->path, "203.0.113.0/24");
  // IPv6 colons come after the device's own.
  k = ParseKnobKey("veth0:xdp-block/2001:db8::/32");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->device, "veth0");
  EXPECT_EQ(k->path, "2001:db8::/32");
  EXPECT_EQ(DatapathBlockKey("eth0", "10.0.0.1"), "eth0:xdp-block/10.0.0.1");
  EXPECT_EQ(*CanonicalPrefix("10.0.0.1/32", "f"), "10.0.0.1");
  EXPECT_EQ(*CanonicalPrefix("2001:0db8:0::/32", "f"), "2001:db8::/32");
  EXPECT_EQ(*CanonicalPrefix("0.0.0.0/0", "f"), "0.0.0.0/0");
  // One key per block: a second spelling of the same prefix is refused, so
  // two changes cannot hold one rule under two names.
  for (const char* bad : {"veth0:xdp-block/10.0.0.1/32", "veth0:xdp-block/2001:0db8::/32",
                          "veth0:xdp-block/10.0.0.1/24", "veth0:xdp-block/10.0.0.0/33",
                          "veth0:xdp-block/", "veth0:xdp-block/example.com"}) {
    EXPECT_FALSE(ParseKnobKey(bad).ok()) << bad;
  }
  auto bad = CanonicalPrefix("10.1.2.3/24", "intent.datapath_block.prefixes[0]");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("intent.datapath_block.prefixes[0]"));
  EXPECT_EQ(*Normalize("veth0:xdp-block/10.0.0.1", "on\n"), "on");
  EXPECT_EQ(*Normalize("veth0:xdp-block/10.0.0.1", "off"), "off");
  EXPECT_EQ(*Normalize("veth0:xdp-block/10.0.0.1", "operator"), "operator");  // read only
  EXPECT_FALSE(Normalize("veth0:xdp-block/10.0.0.1", "1").ok());
}

TEST(Knobs, NormalizesTheKernelsForms) {
  EXPECT_EQ(*Normalize("net.ipv4.tcp_rmem", "4096\t131072\t6291456\n"), "4096 131072 6291456");
  EXPECT_EQ(*Normalize("eth0:rx-0/rps_cpus", "00000000,00000003\n"), "3");
  EXPECT_EQ(*Normalize("eth0:rx-0/rps_cpus", "0"), "0");
  EXPECT_EQ(*Normalize("eth0:rx-0/rps_flow_cnt", "4096"), "4096");
  EXPECT_EQ(*Normalize("irq/5/smp_affinity_list", "0,1,2,3\n"), "0-3");
  EXPECT_EQ(*Normalize("net.ipv4.tcp_congestion_control", "bbr\n"), "bbr");
  EXPECT_FALSE(Normalize("net.core.somaxconn", "lots").ok());
}

TEST(Knobs, RefusesOutOfBoundsNamingKnobAndBound) {
  const SysctlSpec& s = *FindSysctl("somaxconn");
  std::string note;
  auto low = CheckSysctlValue(s, "4096", "64", false, &note);
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(low.status().message(), HasSubstr("net.core.somaxconn"));
  EXPECT_THAT(low.status().message(), HasSubstr("floor 128"));
  auto high = CheckSysctlValue(s, "4096", "70000", false, &note);
  EXPECT_THAT(high.status().message(), HasSubstr("ceiling 65535"));
  // Clamping moves it and says so.
  auto clamped = CheckSysctlValue(s, "4096", "70000", true, &note);
  ASSERT_TRUE(clamped.ok());
  EXPECT_EQ(*clamped, "65535");
  EXPECT_THAT(note, HasSubstr("clamped to the ceiling 65535"));
}

TEST(Knobs, LargestStepIsEnforced) {
  const SysctlSpec& s = *FindSysctl("net.ipv4.tcp_max_syn_backlog");
  std::string note;
  auto big = CheckSysctlValue(s, "1024", "1000000", false, &note);
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.status().message(), HasSubstr("largest step"));
  EXPECT_THAT(big.status().message(), HasSubstr("at most 16384"));
  auto clamped = CheckSysctlValue(s, "1024", "1000000", true, &note);
  EXPECT_EQ(*clamped, "16384");
  EXPECT_THAT(note, HasSubstr("apply again"));
  auto down = CheckSysctlValue(s, "65536", "128", false, &note);
  EXPECT_THAT(down.status().message(), HasSubstr("at least 4096"));
  EXPECT_TRUE(CheckSysctlValue(s, "1024", "16384", false, &note).ok());
}

TEST(Knobs, SyncookiesTwoIsNeverSet) {
  std::string note;
  auto r = CheckSysctlValue(*FindSysctl("tcp_syncookies"), "1", "2", true, &note);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("use 1"));
  EXPECT_TRUE(CheckSysctlValue(*FindSysctl("tcp_syncookies"), "1", "0", false, &note).ok());
}

TEST(Knobs, PowersOfTwoWhereTheKernelWouldRound) {
  const SysctlSpec& s = *FindSysctl("rps_sock_flow_entries");
  std::string note;
  EXPECT_THAT(CheckSysctlValue(s, "0", "30000", false, &note).status().message(),
              HasSubstr("not a power of two"));
  EXPECT_EQ(*CheckSysctlValue(s, "0", "30000", true, &note), "16384");
  EXPECT_THAT(note, HasSubstr("rounded down"));
  EXPECT_EQ(*CheckSysctlValue(s, "32768", "0", false, &note), "0");
  // Rounding a value near the top of int64 must not overflow (found by the fuzz campaign);
  // the rounded value is then clamped to the ceiling like any other.
  auto huge = CheckSysctlValue(s, "0", "6333333333333333396", true, &note);
  ASSERT_TRUE(huge.ok()) << huge.status();
  EXPECT_EQ(*huge, "67108864");
  EXPECT_THAT(note, HasSubstr("rounded down to the power of two 4611686018427387904"));
}

TEST(Knobs, VectorsKeepArityAndOrder) {
  const SysctlSpec& s = *FindSysctl("net.ipv4.tcp_rmem");
  std::string note;
  EXPECT_EQ(*CheckSysctlValue(s, "4096 131072 6291456", "4096\t131072\t16777216", false, &note),
            "4096 131072 16777216");
  EXPECT_THAT(
      CheckSysctlValue(s, "4096 131072 6291456", "4096 131072", false, &note).status().message(),
      HasSubstr("takes 3 integers"));
  EXPECT_THAT(CheckSysctlValue(s, "4096 131072 6291456", "4096 2000000 1048576", false, &note)
                  .status()
                  .message(),
              HasSubstr("must not decrease"));
  const SysctlSpec& ports = *FindSysctl("ip_local_port_range");
  EXPECT_THAT(CheckSysctlValue(ports, "32768 60999", "80 60999", false, &note).status().message(),
              HasSubstr("floor 1024"));
  EXPECT_FALSE(CheckSysctlValue(ports, "32768 60999", "50000 40000", false, &note).ok());
}

}  // namespace
}  // namespace netagent::tuners
