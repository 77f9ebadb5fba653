#include "kernel/sysctl.h"

#include <gtest/gtest.h>

namespace netagent::kernel {
namespace {

TEST(SysctlPath, DotsAndSlashes) {
  EXPECT_EQ(*SysctlPath("net.ipv4.tcp_rmem"), "/proc/sys/net/ipv4/tcp_rmem");
  EXPECT_EQ(*SysctlPath("net/ipv4/conf/eth0.100/rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
}

TEST(SysctlPath, RejectsTraversalAndOddCharacters) {
  for (const char* bad : {"", "net..ipv4", "net/../../etc/passwd", "net.ipv4.tcp rmem",
                          "net.ipv4.tcp_rmem;rm", "net/ipv4/./x", ".net"}) {
    auto p = SysctlPath(bad);
    EXPECT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ReadSysctl, ReadsARealValue) {
  auto words = ReadSysctlWords("net.ipv4.tcp_available_congestion_control");
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_FALSE(words->empty());
  auto rmem = ReadSysctlWords("net.ipv4.tcp_rmem");
  ASSERT_TRUE(rmem.ok());
  EXPECT_EQ(rmem->size(), 3u);
}

TEST(ReadSysctl, MissingIsNotFound) {
  auto v = ReadSysctl("net.ipv4.no_such_knob_for_netagent");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace netagent::kernel
