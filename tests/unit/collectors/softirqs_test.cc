#include "collectors/softirqs.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

TEST(Softirqs, RecordedFileOf618) {
  auto s = ParseSoftirqs(netagent::testing::Fixture("procfs/linux-6.18/softirqs"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpus, (std::vector<uint32_t>{0, 1}));
  ASSERT_TRUE(s->counts.count("NET_RX"));
  EXPECT_EQ(s->counts.at("NET_RX").size(), 2u);
  EXPECT_GT(s->counts.at("NET_RX")[0], 0u);
  EXPECT_EQ(s->counts.size(), 10u);
}

TEST(Softirqs, ShortRowsAreZeroAndBadOnesDataLoss) {
  auto s = ParseSoftirqs("    CPU0 CPU2\n NET_RX: 5\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpus, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(s->counts.at("NET_RX"), (std::vector<uint64_t>{5, 0}));
  for (const char* bad : {"", "  CPUx\n", "  CPU0\n NET_RX: 1 2\n", "  CPU0\n NET_RX 1\n",
                          "  CPU0\n NET_RX: -1\n"}) {
    EXPECT_EQ(ParseSoftirqs(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace netagent::collectors
