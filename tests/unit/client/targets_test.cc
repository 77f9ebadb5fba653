#include "client/targets.h"

#include <gtest/gtest.h>

namespace netagent::client {
namespace {

TEST(ParseTarget, UnixForms) {
  for (const char* s : {"unix:///run/netagent/netagent.sock", "unix:/run/netagent/netagent.sock",
                        "/run/netagent/netagent.sock"}) {
    auto t = ParseTarget(s);
    ASSERT_TRUE(t.ok()) << s;
    EXPECT_TRUE(t->unix_socket);
    EXPECT_EQ(t->address, "unix:///run/netagent/netagent.sock");
    EXPECT_EQ(t->display, s);
  }
}

TEST(ParseTarget, TcpForms) {
  EXPECT_EQ(ParseTarget("node-1")->address, "node-1:9470");
  EXPECT_EQ(ParseTarget("node-1:1234")->address, "node-1:1234");
  EXPECT_EQ(ParseTarget("10.0.0.7:9470")->address, "10.0.0.7:9470");
  EXPECT_EQ(ParseTarget("[fd00::7]:9471")->address, "[fd00::7]:9471");
  EXPECT_EQ(ParseTarget("fd00::7")->address, "[fd00::7]:9470");
  EXPECT_EQ(ParseTarget("[::1]")->address, "[::1]:9470");
  EXPECT_FALSE(ParseTarget("node-1")->unix_socket);
}

TEST(ParseTarget, BadInputSaysWhy) {
  for (const char* bad : {"", "unix://relative", "host:0", "host:99999", "host:x", "[::1",
                          "[nothex]:80", "fd00::7:80:x", "bad host", "host:80:90"}) {
    auto t = ParseTarget(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("target"), absl::string_view::npos);
  }
}

TEST(ParseTargetsFile, CommentsBlanksAndLineNumbers) {
  auto ok = ParseTargetsFile("# fleet\n\nnode-1\n  node-2:9471  # rack 2\nunix:///tmp/a.sock\n",
                             "fleet.txt");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_EQ((*ok)[1].address, "node-2:9471");
  auto bad = ParseTargetsFile("node-1\nnode-2 node-3\n", "fleet.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "fleet.txt line 2: one target per line");
  auto bad2 = ParseTargetsFile("node-1\n\nnode:0\n", "fleet.txt");
  ASSERT_FALSE(bad2.ok());
  EXPECT_EQ(bad2.status().message().rfind("fleet.txt line 3: target \"node:0\"", 0), 0u)
      << bad2.status();
  EXPECT_TRUE(ParseTargetsFile("", "empty.txt")->empty());
}

TEST(ParseDnsName, NameAndPort) {
  auto d = ParseDnsName("netagent.kube-system.svc:9470");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->first, "netagent.kube-system.svc");
  EXPECT_EQ(d->second, 9470);
  for (const char* bad : {"netagent", "netagent:", ":9470", "net agent:9470", "x:70000"}) {
    EXPECT_FALSE(ParseDnsName(bad).ok()) << bad;
  }
}

TEST(ResolveDnsTargets, LocalhostResolvesToLoopbackAddresses) {
  auto targets = ResolveDnsTargets("localhost", 9470);
  ASSERT_FALSE(targets.empty());
  for (const auto& t : targets) {
    EXPECT_TRUE(t.error.empty()) << t.error;
    EXPECT_TRUE(t.address == "127.0.0.1:9470" || t.address == "[::1]:9470") << t.address;
    EXPECT_EQ(t.tls_name, "localhost");
    EXPECT_EQ(t.display, "localhost/" + t.address);
  }
}

TEST(ResolveDnsTargets, AnUnresolvableNameIsOneFailedTarget) {
  auto targets = ResolveDnsTargets("no-such-host.invalid", 9470);
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].display, "no-such-host.invalid:9470");
  EXPECT_NE(targets[0].error.find("cannot resolve no-such-host.invalid"), std::string::npos);
}

}  // namespace
}  // namespace netagent::client
