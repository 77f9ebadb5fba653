#include "kernel/cpus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace netagent::kernel {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ParseCpuList, RangesAndSingles) {
  EXPECT_THAT(*ParseCpuList("0-3,8,10-11\n"), ElementsAre(0, 1, 2, 3, 8, 10, 11));
  EXPECT_THAT(*ParseCpuList("5"), ElementsAre(5));
  EXPECT_THAT(*ParseCpuList(""), IsEmpty());
  EXPECT_THAT(*ParseCpuList("  \n"), IsEmpty());
}

TEST(ParseCpuList, SortsAndDeduplicates) {
  EXPECT_THAT(*ParseCpuList("4,1-2,2,0"), ElementsAre(0, 1, 2, 4));
}

TEST(ParseCpuList, StrideForm) {
  // bitmap_parselist: in 0-7, use 2 of every 4.
  EXPECT_THAT(*ParseCpuList("0-7:2/4"), ElementsAre(0, 1, 4, 5));
}

TEST(ParseCpuList, RejectsGarbage) {
  for (const char* bad : {"3-1", "a", "1,,2", "9000", "-1", "1-", "0-7:5/4", "0-7:0/4", "0x3"}) {
    auto r = ParseCpuList(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseCpuList, ElementsBeyondOnePerCpuAreRefusedNotExpanded) {
  // Every element was expanded before de-duplication: this 70 KB list made
  // 82 million entries (328 MB) to sort.
  std::string many = "0-8191";
  for (int i = 0; i < 10000; ++i) many += ",0-8191";
  auto cpus = ParseCpuList(many);
  EXPECT_EQ(cpus.status().code(), absl::StatusCode::kInvalidArgument);
  std::string all;
  for (uint32_t c = 0; c < kMaxCpu; ++c) absl::StrAppend(&all, c == 0 ? "" : ",", c);
  auto each = ParseCpuList(all);
  ASSERT_TRUE(each.ok()) << each.status();
  EXPECT_EQ(each->size(), kMaxCpu);
}

TEST(FormatCpuList, ShortestForm) {
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(FormatCpuList({7}), "7");
  EXPECT_EQ(FormatCpuList({}), "");
}

TEST(FormatCpuList, RoundTrips) {
  for (const char* list : {"0", "0-63", "1,3,5-9,127"}) {
    EXPECT_EQ(FormatCpuList(*ParseCpuList(list)), list);
  }
}

TEST(ReadCpuTopology, MapsCpusToNodesFromAFakeSysfs) {
  auto root =
      std::filesystem::temp_directory_path() / ("netagent-cpus-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "devices/system/cpu");
  std::filesystem::create_directories(root / "devices/system/node/node0");
  std::filesystem::create_directories(root / "devices/system/node/node1");
  std::ofstream(root / "devices/system/cpu/online") << "0-2,4\n";
  std::ofstream(root / "devices/system/cpu/possible") << "0-7\n";
  std::ofstream(root / "devices/system/node/node0/cpulist") << "0-1\n";
  std::ofstream(root / "devices/system/node/node1/cpulist") << "2-3\n";
  auto topo = ReadCpuTopology(root.string());
  std::filesystem::remove_all(root);
  ASSERT_TRUE(topo.ok()) << topo.status();
  EXPECT_EQ(topo->online_list, "0-2,4");
  EXPECT_EQ(topo->possible_list, "0-7");
  EXPECT_EQ(topo->numa_nodes, 2u);
  ASSERT_EQ(topo->online.size(), 4u);
  EXPECT_EQ(topo->online[0].numa_node, 0);
  EXPECT_EQ(topo->online[2].numa_node, 1);
  EXPECT_EQ(topo->online[3].id, 4u);
  EXPECT_EQ(topo->online[3].numa_node, -1);  // CPU 4 is in no node's list
}

TEST(ReadCpuTopology, ThisMachine) {
  auto topo = ReadCpuTopology();
  ASSERT_TRUE(topo.ok()) << topo.status();
  EXPECT_FALSE(topo->online.empty());
  EXPECT_EQ(FormatCpuList([&] {
              std::vector<uint32_t> ids;
              for (const auto& c : topo->online) ids.push_back(c.id);
              return ids;
            }()),
            FormatCpuList(*ParseCpuList(topo->online_list)));
}

}  // namespace
}  // namespace netagent::kernel

namespace netagent::kernel {
namespace {

TEST(CpuMask, ParsesTheKernelsHexGroups) {
  EXPECT_EQ(*ParseCpuMask("3\n"), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(*ParseCpuMask("00000000,00000000"), (std::vector<uint32_t>{}));
  EXPECT_EQ(*ParseCpuMask("ff,00000001"),
            (std::vector<uint32_t>{0, 32, 33, 34, 35, 36, 37, 38, 39}));
  EXPECT_EQ(*ParseCpuMask("80000000"), (std::vector<uint32_t>{31}));
  for (const char* bad : {"", "x", "123456789", "1,,2", "0x3", "-1"}) {
    EXPECT_FALSE(ParseCpuMask(bad).ok()) << bad;
  }
}

TEST(CpuMask, FormatsTheShortestForm) {
  EXPECT_EQ(FormatCpuMask({}), "0");
  EXPECT_EQ(FormatCpuMask({0, 1}), "3");
  EXPECT_EQ(FormatCpuMask({32}), "1,00000000");
  EXPECT_EQ(FormatCpuMask({0, 63, 64}), "1,80000000,00000001");
  for (const auto& cpus : std::vector<std::vector<uint32_t>>{{}, {5}, {0, 31, 32, 95}}) {
    EXPECT_EQ(*ParseCpuMask(FormatCpuMask(cpus)), cpus);
  }
}

}  // namespace
}  // namespace netagent::kernel
