#include <gtest/gtest.h>
#include <linux/genetlink.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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
  std::ofstream(root / "proc/interrupts") << "           CPU0       CPU1\n"
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
