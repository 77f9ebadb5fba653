// The datapath's map writer against real kernel maps (created here, no
// program): a batch whose third write the kernel refuses leaves every map as
// it was, and SyncMap makes a map hold exactly what it is given.
#include "datapath/bpf_map.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/bpf/xdp_harness.h"

namespace netagent::datapath {
namespace {

struct OwnedMap {
  int fd = -1;
  OwnedMap(bpf_map_type type, uint32_t entries) {
    fd = bpf_map_create(type, "na_test", 4, 8, entries, nullptr);
  }
  ~OwnedMap() {
    if (fd >= 0) close(fd);
  }
};

std::string Val(uint64_t v) { return std::string(reinterpret_cast<char*>(&v), 8); }

class BpfMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = bpftest::BpfUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  }
};

TEST_F(BpfMapTest, AFailedWriteRestoresEveryEarlierOne) {
  OwnedMap small(BPF_MAP_TYPE_HASH, 2), arr(BPF_MAP_TYPE_ARRAY, 4);
  ASSERT_GE(small.fd, 0);
  ASSERT_GE(arr.fd, 0);
  auto h = MapHandle::Of(small.fd, "small");
  auto a = MapHandle::Of(arr.fd, "arr");
  ASSERT_TRUE(h.ok() && a.ok());
  ASSERT_TRUE(h->Put(U32Key(1), Val(10)).ok());
  ASSERT_TRUE(a->Put(U32Key(2), Val(20)).ok());
  auto maps = [&](const std::string& n) -> const MapHandle* {
    return n == "small" ? &*h : n == "arr" ? &*a : nullptr;
  };
  // Overwrite, zero an array slot, fill the hash, then one entry too many.
  std::vector<MapWrite> writes = {{MapWrite::kPut, "small", U32Key(1), Val(11)},
                                  {MapWrite::kDelete, "arr", U32Key(2), ""},
                                  {MapWrite::kPut, "small", U32Key(2), Val(12)},
                                  {MapWrite::kPut, "small", U32Key(3), Val(13)}};
  absl::Status st = ApplyWrites(maps, writes);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("map small: write key 03000000"), std::string::npos) << st;
  EXPECT_EQ(h->Get(U32Key(1)), Val(10));
  EXPECT_FALSE(h->Get(U32Key(2)).has_value());
  EXPECT_EQ(a->Get(U32Key(2)), Val(20));
  // A map the program does not have: refused before anything is written.
  st = ApplyWrites(maps, {{MapWrite::kPut, "small", U32Key(1), Val(99)},
                          {MapWrite::kPut, "nosuch", U32Key(1), Val(1)}});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h->Get(U32Key(1)), Val(10));
  // The same batch without the extra entry goes through.
  writes.pop_back();
  EXPECT_TRUE(ApplyWrites(maps, writes).ok());
  EXPECT_EQ(h->Get(U32Key(2)), Val(12));
  EXPECT_EQ(a->Get(U32Key(2)), Val(0));
}

TEST_F(BpfMapTest, SyncMakesTheMapHoldExactlyTheWantedEntries) {
  OwnedMap hash(BPF_MAP_TYPE_HASH, 16), arr(BPF_MAP_TYPE_ARRAY, 8);
  auto h = MapHandle::Of(hash.fd, "h");
  auto a = MapHandle::Of(arr.fd, "a");
  ASSERT_TRUE(h.ok() && a.ok());
  ASSERT_TRUE(h->Put(U32Key(1), Val(1)).ok());
  ASSERT_TRUE(h->Put(U32Key(2), Val(2)).ok());
  ASSERT_TRUE(a->Put(U32Key(5), Val(5)).ok());
  auto n = SyncMap(*h, {{U32Key(2), Val(2)}, {U32Key(3), Val(3)}});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);  // 1 removed, 3 added, 2 untouched
  auto keys = h->Keys();
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_FALSE(h->Get(U32Key(1)).has_value());
  n = SyncMap(*a, {{U32Key(6), Val(6)}});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(a->Get(U32Key(5)), Val(0));
  EXPECT_EQ(a->Get(U32Key(6)), Val(6));
  EXPECT_EQ(*SyncMap(*a, {{U32Key(6), Val(6)}}), 0u);
}

}  // namespace
}  // namespace netagent::datapath
