#include "agent/diagnosis_service.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "agent/tuning_service.h"

namespace netagent::agent {
namespace {

// Every intent a rule proposes reaches the tuning API as the same intent.
TEST(DiagnosisService, IntentsRoundTripThroughTheApi) {
  std::vector<tuners::Intent> intents;
  auto add = [&](auto what) {
    tuners::Intent i;
    i.what = what;
    intents.push_back(i);
  };
  add(tuners::LimitsIntent{{{"somaxconn", "1024"}, {"ip_local_port_range", "10240 65000"}}});
  add(tuners::SysctlIntent{{{"net.core.netdev_max_backlog", "2048"}}});
  add(tuners::CongestionIntent{"bbr"});
  add(tuners::RpsIntent{"eth0", "", false});
  add(tuners::IrqAffinityIntent{"eth0", "0-3"});
  add(tuners::BdpIntent{0, absl::ZeroDuration(), true});
  for (const tuners::Intent& i : intents) {
    netagent::v1::TuningIntent proto;
    IntentToProto(i, &proto);
    auto back = IntentFromProto(proto);
    ASSERT_TRUE(back.ok()) << back.status() << " " << tuners::DescribeIntent(i);
    EXPECT_EQ(tuners::DescribeIntent(*back), tuners::DescribeIntent(i));
  }
}

// The collector's keys become (reason name, device index): several
// protocols of one reason and device add up; the names of the devices and
// the drops it could not count come along.
TEST(DiagnosisService, KernelDropsAreNamedByReasonPerDevice) {
  const auto names = datapath::DropReasonNames::FromEnums(
      {{"SKB_NOT_DROPPED_YET", 0}, {"SKB_CONSUMED", 1}, {"SKB_DROP_REASON_NOT_SPECIFIED", 2},
       {"SKB_DROP_REASON_NO_SOCKET", 3}, {"SKB_DROP_REASON_NETFILTER_DROP", 4}});
  datapath::KernelDropSnapshot snap;
  snap.devices = {{2, "veth0"}};
  snap.counts[{3, 2, 0x0800, 17}] = 5;
  snap.counts[{3, 2, 0x0800, 6}] = 7;
  snap.counts[{4, 9, 0x86dd, 6}] = 1;
  snap.counts[{4, 0, 0, 0}] = 2;
  snap.counts[{77, 2, 0x0800, 6}] = 3;
  snap.events.table_full = 11;
  const absl::Time at = absl::FromUnixSeconds(1700000000);
  const diagnosis::KernelDrops d = KernelDropsFrom(snap, names, at);
  EXPECT_EQ(d.attached_at, at);
  const std::map<std::pair<std::string, uint32_t>, uint64_t> want = {
      {{"NO_SOCKET", 2}, 12}, {{"NETFILTER_DROP", 9}, 1}, {{"NETFILTER_DROP", 0}, 2},
      {{"UNKNOWN_77", 2}, 3}};
  EXPECT_EQ(d.counts, want);
  EXPECT_EQ(d.devices, snap.devices);
  EXPECT_EQ(d.table_full, 11u);
}

// Sources per reason: a prefix whose drops have two reasons is a source of
// each; samples from before the window are left out.
TEST(DiagnosisService, DropSourcesArePerReasonWithinTheWindow) {
  const auto names = datapath::DropReasonNames::FromEnums(
      {{"SKB_NOT_DROPPED_YET", 0}, {"SKB_CONSUMED", 1}, {"SKB_DROP_REASON_NO_SOCKET", 3},
       {"SKB_DROP_REASON_NETFILTER_DROP", 4}});
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  std::vector<datapath::KernelDropSample> samples;
  auto add = [&](uint32_t reason, uint8_t last, absl::Time at, int n) {
    for (int i = 0; i < n; ++i) {
      datapath::KernelDropSample s;
      s.at = at;
      s.key.reason = reason;
      s.family = AF_INET;
      s.source = {10, 88, 1, last};
      samples.push_back(s);
    }
  };
  add(4, 1, t0 + absl::Seconds(1), 5);  // NETFILTER_DROP from 10.88.1.0/24
  add(3, 2, t0 + absl::Seconds(2), 3);  // NO_SOCKET from the same /24
  add(3, 2, t0 - absl::Seconds(1), 9);  // before the window
  const auto got = DropSourcesFrom(samples, names, t0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].prefix, "10.88.1.0/24");
  EXPECT_EQ(got[0].reason, "NETFILTER_DROP");
  EXPECT_EQ(got[0].samples, 5u);
  EXPECT_EQ(got[1].prefix, "10.88.1.0/24");
  EXPECT_EQ(got[1].reason, "NO_SOCKET");
  EXPECT_EQ(got[1].samples, 3u);
}

}  // namespace
}  // namespace netagent::agent
