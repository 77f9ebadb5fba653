// The ethtool set-requests the tuners send, checked against replies the
// kernel recorded (tests/fixtures/netlink/linux-6.18, virtio_net): a
// set-request carries the same attributes, ids and widths as the GET reply,
// so parsing our request with the reply parser must give back the values,
// and each attribute must have the width the kernel itself used.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>

#include <map>

#include "collectors/ethtool.h"
#include "kernel/netlink.h"
#include "tests/unit/fixtures.h"
#include "tuners/planners.h"
#include "tuners/system.h"

namespace netagent::tuners {
namespace {

using netagent::testing::Fixture;

std::vector<uint32_t> Recorded(const std::string& file) {
  std::vector<uint32_t> out;
  absl::Status st =
      kernel::ReplayRecording(Fixture("netlink/linux-6.18/" + file), file, [&](const nlmsghdr& m) {
        out.resize((m.nlmsg_len + 3) / 4);
        std::memcpy(out.data(), &m, m.nlmsg_len);
        return absl::OkStatus();
      });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

const nlmsghdr& Msg(const std::vector<uint32_t>& v) {
  return *reinterpret_cast<const nlmsghdr*>(v.data());
}

// attribute id -> payload length, for the top-level attributes after the genl header.
std::map<uint16_t, uint16_t> Widths(const nlmsghdr& m) {
  std::map<uint16_t, uint16_t> w;
  kernel::ForEachAttr(m, GENL_HDRLEN, [&](const nlattr& a) {
    w[a.nla_type & NLA_TYPE_MASK] = a.nla_len - NLA_HDRLEN;
  });
  return w;
}

kernel::NetlinkMessage Request(const std::string& key, std::vector<int64_t> value) {
  kernel::NetlinkMessage m(0, 0);
  m.PutHeader<genlmsghdr>();
  auto k = ParseKnobKey(key);
  EXPECT_TRUE(k.ok());
  EXPECT_TRUE(PutSetAttributes(*k, value, m).ok());
  return m;
}

TEST(EthtoolSetMessages, CoalescingMatchesTheKernelsReply) {
  auto reply = Recorded("ethtool_coalesce_virtio_net.bin");
  ASSERT_FALSE(reply.empty());
  auto parsed = collectors::ParseCoalesce(Msg(reply));
  ASSERT_TRUE(parsed.ok());
  std::map<std::string, uint64_t> values(parsed->begin(), parsed->end());
  // As `ethtool -c eth0` printed it (ethtool_coalesce_virtio_net.ethtool-c.txt).
  EXPECT_EQ(values.at("rx-frames"), 1u);
  EXPECT_EQ(values.at("tx-frames"), 1u);
  EXPECT_EQ(values.at("adaptive-rx"), 0u);
  const auto kernel_widths = Widths(Msg(reply));

  for (const auto& [name, v] : std::vector<std::pair<std::string, int64_t>>{
           {"rx-usecs", 50}, {"rx-frames", 64}, {"tx-usecs", 8}, {"adaptive-rx", 1}}) {
    SCOPED_TRACE(name);
    kernel::NetlinkMessage m = Request("eth0:coalesce/" + name, {v});
    auto back = collectors::ParseCoalesce(*m.header());
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(back->size(), 1u);
    EXPECT_EQ((*back)[0].first, name);
    EXPECT_EQ((*back)[0].second, static_cast<uint64_t>(v));
    auto ours = Widths(*m.header());
    const uint16_t attr = *collectors::CoalesceAttr(name);
    EXPECT_EQ(ours.at(attr), kernel_widths.at(attr)) << "width differs from the kernel's";
  }
}

TEST(EthtoolSetMessages, ChannelsMatchTheKernelsReply) {
  auto reply = Recorded("ethtool_channels_virtio_net.bin");
  ASSERT_FALSE(reply.empty());
  auto ch = collectors::ParseChannels(Msg(reply));
  ASSERT_TRUE(ch.ok());
  ASSERT_TRUE(ch->combined.has_value());  // virtio_net: combined channels only
  const auto kernel_widths = Widths(Msg(reply));
  // All four counts in one request: a move between combined and separate
  // queues is one reconfiguration.
  kernel::NetlinkMessage m = Request("eth0:channels/counts", {1, 0, 0, 0});
  auto back = collectors::ParseChannels(*m.header());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->combined, 1u);
  EXPECT_EQ(back->rx, 0u);
  EXPECT_EQ(back->tx, 0u);
  EXPECT_EQ(back->other, 0u);
  EXPECT_EQ(Widths(*m.header()).at(ETHTOOL_A_CHANNELS_COMBINED_COUNT),
            kernel_widths.at(ETHTOOL_A_CHANNELS_COMBINED_COUNT));
  EXPECT_EQ(SetCommand(KnobType::kChannels), ETHTOOL_MSG_CHANNELS_SET);
}

TEST(EthtoolSetMessages, IndirectionTableIsAnArrayOfU32) {
  kernel::NetlinkMessage m = Request("eth0:rss/indir", {0, 1, 0, 1});
  collectors::Rss rss;
  auto parsed = collectors::ParseRss(*m.header(), {});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->indirection, (std::vector<uint32_t>{0, 1, 0, 1}));
  EXPECT_EQ(SetCommand(KnobType::kRss), 48);  // ETHTOOL_MSG_RSS_SET (6.16)
}

TEST(EthtoolSetMessages, PlannerUsesOnlyTheRecordedParameters) {
  auto reply = Recorded("ethtool_coalesce_virtio_net.bin");
  HostSnapshot h;
  h.online_cpus = {0, 1};
  DeviceState d;
  d.name = "eth0";
  d.coalesce.value = *collectors::ParseCoalesce(Msg(reply));
  h.device = d;
  auto plan = PlanCoalesce({"eth0", "latency", {}}, h, false);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // virtio_net already has rx/tx usecs 0 and frames 1 and adaptive-rx off; it
  // has no adaptive-tx: nothing to change, and that is said.
  EXPECT_TRUE(plan->changes.empty());
  EXPECT_THAT(plan->warnings.at(0), ::testing::HasSubstr("adaptive-tx"));
  plan = PlanCoalesce({"eth0", "throughput", {}}, h, false);
  ASSERT_EQ(plan->changes.size(), 1u);
  EXPECT_EQ(plan->changes[0].knob, "eth0:coalesce/adaptive-rx");
}

TEST(EthtoolSetMessages, RefusesWhatTheKernelWouldMisread) {
  kernel::NetlinkMessage m(0, 0);
  m.PutHeader<genlmsghdr>();
  EXPECT_FALSE(PutSetAttributes(*ParseKnobKey("eth0:coalesce/rx-usecs"), {-1}, m).ok());
  EXPECT_FALSE(PutSetAttributes(*ParseKnobKey("eth0:coalesce/rx-usecs"), {1LL << 33}, m).ok());
  EXPECT_FALSE(PutSetAttributes(*ParseKnobKey("net.core.somaxconn"), {1}, m).ok());
}

// What `netctl host` says of each tree: how much can be written, and why not.
TEST(SummarizeTrees, CountsPerTreeAndSaysWhyNot) {
  auto knob = [](std::string name, bool exists, bool writable, bool ro_mount = false,
                 bool host_wide = false) {
    KnobAccess k;
    k.name = std::move(name);
    k.access = {exists, writable, ro_mount};
    k.host_wide = host_wide;
    return k;
  };
  // A child namespace: a read-only knob, a host-wide one, one the namespace
  // does not have.
  auto child = SummarizeTrees({knob("net.core.somaxconn", true, true),
                               knob("net.core.netdev_max_backlog", true, false),
                               knob("net.ipv4.tcp_rmem", true, true),
                               knob("net.ipv4.neigh.default.gc_thresh3", true, true, false, true),
                               knob("net.netfilter.nf_conntrack_max", false, false)});
  ASSERT_EQ(child.size(), 3u);
  EXPECT_EQ(child[0].name, "net.core");
  EXPECT_EQ(child[0].knobs, 2);
  EXPECT_EQ(child[0].writable_knobs, 1);
  EXPECT_FALSE(child[0].writable);
  EXPECT_EQ(child[0].reason, "read-only here: netdev_max_backlog");
  EXPECT_EQ(child[1].name, "net.ipv4");
  EXPECT_EQ(child[1].writable_knobs, 1);
  EXPECT_EQ(child[1].reason, "set only from the initial namespace: neigh.default.gc_thresh3");
  EXPECT_EQ(child[2].name, "net.netfilter");
  EXPECT_EQ(child[2].knobs, 0);
  EXPECT_FALSE(child[2].writable);
  EXPECT_EQ(child[2].reason, "not in this namespace: nf_conntrack_max");
  EXPECT_FALSE(child[0].read_only_mount);

  // A container's read-only /proc/sys: the mount is the reason, and the fix.
  auto ro = SummarizeTrees({knob("net.core.somaxconn", true, false, true)});
  ASSERT_EQ(ro.size(), 1u);
  EXPECT_TRUE(ro[0].read_only_mount);
  EXPECT_EQ(ro[0].writable_knobs, 0);
  EXPECT_THAT(ro[0].reason, ::testing::HasSubstr("--proc-root"));

  auto all = SummarizeTrees({knob("net.core.somaxconn", true, true)});
  EXPECT_TRUE(all[0].writable);
  EXPECT_EQ(all[0].reason, "");
}

}  // namespace
}  // namespace netagent::tuners
