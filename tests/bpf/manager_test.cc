// The datapath manager on a veth between two namespaces: rule batches killed
// after every single map write (a real process death, SIGKILL, in a forked
// child running the real manager), picked up by a new manager, must leave the
// rules of the batch before or of the batch after, whole; TestPacket leaves
// no state behind and does not wait for a batch.
#include "datapath/manager.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "kernel/libbpf_log.h"
#include "kernel/netns.h"
#include "kernel/probe.h"
#include "tests/bpf/packets.h"
#include "tests/bpf/xdp_harness.h"

namespace netagent::datapath {
namespace {

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

std::string Frame(const bpftest::Bytes& b) { return std::string(b.begin(), b.end()); }

RuleEdit Block(const std::string& prefix, const std::string& comment) {
  RuleEdit e;
  e.rule.action = RuleAction::kBlock;
  e.rule.prefix = *ParsePrefix(prefix, "prefix");
  e.rule.comment = comment;
  return e;
}

RuleEdit Delete(uint32_t id) {
  RuleEdit e;
  e.kind = RuleEdit::kDelete;
  e.id = id;
  return e;
}

class DatapathManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = bpftest::BpfUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    const std::string id = std::to_string(getpid());
    a_ = "na-mg-a-" + id;
    b_ = "na-mg-b-" + id;
    ASSERT_EQ(Sh("ip netns add " + a_), 0);
    ASSERT_EQ(Sh("ip netns add " + b_), 0);
    ASSERT_EQ(Sh("ip -n " + a_ + " link add veth0 type veth peer name veth1 netns " + b_), 0);
    ASSERT_EQ(Sh("ip -n " + a_ + " link set veth0 up"), 0);
    ASSERT_EQ(Sh("ip -n " + b_ + " link set veth1 up"), 0);
    home_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int ns = open(("/run/netns/" + a_).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(ns, 0);
    ASSERT_EQ(setns(ns, CLONE_NEWNET), 0);
    close(ns);
    const kernel::Capability bpffs = kernel::EnsureBpffs();
    ASSERT_TRUE(bpffs.available) << bpffs.reason;
    options_.pin_root = "/sys/fs/bpf/netagent-mgr-" + id;
    options_.netns_cookie = kernel::NetnsCookie();
  }
  void TearDown() override {
    if (home_ >= 0) {
      (void)DetachXdp("veth0", options_.pin_root);
      setns(home_, CLONE_NEWNET);
      close(home_);
    }
    if (!a_.empty()) Sh("ip netns del " + a_);
    if (!b_.empty()) Sh("ip netns del " + b_);
  }

  std::unique_ptr<DatapathManager> Start(DatapathManager::Options o) {
    auto m = DatapathManager::Start(std::move(o));
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }

  // The verdict the device's program gives a SYN from `src`.
  std::string Verdict(DatapathManager& m, const std::string& src) {
    auto r = m.TestPacket("veth0", Frame(bpftest::Syn4(src, 80)));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::string(ReasonName(r->reason)) : "error";
  }

  std::string a_, b_;
  int home_ = -1;
  DatapathManager::Options options_;
};

TEST_F(DatapathManagerTest, ABatchKilledAfterAnyWriteLeavesTheRulesBeforeOrAfterItWhole) {
  uint64_t revision = 0;
  {
    auto m = Start(options_);
    ASSERT_TRUE(m);
    DatapathManager::AttachOptions a;
    a.device = "veth0";
    ASSERT_TRUE(m->Attach(a).ok());
    auto first = m->UpdateRules(
        "veth0", 0,
        {Block("10.250.0.2", "peer"), Block("10.9.0.0/16", "wide"), Block("2001:db8::1", "six")});
    ASSERT_TRUE(first.ok()) << first.status();
    revision = first->revision;
  }
  // The reported case (the peer's address replaced by its /24), and more.
  const std::vector<RuleEdit> batch = {Delete(1), Block("10.250.0.0/24", "peer net"), Delete(3),
                                       Block("10.9.8.0/24", "narrow"), Block("2001:db8::/64", "")};
  // Killed after write `cut`: the rules before the batch, unless that write
  // was the last one (dp_meta: the commit), which leaves those after it.
  bool completed = false, committed_by_last_write = false;
  for (size_t cut = 1; !completed && !committed_by_last_write && cut < 200; ++cut) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      DatapathManager::Options o = options_;
      o.after_batch_write = [cut](size_t n) {
        if (n == cut) raise(SIGKILL);
      };
      auto m = DatapathManager::Start(o);
      if (!m.ok()) _exit(2);
      _exit((*m)->UpdateRules("veth0", revision, batch).ok() ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << "child status " << status;
    completed = WIFEXITED(status);

    auto m = Start(options_);
    ASSERT_TRUE(m);
    auto list = m->ListRules("veth0", 0, 100);
    ASSERT_TRUE(list.ok());
    std::vector<std::string> comments;
    for (const auto& r : list->rules) comments.push_back(r.rule.comment);
    std::sort(comments.begin(), comments.end());
    if (list->revision == revision) {
      ASSERT_FALSE(completed);
      EXPECT_EQ(comments, (std::vector<std::string>{"peer", "six", "wide"})) << "cut " << cut;
      EXPECT_EQ(Verdict(*m, "10.250.0.2"), "block") << "cut " << cut;
      EXPECT_EQ(Verdict(*m, "10.250.0.9"), "pass") << "cut " << cut;
      EXPECT_EQ(Verdict(*m, "10.9.200.1"), "block") << "cut " << cut;
    } else {
      committed_by_last_write = !completed;
      EXPECT_EQ(list->revision, revision + 1) << "cut " << cut;
      EXPECT_EQ(comments, (std::vector<std::string>{"", "narrow", "peer net", "wide"}))
          << "cut " << cut;
      EXPECT_EQ(Verdict(*m, "10.250.0.2"), "block") << "cut " << cut;
      EXPECT_EQ(Verdict(*m, "10.250.0.9"), "block") << "cut " << cut;
      EXPECT_EQ(Verdict(*m, "10.9.200.1"), "block") << "cut " << cut;
    }
    if (HasFailure()) return;
  }
  EXPECT_TRUE(committed_by_last_write) << "no kill point left the batch committed";
}

TEST_F(DatapathManagerTest, PacketTestsLeaveNoStateBehind) {
  auto m = Start(options_);
  ASSERT_TRUE(m);
  DatapathManager::AttachOptions a;
  a.device = "veth0";
  a.features.syn_guard = true;
  a.features.syn_rate = 1;
  a.features.syn_burst = 1;
  ASSERT_TRUE(m->Attach(a).ok());
  // One token per source: were the test copy's buckets kept, the second SYN
  // from the same source would be over its rate.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Verdict(*m, "192.0.2.1"), "syn_ok") << i;
  ASSERT_TRUE(m->UpdateRules("veth0", 0, {Block("192.0.2.1", "now")}).ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Verdict(*m, "192.0.2.1"), "block") << i;
  // The live counters saw none of it (the kernel's own IPv6 neighbour
  // traffic on the veth may be counted as passed).
  auto stats = m->GetStats("veth0", false);
  ASSERT_TRUE(stats.ok());
  for (const auto& c : stats->total) {
    EXPECT_NE(c.reason, static_cast<uint32_t>(NA_R_SYN_OK));
    EXPECT_NE(c.reason, static_cast<uint32_t>(NA_R_BLOCK));
  }
}

// Viewers' packet tests run beside a batch of 10,000 rules, not behind it.
TEST_F(DatapathManagerTest, PacketTestsDoNotWaitForARuleBatch) {
  auto m = Start(options_);
  ASSERT_TRUE(m);
  DatapathManager::AttachOptions a;
  a.device = "veth0";
  ASSERT_TRUE(m->Attach(a).ok());
  std::vector<RuleEdit> big;
  for (int i = 0; i < 10000; ++i)
    big.push_back(Block("10." + std::to_string(100 + i / 65536) + "." +
                            std::to_string((i / 256) % 256) + "." + std::to_string(i % 256),
                        ""));
  std::atomic<bool> done{false};
  std::thread batch([&] {
    auto r = m->UpdateRules("veth0", 0, big);
    EXPECT_TRUE(r.ok()) << r.status();
    done = true;
  });
  int during = 0;
  while (!done) {
    EXPECT_EQ(Verdict(*m, "192.0.2.77"), "pass");
    if (!done) ++during;
  }
  batch.join();
  // A batch this size takes tens of milliseconds; tests that waited for it
  // would have got in once at most.
  EXPECT_GE(during, 5);
  EXPECT_EQ(Verdict(*m, "10.100.0.7"), "block");
}

}  // namespace
}  // namespace netagent::datapath

namespace netagent::datapath {
namespace {

// Pins recorded from another namespace (two agents given one pin root) are
// neither picked up nor removed; inode numbers would have let a new
// namespace take an old one's pins for its own.
TEST_F(DatapathManagerTest, PinsOfAnotherNamespaceAreLeftAlone) {
  ASSERT_NE(options_.netns_cookie, 0u) << "kernel without SO_NETNS_COOKIE";
  {
    auto m = Start(options_);
    ASSERT_TRUE(m);
    DatapathManager::AttachOptions a;
    a.device = "veth0";
    ASSERT_TRUE(m->Attach(a).ok());
  }
  DatapathManager::Options other = options_;
  other.netns_cookie = options_.netns_cookie + 1;
  auto m = Start(other);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->Status().empty());
  struct stat st;
  EXPECT_EQ(stat((options_.pin_root + "/veth0/dp_meta").c_str(), &st), 0) << "pins were removed";
  m.reset();
  auto ours = Start(options_);
  ASSERT_TRUE(ours);
  EXPECT_EQ(ours->Status().size(), 1u);
}

}  // namespace
}  // namespace netagent::datapath

namespace netagent::datapath {
namespace {

TEST(PollBackoff, ErrorsPauseLongerAndLongerAndAMinuteOfThemGivesUp) {
  PollBackoff b;
  absl::Time t = absl::FromUnixSeconds(1000);
  EXPECT_EQ(b.After(3, t).pause, absl::ZeroDuration());
  EXPECT_EQ(b.After(-EINTR, t).pause, absl::ZeroDuration());
  absl::Duration last = absl::ZeroDuration();
  for (int i = 0; i < 12; ++i) {
    const PollBackoff::Next n = b.After(-EBADF, t);
    EXPECT_GT(n.pause, absl::ZeroDuration());
    EXPECT_GE(n.pause, last);
    EXPECT_LE(n.pause, absl::Seconds(1));
    EXPECT_FALSE(n.give_up);
    last = n.pause;
    t += n.pause;
  }
  EXPECT_EQ(last, absl::Seconds(1));
  // A success in between starts over.
  EXPECT_EQ(b.After(0, t).pause, absl::ZeroDuration());
  EXPECT_EQ(b.After(-EBADF, t).pause, absl::Milliseconds(10));
  EXPECT_FALSE(b.After(-EBADF, t + absl::Seconds(59)).give_up);
  EXPECT_TRUE(b.After(-EBADF, t + absl::Seconds(61)).give_up);
}

// libbpf's messages on a thread inside a capture go to the capture (a load
// error carries them), not to the log.
TEST(LibbpfLog, ACaptureTakesLibbpfsMessagesOnItsThread) {
  kernel::LibbpfLogCapture capture;
  bpf_object* obj = bpf_object__open("/nonexistent/netagent.bpf.o");
  EXPECT_EQ(libbpf_get_error(obj) != 0 || obj == nullptr, true);
  EXPECT_NE(capture.Tail().find("/nonexistent/netagent.bpf.o"), std::string::npos)
      << capture.Tail();
}

// A detach that fails keeps the device managed, so it can be detached again
// once the obstacle is gone; nothing is left untracked.
TEST_F(DatapathManagerTest, AFailedDetachKeepsTheDeviceManaged) {
  auto m = Start(options_);
  ASSERT_TRUE(m);
  DatapathManager::AttachOptions a;
  a.device = "veth0";
  ASSERT_TRUE(m->Attach(a).ok());
  // Something not ours in the pin directory: the pins cannot all go.
  const std::string obstacle = options_.pin_root + "/veth0/not-ours";
  ASSERT_EQ(mkdir(obstacle.c_str(), 0700), 0);
  absl::Status failed = m->Detach("veth0");
  EXPECT_FALSE(failed.ok());
  ASSERT_EQ(m->Status().size(), 1u) << "forgotten after a failed detach";
  ASSERT_EQ(rmdir(obstacle.c_str()), 0);
  EXPECT_TRUE(m->Detach("veth0").ok());
  EXPECT_TRUE(m->Status().empty());
  struct stat st;
  EXPECT_NE(stat((options_.pin_root + "/veth0").c_str(), &st), 0);
}

}  // namespace
}  // namespace netagent::datapath
