#include "collectors/conntrack.h"

#include <gtest/gtest.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "kernel/netlink.h"
#include "tests/common/conntrack_output.h"
#include "tests/common/conntrack_table.h"
#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

using netagent::testing::Fixture;
const std::string kDir = "netlink/linux-6.18/";

std::string Key(const ConntrackEntry& e) {
  return absl::StrCat(ConntrackProtocolLabel(e.original.protocol), " ",
                      FormatAddress(e.original.src), ":", e.original.src_port, " > ",
                      FormatAddress(e.original.dst), ":", e.original.dst_port);
}

TEST(Conntrack, RecordedDumpAgreesWithConntrackL) {
  std::map<std::string, ConntrackEntry> ours;
  ConntrackEntry e;
  absl::Status st =
      kernel::ReplayRecording(Fixture(kDir + "ctnetlink_dump.bin"), "dump", [&](const nlmsghdr& m) {
        absl::Status p = ParseConntrackEntry(m, e);
        if (p.ok()) ours[Key(e)] = e;
        return p;
      });
  ASSERT_TRUE(st.ok()) << st;
  auto ref = netagent::testing::ParseConntrackL(Fixture(kDir + "ctnetlink_dump.conntrack-L.txt"));
  ASSERT_EQ(ours.size(), ref.size());
  int tcp = 0;
  for (const auto& line : ref) {
    auto it = ours.find(line.Key());
    ASSERT_NE(it, ours.end()) << line.Key();
    const ConntrackEntry& c = it->second;
    EXPECT_EQ(FormatAddress(c.reply.src), line.tuples[1].at("src"));
    EXPECT_EQ(absl::StrCat(c.reply.src_port), line.tuples[1].at("sport"));
    EXPECT_EQ(line.flags.count("UNREPLIED") == 1, !(c.status & 2 /* IPS_SEEN_REPLY */));
    EXPECT_EQ(line.flags.count("ASSURED") == 1, (c.status & 4 /* IPS_ASSURED */) != 0);
    EXPECT_EQ(absl::StrCat(c.mark), line.rest.at("mark"));
    if (line.protocol == "tcp") {
      ++tcp;
      ASSERT_TRUE(c.tcp_state.has_value());
      EXPECT_EQ(ConntrackTcpStateName(*c.tcp_state), line.state);
      // Accounting was on when this was recorded.
      EXPECT_EQ(absl::StrCat(*c.orig_packets), line.tuples[0].at("packets"));
      EXPECT_EQ(absl::StrCat(*c.reply_bytes), line.tuples[1].at("bytes"));
    }
  }
  EXPECT_GE(tcp, 2);
}

TEST(Conntrack, RecordedStatsAgreeWithConntrackS) {
  std::vector<ConntrackCpuStats> cpus;
  ASSERT_TRUE(kernel::ReplayRecording(Fixture(kDir + "ctnetlink_stats_cpu.bin"), "stats",
                                      [&](const nlmsghdr& m) {
                                        auto s = ParseConntrackCpuStats(m);
                                        if (s.ok()) cpus.push_back(*s);
                                        return s.status();
                                      })
                  .ok());
  auto ref =
      netagent::testing::ParseConntrackS(Fixture(kDir + "ctnetlink_stats_cpu.conntrack-S.txt"));
  ASSERT_EQ(cpus.size(), ref.size());
  for (const auto& c : cpus) {
    for (const auto& [name, value] : ref[c.cpu]) {
      auto it = std::find_if(c.values.begin(), c.values.end(),
                             [&](const auto& kv) { return kv.first == name; });
      ASSERT_NE(it, c.values.end()) << name;
      EXPECT_EQ(it->second, value) << name;
    }
  }
}

TEST(Conntrack, ProcStatFileByHeader) {
  auto rows = ParseProcConntrackStat(Fixture("procfs/linux-6.18/nf_conntrack_stat"));
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  std::map<std::string, uint64_t> names((*rows)[0].values.begin(), (*rows)[0].values.end());
  EXPECT_TRUE(names.count("clash_resolve"));  // renamed from clashres
  EXPECT_TRUE(names.count("chaintoolong"));
  EXPECT_FALSE(names.count("entries"));  // global, not per CPU
  EXPECT_FALSE(ParseProcConntrackStat("entries found\n00000001\n").ok());
  EXPECT_FALSE(ParseProcConntrackStat("entries found\n0000000g 00000000\n").ok());
}

ConntrackEntry Udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  ConntrackEntry e;
  e.family = AF_INET;
  e.original.protocol = IPPROTO_UDP;
  e.original.src = ParsePrefix(src, "x")->address;
  e.original.dst = ParsePrefix(dst, "x")->address;
  e.original.src_port = sport;
  e.original.dst_port = dport;
  return e;
}

TEST(ConntrackQuery, MatchesEveryGivenField) {
  ConntrackQuery q;
  EXPECT_TRUE(q.Matches(Udp("10.0.0.1", 1000, "10.0.0.2", 53)));
  q.source = *ParsePrefix("10.0.0.0/24", "s");
  q.destination_port = *ParsePortRange("53", "d");
  EXPECT_TRUE(q.Matches(Udp("10.0.0.9", 1000, "8.8.8.8", 53)));
  EXPECT_FALSE(q.Matches(Udp("10.0.1.9", 1000, "8.8.8.8", 53)));
  EXPECT_FALSE(q.Matches(Udp("10.0.0.9", 1000, "8.8.8.8", 54)));
  q.protocol = IPPROTO_TCP;
  EXPECT_FALSE(q.Matches(Udp("10.0.0.9", 1000, "8.8.8.8", 53)));
  ConntrackQuery marks;
  marks.mark = 0x10;
  marks.mark_mask = 0xf0;
  ConntrackEntry e = Udp("1.1.1.1", 1, "2.2.2.2", 2);
  e.mark = 0x1f;
  EXPECT_TRUE(marks.Matches(e));
  e.mark = 0x2f;
  EXPECT_FALSE(marks.Matches(e));
}

TEST(ConntrackNames, StatesProtocolsAndFlags) {
  EXPECT_EQ(*ParseConntrackTcpState("established", "f"), 3);
  EXPECT_EQ(ConntrackTcpStateName(7), "TIME_WAIT");
  EXPECT_FALSE(ParseConntrackTcpState("OPEN", "filter.tcp_states").ok());
  EXPECT_EQ(*ParseProtocol("UDP", "f"), IPPROTO_UDP);
  EXPECT_EQ(*ParseProtocol("132", "f"), 132);
  EXPECT_FALSE(ParseProtocol("quic", "filter.protocol").ok());
  auto flags = [](uint32_t status) {
    std::vector<std::string> out;
    ForEachStatusFlag(status, [&](absl::string_view f) { out.emplace_back(f); });
    return out;
  };
  EXPECT_EQ(flags(0), std::vector<std::string>{"UNREPLIED"});
  EXPECT_EQ(flags(2 | 4), std::vector<std::string>{"ASSURED"});
  EXPECT_EQ(ConntrackProtocolLabel(99), "99");
}

TEST(ConntrackSummarizer, CountsAndTopSources) {
  ConntrackSummarizer s;
  for (int i = 0; i < 3; ++i) s.Add(Udp("10.0.0.1", 1, "10.0.0.9", 53));
  s.Add(Udp("10.0.0.2", 1, "10.0.0.9", 53));
  ConntrackEntry t = Udp("10.0.0.3", 1, "10.0.0.9", 80);
  t.original.protocol = IPPROTO_TCP;
  t.tcp_state = 3;
  s.Add(t);
  EXPECT_EQ(s.matched(), 5u);
  auto counts = s.Counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].protocol, "tcp");
  EXPECT_EQ(counts[0].state, "ESTABLISHED");
  EXPECT_EQ(counts[1].count, 4u);
  auto top = s.TopSources(2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(FormatAddress(top[0].first), "10.0.0.1");
  EXPECT_EQ(top[0].second, 3u);
}

}  // namespace
}  // namespace netagent::collectors

namespace netagent::collectors {
namespace {

// Against the kernel, in a network namespace of this thread's own (the
// process and the host keep theirs; the table goes when the thread ends).
constexpr uint32_t kTableSize = 3000;

// A filter only the agent applies (a /24 no entry is in) over a table of
// thousands: the dump asks whether to go on every kConntrackCheckEvery
// entries read, matched or not, and a caller that gave up stops the walk
// there, not at the end of the table.
TEST(DumpConntrack, AsksWhetherToGoOnWhileNothingMatches) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  std::string skip;
  std::thread([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    absl::Status table = netagent::testing::MakeUdpTable(kTableSize);
    if (absl::IsNotFound(table) || absl::IsUnimplemented(table)) {
      skip = absl::StrCat("no ctnetlink: ", table.message());
      return;
    }
    ASSERT_TRUE(table.ok()) << table;
    ConntrackQuery q;
    q.family = AF_INET;
    auto none = ParsePrefix("192.0.2.0/24", "source");
    ASSERT_TRUE(none.ok());
    q.source = *none;

    uint64_t checks = 0, matched = 0;
    auto count = [&](const ConntrackEntry&) {
      ++matched;
      return absl::OkStatus();
    };
    auto gone = DumpConntrack(q, count, [&] {
      return ++checks == 2 ? absl::CancelledError("caller went away") : absl::OkStatus();
    });
    EXPECT_TRUE(absl::IsCancelled(gone.status())) << gone.status();
    EXPECT_EQ(matched, 0u);
    // Stopped at the second check: 2 * 256 entries read of the 3,000.
    EXPECT_EQ(checks, 2u);
    EXPECT_LT(checks * kConntrackCheckEvery, kTableSize);

    // Nobody gives up: the whole table is read, with a check every 256.
    checks = 0;
    auto all = DumpConntrack(q, count, [&] {
      ++checks;
      return absl::OkStatus();
    });
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(all->examined, kTableSize);
    EXPECT_EQ(all->entries, 0u);
    EXPECT_EQ(checks, kTableSize / kConntrackCheckEvery);
  }).join();
  if (!skip.empty()) GTEST_SKIP() << skip;
}

}  // namespace
}  // namespace netagent::collectors
