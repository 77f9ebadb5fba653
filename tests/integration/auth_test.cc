// Who may do what, end to end: unix peers by uid and group, plaintext TCP,
// mTLS identities, certificate reload on SIGHUP, DNS-discovered targets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "netagent/v1/host.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

constexpr const char* kNobody = "65534";

// netctl as uid/gid 65534 with no supplementary groups.
RunResult NetctlAsNobody(const Agent& agent, std::vector<std::string> args) {
  std::vector<std::string> argv = {"setpriv",        "--reuid",    kNobody, "--regid",     kNobody,
                                   "--clear-groups", NetctlPath(), "-t",    agent.target()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

TEST(AuthIntegration, UnixPeersByUidAndGroup) {
  REQUIRE_ROOT();
  Netns ns;
  {
    // The socket's group lets nobody connect; that makes a viewer, not an operator.
    Agent agent(ns, {"--socket-group", kNobody});
    ASSERT_TRUE(agent.ok()) << agent.error();
    RunResult host = NetctlAsNobody(agent, {"-o", "json", "host"});
    ASSERT_EQ(host.exit_code, 0) << host.err;
    auto caller = ResultOf<v1::GetHostInfoResponse>(host.out).caller();
    EXPECT_EQ(caller.uid(), 65534u);
    EXPECT_EQ(caller.role(), v1::ROLE_VIEWER);
    RunResult set = NetctlAsNobody(agent, {"log-level", "debug"});
    EXPECT_EQ(set.exit_code, 1);
    EXPECT_NE(set.err.find("PERMISSION_DENIED: /netagent.v1.HostService/SetLogLevel needs the "
                           "operator role"),
              std::string::npos)
        << set.err;
    EXPECT_NE(agent.log().find("denied /netagent.v1.HostService/SetLogLevel"), std::string::npos);
    // Root is an operator.
    EXPECT_EQ(agent.Netctl({"log-level", "debug"}).exit_code, 0);
  }
  {
    Agent agent(ns, {"--socket-group", kNobody, "--operator-group", kNobody});
    ASSERT_TRUE(agent.ok()) << agent.error();
    RunResult set = NetctlAsNobody(agent, {"log-level", "warn"});
    EXPECT_EQ(set.exit_code, 0) << set.err;
  }
  {
    // Without the socket group, nobody cannot even connect (mode 0660, root:root).
    Agent agent(ns);
    ASSERT_TRUE(agent.ok()) << agent.error();
    RunResult host = NetctlAsNobody(agent, {"host"});
    EXPECT_EQ(host.exit_code, 1);
    EXPECT_NE(host.err.find("UNAVAILABLE"), std::string::npos) << host.err;
  }
}

TEST(AuthIntegration, PlaintextTcpIsReadOnlyAndDnsTargetsWork) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns, {"--listen", "127.0.0.1:9470"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult host =
      RunCommand(ns.Exec({NetctlPath(), "-t", "127.0.0.1:9470", "-o", "json", "host"}));
  ASSERT_EQ(host.exit_code, 0) << host.err;
  auto caller = ResultOf<v1::GetHostInfoResponse>(host.out).caller();
  EXPECT_EQ(caller.transport(), v1::TRANSPORT_TCP);
  EXPECT_EQ(caller.role(), v1::ROLE_VIEWER);
  RunResult set = RunCommand(ns.Exec({NetctlPath(), "-t", "127.0.0.1:9470", "log-level", "debug"}));
  EXPECT_EQ(set.exit_code, 1);
  EXPECT_NE(set.err.find("plaintext TCP is read-only"), std::string::npos) << set.err;

  // localhost resolves to 127.0.0.1 (and ::1 where /etc/hosts says so).
  RunResult dns = RunCommand(ns.Exec({NetctlPath(), "--dns", "localhost:9470", "health"}));
  EXPECT_NE(dns.out.find("SERVING"), std::string::npos) << dns.out << dns.err;
  EXPECT_NE(dns.out.find("localhost/127.0.0.1:9470"), std::string::npos) << dns.out;
}

class TlsIntegration : public ::testing::Test {
 protected:
  // A CA, a server certificate for 127.0.0.1, and client certificates.
  void MakeCa(const std::string& name) {
    Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", dir_ / (name + ".key"), "-out", dir_ / (name + ".pem"), "-days", "2",
             "-subj", "/CN=" + name});
  }
  void MakeCert(const std::string& name, const std::string& ca, const std::string& cn,
                const std::string& san) {
    Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             dir_ / (name + ".key"), "-out", dir_ / (name + ".csr"), "-subj", "/CN=" + cn});
    WriteFile(dir_ / (name + ".ext"), "subjectAltName=" + san + "\n");
    Openssl({"x509", "-req", "-in", dir_ / (name + ".csr"), "-CA", dir_ / (ca + ".pem"), "-CAkey",
             dir_ / (ca + ".key"), "-CAcreateserial", "-out", dir_ / (name + ".pem"), "-days", "2",
             "-extfile", dir_ / (name + ".ext")});
  }
  void Openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    RunResult r = RunCommand(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  RunResult Netctl(const Netns& ns, const std::string& ca, const std::string& client,
                   std::vector<std::string> args) {
    std::vector<std::string> argv = {NetctlPath(), "-t", "127.0.0.1:9470", "--tls-ca",
                                     dir_ / (ca + ".pem")};
    if (!client.empty()) {
      argv.insert(argv.end(),
                  {"--tls-cert", dir_ / (client + ".pem"), "--tls-key", dir_ / (client + ".key")});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(ns.Exec(argv));
  }

  TempDir dir_;
};

TEST_F(TlsIntegration, MtlsIdentitiesAndReloadOnSighup) {
  REQUIRE_ROOT();
  MakeCa("ca1");
  MakeCa("ca2");
  MakeCert("server1", "ca1", "agent", "IP:127.0.0.1");
  MakeCert("server2", "ca2", "agent", "IP:127.0.0.1");
  MakeCert("op", "ca1", "fleet-operator", "DNS:fleet-operator");
  MakeCert("viewer", "ca1", "dashboard", "DNS:dashboard");
  // The operator's name, but as a CN and an email: not the allowlisted kind.
  MakeCert("lookalike", "ca1", "fleet-operator", "email:fleet-operator@corp");
  std::filesystem::copy_file(dir_ / "server1.pem", dir_ / "server.pem");
  std::filesystem::copy_file(dir_ / "server1.key", dir_ / "server.key");

  Netns ns;
  Agent agent(ns, {"--listen", "127.0.0.1:9470", "--tls-cert", dir_ / "server.pem", "--tls-key",
                   dir_ / "server.key", "--tls-client-ca", dir_ / "ca1.pem", "--operator-identity",
                   "dns:fleet-operator"});
  ASSERT_TRUE(agent.ok()) << agent.error();

  RunResult op = Netctl(ns, "ca1", "op", {"-o", "json", "host"});
  ASSERT_EQ(op.exit_code, 0) << op.err;
  auto caller = ResultOf<v1::GetHostInfoResponse>(op.out).caller();
  EXPECT_EQ(caller.transport(), v1::TRANSPORT_TLS);
  EXPECT_EQ(caller.role(), v1::ROLE_OPERATOR) << caller.role_reason();
  EXPECT_EQ(Netctl(ns, "ca1", "op", {"log-level", "debug"}).exit_code, 0);

  RunResult viewer = Netctl(ns, "ca1", "viewer", {"log-level", "debug"});
  EXPECT_EQ(viewer.exit_code, 1);
  EXPECT_NE(viewer.err.find("not in the operator allowlist"), std::string::npos) << viewer.err;
  EXPECT_EQ(Netctl(ns, "ca1", "viewer", {"health"}).exit_code, 0);
  RunResult lookalike = Netctl(ns, "ca1", "lookalike", {"-o", "json", "host"});
  ASSERT_EQ(lookalike.exit_code, 0) << lookalike.err;
  auto ids = ResultOf<v1::GetHostInfoResponse>(lookalike.out).caller();
  EXPECT_EQ(ids.role(), v1::ROLE_VIEWER);
  EXPECT_EQ(std::vector<std::string>(ids.identities().begin(), ids.identities().end()),
            (std::vector<std::string>{"cn:fleet-operator", "email:fleet-operator@corp"}));

  // mTLS: no client certificate, no connection.
  EXPECT_EQ(Netctl(ns, "ca1", "", {"health"}).exit_code, 1);

  // Rotate the server certificate to one from another CA, then SIGHUP.
  EXPECT_EQ(Netctl(ns, "ca2", "op", {"health"}).exit_code, 1);
  std::filesystem::copy_file(dir_ / "server2.pem", dir_ / "server.pem",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir_ / "server2.key", dir_ / "server.key",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(Netctl(ns, "ca2", "op", {"health"}).exit_code, 1);  // not before the signal
  agent.process().Signal(SIGHUP);
  const bool rotated =
      Eventually([&] { return Netctl(ns, "ca2", "op", {"health"}).exit_code == 0; });
  EXPECT_TRUE(rotated) << agent.log();
  EXPECT_EQ(Netctl(ns, "ca1", "op", {"health"}).exit_code, 1);

  // A broken file on reload: the running certificate stays.
  WriteFile(dir_ / "server.key", "not a key\n");
  agent.process().Signal(SIGHUP);
  EXPECT_TRUE(Eventually([&] {
    return agent.log().find("keeping the current TLS certificates") != std::string::npos;
  })) << agent.log();
  EXPECT_EQ(Netctl(ns, "ca2", "op", {"health"}).exit_code, 0);
}

// scripts/lab-ca, as docs/operations.md tells a newcomer to use it: its
// operator certificate is an operator, its viewer one a viewer, and without a
// client certificate there is no connection.
TEST_F(TlsIntegration, TheLabCaScriptGivesAWorkingMtlsSetup) {
  REQUIRE_ROOT();
  RunResult made =
      RunCommand({std::string(NETAGENT_SOURCE_DIR) + "/scripts/lab-ca", dir_ / "lab", "agent.lab"});
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  EXPECT_THAT(made.out,
              ::testing::HasSubstr("--operator-identity uri:spiffe://netagent.lab/operator"));
  Netns ns;
  Agent agent(ns, {"--listen", "127.0.0.1:9470", "--tls-cert", dir_ / "lab/server.pem", "--tls-key",
                   dir_ / "lab/server.key", "--tls-client-ca", dir_ / "lab/ca.pem",
                   "--operator-identity", "uri:spiffe://netagent.lab/operator"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  auto as = [&](const std::string& who, std::vector<std::string> args) {
    std::vector<std::string> argv = {NetctlPath(), "-t", "127.0.0.1:9470", "--tls-ca",
                                     dir_ / "lab/ca.pem"};
    if (!who.empty()) {
      argv.insert(argv.end(), {"--tls-cert", dir_ / ("lab/" + who + ".pem"), "--tls-key",
                               dir_ / ("lab/" + who + ".key")});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(ns.Exec(argv));
  };
  RunResult op = as("operator", {"-o", "json", "host"});
  ASSERT_EQ(op.exit_code, 0) << op.err;
  auto caller = ResultOf<v1::GetHostInfoResponse>(op.out).caller();
  EXPECT_EQ(caller.transport(), v1::TRANSPORT_TLS);
  EXPECT_EQ(caller.role(), v1::ROLE_OPERATOR) << caller.role_reason();
  RunResult viewer = as("viewer", {"-o", "json", "host"});
  ASSERT_EQ(viewer.exit_code, 0) << viewer.err;
  EXPECT_EQ(ResultOf<v1::GetHostInfoResponse>(viewer.out).caller().role(), v1::ROLE_VIEWER);
  EXPECT_EQ(as("", {"health"}).exit_code, 1);
}

}  // namespace
}  // namespace netagent::testing
