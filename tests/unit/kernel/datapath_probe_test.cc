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

#include <unistd.h>

#include <cstdlib>

#include "kernel/probe.h"

namespace netagent::kernel {
namespace {

TEST(QdiscProbe, FindsBuiltInQdiscsByTheirEnqueueSymbol) {
  char path[] = "/tmp/na-kallsyms-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string syms =
      "ffffffff81ed8900 t pfifo_fast_enqueue\n"
      "ffffffff81ef1e20 t htb_enqueue\n"
      "ffffffffc0a01000 t fq_codel_enqueue\t[sch_fq_codel]\n"
      "ffffffff81ef1e99 t my_fq_enqueue\n"
      "ffffffff81ef2000 t fq_pie_qdisc_enqueue\n"
      "ffffffff81ef3000 t cake_enqueue.isra.0\n";
  ASSERT_EQ(write(fd, syms.data(), syms.size()), static_cast<ssize_t>(syms.size()));
  close(fd);
  EXPECT_TRUE(ProbeQdisc("pfifo_fast", path, "/nonexistent").available);
  EXPECT_TRUE(ProbeQdisc("fq_codel", path, "/nonexistent").available);
  EXPECT_TRUE(ProbeQdisc("fq_pie", path, "/nonexistent").available);
  EXPECT_TRUE(ProbeQdisc("cake", path, "/nonexistent").available);
  Capability fq = ProbeQdisc("fq", path, "/nonexistent");
  EXPECT_FALSE(fq.available);  // my_fq_enqueue and fq_codel_enqueue are not fq's
  EXPECT_NE(fq.reason.find("neither built in nor a module"), std::string::npos);
  unlink(path);
}

}  // namespace
}  // namespace netagent::kernel
