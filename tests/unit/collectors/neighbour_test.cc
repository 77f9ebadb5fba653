#include "collectors/neighbour.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

using ::netagent::testing::Fixture;

uint64_t Get(const NeighbourStats& s, const std::string& name) {
  for (const auto& [n, v] : s.totals)
    if (n == name) return v;
  ADD_FAILURE() << "no " << name;
  return 0;
}

TEST(Neighbour, RecordedTablesOf618) {
  auto arp = ParseNeighbourStats(Fixture("procfs/linux-6.18/arp_cache"), "arp_cache");
  ASSERT_TRUE(arp.ok()) << arp.status();
  EXPECT_EQ(arp->entries, 5u);
  EXPECT_EQ(Get(*arp, "allocs"), 0x1b9u + 0x193u);  // summed over both CPUs
  EXPECT_EQ(Get(*arp, "table_fulls"), 0u);
  EXPECT_EQ(arp->totals.size(), 12u);
  auto nd = ParseNeighbourStats(Fixture("procfs/linux-6.18/ndisc_cache"), "ndisc_cache");
  ASSERT_TRUE(nd.ok()) << nd.status();
  EXPECT_EQ(nd->entries, 13u);
}

TEST(Neighbour, MalformedIsDataLoss) {
  EXPECT_EQ(ParseNeighbourStats("", "t").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseNeighbourStats("entries table_fulls\n00000001\n", "t").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseNeighbourStats("entries table_fulls\n0000000g 00000001\n", "t").status().code(),
            absl::StatusCode::kDataLoss);
  auto ok = ParseNeighbourStats("entries table_fulls\n00000005 00000002\n00000005 00000003\n", "t");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->entries, 5u);
  EXPECT_EQ(Get(*ok, "table_fulls"), 5u);
}

TEST(Neighbour, ReadsThisHost) {
  auto s = ReadNeighbourStats();
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_FALSE(s->empty());
  EXPECT_EQ(s->front().table, "arp_cache");
}

}  // namespace
}  // namespace netagent::collectors
