#include "collectors/sockstat.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace netagent::collectors {
namespace {

TEST(Sockstat, ParsesEveryProtocolLine) {
  auto s = ParseSockstat(
      "sockets: used 210\nTCP: inuse 5 orphan 1 tw 2 alloc 7 mem 3\nUDP: inuse 0 mem 0\n"
      "UDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->at("TCP").at("orphan"), 1);
  EXPECT_EQ(s->at("TCP").at("mem"), 3);
  EXPECT_EQ(s->at("sockets").at("used"), 210);
  EXPECT_EQ(s->at("FRAG").at("memory"), 0);
}

TEST(Sockstat, MalformedLinesAreDataLoss) {
  for (const char* bad : {"TCP inuse 5\n", "TCP: inuse\n", "TCP: inuse x\n", ": a 1\n"}) {
    EXPECT_EQ(ParseSockstat(bad).status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  EXPECT_TRUE(ParseSockstat("").ok());
}

TEST(Sockstat, ReadsThisHost) {
  auto s = ReadSockstat();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->count("TCP"));
}

}  // namespace
}  // namespace netagent::collectors
