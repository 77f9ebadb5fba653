// The NIC view of a veth pair, compared with ethtool and ip in the same
// namespace.
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "netagent/v1/nic.pb.h"
#include "tests/common/ethtool_output.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

// va in `ns` (the agent's), vb in `peer`, 10.77.0.1/24 <-> 10.77.0.2/24.
class VethPair {
 public:
  VethPair() {
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"ip", "-n", ns_.name(), "link", "add", "va", "type", "veth", "peer", "name", "vb",
              "netns", peer_.name()},
             {"ip", "-n", ns_.name(), "addr", "add", "10.77.0.1/24", "dev", "va"},
             {"ip", "-n", peer_.name(), "addr", "add", "10.77.0.2/24", "dev", "vb"},
             {"ip", "-n", ns_.name(), "link", "set", "va", "up"},
             {"ip", "-n", peer_.name(), "link", "set", "vb", "up"}}) {
      RunResult r = RunCommand(cmd);
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
  }
  const Netns& ns() const { return ns_; }
  const Netns& peer() const { return peer_; }
  void Traffic(int datagrams) const {
    RunCommand(
        ns_.Exec({"bash", "-c",
                  absl::StrCat("for i in $(seq ", datagrams,
                               "); do echo x > /dev/udp/10.77.0.2/9; done 2>/dev/null; true")}));
  }

 private:
  Netns ns_, peer_;
};

v1::GetNicResponse GetNic(const Agent& agent, const std::string& dev) {
  RunResult r = agent.Netctl({"-o", "json", "nic", dev});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ResultOf<v1::GetNicResponse>(r.out);
}

TEST(NicIntegration, ChannelsFeaturesAndDriverCountersAgreeWithEthtool) {
  REQUIRE_ROOT();
  VethPair veth;
  Agent agent(veth.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult set = RunCommand(veth.ns().Exec({"ethtool", "-L", "va", "rx", "2", "tx", "2"}));
  ASSERT_EQ(set.exit_code, 0) << set.err;
  veth.Traffic(20);

  v1::GetNicResponse nic = GetNic(agent, "va");
  EthtoolChannels l = ParseEthtoolL(RunCommand(veth.ns().Exec({"ethtool", "-l", "va"})).out);
  const auto& c = nic.channels();
  ASSERT_TRUE(c.status().available()) << c.status().reason();
  EXPECT_EQ(c.rx(), 2u);
  EXPECT_EQ(c.tx(), 2u);
  EXPECT_EQ(std::optional<uint32_t>(c.rx_max()), l.max["RX"]);
  EXPECT_EQ(std::optional<uint32_t>(c.rx()), l.current["RX"]);
  EXPECT_EQ(std::optional<uint32_t>(c.tx()), l.current["TX"]);
  EXPECT_FALSE(c.has_combined());
  EXPECT_FALSE(l.current["Combined"].has_value());

  auto k = ParseEthtoolK(RunCommand(veth.ns().Exec({"ethtool", "-k", "va"})).out);
  ASSERT_TRUE(nic.features().status().available());
  int compared = 0;
  for (const auto& f : nic.features().features()) {
    auto it = k.find(f.name());
    if (it == k.end()) continue;
    EXPECT_EQ(f.active(), it->second.on) << f.name();
    EXPECT_EQ(f.fixed(), it->second.fixed) << f.name();
    ++compared;
  }
  EXPECT_GE(compared, 40);

  auto s = ParseEthtoolS(RunCommand(veth.ns().Exec({"ethtool", "-S", "va"})).out);
  ASSERT_TRUE(nic.driver_stats().status().available());
  ASSERT_EQ(static_cast<size_t>(nic.driver_stats().counters_size()), s.size());
  for (const auto& v : nic.driver_stats().counters()) {
    ASSERT_TRUE(s.count(v.name())) << v.name();
    EXPECT_EQ(v.value(), s[v.name()]) << v.name();
  }
  EXPECT_EQ(nic.driver().driver(), "veth");

  // A group veth does not have: unsupported with the kernel's reason.
  EXPECT_FALSE(nic.coalesce().status().available());
  EXPECT_NE(nic.coalesce().status().reason().find("Operation not supported"), std::string::npos);
  EXPECT_FALSE(nic.irqs().status().available());
  EXPECT_NE(nic.irqs().status().reason().find("virtual device"), std::string::npos);

  RunResult filtered =
      agent.Netctl({"-o", "json", "nic", "va", "--include", "^rx_queue_1", "--exclude", "xdp"});
  auto f = ResultOf<v1::GetNicResponse>(filtered.out);
  ASSERT_GT(f.driver_stats().counters_size(), 0);
  for (const auto& v : f.driver_stats().counters()) {
    EXPECT_EQ(v.name().rfind("rx_queue_1", 0), 0u) << v.name();
    EXPECT_EQ(v.name().find("xdp"), std::string::npos) << v.name();
  }
  EXPECT_EQ(f.driver_stats().total(), nic.driver_stats().total());
}

TEST(NicIntegration, Stats64AgreeWithIpLink) {
  REQUIRE_ROOT();
  VethPair veth;
  Agent agent(veth.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  veth.Traffic(50);
  // ip's reading before and after ours: the kernel sends on its own (IPv6
  // neighbour discovery, MLD) at any moment, so ours lies between the two.
  auto ip_stats = [&] {
    RunResult ip =
        RunCommand(veth.ns().Exec({"ip", "-s", "-s", "-j", "link", "show", "dev", "va"}));
    EXPECT_EQ(ip.exit_code, 0) << ip.err;
    google::protobuf::ListValue list;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(ip.out, &list).ok());
    std::map<std::string, double> out;
    if (list.values_size() == 0) return out;
    const auto& link = list.values(0).struct_value().fields();
    const auto& st = link.at("stats64").struct_value().fields();
    const auto& rx = st.at("rx").struct_value().fields();
    const auto& tx = st.at("tx").struct_value().fields();
    out = {{"rx_bytes", rx.at("bytes").number_value()},
           {"rx_packets", rx.at("packets").number_value()},
           {"rx_errors", rx.at("errors").number_value()},
           {"rx_dropped", rx.at("dropped").number_value()},
           {"rx_over_errors", rx.at("over_errors").number_value()},
           {"multicast", rx.at("multicast").number_value()},
           {"rx_length_errors", rx.at("length_errors").number_value()},
           {"rx_crc_errors", rx.at("crc_errors").number_value()},
           {"rx_frame_errors", rx.at("frame_errors").number_value()},
           {"rx_fifo_errors", rx.at("fifo_errors").number_value()},
           {"rx_missed_errors", rx.at("missed_errors").number_value()},
           {"tx_bytes", tx.at("bytes").number_value()},
           {"tx_packets", tx.at("packets").number_value()},
           {"tx_errors", tx.at("errors").number_value()},
           {"tx_dropped", tx.at("dropped").number_value()},
           {"tx_carrier_errors", tx.at("carrier_errors").number_value()},
           {"collisions", tx.at("collisions").number_value()},
           {"tx_aborted_errors", tx.at("aborted_errors").number_value()},
           {"tx_fifo_errors", tx.at("fifo_errors").number_value()},
           {"tx_window_errors", tx.at("window_errors").number_value()},
           {"tx_heartbeat_errors", tx.at("heartbeat_errors").number_value()},
           {"mtu", link.at("mtu").number_value()}};
    return out;
  };
  const std::map<std::string, double> before = ip_stats();
  v1::GetNicResponse nic = GetNic(agent, "va");
  const std::map<std::string, double> after = ip_stats();
  ASSERT_EQ(before.size(), 22u);
  const auto& ours = nic.link().stats();
  for (const auto& [name, low] : before) {
    if (name == "mtu") continue;
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_GE(static_cast<double>(ours.at(name)), low) << name;
    EXPECT_LE(static_cast<double>(ours.at(name)), after.at(name)) << name;
  }
  EXPECT_GE(ours.at("tx_packets"), 50u);
  EXPECT_EQ(nic.link().mtu(), before.at("mtu"));
}

TEST(NicIntegration, ListsTheNamespacesInterfacesAndReadsItsSysfs) {
  REQUIRE_ROOT();
  VethPair veth;
  Agent agent(veth.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult list = agent.Netctl({"-o", "json", "nic"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::vector<std::string> names;
  const auto links = ResultOf<v1::ListNicsResponse>(list.out);
  for (const auto& l : links.links()) names.push_back(l.name());
  EXPECT_EQ(names, (std::vector<std::string>{"lo", "va"}));  // vb lives in the peer namespace

  // RPS written inside the namespace: the agent's private sysfs sees it.
  RunResult rps =
      RunCommand(veth.ns().Exec({"bash", "-c", "echo 1 > /sys/class/net/va/queues/rx-0/rps_cpus"}));
  ASSERT_EQ(rps.exit_code, 0) << rps.err;
  v1::GetNicResponse nic = GetNic(agent, "va");
  ASSERT_TRUE(nic.queues().status().available()) << nic.queues().status().reason();
  ASSERT_GE(nic.queues().rx_size(), 1);
  EXPECT_EQ(nic.queues().rx(0).rps_cpus(), "1");

  RunResult missing = agent.Netctl({"nic", "eth0"});  // the host's, not this namespace's
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("NOT_FOUND: interface \"eth0\" does not exist in this namespace"),
            std::string::npos)
      << missing.err;
  RunResult bad = agent.Netctl({"nic", "a/b"});
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT: name:"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace netagent::testing
