// The fast path against the real kernel: a client namespace and a server
// namespace joined by a veth pair; netagentd serves the server namespace and
// attaches to its end (native XDP on veth). Traffic goes only between the two
// namespaces: TCP connects and UDP from this process (threads that enter the
// client namespace), SYN floods from hping3. Each test process has a private
// mount namespace with no bpffs (tests/common/test_main.cc): the agent mounts
// one, as on a fresh machine, and every pin vanishes with the test.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "netagent/v1/datapath.pb.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/tuning.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;
using ::testing::HasSubstr;

constexpr char kServer[] = "10.77.0.2";
constexpr char kClient[] = "10.77.0.1";  // the source the tests block
constexpr char kOther[] = "10.77.0.3";   // another source on the same client
constexpr int kPort = 8080;

// Runs `fn` in a thread that entered `netns` (sockets it opens live there).
template <typename F>
auto InNetns(const std::string& netns, F fn) -> decltype(fn()) {
  decltype(fn()) result{};
  std::thread t([&] {
    const int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    result = fn();
  });
  t.join();
  return result;
}

sockaddr_in Addr(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// One TCP connect from `src` within `timeout_ms`.
bool Connect(const std::string& netns, const char* src, int timeout_ms) {
  return InNetns(netns, [&] {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in from = Addr(src, 0), to = Addr(kServer, kPort);
    bool ok = false;
    if (bind(s, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0) {
      int rc = connect(s, reinterpret_cast<sockaddr*>(&to), sizeof(to));
      if (rc == 0) {
        ok = true;
      } else if (errno == EINPROGRESS) {
        pollfd p{s, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof(err);
        ok = poll(&p, 1, timeout_ms) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
             err == 0;
      }
    }
    // RST rather than FIN: no TIME_WAIT piling up over hundreds of tries.
    linger l{1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(s);
    return ok;
  });
}

// The MSS a connection from `src` ends up with (0: no connection).
int ConnectedMss(const std::string& netns, const char* src) {
  return InNetns(netns, [&] {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in from = Addr(src, 0), to = Addr(kServer, kPort);
    timeval tv{2, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int mss = 0;
    socklen_t len = sizeof(mss);
    if (bind(s, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
        connect(s, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0 ||
        getsockopt(s, IPPROTO_TCP, TCP_MAXSEG, &mss, &len) != 0)
      mss = 0;
    close(s);
    return mss;
  });
}

// `count` UDP datagrams from `src` to the server; how many were sent.
int SendUdp(const std::string& netns, const char* src, int count) {
  return InNetns(netns, [&] {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in from = Addr(src, 0), to = Addr(kServer, 9);
    int sent = 0;
    if (bind(s, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0) {
      for (int i = 0; i < count; ++i) {
        if (sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 1) ++sent;
        if (i % 64 == 63) usleep(1000);  // stay under the veth queue
      }
    }
    close(s);
    return sent;
  });
}

// A TCP listener in the server namespace that accepts and closes.
class Listener {
 public:
  Listener(const std::string& netns, int backlog) {
    fd_ = InNetns(netns, [&] {
      const int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in a = Addr("0.0.0.0", kPort);
      if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(s, backlog) != 0) {
        close(s);
        return -1;
      }
      return s;
    });
    if (fd_ >= 0) {
      thread_ = std::thread([this] {
        while (!stop_) {
          pollfd p{fd_, POLLIN, 0};
          if (poll(&p, 1, 50) == 1) {
            const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c >= 0) close(c);
          }
        }
      });
    }
  }
  ~Listener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void RemoveTree(const std::string& root) {
  std::error_code ec;
  std::filesystem::remove_all(root, ec);  // bpffs: unlink pins, rmdir dirs
}

bool IsBpffs(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

// A fresh machine has no bpffs: the agent mounts it, says so in its log and
// in `host`, and the next agent finds it there.
TEST(BareHostTest, TheAgentMountsBpffsAndSaysSo) {
  REQUIRE_ROOT("and mounts");
  ASSERT_FALSE(IsBpffs("/sys/fs/bpf")) << "the test main should have left no bpffs";
  Netns ns;
  {
    Agent agent(ns);
    ASSERT_TRUE(agent.ok()) << agent.error();
    EXPECT_TRUE(IsBpffs("/sys/fs/bpf"));
    RunResult r = agent.Netctl({"-o", "json", "host"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto info = ResultOf<v1::GetHostInfoResponse>(Lines(r.out).at(0));
    EXPECT_TRUE(info.capabilities().bpffs().available());
    EXPECT_THAT(info.capabilities().bpffs().note(),
                HasSubstr("mounted at /sys/fs/bpf by netagentd"));
    ASSERT_EQ(info.conditions_size(), 1);
    EXPECT_EQ(info.conditions(0).id(), "bpffs-mounted-by-agent");
    EXPECT_EQ(info.conditions(0).severity(), v1::SEVERITY_INFO);
    EXPECT_THAT(agent.log(), HasSubstr("mounted at /sys/fs/bpf by netagentd"));
    EXPECT_THAT(agent.Netctl({"host"}).out, HasSubstr("condition"));
  }
  Agent again(ns);
  ASSERT_TRUE(again.ok()) << again.error();
  RunResult r = again.Netctl({"-o", "json", "host"});
  auto info = ResultOf<v1::GetHostInfoResponse>(Lines(r.out).at(0));
  EXPECT_TRUE(info.capabilities().bpffs().available());
  EXPECT_EQ(info.capabilities().bpffs().note(), "");
  EXPECT_EQ(info.conditions_size(), 0);
}

class DatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT("and XDP");
    ASSERT_EQ(RunCommand(client_.Exec({"ip", "link", "add", "va", "type", "veth", "peer", "name",
                                       "vb", "netns", server_.name()}))
                  .exit_code,
              0);
    for (const auto& [ns, dev, addrs] :
         std::vector<std::tuple<const Netns*, std::string, std::vector<std::string>>>{
             {&client_, "va", {kClient, kOther}}, {&server_, "vb", {kServer}}}) {
      for (const auto& a : addrs)
        ASSERT_EQ(RunCommand(ns->Exec({"ip", "addr", "add", a + "/24", "dev", dev})).exit_code, 0);
      ASSERT_EQ(RunCommand(ns->Exec({"ip", "link", "set", dev, "up"})).exit_code, 0);
    }
    pin_root_ = absl::StrCat("/sys/fs/bpf/netagent-it-", getpid(), "-", server_.name());
    StartAgent();
    ASSERT_TRUE(agent_->ok()) << agent_->error();
  }

  void TearDown() override {
    agent_.reset();
    if (!pin_root_.empty()) RemoveTree(pin_root_);
  }

  // Every agent of a test keeps its journal in the same directory, which
  // outlives them (an agent that made its own would remove it).
  void StartAgent(std::vector<std::string> extra = {}) {
    agent_.reset();
    extra.insert(extra.begin(), {"--bpf-pin-root", pin_root_});
    agent_ = std::make_unique<Agent>(server_, extra, state_ / "state");
  }

  RunResult Ctl(std::vector<std::string> args) const { return agent_->Netctl(std::move(args)); }

  template <typename T>
  T Json(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-o", "json"});
    RunResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    if (r.exit_code != 0) return {};
    return ResultOf<T>(Lines(r.out).at(0));
  }

  // Packets counted for `reason` (both verdicts).
  uint64_t Counted(const std::string& reason, const std::string& verdict = "") const {
    uint64_t n = 0;
    const auto stats = Json<v1::GetDatapathStatsResponse>({"datapath", "stats", "vb"});
    for (const auto& c : stats.total())
      if (c.reason() == reason && (verdict.empty() || c.verdict() == verdict)) n += c.packets();
    return n;
  }

  uint64_t SynsCounted() const {
    return Counted("syn_ok") + Counted("syn_rate") + Counted("syn_global");
  }

  Netns client_, server_;
  TempDir state_;
  std::string pin_root_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(DatapathTest, BlocklistedSourceCannotConnectOthersCanCountersAgree) {
  Listener server(server_.name(), 128);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(Connect(client_.name(), kClient, 2000));

  auto attached = Json<v1::AttachResponse>({"datapath", "attach", "vb"});
  EXPECT_EQ(attached.datapath().mode(), v1::XDP_MODE_NATIVE) << attached.datapath().note();
  EXPECT_EQ(attached.datapath().pin_path(), pin_root_ + "/vb");
  EXPECT_THAT(RunCommand(server_.Exec({"ip", "link", "show", "vb"})).out, HasSubstr("xdp"));

  auto added = Json<v1::UpdateRulesResponse>(
      {"datapath", "rules", "add", "vb", "--block", kClient, "--comment", "it"});
  ASSERT_EQ(added.added_size(), 1);
  const uint32_t rule = added.added(0).id();
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
  EXPECT_TRUE(Connect(client_.name(), kOther, 2000));

  // Every datagram the blocked source sends is dropped and counted, once.
  const uint64_t before = Counted("block", "drop");
  ASSERT_EQ(SendUdp(client_.name(), kClient, 500), 500);
  Eventually([&] { return Counted("block", "drop") - before >= 500; });
  EXPECT_EQ(Counted("block", "drop") - before, 500u);
  auto list = Json<v1::ListRulesResponse>({"datapath", "rules", "list", "vb"});
  ASSERT_EQ(list.rules_size(), 1);
  EXPECT_GE(list.rules(0).hit_packets(), 500u);
  EXPECT_EQ(list.rules(0).comment(), "it");

  auto why = Json<v1::TestPacketResponse>(
      {"datapath", "test", "vb", "--src", kClient, "--dst", kServer, "--dport", "8080"});
  EXPECT_EQ(why.verdict(), "drop");
  EXPECT_EQ(why.reason(), "block");
  EXPECT_EQ(why.rule().id(), rule);
  // The test copy left the live counters alone.
  EXPECT_EQ(Json<v1::ListRulesResponse>({"datapath", "rules", "list", "vb"}).rules(0).hit_packets(),
            list.rules(0).hit_packets());

  // Samples of those drops (1 in 100 by default) name the rule and the flow:
  // the refused connects' SYNs (one or two sampled) come first, then the
  // datagrams' (about five). --count is of samples, not of batches.
  RunResult samples = Ctl({"datapath", "samples", "vb", "--count", "4"});
  EXPECT_EQ(samples.exit_code, 0) << samples.err;
  EXPECT_THAT(samples.out, HasSubstr(absl::StrCat("block (rule ", rule, ")  UDP ", kClient)));

  // An allow entry for the same address beats the block; removing it restores the block.
  auto allow =
      Json<v1::UpdateRulesResponse>({"datapath", "rules", "add", "vb", "--allow", kClient});
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));
  Json<v1::UpdateRulesResponse>(
      {"datapath", "rules", "del", "vb", absl::StrCat(allow.added(0).id())});
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));

  Json<v1::UpdateRulesResponse>({"datapath", "rules", "del", "vb", absl::StrCat(rule)});
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));

  RunResult detach = Ctl({"datapath", "detach", "vb"});
  EXPECT_EQ(detach.exit_code, 0) << detach.err;
  EXPECT_FALSE(std::filesystem::exists(pin_root_ + "/vb"));
  EXPECT_THAT(RunCommand(server_.Exec({"ip", "link", "show", "vb"})).out,
              ::testing::Not(HasSubstr("xdp")));
}

// A block is also a tuning change: planned, applied with a deadline, expired
// by the agent (also across a kill -9, when the agent that comes back finds
// it overdue), rolled back; the change journal and the rules agree.
TEST_F(DatapathTest, ABlockAsATuningChangeExpiresAtItsDeadlineAlsoAcrossAKill) {
  Listener server(server_.name(), 128);
  ASSERT_TRUE(server.ok());
  const std::string knob = absl::StrCat("vb:xdp-block/", kClient);
  // Before the fast path is attached: planned, with the refusal an apply meets.
  auto refused = Json<v1::PlanTuningResponse>({"tune", "plan", "block", "--dev", "vb", kClient});
  ASSERT_EQ(refused.plan().changes_size(), 1);
  ASSERT_EQ(refused.plan().refusals_size(), 1);
  EXPECT_THAT(refused.plan().refusals(0), HasSubstr("netctl datapath attach vb"));
  RunResult r = Ctl({"tune", "apply", "block", "--dev", "vb", kClient});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("not attached"));

  Json<v1::AttachResponse>({"datapath", "attach", "vb"});
  auto plan = Json<v1::PlanTuningResponse>({"tune", "plan", "block", "--dev", "vb", kClient});
  ASSERT_EQ(plan.plan().changes_size(), 1);
  EXPECT_EQ(plan.plan().changes(0).knob(), knob);
  EXPECT_EQ(plan.plan().changes(0).old_value(), "off");
  EXPECT_EQ(plan.plan().changes(0).new_value(), "on");
  EXPECT_EQ(plan.plan().refusals_size(), 0);

  auto rules = [&] { return Json<v1::ListRulesResponse>({"datapath", "rules", "list", "vb"}); };
  auto state = [&](const std::string& id) {
    const auto history = Json<v1::ListChangesResponse>({"tune", "history"});
    for (const auto& c : history.changes())
      if (c.id() == id) return c.state();
    return v1::CHANGE_STATE_UNSPECIFIED;
  };
  auto apply = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"tune", "apply", "block", "--dev", "vb", kClient};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Json<v1::ApplyTuningResponse>(argv).change().id();
  };

  // Applied with a deadline: the source is dropped, the others are not.
  const std::string expiring = apply({"--confirm-within", "2s"});
  ASSERT_FALSE(expiring.empty());
  ASSERT_EQ(rules().rules_size(), 1);
  EXPECT_THAT(rules().rules(0).comment(), HasSubstr("netagent tuning"));
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
  EXPECT_TRUE(Connect(client_.name(), kOther, 2000));
  // Nobody confirms: the agent lifts it at the deadline.
  EXPECT_TRUE(Eventually([&] { return state(expiring) == v1::CHANGE_STATE_EXPIRED; },
                         std::chrono::seconds(20), std::chrono::milliseconds(200)));
  EXPECT_EQ(rules().rules_size(), 0);
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));

  // Killed inside the window: the pinned program keeps blocking while no
  // agent runs; the agent that comes back after the deadline lifts it at start.
  const std::string killed = apply({"--confirm-within", "2s"});
  ASSERT_EQ(rules().rules_size(), 1);
  agent_->process().Signal(SIGKILL);
  ASSERT_TRUE(agent_->process().Wait(std::chrono::seconds(5)).has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
  StartAgent();
  ASSERT_TRUE(agent_->ok()) << agent_->error();
  EXPECT_EQ(state(killed), v1::CHANGE_STATE_EXPIRED);
  EXPECT_EQ(rules().rules_size(), 0);
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));

  // Two blocks in one change, the second write failing: the first is undone.
  StartAgent({"--fault-inject-write", absl::StrCat("vb:xdp-block/", kOther)});
  ASSERT_TRUE(agent_->ok()) << agent_->error();
  RunResult half = Ctl({"tune", "apply", "block", "--dev", "vb", kClient, kOther});
  EXPECT_NE(half.exit_code, 0);
  EXPECT_THAT(half.err, HasSubstr("injected fault"));
  EXPECT_EQ(rules().rules_size(), 0);
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));
  StartAgent();
  ASSERT_TRUE(agent_->ok()) << agent_->error();

  // An operator's own block of a prefix is theirs: a change that blocks it
  // too adds nothing there, and its rollback leaves the operator's rule.
  auto own = Json<v1::UpdateRulesResponse>(
      {"datapath", "rules", "add", "vb", "--block", kOther, "--comment", "security team"});
  ASSERT_EQ(own.added_size(), 1);
  const std::string both =
      Json<v1::ApplyTuningResponse>({"tune", "apply", "block", "--dev", "vb", kClient, kOther})
          .change()
          .id();
  ASSERT_EQ(rules().rules_size(), 2);
  // tune show --dev lists the change's block, not the operator's (no knob
  // of the agent's: datapath rules list shows it).
  std::map<std::string, v1::Tunable> shown;
  const auto tunables =
      Json<v1::GetTunablesResponse>({"tune", "show", "--dev", "vb", "--filter", "xdp-block"});
  for (const auto& t : tunables.tunables()) shown[t.knob()] = t;
  ASSERT_EQ(shown.size(), 1u);
  EXPECT_EQ(shown[knob].value(), "on");
  EXPECT_EQ(shown[knob].set_by(), both);
  EXPECT_TRUE(shown[knob].writable());
  EXPECT_EQ(Ctl({"tune", "rollback", both}).exit_code, 0);
  auto left = rules();
  ASSERT_EQ(left.rules_size(), 1);
  EXPECT_EQ(left.rules(0).id(), own.added(0).id());
  EXPECT_EQ(left.rules(0).comment(), "security team");
  EXPECT_FALSE(Connect(client_.name(), kOther, 1000));
  Json<v1::UpdateRulesResponse>(
      {"datapath", "rules", "del", "vb", absl::StrCat(own.added(0).id())});

  // Confirmed at once, then rolled back by its id.
  const std::string kept = apply({});
  EXPECT_EQ(state(kept), v1::CHANGE_STATE_CONFIRMED);
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
  RunResult rb = Ctl({"tune", "rollback", kept});
  EXPECT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(state(kept), v1::CHANGE_STATE_ROLLED_BACK);
  EXPECT_EQ(rules().rules_size(), 0);
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));
}

TEST_F(DatapathTest, BadInputIsRefusedNamingTheFieldAndChangesNothing) {
  Json<v1::AttachResponse>({"datapath", "attach", "vb"});
  Json<v1::UpdateRulesResponse>({"datapath", "rules", "add", "vb", "--block", "192.0.2.0/24"});
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"rules", "add", "vb", "--block", "10.0.0.0/33"}, "INVALID_ARGUMENT: edits[0].add.prefix"},
      {{"rules", "add", "vb", "--block", "10.0.0.1/8"}, "host bits set"},
      {{"rules", "add", "vb", "--block", "10.1.0.0/16", "--block", "nonsense"},
       "edits[1].add.prefix"},
      {{"rules", "add", "vb", "--port", "70000", "--tcp"}, "edits[0].add.port.port"},
      {{"rules", "add", "vb", "--block", "10.2.0.0/16", "--revision", "0"},
       "ABORTED: expected_revision 0 is stale"},
      {{"rules", "del", "vb", "999"}, "NOT_FOUND: edits[0].id"},
      {{"rules", "add", "nosuchdev", "--block", "10.3.0.0/16"}, "NOT_FOUND: device nosuchdev"},
      {{"attach", "nosuchdev"}, "NOT_FOUND: device nosuchdev"},
      {{"attach", "vb"}, "FAILED_PRECONDITION"},
      {{"attach", "bad/name"}, "INVALID_ARGUMENT: device"},
      {{"test", "vb", "--hex", "00"}, "INVALID_ARGUMENT: packet"},
  };
  for (const auto& [args, want] : cases) {
    std::vector<std::string> argv = {"datapath"};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = Ctl(argv);
    EXPECT_NE(r.exit_code, 0) << args[0];
    EXPECT_THAT(r.err, HasSubstr(want));
  }
  // A syn guard without a burst, and out-of-range numbers, through the API's own checks.
  RunResult r = Ctl({"datapath", "detach", "vb"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"datapath", "attach", "vb", "--syn-rate", "10", "--syn-prefix4", "40"});
  EXPECT_THAT(r.err, HasSubstr("INVALID_ARGUMENT: features.syn_guard.prefix4"));
  r = Ctl({"datapath", "attach", "vb", "--syn-rate", "10", "--clamp-mss", "20"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(pin_root_ + "/vb"));
  EXPECT_THAT(RunCommand(server_.Exec({"ip", "link", "show", "vb"})).out,
              ::testing::Not(HasSubstr("xdp")));
}

// The reported case: a 10,000-rule batch and the agent killed (SIGKILL) at
// several points while netctl sends it. Each restart finds either the rules
// before the batch, at their revision, or all of them at the next one.
TEST_F(DatapathTest, ABigBatchKilledMidwayIsAllOrNothing) {
  Json<v1::AttachResponse>({"datapath", "attach", "vb"});
  auto first =
      Json<v1::UpdateRulesResponse>({"datapath", "rules", "add", "vb", "--block", kClient});
  uint64_t revision = first.revision();
  size_t rules = 1;
  TempDir tmp;
  int committed = 0, not_committed = 0;
  const int delays_ms[] = {5, 40, 120, 250, 600};
  for (int round = 0; round < 5; ++round) {
    std::string text;
    for (int i = 0; i < 10000; ++i)
      absl::StrAppend(&text, "block 10.", 100 + round, ".", i / 256, ".", i % 256, " r", round,
                      "\n");
    const std::string file = tmp / absl::StrCat("batch", round);
    WriteFile(file, text);
    Process add(
        {NetctlPath(), "-t", agent_->target(), "datapath", "rules", "add", "vb", "--file", file},
        tmp / absl::StrCat("add", round));
    usleep(delays_ms[round] * 1000);  // where to kill: not a wait for a result
    agent_->process().Signal(SIGKILL);
    agent_->process().Wait(std::chrono::seconds(5));
    add.Wait(std::chrono::seconds(10));
    StartAgent();
    ASSERT_TRUE(agent_->ok()) << agent_->error();
    auto status = Json<v1::GetDatapathStatusResponse>({"datapath", "status"});
    ASSERT_EQ(status.devices_size(), 1);
    const uint64_t now_rules = status.devices(0).rules();
    const uint64_t now_revision = status.devices(0).rules_revision();
    if (now_rules == rules) {
      EXPECT_EQ(now_revision, revision) << "round " << round;
      ++not_committed;
    } else {
      EXPECT_EQ(now_rules, rules + 10000) << "round " << round << ": a part of the batch";
      EXPECT_EQ(now_revision, revision + 1) << "round " << round;
      rules = now_rules;
      revision = now_revision;
      ++committed;
    }
    if (HasFailure()) return;
  }
  RecordProperty("batches_committed", committed);
  RecordProperty("batches_not_committed", not_committed);
  // The tables agree with the records: a blocked address of the last
  // committed round is dropped, one of a round that did not land is not.
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
}

TEST_F(DatapathTest, RulesAndCountersSurviveAnAgentRestart) {
  Listener server(server_.name(), 128);
  ASSERT_TRUE(server.ok());
  Json<v1::AttachResponse>({"datapath", "attach", "vb"});
  auto added = Json<v1::UpdateRulesResponse>(
      {"datapath", "rules", "add", "vb", "--block", kClient, "--block", "198.51.100.0/24",
       "--block", "2001:db8::/32", "--port", "53", "--udp", "--comment", "kept"});
  ASSERT_EQ(added.added_size(), 4);
  ASSERT_EQ(SendUdp(client_.name(), kClient, 100), 100);
  Eventually([&] { return Counted("block", "drop") >= 100; });
  const uint64_t dropped = Counted("block", "drop");
  EXPECT_EQ(dropped, 100u);

  agent_->process().Signal(SIGKILL);
  agent_->process().Wait(std::chrono::seconds(5));
  // Nobody runs the agent: the kernel keeps dropping.
  ASSERT_EQ(SendUdp(client_.name(), kClient, 100), 100);
  StartAgent();
  ASSERT_TRUE(agent_->ok()) << agent_->error();
  EXPECT_THAT(agent_->log(), HasSubstr("picked up"));
  Eventually([&] { return Counted("block", "drop") >= 200; });
  EXPECT_EQ(Counted("block", "drop"), 200u);
  auto status = Json<v1::GetDatapathStatusResponse>({"datapath", "status"});
  ASSERT_EQ(status.devices_size(), 1);
  EXPECT_EQ(status.devices(0).rules(), 4u);
  EXPECT_EQ(status.devices(0).rules_revision(), added.revision());
  auto list = Json<v1::ListRulesResponse>({"datapath", "rules", "list", "vb"});
  ASSERT_EQ(list.rules_size(), 4);
  for (const auto& r : list.rules()) EXPECT_EQ(r.comment(), "kept");
  EXPECT_EQ(list.revision(), added.revision());
  // Edits go on from where the last agent left them.
  Json<v1::UpdateRulesResponse>({"datapath", "rules", "del", "vb",
                                 absl::StrCat(added.added(0).id()), "--revision",
                                 absl::StrCat(added.revision())});
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));
  EXPECT_EQ(Ctl({"datapath", "detach", "vb"}).exit_code, 0);
}

TEST_F(DatapathTest, TcGuardBlocksCountsClassesAndClampsTheMss) {
  Listener server(server_.name(), 128);
  ASSERT_TRUE(server.ok());
  const int mss_before = ConnectedMss(client_.name(), kOther);
  ASSERT_GT(mss_before, 1300);
  auto attached = Json<v1::AttachResponse>(
      {"datapath", "attach", "vb", "--mode", "tc", "--clamp-mss", "1200", "--class-accounting"});
  EXPECT_EQ(attached.datapath().mode(), v1::XDP_MODE_TC);
  EXPECT_NE(attached.datapath().tc_prog_id(), 0u);
  EXPECT_THAT(RunCommand(server_.Exec({"tc", "filter", "show", "dev", "vb", "ingress"})).out,
              HasSubstr("netagent_tc_gua"));
  Json<v1::UpdateRulesResponse>({"datapath", "rules", "add", "vb", "--block", kClient});
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
  // The SYN-ACK leaving vb is clamped: 1200 less the timestamp option.
  const int mss = ConnectedMss(client_.name(), kOther);
  EXPECT_GT(mss, 1100);
  EXPECT_LE(mss, 1200);
  const uint64_t before = Counted("block", "drop");
  ASSERT_EQ(SendUdp(client_.name(), kClient, 300), 300);
  Eventually([&] { return Counted("block", "drop") - before >= 300; });
  EXPECT_EQ(Counted("block", "drop") - before, 300u);
  auto stats = Json<v1::GetDatapathStatsResponse>({"datapath", "stats", "vb"});
  uint64_t tcp_in = 0, tcp_out = 0, clamped = 0;
  for (const auto& c : stats.classes()) {
    if (c.protocol() == "tcp") (c.direction() == "ingress" ? tcp_in : tcp_out) += c.packets();
  }
  for (const auto& e : stats.events())
    if (e.name() == "mss_clamped") clamped = e.value();
  EXPECT_GT(tcp_in, 0u);
  EXPECT_GT(tcp_out, 0u);
  EXPECT_GE(clamped, 1u);
  // A restarted agent picks the TC guard up like an XDP one.
  agent_->process().Signal(SIGKILL);
  agent_->process().Wait(std::chrono::seconds(5));
  StartAgent();
  ASSERT_TRUE(agent_->ok()) << agent_->error();
  auto status = Json<v1::GetDatapathStatusResponse>({"datapath", "status"});
  ASSERT_EQ(status.devices_size(), 1);
  EXPECT_EQ(status.devices(0).mode(), v1::XDP_MODE_TC);
  EXPECT_EQ(status.devices(0).rules(), 1u);
  EXPECT_FALSE(Connect(client_.name(), kClient, 1000));
  EXPECT_EQ(Ctl({"datapath", "detach", "vb"}).exit_code, 0);
  EXPECT_EQ(RunCommand(server_.Exec({"tc", "filter", "show", "dev", "vb", "ingress"})).out, "");
  EXPECT_EQ(ConnectedMss(client_.name(), kOther), mss_before);
  EXPECT_TRUE(Connect(client_.name(), kClient, 2000));
}

// hping3's own count of what it sent ("N packets tramitted", sic).
uint64_t HpingSent(const std::string& output) {
  const size_t at = output.find(" packets tr");
  if (at == std::string::npos) return 0;
  size_t begin = at;
  while (begin > 0 && isdigit(static_cast<unsigned char>(output[begin - 1]))) --begin;
  uint64_t n = 0;
  (void)absl::SimpleAtoi(output.substr(begin, at - begin), &n);
  return n;
}

struct FloodResult {
  int tries = 0, ok = 0;
  double rate() const { return tries ? static_cast<double>(ok) / tries : 0; }
};

class SynFloodTest : public DatapathTest {
 protected:
  void SetUp() override {
    DatapathTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (RunCommand({"which", "hping3"}).exit_code != 0) GTEST_SKIP() << "hping3 is not installed";
    // A server that a SYN flood can hurt: no cookies, a queue of 128, and
    // half-open entries that live about a second (no SYN-ACK retries), so a
    // source allowed N SYNs/s holds about N of them (all per namespace).
    for (const char* kv : {"net.ipv4.tcp_syncookies=0", "net.ipv4.tcp_synack_retries=0",
                           "net.ipv4.tcp_max_syn_backlog=1024"})
      ASSERT_EQ(RunCommand(server_.Exec({"sysctl", "-qw", kv})).exit_code, 0);
    // SYN-ACKs to spoofed sources leave (towards the client, which drops
    // them) instead of failing to route: their half-open entries stay queued.
    ASSERT_EQ(RunCommand(server_.Exec({"ip", "route", "add", "default", "via", kClient})).exit_code,
              0);
    listener_ = std::make_unique<Listener>(server_.name(), 128);
    ASSERT_TRUE(listener_->ok());
  }
  void TearDown() override {
    listener_.reset();
    DatapathTest::TearDown();
  }

  // Legitimate connects from kClient, one started every 50 ms (20/s, under
  // the guard's per-source rate in these tests), each given
  // 2.5 s (a SYN and one retransmission, as a client's connect timeout
  // would), while hping3 floods with `hping_args` for `seconds`; `during`
  // runs halfway through.
  FloodResult Flood(const std::vector<std::string>& hping_args, int seconds,
                    const std::function<void()>& during = {}) {
    std::vector<std::string> argv = {"hping3", "-q", "-S", "-p", std::to_string(kPort)};
    argv.insert(argv.end(), hping_args.begin(), hping_args.end());
    argv.push_back(kServer);
    TempDir out;
    Process hping(client_.Exec(argv), out / "hping.out");
    usleep(300 * 1000);  // let the flood build up
    FloodResult r;
    std::thread legit([&] {
      r = InNetns(client_.name(), [&] {
        using Clock = std::chrono::steady_clock;
        struct Try {
          int fd;
          Clock::time_point deadline;
        };
        FloodResult res;
        std::vector<Try> pending;
        const auto start = Clock::now();
        auto next = start;
        auto finish = [&](Try& t, bool ok) {
          linger l{1, 0};
          setsockopt(t.fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
          close(t.fd);
          t.fd = -1;
          res.ok += ok ? 1 : 0;
        };
        while (Clock::now() - start < std::chrono::seconds(seconds) || !pending.empty()) {
          const auto now = Clock::now();
          if (now >= next && now - start < std::chrono::seconds(seconds)) {
            next += std::chrono::milliseconds(50);
            const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            sockaddr_in from = Addr(kClient, 0), to = Addr(kServer, kPort);
            ++res.tries;
            if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) == 0 &&
                (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0 ||
                 errno == EINPROGRESS)) {
              pending.push_back({fd, now + std::chrono::milliseconds(2500)});
            } else {
              close(fd);
            }
          }
          std::vector<pollfd> fds;
          for (const Try& t : pending) fds.push_back({t.fd, POLLOUT, 0});
          poll(fds.data(), fds.size(), 5);
          for (size_t i = 0; i < pending.size(); ++i) {
            if (fds[i].revents) {
              int err = 0;
              socklen_t len = sizeof(err);
              getsockopt(pending[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
              finish(pending[i], err == 0);
            } else if (Clock::now() >= pending[i].deadline) {
              finish(pending[i], false);
            }
          }
          pending.erase(
              std::remove_if(pending.begin(), pending.end(), [](const Try& t) { return t.fd < 0; }),
              pending.end());
        }
        return res;
      });
    });
    // On this thread: an agent started from a short-lived one would die with
    // it (the harness's children get SIGKILL when their parent thread ends).
    if (during) {
      usleep(seconds * 500 * 1000);
      during();
    }
    legit.join();
    hping.Signal(SIGINT);
    hping.Wait(std::chrono::seconds(5));
    hping_output_ = ReadFile(out / "hping.out");
    return r;
  }

  std::unique_ptr<Listener> listener_;
  std::string hping_output_;
};

TEST_F(SynFloodTest, CountersAgreeWithWhatHpingSent) {
  Json<v1::AttachResponse>({"datapath", "attach", "vb", "--syn-rate", "50", "--syn-burst", "100"});
  TempDir out;
  Process hping(client_.Exec({"hping3", "-q", "-S", "-p", std::to_string(kPort), "-a", "10.77.0.77",
                              "-c", "3000", "-i", "u200", kServer}),
                out / "hping.out");
  ASSERT_TRUE(hping.Wait(std::chrono::seconds(30)).has_value());
  const uint64_t sent = HpingSent(ReadFile(out / "hping.out"));
  ASSERT_EQ(sent, 3000u) << ReadFile(out / "hping.out");
  Eventually([&] { return SynsCounted() >= sent; });
  EXPECT_EQ(SynsCounted(), sent);
  // ~0.6 s at 50/s on top of a burst of 100: most were over the source's rate.
  EXPECT_LE(Counted("syn_ok"), 100u + 50u * 2);
  EXPECT_GE(Counted("syn_rate", "drop"), 2800u);
}

TEST_F(SynFloodTest, SingleSourceFloodGuardKeepsLegitimateClientsServed) {
  // Without the guard: the flood from one (spoofed, silent) source fills the queue.
  FloodResult without = Flood({"-a", "10.77.0.77", "--flood"}, 4);
  sleep(2);  // the flood's half-open entries time out
  Json<v1::AttachResponse>({"datapath", "attach", "vb", "--syn-rate", "40", "--syn-burst", "40",
                            "--new-source-rate", "50"});
  ASSERT_TRUE(Connect(client_.name(), kClient, 1000));  // the client's own bucket
  const uint64_t before = Counted("syn_rate", "drop");
  // With it, and the agent killed and restarted in the middle: the kernel keeps guarding.
  FloodResult with = Flood({"-a", "10.77.0.77", "--flood"}, 6, [&] {
    agent_->process().Signal(SIGKILL);
    agent_->process().Wait(std::chrono::seconds(5));
    StartAgent();
  });
  ASSERT_TRUE(agent_->ok()) << agent_->error();
  RecordProperty("legit_without_guard", absl::StrCat(without.ok, "/", without.tries));
  RecordProperty("legit_with_guard", absl::StrCat(with.ok, "/", with.tries));
  EXPECT_GE(with.rate(), 0.99) << with.ok << "/" << with.tries << " with, " << without.ok << "/"
                               << without.tries << " without";
  EXPECT_LT(without.rate(), with.rate() - 0.1)
      << without.ok << "/" << without.tries << " without the guard";
  const uint64_t dropped = Counted("syn_rate", "drop") - before;
  EXPECT_GT(dropped, 10000u) << "the flood was dropped by the guard";
  EXPECT_GE(dropped, HpingSent(hping_output_) / 2) << hping_output_;
}

TEST_F(SynFloodTest, SpoofedSourcesFloodIsRationedByTheNewSourceGuard) {
  FloodResult without = Flood({"--rand-source", "--flood"}, 4);
  sleep(2);
  Json<v1::AttachResponse>({"datapath", "attach", "vb", "--syn-rate", "40", "--syn-burst", "40",
                            "--new-source-rate", "5", "--new-source-burst", "10"});
  ASSERT_TRUE(Connect(client_.name(), kClient, 1000));
  FloodResult with = Flood({"--rand-source", "--flood"}, 4);
  RecordProperty("legit_without_guard", absl::StrCat(without.ok, "/", without.tries));
  RecordProperty("legit_with_guard", absl::StrCat(with.ok, "/", with.tries));
  EXPECT_GE(with.rate(), 0.99) << with.ok << "/" << with.tries << " with, " << without.ok << "/"
                               << without.tries << " without";
  EXPECT_LT(without.rate(), with.rate() - 0.1)
      << without.ok << "/" << without.tries << " without the guard";
  EXPECT_GT(Counted("syn_global", "drop"), 10000u);
}

}  // namespace
}  // namespace netagent::testing
