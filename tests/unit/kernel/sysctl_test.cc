#include "kernel/sysctl.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "kernel/files.h"

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

// A container's /proc/sys is read-only; the host's net tree mounted elsewhere
// stands in for it, and only for what it holds. (Here a link to this host's
// own /proc/sys/net stands in for the mount: the same procfs.)
TEST(SetProcRoot, TheTreesItHoldsAreReadThere) {
  const auto root =
      std::filesystem::temp_directory_path() / ("netagent-procroot-" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "sys");
  std::filesystem::create_directory_symlink("/proc/sys/net", root / "sys/net");
  const absl::Status set = SetProcRoot(root.string() + "/");
  EXPECT_TRUE(set.ok()) << set;
  if (set.ok()) {
    EXPECT_EQ(*SysctlPath("net.core.somaxconn"), (root / "sys/net/core/somaxconn").string());
    EXPECT_EQ(*SysctlPath("net/ipv4/conf/eth0.100/rp_filter"),
              (root / "sys/net/ipv4/conf/eth0.100/rp_filter").string());
    EXPECT_EQ(*SysctlPath("kernel.pid_max"), "/proc/sys/kernel/pid_max");  // not under the root
    EXPECT_EQ(ProcTree("irq"), "/proc/irq");
    EXPECT_EQ(*ReadSysctl("net.core.somaxconn"), *ReadLine("/proc/sys/net/core/somaxconn"));
    auto a = ProbeSysctl("net.core.somaxconn");
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(a->exists);
  }
  // A failed SetProcRoot keeps the root it had.
  EXPECT_FALSE(SetProcRoot("/no/such/dir").ok());
  if (set.ok()) EXPECT_EQ(ProcTree("sys/net"), (root / "sys/net").string());
  EXPECT_TRUE(SetProcRoot("").ok());  // back to /proc
  EXPECT_EQ(*SysctlPath("net.core.somaxconn"), "/proc/sys/net/core/somaxconn");
  std::filesystem::remove_all(root);
}

TEST(SetProcRoot, ARootWithoutTheTreesIsRefusedNamingTheField) {
  const auto empty =
      std::filesystem::temp_directory_path() / ("netagent-procroot-e-" + std::to_string(getpid()));
  // An empty sys/net (where a mount failed) is not a tree of procfs.
  std::filesystem::create_directories(empty / "sys/net/core");
  for (const std::string& bad : {std::string("relative/dir"), std::string("/no/such/dir"),
                                 std::string("/tmp/../etc"), empty.string()}) {
    absl::Status st = SetProcRoot(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(st.message(), "proc_root ")) << st;
    EXPECT_EQ(*SysctlPath("net.core.somaxconn"), "/proc/sys/net/core/somaxconn") << bad;
  }
  std::filesystem::remove_all(empty);
}

}  // namespace
}  // namespace netagent::kernel
