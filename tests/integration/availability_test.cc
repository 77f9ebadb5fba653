// Viewers cannot lock operators out. The real netagentd serves a namespace
// with thousands of sockets and the fast path on a veth; hostile viewers on
// its TCP listener flood it (TestPacket and full socket dumps, each in a loop
// without pause, plus a thousand connections that send the HTTP/2 preface
// and nothing else), while an operator on the unix socket times its
// UpdateRules and ApplyTuning calls and health is asked on both listeners
// (tests/tools/agent_load). The floods run at the lowest CPU priority: an
// attacker's CPU is elsewhere; the agent's work for them is not.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

using ::testing::HasSubstr;

// A server namespace with sockets and a veth to attach to, the agent in it.
class Besieged {
 public:
  Besieged() {
    EXPECT_EQ(RunCommand(client_.Exec({"ip", "link", "add", "va", "type", "veth", "peer", "name",
                                       "vb", "netns", server_.name()}))
                  .exit_code,
              0);
    RunCommand(client_.Exec({"ip", "link", "set", "va", "up"}));
    RunCommand(server_.Exec({"ip", "link", "set", "vb", "up"}));
    farm_ = std::make_unique<Process>(
        server_.Exec({SOCKFARM_PATH, "--established", "2000", "--port", "6100"}),
        dir_ / "farm.out");
    ready_ =
        Eventually([&] { return ReadFile(dir_ / "farm.out").find("ready") != std::string::npos; },
                   std::chrono::seconds(30));
    agent_ =
        std::make_unique<Agent>(server_, std::vector<std::string>{"--listen", "127.0.0.1:9470"});
  }
  ~Besieged() { farm_->Signal(SIGTERM); }

  bool ok() const { return ready_ && agent_->ok(); }
  std::string error() const { return ready_ ? agent_->error() : "sockfarm did not start"; }
  Agent& agent() { return *agent_; }
  const Netns& server() const { return server_; }

 private:
  Netns client_, server_;
  TempDir dir_;
  std::unique_ptr<Process> farm_;
  bool ready_ = false;
  std::unique_ptr<Agent> agent_;
};

double Field(const google::protobuf::Struct& s, const std::string& obj, const std::string& key) {
  return s.fields().at(obj).struct_value().fields().at(key).number_value();
}

TEST(AvailabilityTest, HostileViewersCannotLockOperatorsOut) {
  REQUIRE_ROOT("and XDP");
  Besieged b;
  ASSERT_TRUE(b.ok()) << b.error();
  ASSERT_EQ(b.agent().Netctl({"datapath", "attach", "vb"}).exit_code, 0);
  // The same operator calls on the quiet agent first: how fast this machine
  // is right now (a loaded CI host is slower for everyone).
  RunResult quiet = RunCommand(
      b.server().Exec({AGENT_LOAD_PATH, "--tcp", "127.0.0.1:9470", "--unix", b.agent().socket(),
                       "--device", "vb", "--packet-floods", "0", "--dump-floods", "0", "--idle",
                       "0", "--operator-calls", "50", "--settle-ms", "0"}),
      std::chrono::seconds(120));
  ASSERT_EQ(quiet.exit_code, 0) << (quiet.timed_out ? "timed out; " : "") << quiet.err << quiet.out;
  const google::protobuf::Struct q = ParseJson(Lines(quiet.out).at(0));
  RunResult load = RunCommand(
      b.server().Exec({AGENT_LOAD_PATH, "--tcp", "127.0.0.1:9470", "--unix", b.agent().socket(),
                       "--device", "vb", "--packet-floods", "80", "--dump-floods", "80", "--idle",
                       "1000", "--idle-peers", "4", "--operator-calls", "200"}),
      std::chrono::seconds(150));
  ASSERT_EQ(load.exit_code, 0) << (load.timed_out ? "timed out; " : "") << load.err << load.out;
  const google::protobuf::Struct r = ParseJson(Lines(load.out).at(0));
  SCOPED_TRACE(absl::StrCat("quiet: ", quiet.out, "siege: ", load.out));
  // Every operator call answered, within 50 ms at the 99th percentile — or,
  // on a machine so loaded that the quiet calls themselves are slow, within
  // 20 times the quiet p99 of this run. A lockout (seconds, or refusals)
  // fails either way; the figures on a quiet machine are in benchmarks.md.
  auto bound = [&](const char* call) { return std::max(50.0, 20 * Field(q, call, "p99")); };
  EXPECT_EQ(Field(r, "update_rules_ms", "errors"), 0);
  // 200 rounds: a p99 is then the second-worst call, not the single worst (a
  // stressed run saw one ApplyTuning at 167 ms among 100 while the rest
  // stayed near 1 ms).
  EXPECT_EQ(Field(r, "update_rules_ms", "n"), 400);
  EXPECT_LT(Field(r, "update_rules_ms", "p99"), bound("update_rules_ms"));
  EXPECT_EQ(Field(r, "apply_tuning_ms", "errors"), 0);
  EXPECT_LT(Field(r, "apply_tuning_ms", "p99"), bound("apply_tuning_ms"));
  // Health answers on both listeners.
  EXPECT_EQ(Field(r, "health_unix_ms", "errors"), 0);
  EXPECT_EQ(Field(r, "health_tcp_ms", "errors"), 0);
  // The floods were real: they got answers, and refusals. (How many dumps
  // finish before the operator's rounds end depends on the machine's load:
  // streamed sockets count, whole dumps do not.)
  EXPECT_TRUE(r.fields().at("siege_ready").bool_value());
  EXPECT_GT(Field(r, "test_packet", "ok"), 10);
  EXPECT_GT(Field(r, "dumps", "sockets"), 1000);
  EXPECT_GT(Field(r, "dumps", "exhausted"), 0);
  // The idle connections beyond each peer's limit were refused and said so.
  EXPECT_THAT(b.agent().log(), HasSubstr("TCP connections refused"));
}

// One peer may hold 16 connections; more are closed at once, and a client
// from another address is served meanwhile.
TEST(AvailabilityTest, ConnectionsArePerPeerLimited) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns, {"--listen", "127.0.0.1:9470"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  // Connect from inside the namespace: a thread that entered it.
  std::vector<int> held;
  int closed_by_agent = 0;
  std::thread t([&] {
    const int nsfd = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return;
    close(nsfd);
    for (int i = 0; i < 40; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in from{};
      from.sin_family = AF_INET;
      from.sin_addr.s_addr = htonl(0x7f000003);  // 127.0.0.3: the greedy peer
      bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(9470);
      a.sin_addr.s_addr = htonl(0x7f000001);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        close(fd);
        continue;
      }
      held.push_back(fd);
    }
    // Refused connections are closed by the agent: EOF (or a reset) soon.
    Eventually(
        [&] {
          int n = 0;
          for (int fd : held) {
            char c;
            const ssize_t got = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) ++n;
          }
          closed_by_agent = n;
          return n >= 24;
        },
        std::chrono::seconds(10));
  });
  t.join();
  EXPECT_EQ(held.size(), 40u);
  EXPECT_EQ(closed_by_agent, 24) << "16 of 40 should be held";
  // Another address (127.0.0.1) is still served, over TCP.
  RunResult other =
      RunCommand(ns.Exec({NetctlPath(), "-t", "127.0.0.1:9470", "--timeout", "5s", "health"}));
  EXPECT_EQ(other.exit_code, 0) << other.out << other.err;
  // And the local socket, always.
  EXPECT_EQ(agent.Netctl({"health"}).exit_code, 0);
  for (int fd : held) close(fd);
  EXPECT_THAT(agent.log(), HasSubstr("holds its limit of 16 connections"));
}

}  // namespace
}  // namespace netagent::testing
