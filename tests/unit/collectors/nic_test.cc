#include <gtest/gtest.h>
#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/rtnetlink.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "collectors/ethtool.h"
#include "collectors/links.h"
#include "collectors/nic_queues.h"
#include "kernel/errors.h"
#include "kernel/netlink.h"
#include "tests/common/ethtool_output.h"
#include "tests/integration/json.h"
#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

using netagent::testing::Fixture;

const std::string kDir = "netlink/linux-6.18/";

// The one message of a recorded do-request reply, or its error.
absl::StatusOr<std::vector<uint32_t>> Reply(const std::string& file) {
  std::vector<uint32_t> msg;
  absl::Status st = kernel::ReplayRecording(Fixture(kDir + file), file, [&](const nlmsghdr& m) {
    msg.resize((m.nlmsg_len + 3) / 4);
    std::memcpy(msg.data(), &m, m.nlmsg_len);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return msg;
}

const nlmsghdr& Msg(const std::vector<uint32_t>& v) {
  return *reinterpret_cast<const nlmsghdr*>(v.data());
}

TEST(Ethtool, LinkModesOfVeth) {
  auto r = Reply("ethtool_linkmodes.bin");
  ASSERT_TRUE(r.ok()) << r.status();
  auto m = ParseLinkModes(Msg(*r));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->speed_mbps, 10000u);
  EXPECT_EQ(m->duplex, "full");
  EXPECT_FALSE(m->autoneg);
  auto s = Reply("ethtool_linkstate.bin");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*ParseLinkState(Msg(*s)), true);
}

TEST(Ethtool, ChannelsAgreeWithEthtoolL) {
  auto r = Reply("ethtool_channels.bin");
  ASSERT_TRUE(r.ok()) << r.status();
  auto c = ParseChannels(Msg(*r));
  ASSERT_TRUE(c.ok());
  auto ref = netagent::testing::ParseEthtoolL(Fixture(kDir + "ethtool_channels.ethtool-l.txt"));
  EXPECT_EQ(c->rx_max, ref.max["RX"]);
  EXPECT_EQ(c->tx_max, ref.max["TX"]);
  EXPECT_EQ(c->other_max, ref.max["Other"]);  // n/a on both sides
  EXPECT_EQ(c->combined_max, ref.max["Combined"]);
  EXPECT_EQ(c->rx, ref.current["RX"]);
  EXPECT_EQ(c->tx, ref.current["TX"]);
  EXPECT_EQ(c->rx, 2u);
}

TEST(Ethtool, FeaturesAgreeWithEthtoolK) {
  auto strings = Reply("ethtool_strset_features.bin");
  ASSERT_TRUE(strings.ok()) << strings.status();
  auto sets = ParseStringSets(Msg(*strings));
  ASSERT_TRUE(sets.ok());
  const std::vector<std::string>& names = (*sets)[4];  // ETH_SS_FEATURES
  ASSERT_GT(names.size(), 50u);
  auto r = Reply("ethtool_features.bin");
  ASSERT_TRUE(r.ok());
  auto features = ParseFeatures(Msg(*r), names);
  ASSERT_TRUE(features.ok()) << features.status();
  auto ref = netagent::testing::ParseEthtoolK(Fixture(kDir + "ethtool_features.ethtool-k.txt"));
  int compared = 0;
  for (const Feature& f : *features) {
    auto it = ref.find(f.name);
    if (it == ref.end()) continue;
    EXPECT_EQ(f.active, it->second.on) << f.name;
    EXPECT_EQ(f.fixed, it->second.fixed) << f.name;
    ++compared;
  }
  EXPECT_GE(compared, 40);
}

TEST(Ethtool, CoalescingOnVethIsUnsupportedWithTheKernelsReason) {
  auto r = Reply("ethtool_coalesce.bin");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("Operation not supported"), absl::string_view::npos);
}

TEST(Ethtool, RingsAndCoalesceKeepEveryAttributeByName) {
  kernel::NetlinkMessage m(21, 0);
  m.PutHeader<genlmsghdr>();
  void* h = m.BeginNest(1);
  m.EndNest(h);
  m.PutU32(2, 4096);  // rx-max
  m.PutU32(6, 1024);  // rx
  m.PutU8(11, 1);     // tcp-data-split
  m.PutU32(40, 7);    // from a kernel newer than this code
  auto rings = ParseRings(*m.header());
  ASSERT_TRUE(rings.ok());
  EXPECT_EQ(*rings,
            (NamedValues{{"rx-max", 4096}, {"rx", 1024}, {"tcp-data-split", 1}, {"attr-40", 7}}));
  auto coalesce = ParseCoalesce(*m.header());
  EXPECT_EQ((*coalesce)[0].first, "rx-usecs");  // same ids, coalesce names
}

TEST(Links, DumpAgreesWithIpJson) {
  std::vector<LinkRecord> links;
  absl::Status st = kernel::ReplayRecording(Fixture(kDir + "rtnl_links_veth.bin"), "links",
                                            [&](const nlmsghdr& m) {
                                              LinkRecord r;
                                              NETAGENT_RETURN_IF_ERROR(ParseLink(m, r));
                                              links.push_back(r);
                                              return absl::OkStatus();
                                            });
  ASSERT_TRUE(st.ok()) << st;
  google::protobuf::ListValue ip;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(Fixture(kDir + "rtnl_links_veth.ip.json"), &ip)
          .ok());
  ASSERT_EQ(links.size(), static_cast<size_t>(ip.values_size()));
  for (int i = 0; i < ip.values_size(); ++i) {
    const auto& j = ip.values(i).struct_value().fields();
    const LinkRecord& l = links[i];
    EXPECT_EQ(l.name, j.at("ifname").string_value());
    EXPECT_EQ(l.mtu, j.at("mtu").number_value());
    EXPECT_EQ(l.qdisc, j.at("qdisc").string_value());
    const auto& rx = j.at("stats64").struct_value().fields().at("rx").struct_value().fields();
    const auto& tx = j.at("stats64").struct_value().fields().at("tx").struct_value().fields();
    EXPECT_EQ(l.stats[2], rx.at("bytes").number_value()) << l.name;
    EXPECT_EQ(l.stats[0], rx.at("packets").number_value()) << l.name;
    EXPECT_EQ(l.stats[3], tx.at("bytes").number_value()) << l.name;
    EXPECT_EQ(l.stats[6], rx.at("dropped").number_value()) << l.name;
    if (l.name != "lo") {
      EXPECT_EQ(l.kind, "veth");
      EXPECT_EQ(l.num_rx_queues, 2u);
    }
  }
  EXPECT_EQ(links[0].stats_count, kLinkStatCount);
}

TEST(Links, ALinkWithoutStats64HasNoCounters) {
  // Under UBSan this was memcpy from a null pointer (the absent attribute).
  kernel::NetlinkMessage m(RTM_NEWLINK, 0);
  m.PutHeader<ifinfomsg>()->ifi_index = 4;
  m.PutString(IFLA_IFNAME, "veth0");
  LinkRecord r;
  ASSERT_TRUE(ParseLink(*m.header(), r).ok());
  EXPECT_EQ(r.name, "veth0");
  EXPECT_EQ(r.stats_count, 0);
  EXPECT_FALSE(r.carrier_changes.has_value());
  m.PutU32(IFLA_CARRIER_CHANGES, 6);
  ASSERT_TRUE(ParseLink(*m.header(), r).ok());
  EXPECT_EQ(r.carrier_changes, 6u);
}

TEST(Links, InterfaceNamesAreValidated) {
  EXPECT_TRUE(ValidateInterfaceName("eth0", "name").ok());
  EXPECT_TRUE(ValidateInterfaceName("veth-a.100", "name").ok());
  for (const char* bad : {"", "a/b", "a b", "sixteen-chars-xx", "..", "a:1"}) {
    absl::Status st = ValidateInterfaceName(bad, "name");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(st.message().rfind("name:", 0), 0u);
  }
}

TEST(Interrupts, ParsesNamesAndCounts) {
  auto lines = ParseInterrupts(
      "           CPU0       CPU1\n"
      " 28:          0          3  PCI-MSIX-0000:00:01.0   0-edge      virtio0-config\n"
      " 40:         10         20  PCI-MSIX-0000:00:03.0   1-edge      eth0-TxRx-0, eth0-misc\n"
      "NMI:          0          0   Non-maskable interrupts\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[28].name, "virtio0-config");
  EXPECT_EQ(lines[28].count, 3u);
  EXPECT_EQ(lines[40].name, "eth0-TxRx-0, eth0-misc");
  EXPECT_EQ(lines[40].count, 30u);
  auto recorded = ParseInterrupts(Fixture("procfs/linux-6.18/interrupts"));
  EXPECT_GT(recorded.size(), 5u);
}

TEST(QueueStats, ParsesTypeIdAndCounters) {
  kernel::NetlinkMessage m(20, 0);
  m.PutHeader<genlmsghdr>();
  m.PutU32(1, 3);      // ifindex
  m.PutU32(2, 1);      // tx
  m.PutU32(3, 5);      // queue 5
  m.PutU64(10, 1000);  // tx-packets
  m.PutU64(33, 2);     // tx-stop
  auto q = ParseQueueStats(*m.header());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->type, "tx");
  EXPECT_EQ(q->id, 5u);
  EXPECT_EQ(q->values, (NamedValues{{"tx-packets", 1000}, {"tx-stop", 2}}));
}

}  // namespace
}  // namespace netagent::collectors

namespace netagent::collectors {
namespace {

// `ethtool -S` text as the tool prints it.
NamedValues EthtoolS(const std::string& text) {
  const auto stats = netagent::testing::ParseEthtoolS(text);
  return NamedValues(stats.begin(), stats.end());
}

TEST(RxQueues, RecordedDriversPerQueue) {
  // virtio_net (6.18): drops per queue as rxN_drops; packets only in qstats.
  auto virtio =
      RxQueuesFromDriverStats(EthtoolS(Fixture("ethtool/linux-6.18/virtio_net.ethtool-S.txt")));
  ASSERT_EQ(virtio.size(), 1u);
  EXPECT_EQ(virtio[0].queue, 0u);
  EXPECT_EQ(virtio[0].drops, 0u);
  EXPECT_EQ(virtio[0].drops_from, "driver rx0_drops");
  EXPECT_FALSE(virtio[0].packets);
  // veth: rx_queue_N_drops for each queue; its xdp_* counters are not drops.
  auto veth = RxQueuesFromDriverStats(EthtoolS(Fixture("ethtool/linux-6.18/veth.ethtool-S.txt")));
  ASSERT_EQ(veth.size(), 2u);
  EXPECT_EQ(veth[1].queue, 1u);
  EXPECT_EQ(veth[1].drops_from, "driver rx_queue_1_drops");
}

TEST(RxQueues, EachDriversNamingScheme) {
  struct Case {
    const char* driver;
    NamedValues stats;
    uint64_t packets, drops;
  };
  const Case cases[] = {
      {"ixgbe", {{"rx_queue_3_packets", 100}, {"rx_queue_3_bytes", 6400}}, 100, 0},
      {"i40e", {{"rx-3.packets", 100}, {"rx-3.bytes", 6400}}, 100, 0},
      {"mlx5", {{"rx3_packets", 100}, {"rx3_xdp_drop", 9}, {"rx3_buff_alloc_err", 1}}, 100, 0},
      {"ena", {{"queue_3_rx_cnt", 100}, {"queue_3_tx_cnt", 7}}, 100, 0},
      {"bnxt",
       {{"[3]: rx_ucast_packets", 90}, {"[3]: rx_mcast_packets", 10}, {"[3]: rx_discards", 4}},
       100,
       4},
      {"igb", {{"rx_queue_3_packets", 100}, {"rx_queue_3_drops", 4}}, 100, 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.driver);
    auto q = RxQueuesFromDriverStats(c.stats);
    ASSERT_EQ(q.size(), 1u);
    EXPECT_EQ(q[0].queue, 3u);
    EXPECT_EQ(q[0].packets, c.packets);
    EXPECT_EQ(q[0].drops.value_or(0), c.drops);
  }
}

TEST(RxQueues, QstatsWinOverTheDriversFigures) {
  std::vector<QueueStats> qstats = {
      {"rx", 0, {{"rx-packets", 500}, {"rx-hw-drops", 3}, {"rx-hw-drop-overruns", 2}}},
      {"rx", 1, {{"rx-packets", 50}}},
      {"tx", 0, {{"tx-packets", 9}}}};
  auto from_qstats = RxQueuesFromQstats(qstats);
  ASSERT_EQ(from_qstats.size(), 2u);
  EXPECT_EQ(from_qstats[0].drops, 5u);
  EXPECT_EQ(from_qstats[0].drops_from, "qstats rx-hw-drops + qstats rx-hw-drop-overruns");
  auto merged = MergeRxQueues(
      from_qstats,
      RxQueuesFromDriverStats({{"rx0_drops", 99}, {"rx1_drops", 7}, {"rx2_drops", 1}}));
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].drops, 5u);  // qstats had it
  EXPECT_EQ(merged[1].packets, 50u);
  EXPECT_EQ(merged[1].drops, 7u);  // only the driver had it
  EXPECT_EQ(merged[1].drops_from, "driver rx1_drops");
  EXPECT_FALSE(merged[2].packets);
}

TEST(Rss, IndirectionKeyAndHashFunction) {
  kernel::NetlinkMessage m(21, 0);
  m.PutHeader<genlmsghdr>();
  m.PutU32(3, 1u << 0);  // hfunc: bit 0
  const uint32_t indir[] = {0, 1, 0, 1, 2, 3, 2, 3};
  m.PutBytes(4, indir, sizeof(indir));
  const uint8_t key[] = {0x6d, 0x5a, 0x56};
  m.PutBytes(5, key, sizeof(key));
  auto rss = ParseRss(*m.header(), {"toeplitz", "xor", "crc32"});
  ASSERT_TRUE(rss.ok());
  EXPECT_EQ(rss->hash_function, "toeplitz");
  EXPECT_EQ(rss->indirection, (std::vector<uint32_t>{0, 1, 0, 1, 2, 3, 2, 3}));
  EXPECT_EQ(rss->hash_key, std::string("\x6d\x5a\x56", 3));
}

TEST(Rss, AReplyWithoutAnIndirectionTableHasAnEmptyOne) {
  // Under UBSan this was memcpy from a null pointer (the absent attribute).
  kernel::NetlinkMessage m(21, 0);
  m.PutHeader<genlmsghdr>();
  m.PutU32(3, 1u << 1);
  auto rss = ParseRss(*m.header(), {"toeplitz", "xor"});
  ASSERT_TRUE(rss.ok());
  EXPECT_EQ(rss->hash_function, "xor");
  EXPECT_TRUE(rss->indirection.empty());
}

// A STRSET_GET reply with one ETH_SS_FEATURES set announcing `count` strings
// and holding one per entry of `indexes` (nullopt: no index attribute), as
// net/ethtool/strset.c lays it out.
kernel::NetlinkMessage StringSetReply(uint32_t count,
                                      const std::vector<std::optional<uint32_t>>& indexes) {
  kernel::NetlinkMessage m(20, 0);
  m.PutHeader<genlmsghdr>()->cmd = ETHTOOL_MSG_STRSET_GET_REPLY;
  void* sets = m.BeginNest(ETHTOOL_A_STRSET_STRINGSETS);
  void* set = m.BeginNest(ETHTOOL_A_STRINGSETS_STRINGSET);
  m.PutU32(ETHTOOL_A_STRINGSET_ID, ETH_SS_FEATURES);
  m.PutU32(ETHTOOL_A_STRINGSET_COUNT, count);
  void* strings = m.BeginNest(ETHTOOL_A_STRINGSET_STRINGS);
  for (const std::optional<uint32_t>& index : indexes) {
    void* s = m.BeginNest(ETHTOOL_A_STRINGS_STRING);
    if (index) m.PutU32(ETHTOOL_A_STRING_INDEX, *index);
    m.PutString(ETHTOOL_A_STRING_VALUE, absl::StrCat("feature-", index.value_or(99)));
    m.EndNest(s);
  }
  m.EndNest(strings);
  m.EndNest(set);
  m.EndNest(sets);
  return m;
}

TEST(StringSets, StringsLandAtTheirIndex) {
  kernel::NetlinkMessage m = StringSetReply(3, {2, 0});
  auto sets = ParseStringSets(*m.header());
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->at(ETH_SS_FEATURES), (std::vector<std::string>{"feature-0", "", "feature-2"}));
}

TEST(StringSets, AStringWithoutAnIndexIsDataLoss) {
  // It was index UINT32_MAX: the table grew to UINT32_MAX + 1 (0) strings and
  // the string was written 128 GiB past it.
  kernel::NetlinkMessage m = StringSetReply(2, {0, std::nullopt});
  auto sets = ParseStringSets(*m.header());
  EXPECT_EQ(sets.status().code(), absl::StatusCode::kDataLoss) << sets.status();
  EXPECT_NE(sets.status().message().find("without an index"), absl::string_view::npos);
}

TEST(StringSets, AnIndexBeyondTheCountIsDataLoss) {
  // It grew the table to the index: a single string could ask for 4 billion.
  kernel::NetlinkMessage m = StringSetReply(2, {0, 1000000});
  EXPECT_EQ(ParseStringSets(*m.header()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StringSets, ACountOfFourBillionIsRefusedNotAllocated) {
  kernel::NetlinkMessage m = StringSetReply(0xffffffffu, {0});
  auto sets = ParseStringSets(*m.header());
  EXPECT_EQ(sets.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(sets.status().message().find("4294967295 strings"), absl::string_view::npos)
      << sets.status();
}

// A STATS_GET reply built the way net/ethtool/stats.c builds it: per group
// stats_put_stats (GRP_ID, GRP_SS_ID), then for rmon stats_put_rmon_hist (one
// HIST_RX/HIST_TX nest per bucket) before the counters, each counter a
// GRP_STAT nest of its own holding one u64 whose type is the stat id
// (stat_put). A zero-length GRP_PAD stands where a kernel without efficient
// unaligned access aligns the next u64.
kernel::NetlinkMessage KernelStatsReply() {
  kernel::NetlinkMessage m(20, 0);
  m.PutHeader<genlmsghdr>()->cmd = ETHTOOL_MSG_STATS_GET_REPLY;
  void* header = m.BeginNest(ETHTOOL_A_STATS_HEADER);
  m.PutU32(ETHTOOL_A_HEADER_DEV_INDEX, 7);
  m.PutString(ETHTOOL_A_HEADER_DEV_NAME, "eth0");
  m.EndNest(header);
  auto stat_put = [&](uint16_t id, uint64_t v) {
    void* nest = m.BeginNest(ETHTOOL_A_STATS_GRP_STAT);
    m.PutU64(id, v);
    m.EndNest(nest);
  };
  auto hist_put = [&](uint16_t attr, uint32_t low, uint32_t high, uint64_t v) {
    void* nest = m.BeginNest(attr);
    m.PutU32(ETHTOOL_A_STATS_GRP_HIST_BKT_LOW, low);
    m.PutU32(ETHTOOL_A_STATS_GRP_HIST_BKT_HI, high);
    m.PutU64(ETHTOOL_A_STATS_GRP_HIST_VAL, v);
    m.EndNest(nest);
  };
  auto group = [&](uint32_t id, uint32_t ss_id, const std::function<void()>& fill) {
    void* nest = m.BeginNest(ETHTOOL_A_STATS_GRP);
    m.PutU32(ETHTOOL_A_STATS_GRP_ID, id);
    m.PutU32(ETHTOOL_A_STATS_GRP_SS_ID, ss_id);
    fill();
    m.EndNest(nest);
  };
  group(ETHTOOL_STATS_ETH_PHY, ETH_SS_STATS_ETH_PHY,
        [&] { stat_put(ETHTOOL_A_STATS_ETH_PHY_5_SYM_ERR, 3); });
  group(ETHTOOL_STATS_ETH_MAC, ETH_SS_STATS_ETH_MAC, [&] {
    stat_put(ETHTOOL_A_STATS_ETH_MAC_2_TX_PKT, 1000);
    stat_put(ETHTOOL_A_STATS_ETH_MAC_5_RX_PKT, 2000);
    m.PutBytes(ETHTOOL_A_STATS_GRP_PAD, nullptr, 0);
    stat_put(ETHTOOL_A_STATS_ETH_MAC_6_FCS_ERR, 4);
    stat_put(ETHTOOL_A_STATS_ETH_MAC_14_RX_BYTES, 1ULL << 40);
    stat_put(ETHTOOL_A_STATS_ETH_MAC_25_TOO_LONG_ERR, 0);
  });
  group(ETHTOOL_STATS_ETH_CTRL, ETH_SS_STATS_ETH_CTRL, [&] {
    stat_put(ETHTOOL_A_STATS_ETH_CTRL_3_TX, 5);
    stat_put(ETHTOOL_A_STATS_ETH_CTRL_4_RX, 6);
    stat_put(ETHTOOL_A_STATS_ETH_CTRL_5_RX_UNSUP, 7);
  });
  group(ETHTOOL_STATS_RMON, ETH_SS_STATS_RMON, [&] {
    hist_put(ETHTOOL_A_STATS_GRP_HIST_RX, 0, 64, 10);
    hist_put(ETHTOOL_A_STATS_GRP_HIST_RX, 65, 127, 11);
    hist_put(ETHTOOL_A_STATS_GRP_HIST_RX, 1519, 0, 12);
    hist_put(ETHTOOL_A_STATS_GRP_HIST_TX, 64, 64, 20);
    hist_put(ETHTOOL_A_STATS_GRP_HIST_TX, 65, 127, 21);
    stat_put(ETHTOOL_A_STATS_RMON_UNDERSIZE, 8);
    stat_put(ETHTOOL_A_STATS_RMON_OVERSIZE, 9);
    stat_put(ETHTOOL_A_STATS_RMON_JABBER, 1);
  });
  return m;
}

TEST(EthtoolStats, EveryCounterOfEveryGroupAndTheRmonHistograms) {
  kernel::NetlinkMessage m = KernelStatsReply();
  ASSERT_TRUE(m.status().ok());
  auto groups = ParseStats(*m.header());
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 4u);
  using Stats = std::vector<std::pair<uint16_t, uint64_t>>;
  const auto& phy = (*groups)[0];
  EXPECT_EQ(phy.id, static_cast<uint32_t>(ETHTOOL_STATS_ETH_PHY));
  EXPECT_EQ(phy.string_set, static_cast<uint32_t>(ETH_SS_STATS_ETH_PHY));
  EXPECT_EQ(phy.stats, (Stats{{ETHTOOL_A_STATS_ETH_PHY_5_SYM_ERR, 3}}));
  const auto& mac = (*groups)[1];
  EXPECT_EQ(mac.id, static_cast<uint32_t>(ETHTOOL_STATS_ETH_MAC));
  EXPECT_EQ(mac.string_set, static_cast<uint32_t>(ETH_SS_STATS_ETH_MAC));
  EXPECT_EQ(mac.stats, (Stats{{ETHTOOL_A_STATS_ETH_MAC_2_TX_PKT, 1000},
                              {ETHTOOL_A_STATS_ETH_MAC_5_RX_PKT, 2000},
                              {ETHTOOL_A_STATS_ETH_MAC_6_FCS_ERR, 4},
                              {ETHTOOL_A_STATS_ETH_MAC_14_RX_BYTES, 1ULL << 40},
                              {ETHTOOL_A_STATS_ETH_MAC_25_TOO_LONG_ERR, 0}}));
  EXPECT_TRUE(mac.histogram.empty());
  const auto& ctrl = (*groups)[2];
  EXPECT_EQ(ctrl.id, static_cast<uint32_t>(ETHTOOL_STATS_ETH_CTRL));
  EXPECT_EQ(ctrl.stats, (Stats{{ETHTOOL_A_STATS_ETH_CTRL_3_TX, 5},
                               {ETHTOOL_A_STATS_ETH_CTRL_4_RX, 6},
                               {ETHTOOL_A_STATS_ETH_CTRL_5_RX_UNSUP, 7}}));
  const auto& rmon = (*groups)[3];
  EXPECT_EQ(rmon.id, static_cast<uint32_t>(ETHTOOL_STATS_RMON));
  EXPECT_EQ(rmon.string_set, static_cast<uint32_t>(ETH_SS_STATS_RMON));
  EXPECT_EQ(rmon.stats, (Stats{{ETHTOOL_A_STATS_RMON_UNDERSIZE, 8},
                               {ETHTOOL_A_STATS_RMON_OVERSIZE, 9},
                               {ETHTOOL_A_STATS_RMON_JABBER, 1}}));
  std::vector<std::pair<std::string, uint64_t>> hist;
  for (const auto& b : rmon.histogram) hist.emplace_back(HistogramBucketName(b), b.value);
  EXPECT_EQ(hist, (NamedValues{{"rx-etherStatsPkts64Octets", 10},
                               {"rx-etherStatsPkts65to127Octets", 11},
                               {"rx-etherStatsPkts1519toMaxOctets", 12},
                               {"tx-etherStatsPkts64to64Octets", 20},
                               {"tx-etherStatsPkts65to127Octets", 21}}));
}

TEST(EthtoolStats, GroupsWithoutCountersStayEmpty) {
  // What a driver without the group gets: the group's ids and nothing else.
  kernel::NetlinkMessage m(20, 0);
  m.PutHeader<genlmsghdr>();
  void* nest = m.BeginNest(ETHTOOL_A_STATS_GRP);
  m.PutU32(ETHTOOL_A_STATS_GRP_ID, ETHTOOL_STATS_ETH_CTRL);
  m.PutU32(ETHTOOL_A_STATS_GRP_SS_ID, ETH_SS_STATS_ETH_CTRL);
  m.EndNest(nest);
  auto groups = ParseStats(*m.header());
  ASSERT_TRUE(groups.ok()) << groups.status();
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_TRUE((*groups)[0].stats.empty());
  EXPECT_TRUE((*groups)[0].histogram.empty());
}

// A driver behind SIOCETHTOOL as net/ethtool/ioctl.c serves it: every call
// asks the driver for its count now, ignores the caller's len / n_stats, and
// copies that many entries out with copy_to_user (process_vm_writev here: a
// real kernel copy into this process, EFAULT at an inaccessible page). The
// count at each successive call comes from `counts` (the last one repeats).
class FakeDriver {
 public:
  explicit FakeDriver(std::vector<uint32_t> counts) : counts_(std::move(counts)) {}

  int operator()(void* cmd) {
    uint32_t c;
    std::memcpy(&c, cmd, sizeof(c));
    const uint32_t n = counts_[std::min(calls_++, counts_.size() - 1)];
    char* base = static_cast<char*>(cmd);
    if (c == ETHTOOL_GSSET_INFO) {
      std::memcpy(base + sizeof(ethtool_sset_info), &n, sizeof(n));
      return 0;
    }
    std::string out;
    if (c == ETHTOOL_GSTRINGS) {
      ethtool_gstrings h;
      std::memcpy(&h, cmd, sizeof(h));
      h.len = n;
      out.append(reinterpret_cast<const char*>(&h), sizeof(h));
      for (uint32_t i = 0; i < n; ++i) {
        std::string name = "counter_" + std::to_string(i);
        name.resize(ETH_GSTRING_LEN, '\0');
        out += name;
      }
    } else if (c == ETHTOOL_GSTATS) {
      ethtool_stats h;
      std::memcpy(&h, cmd, sizeof(h));
      h.n_stats = n;
      out.append(reinterpret_cast<const char*>(&h), sizeof(h));
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t v = i * 10 + n;
        out.append(reinterpret_cast<const char*>(&v), sizeof(v));
      }
    } else {
      return EOPNOTSUPP;
    }
    iovec local{out.data(), out.size()};
    iovec remote{cmd, out.size()};
    const ssize_t copied = ::process_vm_writev(::getpid(), &local, 1, &remote, 1, 0);
    return copied == static_cast<ssize_t>(out.size()) ? 0 : EFAULT;
  }

  size_t calls() const { return calls_; }

 private:
  std::vector<uint32_t> counts_;
  size_t calls_ = 0;
};

void ExpectCounters(const absl::StatusOr<NamedValues>& got, uint32_t n) {
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), n);
  for (uint32_t i = 0; i < n; ++i) {
    EXPECT_EQ((*got)[i].first, "counter_" + std::to_string(i));
    EXPECT_EQ((*got)[i].second, i * 10u + n);
  }
}

TEST(DriverStats, SteadyCount) {
  FakeDriver driver({3});
  ExpectCounters(GetDriverStats("eth0", std::ref(driver)), 3);
  EXPECT_EQ(driver.calls(), 3u);
}

TEST(DriverStats, CountGrowingWithinTheHeadroomIsReadAgain) {
  // 3 at GSSET_INFO, 5 by GSTRINGS: read again, all with 5.
  FakeDriver driver({3, 5});
  ExpectCounters(GetDriverStats("eth0", std::ref(driver)), 5);
  EXPECT_EQ(driver.calls(), 2u + 3u);
}

TEST(DriverStats, CountGrowingPastTheHeadroomNeverWritesPastTheBuffer) {
  // 4 queues' worth of counters, then 64 queues' (ethtool -L in between): the
  // kernel copies 4,000 strings into room for 2*8+64. The copy stops at the
  // guard page (EFAULT) and the whole read starts again.
  FakeDriver driver({8, 4000});
  ExpectCounters(GetDriverStats("eth0", std::ref(driver)), 4000);
  // Also between GSTRINGS and GSTATS.
  FakeDriver later({8, 8, 4000});
  ExpectCounters(GetDriverStats("eth0", std::ref(later)), 4000);
}

TEST(DriverStats, CountChangingBetweenStringsAndValues) {
  FakeDriver driver({6, 6, 5});
  ExpectCounters(GetDriverStats("eth0", std::ref(driver)), 5);
}

TEST(DriverStats, CountThatKeepsChangingIsAborted) {
  std::vector<uint32_t> counts;
  for (uint32_t i = 1; i < 100; ++i) counts.push_back(i);
  FakeDriver driver(counts);
  auto got = GetDriverStats("eth0", std::ref(driver));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kAborted) << got.status();
  EXPECT_LT(driver.calls(), 20u);
}

TEST(DriverStats, NoCountersAndErrors) {
  FakeDriver none({0});
  EXPECT_EQ(GetDriverStats("eth0", std::ref(none)).status().code(),
            absl::StatusCode::kUnimplemented);
  auto unsupported = GetDriverStats("eth0", [](void*) { return EOPNOTSUPP; });
  EXPECT_EQ(unsupported.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(DeviceIrqs, FromAFakeSysfsAndProc) {
  auto root = std::filesystem::temp_directory_path() / ("netagent-irq-" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "sys/class/net/eth9/device/msi_irqs");
  std::ofstream(root / "sys/class/net/eth9/device/msi_irqs/40") << "msix\n";
  std::ofstream(root / "sys/class/net/eth9/device/msi_irqs/41") << "msix\n";
  std::filesystem::create_directories(root / "proc/irq/40");
  std::filesystem::create_directories(root / "proc/irq/41");
  std::filesystem::create_directories(root / "proc/irq/42");
  std::ofstream(root / "proc/irq/40/smp_affinity_list") << "0-3\n";
  std::ofstream(root / "proc/irq/40/effective_affinity_list") << "2\n";
  std::ofstream(root / "proc/irq/41/smp_affinity_list") << "1\n";
  std::ofstream(root / "proc/irq/42/smp_affinity_list") << "0\n";
  std::ofstream(root / "proc/interrupts")
      << "           CPU0       CPU1\n"
         " 40:  5  6  PCI-MSIX-0000:00:03.0  0-edge  eth9-rx-0\n"
         " 41:  1  1  PCI-MSIX-0000:00:03.0  1-edge  eth9-tx-0\n"
         " 42:  0  9  PCI-MSIX-0000:00:03.0  2-edge  eth9-misc\n"
         " 50:  0  9  PCI-MSIX-0000:00:04.0  0-edge  other\n";
  auto irqs = ReadDeviceIrqs("eth9", (root / "sys").string(), (root / "proc").string());
  auto veth = ReadDeviceIrqs("veth0", (root / "sys").string(), (root / "proc").string());
  std::filesystem::remove_all(root);
  ASSERT_TRUE(irqs.ok()) << irqs.status();
  // MSI IRQs 40, 41, and 42 found by name in /proc/interrupts; not 50.
  ASSERT_EQ(irqs->size(), 3u);
  EXPECT_EQ((*irqs)[0].irq, 40u);
  EXPECT_EQ((*irqs)[0].name, "eth9-rx-0");
  EXPECT_EQ((*irqs)[0].count, 11u);
  EXPECT_EQ((*irqs)[0].affinity_list, "0-3");
  EXPECT_EQ((*irqs)[0].effective_affinity_list, "2");
  EXPECT_EQ((*irqs)[2].name, "eth9-misc");
  EXPECT_EQ(veth.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(DeviceIrqs, ActionNamesMatchTheDeviceAsAToken) {
  EXPECT_TRUE(ActionsNameDevice("eth1", "eth1"));
  EXPECT_TRUE(ActionsNameDevice("eth1-TxRx-0", "eth1"));
  EXPECT_TRUE(ActionsNameDevice("eth1:lsc", "eth1"));
  EXPECT_TRUE(ActionsNameDevice("eth10-rx-0, eth1-misc", "eth1"));
  EXPECT_TRUE(ActionsNameDevice("ahci, eth1", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("eth10-TxRx-0", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("eth11", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("eth10-rx-0, eth11-misc", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("veth1-rx", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("eth1.100", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("virtio0-input.0", "eth1"));
  EXPECT_FALSE(ActionsNameDevice("eth1-rx", ""));
}

// eth1, eth10 and eth11 side by side (IRQs named only, no MSI lists), and two
// devices without MSI lists of their own under a parent that has one: a virtio
// net device (virtio bus, parent driven by virtio-pci), whose interrupts are
// the parent's, and a subfunction on the auxiliary bus, whose parent's are the
// PCI function's.
TEST(DeviceIrqs, ByTokenAndTheParentsOnlyForVirtio) {
  namespace fs = std::filesystem;
  const fs::path root =
      fs::temp_directory_path() / ("netagent-irq-tokens-" + std::to_string(getpid()));
  const fs::path sys = root / "sys", proc = root / "proc";
  for (const char* dev : {"eth1", "eth10", "eth11"}) {
    fs::create_directories(sys / "devices/pci0000:00" / dev);
    fs::create_directories(sys / "class/net" / dev);
    fs::create_directory_symlink(sys / "devices/pci0000:00" / dev,
                                 sys / "class/net" / dev / "device");
  }
  // virtio: devices/pci0000:00/0000:00:03.0/virtio2, parent with MSI-X.
  const fs::path pci = sys / "devices/pci0000:00/0000:00:03.0";
  fs::create_directories(pci / "virtio2");
  fs::create_directories(pci / "msi_irqs");
  for (const char* irq : {"37", "38", "39"}) std::ofstream(pci / "msi_irqs" / irq) << "msix\n";
  fs::create_directories(sys / "bus/virtio/drivers/virtio_net");
  fs::create_directories(sys / "bus/pci/drivers/virtio-pci");
  fs::create_directory_symlink(sys / "bus/virtio", pci / "virtio2/subsystem");
  fs::create_directory_symlink(sys / "bus/pci/drivers/virtio-pci", pci / "driver");
  fs::create_directories(sys / "class/net/eth0");
  fs::create_directory_symlink(pci / "virtio2", sys / "class/net/eth0/device");
  // An mlx5 subfunction: auxiliary bus, parent the PF 0000:08:00.0, whose
  // MSI-X vectors are the PF's own.
  const fs::path pf = sys / "devices/pci0000:00/0000:08:00.0";
  fs::create_directories(pf / "mlx5_core.sf.2");
  fs::create_directories(pf / "msi_irqs");
  std::ofstream(pf / "msi_irqs/120") << "msix\n";
  std::ofstream(pf / "msi_irqs/121") << "msix\n";
  fs::create_directories(sys / "bus/auxiliary");
  fs::create_directories(sys / "bus/pci/drivers/mlx5_core");
  fs::create_directory_symlink(sys / "bus/auxiliary", pf / "mlx5_core.sf.2/subsystem");
  fs::create_directory_symlink(sys / "bus/pci/drivers/mlx5_core", pf / "driver");
  fs::create_directories(sys / "class/net/enp8s0f0s2");
  fs::create_directory_symlink(pf / "mlx5_core.sf.2", sys / "class/net/enp8s0f0s2/device");
  fs::create_directories(proc / "irq");
  std::ofstream(proc / "interrupts")
      << "           CPU0       CPU1\n"
         " 37:  1  0  PCI-MSIX-0000:00:03.0  0-edge  virtio2-config\n"
         " 38:  2  0  PCI-MSIX-0000:00:03.0  1-edge  virtio2-input.0\n"
         " 39:  3  0  PCI-MSIX-0000:00:03.0  2-edge  virtio2-output.0\n"
         " 60:  1  1  PCI-MSIX-0000:00:05.0  0-edge  eth1-TxRx-0\n"
         " 61:  1  1  PCI-MSIX-0000:00:05.0  1-edge  eth1:lsc\n"
         " 62:  1  1  PCI-MSIX-0000:00:06.0  0-edge  eth10-TxRx-0\n"
         " 63:  1  1  PCI-MSIX-0000:00:06.0  1-edge  eth10\n"
         " 64:  1  1  PCI-MSIX-0000:00:07.0  0-edge  eth11-TxRx-0\n"
         "120:  5  5  PCI-MSIX-0000:08:00.0  0-edge  mlx5_async0@pci:0000:08:00.0\n"
         "121:  5  5  PCI-MSIX-0000:08:00.0  1-edge  mlx5_comp0@pci:0000:08:00.0\n";
  auto irqs_of = [&](const std::string& dev) {
    std::vector<uint32_t> out;
    auto irqs = ReadDeviceIrqs(dev, sys.string(), proc.string());
    EXPECT_TRUE(irqs.ok()) << dev << ": " << irqs.status();
    if (irqs.ok()) {
      for (const IrqInfo& i : *irqs) out.push_back(i.irq);
    }
    return out;
  };
  const auto eth1 = irqs_of("eth1"), eth10 = irqs_of("eth10"), eth11 = irqs_of("eth11");
  const auto virtio = irqs_of("eth0"), sf = irqs_of("enp8s0f0s2");
  fs::remove_all(root);
  EXPECT_EQ(eth1, (std::vector<uint32_t>{60, 61}));
  EXPECT_EQ(eth10, (std::vector<uint32_t>{62, 63}));
  EXPECT_EQ(eth11, (std::vector<uint32_t>{64}));
  EXPECT_EQ(virtio, (std::vector<uint32_t>{37, 38, 39}));
  EXPECT_TRUE(sf.empty());
}

TEST(QueueConfig, FromAFakeSysfs) {
  auto root = std::filesystem::temp_directory_path() / ("netagent-q-" + std::to_string(getpid()));
  for (const char* q : {"rx-0", "rx-1", "tx-0"}) {
    std::filesystem::create_directories(root / "class/net/eth9/queues" / q);
  }
  std::ofstream(root / "class/net/eth9/queues/rx-1/rps_cpus") << "00000000,0000ff00\n";
  std::ofstream(root / "class/net/eth9/queues/rx-1/rps_flow_cnt") << "2048\n";
  std::ofstream(root / "class/net/eth9/queues/tx-0/xps_cpus") << "3\n";
  auto q = ReadQueueConfig("eth9", root.string());
  auto missing = ReadQueueConfig("eth8", root.string());
  std::filesystem::remove_all(root);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->rx.size(), 2u);
  EXPECT_EQ(q->rx[1].rps_cpus, "00000000,0000ff00");
  EXPECT_EQ(q->rx[1].rps_flow_cnt, 2048u);
  EXPECT_FALSE(q->rx[0].rps_flow_cnt.has_value());
  EXPECT_EQ(q->tx[0].xps_cpus, "3");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace netagent::collectors
