#include <gtest/gtest.h>

#include "datapath/probe.h"
#include "tests/unit/fixtures.h"

namespace netagent::datapath {
namespace {

TEST(NetdevDevGet, VethReportsBasicXdp) {
  std::vector<NetdevXdpFeatures> devs;
  absl::Status st = kernel::ReplayRecording(
      netagent::testing::Fixture("netlink/linux-6.18/netdev_dev_get_veth.bin"), "netdev dev-get",
      [&](const nlmsghdr& m) {
        auto d = ParseNetdevDev(m);
        if (!d.ok()) return d.status();
        devs.push_back(*d);
        return absl::OkStatus();
      });
  ASSERT_TRUE(st.ok()) << st;
  // lo and the two ends of a veth pair, recorded in a fresh namespace.
  ASSERT_EQ(devs.size(), 3u);
  int native = 0;
  for (const auto& d : devs) native += (d.xdp_features & kNetdevXdpActBasic) ? 1 : 0;
  EXPECT_EQ(native, 2);  // veth has native XDP, lo does not
}

}  // namespace
}  // namespace netagent::datapath
