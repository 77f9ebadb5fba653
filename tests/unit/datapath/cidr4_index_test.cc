#include "datapath/cidr4_index.h"

#include <gtest/gtest.h>

namespace netagent::datapath {
namespace {

constexpr uint32_t Ip(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}

TEST(Cidr4Index, ShortPrefixFillsEveryCoveredSlot) {
  Cidr4Index idx;
  Cidr4Index::Delta d = idx.Add(NA_LIST_BLOCK, Ip(10, 0, 0, 0), 8, 7);
  ASSERT_EQ(d.dir.size(), 256u);
  EXPECT_EQ(d.dir.front().first, 0x0a00u);
  EXPECT_EQ(d.dir.back().first, 0x0affu);
  EXPECT_FALSE(d.long_put);
  for (const auto& [slot, v] : d.dir) {
    EXPECT_EQ(v.list[NA_LIST_BLOCK].has_short, 1);
    EXPECT_EQ(v.list[NA_LIST_BLOCK].short_rule, 7u);
    EXPECT_EQ(v.list[NA_LIST_ALLOW].has_short, 0);
  }
  // A longer covering prefix wins in its slots only.
  d = idx.Add(NA_LIST_BLOCK, Ip(10, 1, 0, 0), 16, 8);
  ASSERT_EQ(d.dir.size(), 1u);
  EXPECT_EQ(d.dir[0].second.list[NA_LIST_BLOCK].short_rule, 8u);
  EXPECT_EQ(idx.Dir(0x0a02).list[NA_LIST_BLOCK].short_rule, 7u);
  // /0 touches all 65536 slots.
  EXPECT_EQ(idx.Add(NA_LIST_ALLOW, 0, 0, 9).dir.size(), 65536u);
}

TEST(Cidr4Index, LongPrefixesSetLengthBitsAndKeys) {
  Cidr4Index idx;
  Cidr4Index::Delta d = idx.Add(NA_LIST_ALLOW, Ip(192, 0, 2, 77), 24, 5);  // masked to .0
  ASSERT_TRUE(d.long_put);
  EXPECT_EQ(d.long_put->first.plen, 24);
  EXPECT_EQ(d.long_put->first.list, NA_LIST_ALLOW);
  EXPECT_EQ(ntohl(d.long_put->first.addr), Ip(192, 0, 2, 0));
  EXPECT_EQ(d.long_put->second.rule_id, 5u);
  ASSERT_EQ(d.dir.size(), 1u);
  EXPECT_EQ(d.dir[0].second.list[NA_LIST_ALLOW].long_lens, 1u << (24 - 17));
  idx.Add(NA_LIST_ALLOW, Ip(192, 0, 2, 1), 32, 6);
  EXPECT_EQ(idx.Dir(0xc000).list[NA_LIST_ALLOW].long_lens, (1u << 7) | (1u << 15));
  // Replacing a rule id changes the entry, not the directory.
  d = idx.Add(NA_LIST_ALLOW, Ip(192, 0, 2, 0), 24, 50);
  EXPECT_TRUE(d.long_put);
  EXPECT_TRUE(d.dir.empty());
  // Removing the last /24 clears its bit; removing twice does nothing.
  d = idx.Remove(NA_LIST_ALLOW, Ip(192, 0, 2, 0), 24);
  ASSERT_TRUE(d.long_del);
  EXPECT_EQ(d.dir[0].second.list[NA_LIST_ALLOW].long_lens, 1u << 15);
  d = idx.Remove(NA_LIST_ALLOW, Ip(192, 0, 2, 0), 24);
  EXPECT_FALSE(d.long_del);
  EXPECT_TRUE(d.dir.empty());
}

TEST(Cidr4Index, MatchIsLongestPrefixPerList) {
  Cidr4Index idx;
  idx.Add(NA_LIST_BLOCK, Ip(10, 0, 0, 0), 8, 1);
  idx.Add(NA_LIST_BLOCK, Ip(10, 1, 2, 0), 24, 2);
  idx.Add(NA_LIST_BLOCK, Ip(10, 1, 2, 3), 32, 3);
  EXPECT_EQ(idx.Match(NA_LIST_BLOCK, Ip(10, 1, 2, 3)), 3u);
  EXPECT_EQ(idx.Match(NA_LIST_BLOCK, Ip(10, 1, 2, 4)), 2u);
  EXPECT_EQ(idx.Match(NA_LIST_BLOCK, Ip(10, 9, 9, 9)), 1u);
  EXPECT_FALSE(idx.Match(NA_LIST_BLOCK, Ip(11, 0, 0, 0)));
  EXPECT_FALSE(idx.Match(NA_LIST_ALLOW, Ip(10, 1, 2, 3)));
}

}  // namespace
}  // namespace netagent::datapath
