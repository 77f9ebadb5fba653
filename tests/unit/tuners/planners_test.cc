#include "tuners/planners.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace netagent::tuners {
namespace {

using ::testing::HasSubstr;

// A host as a child namespace on this kernel shows it (TESTBED.md): tcp_*
// writable, net.core buffer maxima read-only, steering globals absent.
HostSnapshot ChildNamespaceHost() {
  HostSnapshot h;
  for (const auto& s : SysctlRegistry()) {
    SysctlState st;
    st.exists = s.per_netns || std::string(s.name) == "net.core.rmem_max" ||
                std::string(s.name) == "net.core.wmem_max";
    st.writable = s.per_netns && std::string(s.name) != "net.netfilter.nf_conntrack_max";
    st.value = s.kernel_default ? s.kernel_default : "";
    h.sysctls[s.name] = st;
    if (s.kernel_default) h.defaults[s.name] = s.kernel_default;
  }
  auto set = [&](const char* n, const char* v) {
    h.sysctls[n].value = v;
    h.defaults[n] = v;
  };
  set("net.ipv4.tcp_rmem", "4096 131072 33554432");
  set("net.ipv4.tcp_wmem", "4096 16384 4194304");
  set("net.core.rmem_max", "4194304");
  set("net.core.wmem_max", "4194304");
  set("net.ipv4.tcp_congestion_control", "bbr");
  set("net.ipv4.tcp_max_syn_backlog", "2048");
  set("net.netfilter.nf_conntrack_max", "262144");
  set("net.netfilter.nf_conntrack_buckets", "262144");
  h.available_cc = {"reno", "bbr", "cubic"};
  h.qdiscs["fq"] = absl::UnavailableError("not built");
  h.qdiscs["pfifo_fast"] = absl::OkStatus();
  h.online_cpus = {0, 1, 2, 3};
  for (uint32_t c : h.online_cpus) h.cpu_node[c] = c < 2 ? 0 : 1;
  return h;
}

HostSnapshot InitialNamespaceHost() {
  HostSnapshot h = ChildNamespaceHost();
  for (auto& [name, st] : h.sysctls) st.exists = st.writable = true;
  h.sysctls["net.core.default_qdisc"].value = "pfifo_fast";
  h.sysctls["net.core.rps_sock_flow_entries"].value = "0";
  return h;
}

DeviceState Veth(uint32_t rx, uint32_t tx) {
  DeviceState d;
  d.name = "veth0";
  for (uint32_t i = 0; i < rx; ++i) d.queues.rx.push_back({i, "0", 0});
  for (uint32_t i = 0; i < tx; ++i) d.queues.tx.push_back({i, "0", "0", 0});
  d.channels.value.rx_max = 4;
  d.channels.value.tx_max = 4;
  d.channels.value.rx = rx;
  d.channels.value.tx = tx;
  d.coalesce.status =
      absl::UnimplementedError("ethtool coalesce-get veth0: Operation not supported");
  d.rss.status = absl::UnimplementedError("Operation not supported");
  d.irqs_status = absl::UnimplementedError("veth0 is virtual: no IRQs");
  return d;
}

const Change* Find(const Plan& p, absl::string_view knob) {
  for (const auto& c : p.changes) {
    if (c.knob == knob) return &c;
  }
  return nullptr;
}

TEST(BdpPlanner, TwiceTheBdpForBothDirections) {
  BdpIntent in{1'000'000'000, absl::Milliseconds(200)};
  auto plan = PlanBdp(in, ChildNamespaceHost());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->changes.size(), 2u);
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_rmem")->new_value, "4096 131072 50000000");
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_wmem")->new_value, "4096 16384 50000000");
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_wmem")->old_value, "4096 16384 4194304");
  // rmem_max is read-only in a child namespace: said, not planned.
  ASSERT_EQ(plan->warnings.size(), 2u);
  EXPECT_THAT(plan->warnings[0], HasSubstr("net.core.rmem_max"));
  EXPECT_THAT(plan->warnings[0], HasSubstr("read-only in this network namespace"));
}

TEST(BdpPlanner, RaisesCoreMaximaWhereWritable) {
  auto plan = PlanBdp({1'000'000'000, absl::Milliseconds(200)}, InitialNamespaceHost());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(Find(*plan, "net.core.rmem_max")->new_value, "50000000");
  EXPECT_EQ(Find(*plan, "net.core.wmem_max")->new_value, "50000000");
  EXPECT_TRUE(plan->warnings.empty());
}

TEST(BdpPlanner, CoreMaximaFollowTheirOwnDirectionWithinTheStep) {
  // 10 Gbit/s x 80 ms: 2 x BDP = 200 MB. rmem may grow x16 from 32 MiB (to
  // 200 MB), wmem only to 64 MiB; each core max follows its own direction,
  // rmem_max within its own step from 4 MiB.
  auto plan = PlanBdp({10'000'000'000, absl::Milliseconds(80)}, InitialNamespaceHost());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_rmem")->new_value, "4096 131072 200000000");
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_wmem")->new_value, "4096 16384 67108864");
  EXPECT_EQ(Find(*plan, "net.core.wmem_max")->new_value, "67108864");
  const Change* r = Find(*plan, "net.core.rmem_max");
  EXPECT_EQ(r->new_value, "67108864");
  EXPECT_THAT(r->warnings.at(0), HasSubstr("largest step"));
}

TEST(BdpPlanner, NeverBelowTheKernelDefault) {
  // 10 Mbit/s x 10 ms: 2 x BDP = 25 KB, far below the defaults.
  auto plan = PlanBdp({10'000'000, absl::Milliseconds(10)}, ChildNamespaceHost());
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->changes.empty());
  EXPECT_THAT(plan->warnings[0], HasSubstr("below the kernel default max"));
}

TEST(BdpPlanner, CeilingAndStepClampAndSaySo) {
  // 40 Gbit/s x 100 ms: 2 x BDP = 1 GB > the 256 MiB ceiling; wmem's 4 MiB max
  // may grow x16 at most = 64 MiB in one change.
  auto plan = PlanBdp({40'000'000'000, absl::Milliseconds(100)}, ChildNamespaceHost());
  ASSERT_TRUE(plan.ok());
  const Change* w = Find(*plan, "net.ipv4.tcp_wmem");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->new_value, absl::StrCat("4096 16384 ", 4194304 * 16));
  EXPECT_THAT(w->warnings[0], HasSubstr("above the ceiling"));
  EXPECT_THAT(w->warnings[1], HasSubstr("largest step"));
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_rmem")->new_value, absl::StrCat("4096 131072 ", 256 << 20));
}

TEST(BdpPlanner, TurnsReceiveAutotuningOn) {
  HostSnapshot h = ChildNamespaceHost();
  h.sysctls["net.ipv4.tcp_moderate_rcvbuf"].value = "0";
  auto plan = PlanBdp({1'000'000'000, absl::Milliseconds(200)}, h);
  ASSERT_NE(Find(*plan, "net.ipv4.tcp_moderate_rcvbuf"), nullptr);
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_moderate_rcvbuf")->new_value, "1");
}

TEST(BdpPlanner, ObservedUsesTheBusiestFlows) {
  HostSnapshot h = ChildNamespaceHost();
  // 100 MB/s at 100 ms min RTT = 10 MB; the tiny flow has a bigger product but is not busy.
  h.flows.push_back({"10.0.0.2:5201", 100'000'000, 100'000, 5'000'000'000});
  for (int i = 0; i < 10; ++i) h.flows.push_back({"10.0.0.9:80", 1'000'000, 50'000, 1'000'000'000});
  h.flows.push_back({"10.0.0.7:22", 200'000'000, 900'000, 10});
  BdpIntent in;
  in.observed = true;
  auto plan = PlanBdp(in, h);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(Find(*plan, "net.ipv4.tcp_wmem")->new_value, "4096 16384 20000000");
  EXPECT_THAT(Find(*plan, "net.ipv4.tcp_wmem")->reason, HasSubstr("10.0.0.2:5201"));
  h.flows.clear();
  EXPECT_EQ(PlanBdp(in, h).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BdpPlanner, BadInputNamesTheField) {
  EXPECT_THAT(PlanBdp({0, absl::Milliseconds(5)}, ChildNamespaceHost()).status().message(),
              HasSubstr("bdp.bandwidth_bps"));
  EXPECT_THAT(PlanBdp({1000, absl::ZeroDuration()}, ChildNamespaceHost()).status().message(),
              HasSubstr("bdp.rtt"));
  BdpIntent huge{1000, absl::Milliseconds(1)};
  huge.ceiling_bytes = 4ull << 30;
  EXPECT_THAT(PlanBdp(huge, ChildNamespaceHost()).status().message(),
              HasSubstr("bdp.ceiling_bytes"));
}

TEST(CongestionPlanner, RefusesWhatTheKernelLacks) {
  auto p = PlanCongestion({"vegas"}, ChildNamespaceHost());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("congestion.algorithm"));
  EXPECT_THAT(p.status().message(), HasSubstr("reno bbr cubic"));
}

TEST(CongestionPlanner, WarnsAboutMixingAndFq) {
  HostSnapshot h = InitialNamespaceHost();
  h.sysctls["net.ipv4.tcp_congestion_control"].value = "cubic";
  h.congestion_in_use = {{"cubic", 12}};
  auto p = PlanCongestion({"bbr"}, h);
  ASSERT_TRUE(p.ok());
  const Change* c = Find(*p, "net.ipv4.tcp_congestion_control");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->warnings[0], HasSubstr("12 on cubic"));
  EXPECT_THAT(p->warnings[0], HasSubstr("fq is not available"));
  h.qdiscs["fq"] = absl::OkStatus();
  p = PlanCongestion({"bbr"}, h);
  EXPECT_EQ(Find(*p, "net.core.default_qdisc")->new_value, "fq");
}

TEST(SteeringPlanner, RpsOverLocalNotIsolatedCpus) {
  HostSnapshot h = ChildNamespaceHost();
  h.isolated_cpus = {3};
  h.device = Veth(1, 1);
  h.device->numa_node = 1;  // CPUs 2 and 3; 3 is isolated
  auto p = PlanRps({"veth0", "", false}, h, false);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->changes.size(), 1u);
  EXPECT_EQ(p->changes[0].knob, "veth0:rx-0/rps_cpus");
  EXPECT_EQ(p->changes[0].new_value, "4");
  h.device->numa_node = -1;
  EXPECT_EQ(PlanRps({"veth0", "", false}, h, false)->changes[0].new_value, "7");
  EXPECT_EQ(PlanRps({"veth0", "", true}, h, false)->changes.size(), 0u);  // already off
  auto bad = PlanRps({"veth0", "0,9", false}, h, false);
  EXPECT_THAT(bad.status().message(), HasSubstr("rps.cpus: CPU 9 is not online"));
  EXPECT_EQ(PlanRps({"veth0", "0,9", false}, h, true)->changes[0].new_value, "1");
}

// A container's /sys is read-only: the queue files are refused with what to
// mount, as an apply would meet them, and nothing is planned to change.
TEST(SteeringPlanner, QueueFilesOnAReadOnlyMountAreRefusals) {
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(1, 1);
  Intent rps;
  rps.what = RpsIntent{"veth0", "", false};
  ASSERT_EQ(PlanIntent(rps, h)->changes.size(), 1u);
  h.queues_read_only = "on a read-only mount (mount /sys)";
  auto p = PlanIntent(rps, h);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->changes.empty());
  ASSERT_EQ(p->refusals.size(), 1u);
  EXPECT_EQ(p->refusals[0], "veth0:rx-0/rps_cpus is on a read-only mount (mount /sys)");
  // Sysctls are not queue files.
  Intent limits;
  limits.what = LimitsIntent{{{"somaxconn", "8192"}}};
  EXPECT_TRUE(PlanIntent(limits, h)->refusals.empty());
}

TEST(SteeringPlanner, SpreadsCpusOverQueues) {
  EXPECT_EQ(SpreadCpus({0, 1, 2, 3}, 2), (std::vector<std::vector<uint32_t>>{{0, 2}, {1, 3}}));
  EXPECT_EQ(SpreadCpus({0, 1}, 3), (std::vector<std::vector<uint32_t>>{{0}, {1}, {0}}));
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(2, 2);
  auto p = PlanXps({"veth0", "", false}, h, false);
  ASSERT_EQ(p->changes.size(), 2u);
  EXPECT_EQ(p->changes[0].new_value, "5");  // CPUs 0, 2
  EXPECT_EQ(p->changes[1].new_value, "a");  // CPUs 1, 3
}

TEST(SteeringPlanner, RfsFlowCountsArePowersOfTwo) {
  HostSnapshot h = InitialNamespaceHost();
  h.device = Veth(3, 1);
  auto p = PlanRfs({"veth0", 32768, false}, h, false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(Find(*p, "net.core.rps_sock_flow_entries")->new_value, "32768");
  EXPECT_EQ(Find(*p, "veth0:rx-2/rps_flow_cnt")->new_value, "8192");  // 32768/3 -> 8192
  EXPECT_THAT(p->warnings.back(), HasSubstr("RPS is off"));
  EXPECT_THAT(PlanRfs({"veth0", 30000, false}, h, false).status().message(),
              HasSubstr("rfs.flow_entries"));
  EXPECT_EQ(
      Find(*PlanRfs({"veth0", 30000, false}, h, true), "net.core.rps_sock_flow_entries")->new_value,
      "16384");
  // In a child namespace the global table is absent: said, and queues still set.
  HostSnapshot c = ChildNamespaceHost();
  c.device = Veth(1, 1);
  auto pc = PlanRfs({"veth0", 4096, false}, c, false);
  EXPECT_THAT(pc->warnings[0], HasSubstr("does not exist in this network namespace"));
  EXPECT_EQ(pc->changes.size(), 1u);
}

TEST(ChannelsPlanner, WithinTheDeviceMaximum) {
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(1, 1);
  ChannelsIntent in;
  in.device = "veth0";
  in.rx = 2;
  auto p = PlanChannels(in, h, false);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->changes.size(), 1u);
  EXPECT_EQ(p->changes[0].knob, "veth0:channels/counts");
  EXPECT_EQ(p->changes[0].old_value, "0 1 1 0");
  EXPECT_EQ(p->changes[0].new_value, "0 2 1 0");
  in.rx = 9;
  EXPECT_THAT(PlanChannels(in, h, false).status().message(),
              HasSubstr("channels.rx: 9 is above the device's maximum 4"));
  EXPECT_EQ(PlanChannels(in, h, true)->changes[0].new_value, "0 4 1 0");
  in.rx.reset();
  in.combined = 2;
  EXPECT_THAT(PlanChannels(in, h, false).status().message(), HasSubstr("has no combined channels"));
  in.combined.reset();
  in.rx = 0;
  EXPECT_THAT(PlanChannels(in, h, false).status().message(), HasSubstr("no receive"));
}

TEST(ChannelsPlanner, FromCombinedToSeparateQueuesIsOneChange) {
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(1, 1);
  auto& c = h.device->channels.value;
  c = {};
  c.combined_max = 8;
  c.rx_max = c.tx_max = 4;
  c.combined = 8;
  c.rx = c.tx = 0;
  ChannelsIntent in;
  in.device = "veth0";
  in.combined = 0;
  in.rx = 4;
  in.tx = 4;
  auto p = PlanChannels(in, h, false);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->changes.size(), 1u);
  EXPECT_EQ(p->changes[0].old_value, "8 0 0 0");
  EXPECT_EQ(p->changes[0].new_value, "0 4 4 0");
}

TEST(DevicePlanners, UnsupportedGroupsAreFailedPreconditionWithTheKernelsReason) {
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(1, 1);
  auto co = PlanCoalesce({"veth0", "latency", {}}, h, false);
  EXPECT_EQ(co.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(co.status().message(), HasSubstr("Operation not supported"));
  EXPECT_EQ(PlanRss({"veth0", 0, {}}, h).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(PlanIrqAffinity({"veth0", ""}, h).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RssPlanner, EvenAndWeighted) {
  EXPECT_EQ(SpreadIndirection(8, 4, {}), (std::vector<uint32_t>{0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_EQ(SpreadIndirection(8, 2, {3, 1}), (std::vector<uint32_t>{0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(SpreadIndirection(4, 3, {1, 0, 1}), (std::vector<uint32_t>{0, 0, 2, 2}));
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(4, 4);
  h.device->channels.value = {};
  h.device->channels.value.combined = 4;
  h.device->channels.value.combined_max = 8;
  h.device->rss.status = absl::OkStatus();
  h.device->rss.value.indirection = {0, 1, 2, 3, 0, 1, 2, 3};
  EXPECT_TRUE(PlanRss({"eth0x", 0, {}}, h).status().code() == absl::StatusCode::kInternal);
  h.device->name = "eth0x";
  EXPECT_TRUE(PlanRss({"eth0x", 0, {}}, h)->changes.empty());  // already even
  auto p = PlanRss({"eth0x", 2, {}}, h);
  EXPECT_EQ(p->changes[0].new_value, "0 1 0 1 0 1 0 1");
  EXPECT_THAT(PlanRss({"eth0x", 5, {}}, h).status().message(), HasSubstr("rss.queues"));
  EXPECT_THAT(PlanRss({"eth0x", 2, {1}}, h).status().message(), HasSubstr("rss.weights"));
}

TEST(CoalescePlanner, OnlyWhatTheDriverSupports) {
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(1, 1);
  // What virtio_net answers (adaptive, usecs and frames; no tx adaptive).
  h.device->coalesce.status = absl::OkStatus();
  h.device->coalesce.value = {
      {"rx-usecs", 0}, {"rx-frames", 0}, {"tx-usecs", 0}, {"tx-frames", 0}, {"adaptive-rx", 0}};
  auto p = PlanCoalesce({"veth0", "throughput", {}}, h, false);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->changes.size(), 1u);
  EXPECT_EQ(p->changes[0].knob, "veth0:coalesce/adaptive-rx");
  EXPECT_THAT(p->warnings[0], HasSubstr("left alone: adaptive-tx"));
  auto e = PlanCoalesce({"veth0", "", {{"rx-usecs", 50}}}, h, false);
  EXPECT_EQ(e->changes[0].new_value, "50");
  EXPECT_THAT(PlanCoalesce({"veth0", "", {{"rx-usecs", 500000}}}, h, false).status().message(),
              HasSubstr("ceiling 100000"));
  EXPECT_THAT(PlanCoalesce({"veth0", "", {{"rx-microseconds", 5}}}, h, false).status().message(),
              HasSubstr("unknown parameter"));
  EXPECT_THAT(PlanCoalesce({"veth0", "fast", {}}, h, false).status().message(),
              HasSubstr("coalesce.profile"));
}

TEST(IrqPlanner, OneCpuPerQueueInterrupt) {
  HostSnapshot h = ChildNamespaceHost();
  h.device = Veth(1, 1);
  h.device->irqs_status = absl::OkStatus();
  h.device->irqs = {{40, "eth0-rx-0", 0, "0-3", "0"},
                    {41, "eth0-rx-1", 0, "0-3", "1"},
                    {42, "eth0-rx-2", 0, "0-3", "2"}};
  auto p = PlanIrqAffinity({"veth0", "2-3"}, h);
  ASSERT_EQ(p->changes.size(), 3u);
  EXPECT_EQ(p->changes[0].knob, "irq/40/smp_affinity_list");
  EXPECT_EQ(p->changes[0].new_value, "2");
  EXPECT_EQ(p->changes[1].new_value, "3");
  EXPECT_EQ(p->changes[2].new_value, "2");
}

TEST(SettingsPlanner, LimitsWithinBoundsAndWritable) {
  HostSnapshot h = ChildNamespaceHost();
  auto p =
      PlanSettings({{"somaxconn", "8192"}, {"tcp_syncookies", "1"}}, h, false, "limits", "limits");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->changes.size(), 1u);  // syncookies already 1
  EXPECT_EQ(p->changes[0].knob, "net.core.somaxconn");
  EXPECT_THAT(PlanSettings({{"ip_forward", "1"}}, h, false, "limits", "limits").status().message(),
              HasSubstr("not a knob the agent manages"));
  EXPECT_THAT(
      PlanSettings({{"tcp_rmem", "4096 1 2"}}, h, false, "limits", "limits").status().message(),
      HasSubstr("not a limit"));
  EXPECT_THAT(
      PlanSettings({{"somaxconn", "1"}, {"net.core.somaxconn", "2"}}, h, true, "limits", "limits")
          .status()
          .message(),
      HasSubstr("given twice"));
  // A read-only knob is planned with the refusal an apply would meet.
  auto ro = PlanSettings({{"nf_conntrack_max", "524288"}}, h, false, "limits", "limits");
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_TRUE(ro->changes.empty());
  ASSERT_EQ(ro->refusals.size(), 1u);
  EXPECT_THAT(ro->refusals[0], HasSubstr("read-only in this network namespace"));
  auto cc = PlanSettings({{"tcp_congestion_control", "vegas"}}, h, false, "sysctl", "");
  EXPECT_THAT(cc.status().message(), HasSubstr("not available"));
  // On a container's read-only /proc/sys: the mount is named, and the fix.
  HostSnapshot container = h;
  container.sysctls["net.core.somaxconn"].writable = false;
  container.sysctls["net.core.somaxconn"].read_only_mount = true;
  auto mount = PlanSettings({{"somaxconn", "8192"}}, container, false, "limits", "limits");
  ASSERT_TRUE(mount.ok()) << mount.status();
  ASSERT_EQ(mount->refusals.size(), 1u);
  EXPECT_THAT(mount->refusals[0], HasSubstr("net.core.somaxconn is on a read-only mount"));
  EXPECT_THAT(mount->refusals[0], HasSubstr("--proc-root"));
}

TEST(DatapathBlockPlanner, OneKnobPerPrefixNotAlreadyBlocked) {
  HostSnapshot h = ChildNamespaceHost();
  DatapathState dp;
  dp.device = "veth0";
  dp.blocked = {"198.51.100.0/24"};
  dp.allowed = {"203.0.113.7"};
  h.datapath = dp;
  auto p = PlanDatapathBlock(
      {"veth0", {"198.51.100.0/24", "203.0.113.0/24", "2001:0db8::/32", "10.0.0.0/8"}}, h);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->refusals.empty());
  ASSERT_EQ(p->changes.size(), 3u);  // 198.51.100.0/24 is blocked already
  EXPECT_EQ(p->changes[0].knob, "veth0:xdp-block/203.0.113.0/24");
  EXPECT_EQ(p->changes[0].old_value, "off");
  EXPECT_EQ(p->changes[0].new_value, "on");
  EXPECT_EQ(p->changes[0].risk, Risk::kMedium);
  // An allow rule inside the prefix wins over the block: said.
  ASSERT_EQ(p->changes[0].warnings.size(), 1u);
  EXPECT_THAT(p->changes[0].warnings[0], HasSubstr("allow rules are checked first"));
  EXPECT_EQ(p->changes[1].knob, "veth0:xdp-block/2001:db8::/32");  // canonical
  // A /8 is a whole provider: high risk, with how many addresses.
  EXPECT_EQ(p->changes[2].risk, Risk::kHigh);
  EXPECT_THAT(p->changes[2].warnings[0], HasSubstr("16777216 addresses"));

  auto lift = PlanDatapathBlock({"veth0", {"198.51.100.0/24", "203.0.113.0/24"}, true}, h);
  ASSERT_TRUE(lift.ok());
  ASSERT_EQ(lift->changes.size(), 1u);
  EXPECT_EQ(lift->changes[0].old_value, "on");
  EXPECT_EQ(lift->changes[0].new_value, "off");
}

// An operator's own block rule of a prefix is theirs: a block intent leaves
// it (no second rule beside it), a lift does not remove it; both say so.
TEST(DatapathBlockPlanner, AnOperatorsRuleIsLeftAsItIs) {
  HostSnapshot h = ChildNamespaceHost();
  DatapathState dp;
  dp.device = "veth0";
  dp.operator_blocked = {{"192.0.2.0/24", 7}};
  h.datapath = dp;
  auto block = PlanDatapathBlock({"veth0", {"192.0.2.0/24"}}, h);
  ASSERT_TRUE(block.ok());
  EXPECT_TRUE(block->changes.empty());
  ASSERT_EQ(block->warnings.size(), 1u);
  EXPECT_THAT(block->warnings[0], HasSubstr("already blocked by an operator's rule 7"));
  auto lift = PlanDatapathBlock({"veth0", {"192.0.2.0/24"}, true}, h);
  ASSERT_TRUE(lift.ok());
  EXPECT_TRUE(lift->changes.empty());
  EXPECT_THAT(lift->warnings.at(0), HasSubstr("netctl datapath rules del veth0 7"));
}

TEST(DatapathBlockPlanner, WithoutAFastPathTheChangesAreRefusals) {
  HostSnapshot h = ChildNamespaceHost();
  // No state at all (the planner was not given the fast path).
  auto none = PlanDatapathBlock({"veth0", {"203.0.113.0/24"}}, h);
  ASSERT_TRUE(none.ok());
  ASSERT_EQ(none->refusals.size(), 1u);
  DatapathState dp;
  dp.device = "veth0";
  dp.unavailable = "the fast path is not attached to veth0: netctl datapath attach veth0 first";
  h.datapath = dp;
  auto p = PlanDatapathBlock({"veth0", {"203.0.113.0/24"}}, h);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->changes.size(), 1u);
  ASSERT_EQ(p->refusals.size(), 1u);
  EXPECT_THAT(p->refusals[0], HasSubstr("netctl datapath attach veth0"));
  // Lifting a block that is not there changes nothing, and refuses nothing.
  auto lift = PlanDatapathBlock({"veth0", {"203.0.113.0/24"}, true}, h);
  ASSERT_TRUE(lift.ok());
  EXPECT_TRUE(lift->changes.empty());
  EXPECT_TRUE(lift->refusals.empty());
}

TEST(DatapathBlockPlanner, BadInputNamesTheField) {
  HostSnapshot h = ChildNamespaceHost();
  auto msg = [&](DatapathBlockIntent in) {
    return std::string(PlanDatapathBlock(in, h).status().message());
  };
  EXPECT_THAT(msg({"veth0", {}}), HasSubstr("intent.datapath_block.prefixes: at least one"));
  EXPECT_THAT(msg({"veth0", {"10.0.0.0/8", "10.0.0.1/8"}}),
              HasSubstr("intent.datapath_block.prefixes[1]"));
  EXPECT_THAT(msg({"veth0", {"10.0.0.1", "10.0.0.1/32"}}), HasSubstr("given twice"));
  EXPECT_THAT(msg({"veth0", {"bogus"}}), HasSubstr("intent.datapath_block.prefixes[0]"));
  EXPECT_THAT(msg({"veth0", {"10.0.0.0/8", "0.0.0.0/0"}}),
              HasSubstr("prefixes[1]: 0.0.0.0/0 is every address"));
  EXPECT_THAT(msg({"veth0", {"::/0"}}), HasSubstr("every address"));
  EXPECT_THAT(msg({"veth0", std::vector<std::string>(257, "10.0.0.1")}), HasSubstr("at most 256"));
}

// Outside the initial namespace the kernel refuses a default algorithm that
// is not allowed (EPERM): the plan says so before an apply meets it.
TEST(SettingsPlanner, AnAlgorithmThisNamespaceMayNotChooseIsARefusal) {
  HostSnapshot h = InitialNamespaceHost();
  h.available_cc = {"reno", "bbr", "cubic"};
  h.allowed_cc = {"reno", "bbr"};
  h.initial_netns = false;
  auto p = PlanCongestion({"cubic"}, h);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->refusals.size(), 1u);
  EXPECT_THAT(p->refusals[0], HasSubstr("not in tcp_allowed_congestion_control (reno bbr)"));
  auto s = PlanSettings({{"tcp_congestion_control", "cubic"}}, h, false, "sysctl", "");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->refusals.size(), 1u);
  EXPECT_TRUE(PlanCongestion({"bbr"}, h)->refusals.empty());
  h.initial_netns = true;
  EXPECT_TRUE(PlanCongestion({"cubic"}, h)->refusals.empty()) << "the initial namespace may";
}

TEST(SettingsPlanner, BufferRulesHoldForPlainSysctlsToo) {
  HostSnapshot h = InitialNamespaceHost();
  auto low = PlanSettings({{"net.ipv4.tcp_rmem", "4096 16384 2097152"}}, h, false, "sysctl", "");
  EXPECT_THAT(low.status().message(), HasSubstr("below the kernel default max 33554432"));
  auto core = PlanSettings({{"net.core.wmem_max", "1048576"}}, h, false, "sysctl", "");
  ASSERT_TRUE(core.ok());
  EXPECT_THAT(core->changes.at(0).warnings.at(0), HasSubstr("below net.ipv4.tcp_wmem's max"));
  // Both conntrack knobs given: buckets planned once, as asked.
  auto both = PlanSettings({{"nf_conntrack_max", "2097152"}, {"nf_conntrack_buckets", "262144"}}, h,
                           false, "limits", "limits");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->changes.size(), 1u);
  EXPECT_EQ(both->changes[0].knob, "net.netfilter.nf_conntrack_max");
}

TEST(SettingsPlanner, ConntrackMaxBringsItsBuckets) {
  HostSnapshot h = InitialNamespaceHost();
  auto p = PlanSettings({{"nf_conntrack_max", "2097152"}}, h, false, "limits", "limits");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(Find(*p, "net.netfilter.nf_conntrack_buckets")->new_value, "524288");
}

TEST(PlanDigest, ChangesWithTheValues) {
  Plan a, b;
  a.changes.push_back({"net.core.somaxconn", "4096", "8192", "x", Risk::kLow, {}});
  b = a;
  EXPECT_EQ(a.Digest(), b.Digest());
  b.changes[0].old_value = "4097";
  EXPECT_NE(a.Digest(), b.Digest());
}

}  // namespace
}  // namespace netagent::tuners
