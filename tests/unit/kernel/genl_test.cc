#include "kernel/genl.h"

#include <gtest/gtest.h>
#include <linux/genetlink.h>

#include <filesystem>

#include "tests/unit/fixtures.h"

namespace netagent::kernel {
namespace {

using netagent::testing::Fixture;
using netagent::testing::FixtureExists;

absl::StatusOr<GenlFamily> ReplayFamily(const std::string& rel) {
  absl::StatusOr<GenlFamily> out = absl::NotFoundError("no message");
  absl::Status st = ReplayRecording(Fixture(rel), "genl family", [&](const nlmsghdr& m) {
    out = ParseGenlFamily(m);
    return out.status();
  });
  if (!st.ok()) return st;
  return out;
}

TEST(GenlFamily, EthtoolOn6_18) {
  auto fam = ReplayFamily("netlink/linux-6.18/genl_family_ethtool.bin");
  ASSERT_TRUE(fam.ok()) << fam.status();
  EXPECT_EQ(fam->name, "ethtool");
  EXPECT_EQ(fam->version, 1u);
  EXPECT_GT(fam->id, GENL_ID_CTRL);
  EXPECT_EQ(fam->ops.size(), 50u);  // strset-get (1) .. rss-delete-act (50)
  EXPECT_TRUE(fam->HasOp(17));      // channels-get
  EXPECT_EQ(GenlOpName("ethtool", 17), "channels-get");
  EXPECT_EQ(GenlOpName("ethtool", 48), "rss-set");
  for (const GenlOp& op : fam->ops) {
    EXPECT_NE(GenlOpName("ethtool", op.id).rfind("op-", 0), 0u) << "unnamed op " << op.id;
  }
  EXPECT_TRUE(fam->mcast_groups.count("monitor"));
}

TEST(GenlFamily, EthtoolOn6_1HasFewerOps) {
  if (!FixtureExists("netlink/linux-6.1/genl_family_ethtool.bin")) {
    GTEST_SKIP() << "no 6.1 recording (tests/fixtures/record/record-in-qemu.sh makes one)";
  }
  auto fam = ReplayFamily("netlink/linux-6.1/genl_family_ethtool.bin");
  ASSERT_TRUE(fam.ok()) << fam.status();
  EXPECT_EQ(fam->name, "ethtool");
  EXPECT_EQ(fam->ops.size(), 37u);  // strset-get (1) .. pse-set (37)
  EXPECT_TRUE(fam->HasOp(17));      // channels-get
  EXPECT_FALSE(fam->HasOp(38));     // rss-get is newer than 6.1 (its uapi ends at pse-set, 37)
}

TEST(GenlFamily, NetdevOn6_18) {
  auto fam = ReplayFamily("netlink/linux-6.18/genl_family_netdev.bin");
  ASSERT_TRUE(fam.ok()) << fam.status();
  EXPECT_EQ(fam->name, "netdev");
  EXPECT_TRUE(fam->HasOp(1));   // dev-get
  EXPECT_TRUE(fam->HasOp(12));  // qstats-get
  EXPECT_EQ(GenlOpName("netdev", 12), "qstats-get");
  EXPECT_EQ(GenlOpName("netdev", 99), "op-99");
}

TEST(GenlFamily, RejectsAMessageOfAnotherFamily) {
  NetlinkMessage m(100, 0);
  m.PutHeader<genlmsghdr>();
  EXPECT_EQ(ParseGenlFamily(*m.header()).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace netagent::kernel
