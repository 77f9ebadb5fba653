#include "agent/diagnosis_service.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace netagent::agent
