#include "agent/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace netagent::agent {
namespace {

TEST(ParseListenAddress, Forms) {
  auto a = ParseListenAddress("10.1.2.3:9999", "listen");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "10.1.2.3");
  EXPECT_EQ(a->port, 9999);
  EXPECT_EQ(a->ToGrpc(), "10.1.2.3:9999");
  EXPECT_EQ(ParseListenAddress("localhost", "listen")->port, kDefaultTcpPort);
  EXPECT_EQ(ParseListenAddress(":8080", "listen")->ToGrpc(), "0.0.0.0:8080");
  EXPECT_EQ(ParseListenAddress("[::1]:7000", "listen")->ToGrpc(), "[::1]:7000");
  EXPECT_EQ(ParseListenAddress("[::]", "listen")->ToGrpc(), "[::]:9470");
}

TEST(ParseListenAddress, BadInputNamesTheField) {
  for (const char* bad :
       {"", "::1:80", "host:0", "host:70000", "host:", "[::1", "[::1]x", "ho st:80", "host:abc"}) {
    auto a = ParseListenAddress(bad, "listen");
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(a.status().message().rfind("listen:", 0), 0u) << a.status();
  }
}

TEST(ParseYamlSettings, ScalarsAndLists) {
  auto s = ParseYamlSettings(
      "socket: /run/x.sock\n"
      "listen: 127.0.0.1:9470\n"
      "operator_identities:\n  - dns:ops-a\n  - uri:spiffe://x/ops-b\n"
      "log_format: json\n");
  ASSERT_TRUE(s.ok()) << s.status();
  AgentConfig cfg;
  ASSERT_TRUE(ApplySettings(*s, cfg).ok());
  EXPECT_EQ(cfg.socket, "/run/x.sock");
  EXPECT_EQ(cfg.listen->port, 9470);
  EXPECT_EQ(cfg.operator_identities,
            (std::vector<std::string>{"dns:ops-a", "uri:spiffe://x/ops-b"}));
  EXPECT_EQ(cfg.log_format, "json");
}

TEST(ParseYamlSettings, UnknownKeysAndShapesAreRefusedByName) {
  auto unknown = ParseYamlSettings("sockett: /x\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("sockett"), absl::string_view::npos);
  auto shape = ParseYamlSettings("socket:\n  - /a\n  - /b\n");
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.status().message().rfind("socket:", 0), 0u) << shape.status();
  EXPECT_FALSE(ParseYamlSettings("just a string").ok());
  EXPECT_FALSE(ParseYamlSettings("a: [unclosed").ok());
  EXPECT_TRUE(ParseYamlSettings("").ok());
}

TEST(ParseYamlSettings, KeysThatAreNotNamesAreRefusedNotThrown) {
  // The key's conversion threw outside the try: std::terminate at start.
  for (const char* yaml : {"? [socket]\n: /x\n", "{[a, b]: 1}\n", "? {socket: /x}\n: y\n"}) {
    auto s = ParseYamlSettings(yaml);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
  }
}

TEST(ApplySettings, ValidatesEachValue) {
  struct Case {
    const char* key;
    const char* value;
  };
  for (const Case& c : std::vector<Case>{{"socket", "relative.sock"},
                                         {"socket_mode", "0666"},
                                         {"socket_mode", "rw"},
                                         {"listen", "nope:port"},
                                         {"log_format", "xml"},
                                         {"log_level", "loud"},
                                         {"state_dir", "var/lib"},
                                         {"shutdown_grace", "-1s"},
                                         {"shutdown_grace", "1h"},
                                         {"operator_identities", "ops"}}) {
    AgentConfig cfg;
    absl::Status st = ApplySettings({{c.key, {c.value}}}, cfg);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.key << "=" << c.value;
    EXPECT_EQ(st.message().rfind(std::string(c.key) + ":", 0), 0u) << st;
  }
}

TEST(ApplySettings, LaterSettingsWin) {
  AgentConfig cfg;
  ASSERT_TRUE(ApplySettings({{"log_level", {"debug"}}}, cfg).ok());
  ASSERT_TRUE(ApplySettings({{"log_level", {"warn"}}}, cfg).ok());
  EXPECT_EQ(cfg.log_level, "warn");
  ASSERT_TRUE(ApplySettings({{"socket_mode", {"0640"}}}, cfg).ok());
  EXPECT_EQ(cfg.socket_mode, 0640u);
}

TEST(ApplySettings, DropReasonsModeAndSamples) {
  AgentConfig cfg;
  EXPECT_EQ(cfg.drop_reasons, DropReasonsMode::kOnDemand);
  EXPECT_EQ(cfg.drop_samples, 100u);
  auto s = ParseYamlSettings("drop_reasons: start\ndrop_samples: 0\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(ApplySettings(*s, cfg).ok());
  EXPECT_EQ(cfg.drop_reasons, DropReasonsMode::kStart);
  EXPECT_EQ(cfg.drop_samples, 0u);
  ASSERT_TRUE(ApplySettings({{"drop_reasons", {"off"}}}, cfg).ok());
  EXPECT_EQ(cfg.drop_reasons, DropReasonsMode::kOff);
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"drop_reasons", "yes"},
                                                        {"drop_samples", "-1"},
                                                        {"drop_samples", "10001"},
                                                        {"drop_samples", "many"}}) {
    absl::Status st = ApplySettings({{key, {value}}}, cfg);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << key << "=" << value;
    EXPECT_EQ(st.message().rfind(key + ":", 0), 0u) << st;
  }
}

TEST(ValidateConfig, CrossFieldRules) {
  AgentConfig cfg;
  EXPECT_TRUE(ValidateConfig(cfg).ok());
  cfg.tls_cert = "/c.pem";
  EXPECT_FALSE(ValidateConfig(cfg).ok());  // no key
  cfg.tls_key = "/k.pem";
  EXPECT_FALSE(ValidateConfig(cfg).ok());  // no listener
  cfg.listen = ListenAddress{"127.0.0.1", 9470};
  EXPECT_TRUE(ValidateConfig(cfg).ok());
  cfg.operator_identities = {"dns:ops"};
  absl::Status st = ValidateConfig(cfg);
  EXPECT_EQ(st.message().rfind("operator_identities:", 0), 0u) << st;
  cfg.tls_client_ca = "/ca.pem";
  EXPECT_TRUE(ValidateConfig(cfg).ok());
  AgentConfig no_tls;
  no_tls.tls_client_ca = "/ca.pem";
  EXPECT_FALSE(ValidateConfig(no_tls).ok());
}

TEST(ParseSideListen, ABarePortStaysOnTheHost) {
  auto a = ParseSideListen("9100", "metrics_listen", kDefaultMetricsPort);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ToGrpc(), "127.0.0.1:9100");
  EXPECT_EQ(ParseSideListen("0.0.0.0", "m", kDefaultMetricsPort)->ToGrpc(), "0.0.0.0:9471");
  EXPECT_EQ(ParseSideListen("[::1]", "m", kDefaultMetricsPort)->ToGrpc(), "[::1]:9471");
  EXPECT_EQ(ParseSideListen(":9100", "m", kDefaultMetricsPort)->ToGrpc(), "0.0.0.0:9100");
  EXPECT_EQ(ParseSideListen("10.0.0.1:9100", "m", kDefaultMetricsPort)->ToGrpc(), "10.0.0.1:9100");
  EXPECT_EQ(ParseSideListen("[::]", "h", kDefaultHealthPort)->ToGrpc(), "[::]:9472");
  for (const char* bad : {"0", "70000", "", "a b:1", "::1:9100"}) {
    auto r = ParseSideListen(bad, "metrics_listen", kDefaultMetricsPort);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()), ::testing::StartsWith("metrics_listen")) << bad;
  }
}

TEST(ApplySettings, MetricsPatternsAreCheckedByName) {
  AgentConfig cfg;
  EXPECT_TRUE(ApplySettings({{"metrics_devices", {"eth.*|bond0"}}}, cfg).ok());
  EXPECT_EQ(cfg.metrics_devices, "eth.*|bond0");
  absl::Status bad = ApplySettings({{"metrics_counters", {"(unclosed"}}}, cfg);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("metrics_counters"));
  EXPECT_TRUE(ApplySettings({{"metrics_listen", {"9100"}}}, cfg).ok());
  EXPECT_EQ(cfg.metrics_listen->ToGrpc(), "127.0.0.1:9100");
  EXPECT_TRUE(ApplySettings({{"health_listen", {"[::]"}}}, cfg).ok());
  EXPECT_EQ(cfg.health_listen->ToGrpc(), "[::]:9472");
  EXPECT_EQ(cfg.metrics_listen->ToGrpc(), "127.0.0.1:9100");
  bad = ApplySettings({{"health_listen", {"70000"}}}, cfg);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("health_listen"));
  bad = ApplySettings({{"metrics_ethtool_devices", {"eth[0-"}}}, cfg);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("metrics_ethtool_devices"));
  EXPECT_TRUE(ApplySettings({{"metrics_ethtool_devices", {"eth.*"}}}, cfg).ok());
  EXPECT_EQ(cfg.metrics_ethtool_devices, "eth.*");
}

TEST(ApplySettings, MetricsCompatIsNodeExporterOrNone) {
  AgentConfig cfg;
  EXPECT_FALSE(cfg.metrics_node_exporter_names);
  EXPECT_TRUE(ApplySettings({{"metrics_compat", {"node_exporter"}}}, cfg).ok());
  EXPECT_TRUE(cfg.metrics_node_exporter_names);
  EXPECT_TRUE(ApplySettings({{"metrics_compat", {"none"}}}, cfg).ok());
  EXPECT_FALSE(cfg.metrics_node_exporter_names);
  absl::Status bad = ApplySettings({{"metrics_compat", {"node-exporter"}}}, cfg);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("metrics_compat"));
  EXPECT_FALSE(cfg.metrics_node_exporter_names);
}

}  // namespace
}  // namespace netagent::agent
