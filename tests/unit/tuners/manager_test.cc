// The manager's state machine over an in-memory knob store, a journal in a
// temporary directory and a clock the tests move: recovery at start, expiry
// with retries, rollback order, commit-confirmed. Nothing here sleeps; the
// kernel paths are covered by tests/integration/tuning_test.
#include "tuners/manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <fcntl.h>
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_join.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "tests/common/test_support.h"
#include "tests/unit/fixtures.h"

namespace netagent::tuners {
namespace {

using ::netagent::testing::Eventually;
using ::netagent::testing::Fixture;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Wall time that moves only when a test moves it. A thread may ask for its
// next reading to block until Release(): that is how a test stops the
// manager at an exact point while it holds its lock.
class FakeClock {
 public:
  absl::Time Now() {
    std::unique_lock<std::mutex> l(mu_);
    readers_.insert(std::this_thread::get_id());
    if (gate_ == std::this_thread::get_id()) {
      gate_ = {};
      blocked_ = true;
      cv_.wait(l, [&] { return released_; });
      blocked_ = released_ = false;
    }
    return now_;
  }
  void Set(absl::Time t) {
    std::lock_guard<std::mutex> l(mu_);
    now_ = t;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> l(mu_);
    now_ += d;
  }
  // The calling thread's next reading blocks until Release().
  void GateThisThread() {
    std::lock_guard<std::mutex> l(mu_);
    gate_ = std::this_thread::get_id();
  }
  bool blocked() {
    std::lock_guard<std::mutex> l(mu_);
    return blocked_;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool ReadBy(std::thread::id id) {
    std::lock_guard<std::mutex> l(mu_);
    return readers_.count(id) > 0;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  absl::Time now_ = absl::FromCivil(absl::CivilSecond(2030, 1, 2, 3, 4, 5), absl::UTCTimeZone());
  std::thread::id gate_;
  bool blocked_ = false, released_ = false;
  std::set<std::thread::id> readers_;
};

// Knob values shared by the test and the manager's thread.
struct KnobStore {
  std::mutex mu;
  std::map<std::string, std::string> values;
  std::set<std::string> fail_write;
};

class MemoryKnobs : public KnobIo {
 public:
  explicit MemoryKnobs(KnobStore* store) : store_(store) {}
  absl::StatusOr<std::string> Read(const std::string& key) override {
    std::lock_guard<std::mutex> l(store_->mu);
    auto it = store_->values.find(key);
    if (it == store_->values.end()) return absl::NotFoundError(key);
    return it->second;
  }
  absl::Status Write(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> l(store_->mu);
    if (store_->fail_write.count(key))
      return absl::InvalidArgumentError(key + ": Invalid argument");
    store_->values[key] = value;
    return absl::OkStatus();
  }

 private:
  KnobStore* store_;
};

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/na-manager-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/tuning");
    store_.values = {{"net.core.somaxconn", "4096"},
                     {"net.ipv4.tcp_fin_timeout", "60"},
                     {"net.ipv4.tcp_synack_retries", "5"}};
  }
  void TearDown() override {
    manager_.reset();
    for (const std::string& log : Logs()) SetImmutable(log, false);  // a test that broke writes
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Value(const std::string& knob) {
    std::lock_guard<std::mutex> l(store_.mu);
    return store_.values[knob];
  }
  void SetValue(const std::string& knob, const std::string& value) {
    std::lock_guard<std::mutex> l(store_.mu);
    store_.values[knob] = value;
  }
  void FailWrites(std::set<std::string> knobs) {
    std::lock_guard<std::mutex> l(store_.mu);
    store_.fail_write = std::move(knobs);
  }

  // A snapshot of the in-memory host, as a child namespace shows it.
  HostSnapshot Snapshot() {
    std::lock_guard<std::mutex> l(store_.mu);
    HostSnapshot h;
    for (const auto& s : SysctlRegistry()) {
      SysctlState st;
      auto it = store_.values.find(s.name);
      st.exists = st.writable = it != store_.values.end();
      if (st.exists) st.value = it->second;
      h.sysctls[s.name] = st;
    }
    return h;
  }

  TuningManager::Options Options() {
    TuningManager::Options o;
    o.state_dir = dir_;
    o.io = std::make_unique<MemoryKnobs>(&store_);
    o.clock = [this] { return clock_.Now(); };
    o.snapshot = [this](const SnapshotRequest&, const std::map<std::string, std::string>&) {
      return absl::StatusOr<HostSnapshot>(Snapshot());
    };
    return o;
  }

  void Start() {
    auto m = TuningManager::Start(Options());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
  }

  std::string JournalPath() const { return dir_ + "/tuning/journal.yaml"; }
  // Journal writes fail until FixJournalWrites(), reads still work: the
  // temporary file the snapshot is written through is a directory, and the
  // log is immutable (root ignores file modes, not that flag). False where
  // the filesystem has no immutable flag.
  bool BreakJournalWrites() {
    std::filesystem::create_directories(JournalPath() + ".tmp");
    // Without a log, every write goes through the temporary file.
    for (const std::string& log : Logs())
      if (!SetImmutable(log, true)) return false;
    return true;
  }
  void FixJournalWrites() {
    for (const std::string& log : Logs()) SetImmutable(log, false);
    std::filesystem::remove(JournalPath() + ".tmp");
  }
  std::vector<std::string> Logs() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/tuning", ec)) {
      if (e.path().filename().string().rfind("journal.yaml.log.", 0) == 0)
        out.push_back(e.path().string());
    }
    return out;
  }
  static bool SetImmutable(const std::string& path, bool on) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    close(fd);
    return ok;
  }
  // Where a journal found damaged at the fake clock's start time goes.
  std::string QuarantinePath() const { return JournalPath() + ".corrupt-20300102T030405Z"; }
  void PutFixture(const std::string& name) {
    std::ofstream(JournalPath(), std::ios::binary) << Fixture("journal/" + name);
  }

  void WriteJournal(std::vector<ChangeRecord> records) {
    Journal j = Journal::Empty(JournalPath());
    for (auto& r : records) j.records().push_back(std::move(r));
    ASSERT_TRUE(j.Save().ok());
  }

  ChangeRecord Record(const std::string& id, ChangeState state, std::vector<KnobChange> knobs) {
    ChangeRecord r;
    r.id = id;
    r.created = clock_.Now() - absl::Minutes(1);
    r.caller = "test";
    r.intent = "limits";
    r.state = state;
    r.knobs = std::move(knobs);
    return r;
  }

  ChangeRecord Get(const std::string& id) {
    for (const auto& r : manager_->List(100, false)) {
      if (r.id == id) return r;
    }
    ADD_FAILURE() << "no change " << id;
    return {};
  }

  Intent Limits(std::vector<std::pair<std::string, std::string>> s) {
    Intent in;
    in.what = LimitsIntent{std::move(s)};
    return in;
  }

  // Applies somaxconn=8192 to be confirmed within `within`; returns its id.
  std::string ApplyPending(absl::Duration within) {
    auto applied = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", within, "");
    EXPECT_TRUE(applied.ok()) << applied.status();
    if (!applied.ok() || !applied->change) return "";
    EXPECT_EQ(applied->change->state, ChangeState::kPending);
    return applied->change->id;
  }

  std::string dir_;
  KnobStore store_;
  FakeClock clock_;
  std::unique_ptr<TuningManager> manager_;
};

TEST_F(ManagerTest, AnApplyInterruptedByACrashIsUndoneAtStart) {
  // The agent died after writing somaxconn and before fin_timeout.
  SetValue("net.core.somaxconn", "8192");
  WriteJournal({Record(
      "c1", ChangeState::kApplying,
      {{"net.core.somaxconn", "4096", "8192", ""}, {"net.ipv4.tcp_fin_timeout", "60", "30", ""}})});
  Start();
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_EQ(Value("net.ipv4.tcp_fin_timeout"), "60");
  EXPECT_EQ(Get("c1").state, ChangeState::kRolledBack);
}

TEST_F(ManagerTest, AThirdValueAfterACrashKeepsTheChangeRollbackable) {
  SetValue("net.core.somaxconn", "8192");
  SetValue("net.ipv4.tcp_fin_timeout", "31");  // rounded by the kernel, say
  WriteJournal({Record(
      "c1", ChangeState::kApplying,
      {{"net.core.somaxconn", "4096", "8192", ""}, {"net.ipv4.tcp_fin_timeout", "60", "30", ""}})});
  Start();
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_EQ(Value("net.ipv4.tcp_fin_timeout"), "31");
  ChangeRecord r = Get("c1");
  EXPECT_EQ(r.state, ChangeState::kRollbackFailed);
  EXPECT_THAT(r.events.back().what, HasSubstr("changed by someone else"));
  ASSERT_TRUE(manager_->Rollback("c1", "test", /*force=*/true).ok());
  EXPECT_EQ(Value("net.ipv4.tcp_fin_timeout"), "60");
}

TEST_F(ManagerTest, ExpiryRestoresWhatItCanRetriesThenGivesUp) {
  SetValue("net.core.somaxconn", "8192");
  SetValue("net.ipv4.tcp_fin_timeout", "30");
  FailWrites({"net.ipv4.tcp_fin_timeout"});
  ChangeRecord r = Record(
      "c1", ChangeState::kPending,
      {{"net.core.somaxconn", "4096", "8192", ""}, {"net.ipv4.tcp_fin_timeout", "60", "30", ""}});
  r.confirm_deadline = clock_.Now() - absl::Seconds(1);
  WriteJournal({r});
  Start();  // overdue: the first attempt runs at start
  // somaxconn is restored and stays restored; fin_timeout cannot be written.
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_EQ(Value("net.ipv4.tcp_fin_timeout"), "30");
  EXPECT_EQ(Get("c1").state, ChangeState::kPending);
  EXPECT_THAT(Get("c1").events.back().what, HasSubstr("attempt 1 of 5"));
  // Retries after 10 s, doubling; not a moment before.
  for (int attempt = 2; attempt <= 5; ++attempt) {
    const absl::Duration wait = absl::Seconds(10) * (1 << (attempt - 2));
    clock_.Advance(wait - absl::Milliseconds(1));
    manager_->Tick();
    EXPECT_EQ(Get("c1").events.size(), static_cast<size_t>(attempt - 1)) << "retried early";
    clock_.Advance(absl::Milliseconds(1));
    manager_->Tick();
    ASSERT_EQ(Get("c1").events.size(), static_cast<size_t>(attempt)) << attempt;
  }
  ChangeRecord after = Get("c1");
  EXPECT_EQ(after.state, ChangeState::kRollbackFailed);
  EXPECT_THAT(after.events.back().what, HasSubstr("gave up rolling back after 5 attempts"));
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  // Once the cause is gone, a rollback finishes it.
  FailWrites({});
  ASSERT_TRUE(manager_->Rollback("c1", "test", false).ok());
  EXPECT_EQ(Value("net.ipv4.tcp_fin_timeout"), "60");
}

TEST_F(ManagerTest, AnUnconfirmedChangeExpiresAtItsDeadlineNotBefore) {
  Start();
  const std::string id = ApplyPending(absl::Seconds(30));
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  clock_.Advance(absl::Seconds(30) - absl::Milliseconds(1));
  manager_->Tick();
  EXPECT_EQ(Get(id).state, ChangeState::kPending);
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  clock_.Advance(absl::Milliseconds(1));
  manager_->Tick();
  ChangeRecord r = Get(id);
  EXPECT_EQ(r.state, ChangeState::kExpired);
  EXPECT_THAT(r.events.back().what, HasSubstr("no confirmation before the deadline"));
  EXPECT_EQ(r.events.back().at, clock_.Now());
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
}

TEST_F(ManagerTest, TheDeadlineThreadFollowsTheInjectedClock) {
  Start();
  const std::string id = ApplyPending(absl::Hours(1));
  // An hour of the injected clock, no real waiting: the thread expires it
  // by itself within TuningManager::kMaxSleep.
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(
      Eventually([&] { return Value("net.core.somaxconn") == "4096"; }, std::chrono::seconds(10)));
  EXPECT_EQ(Get(id).state, ChangeState::kExpired);
}

TEST_F(ManagerTest, AConfirmThatArrivedInTimeWinsOverTheDeadlinePassHoldingTheLock) {
  Start();
  const std::string id = ApplyPending(absl::Seconds(30));
  const absl::Time deadline = *Get(id).confirm_deadline;
  clock_.Set(deadline - absl::Seconds(1));
  // The deadline pass takes the lock first and is held right before it
  // reads the clock.
  std::thread tick([&] {
    clock_.GateThisThread();
    manager_->Tick();
  });
  ASSERT_TRUE(Eventually([&] { return clock_.blocked(); }));
  // The confirm arrives a second before the deadline and waits for the lock.
  absl::StatusOr<ChangeRecord> confirmed = absl::UnknownError("not run");
  std::thread confirm([&] {
    auto r = manager_->Confirm(id, "op");
    confirmed = r.ok() ? absl::StatusOr<ChangeRecord>(r->change) : r.status();
  });
  ASSERT_TRUE(Eventually([&] { return clock_.ReadBy(confirm.get_id()); }));
  // The pass goes on with a time after the deadline.
  clock_.Set(deadline + absl::Seconds(1));
  clock_.Release();
  tick.join();
  confirm.join();
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  EXPECT_EQ(confirmed->state, ChangeState::kConfirmed);
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  clock_.Advance(absl::Hours(1));
  manager_->Tick();
  EXPECT_EQ(Get(id).state, ChangeState::kConfirmed);
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
}

TEST_F(ManagerTest, AConfirmArrivingAtTheDeadlineIsLate) {
  Start();
  const std::string id = ApplyPending(absl::Seconds(30));
  clock_.Set(*Get(id).confirm_deadline);
  auto late = manager_->Confirm(id, "op");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  // Expired by this call or by the deadline thread just before: late either way.
  EXPECT_THAT(late.status().message(), HasSubstr("expired"));
  EXPECT_EQ(Get(id).state, ChangeState::kExpired);
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
}

// What the journal file says about `id` now.
ChangeState StateOnDisk(const std::string& path, const std::string& id) {
  auto j = Journal::Load(path);
  EXPECT_TRUE(j.ok()) << j.status();
  if (!j.ok() || j->Find(id) == nullptr) return ChangeState::kApplying;
  return j->Find(id)->state;
}

TEST_F(ManagerTest, ARollbackTheJournalCannotRecordStillRestoresAndSaysSo) {
  Start();
  auto applied = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", std::nullopt, "");
  ASSERT_TRUE(applied.ok()) << applied.status();
  const std::string id = applied->change->id;
  if (!BreakJournalWrites()) GTEST_SKIP() << "no immutable flag on this filesystem";
  auto r = manager_->Rollback(id, "op", false);
  // What happened on the host is the answer; the journal's trouble is beside it.
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_EQ(r->change.state, ChangeState::kRolledBack);
  EXPECT_FALSE(r->journal.ok());
  EXPECT_THAT(r->journal.message(), HasSubstr("journal.yaml.tmp"));
  EXPECT_EQ(StateOnDisk(JournalPath(), id), ChangeState::kConfirmed);  // behind
  JournalHealth h = manager_->JournalStatus();
  EXPECT_THAT(h.save_error, HasSubstr("journal.yaml.tmp"));
  EXPECT_EQ(h.save_failing_since, clock_.Now());
  // Once writes work again, the next pass brings the file up to date.
  FixJournalWrites();
  clock_.Advance(absl::Seconds(30));
  manager_->Tick();
  EXPECT_EQ(StateOnDisk(JournalPath(), id), ChangeState::kRolledBack);
  EXPECT_EQ(manager_->JournalStatus().save_error, "");
}

TEST_F(ManagerTest, AConfirmTheJournalCannotRecordStillHolds) {
  Start();
  const std::string id = ApplyPending(absl::Seconds(30));
  if (!BreakJournalWrites()) GTEST_SKIP() << "no immutable flag on this filesystem";
  auto c = manager_->Confirm(id, "op");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->change.state, ChangeState::kConfirmed);
  EXPECT_FALSE(c->journal.ok());
  clock_.Advance(absl::Seconds(31));
  manager_->Tick();
  EXPECT_EQ(Get(id).state, ChangeState::kConfirmed);
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  EXPECT_EQ(StateOnDisk(JournalPath(), id), ChangeState::kPending);
}

TEST_F(ManagerTest, AnExpiryTheJournalCannotRecordStillRestores) {
  Start();
  const std::string id = ApplyPending(absl::Seconds(30));
  if (!BreakJournalWrites()) GTEST_SKIP() << "no immutable flag on this filesystem";
  clock_.Advance(absl::Seconds(30));
  manager_->Tick();
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_EQ(Get(id).state, ChangeState::kExpired);
  EXPECT_NE(manager_->JournalStatus().save_error, "");
}

TEST_F(ManagerTest, AnApplyThatCannotBeJournaledChangesNothing) {
  Start();
  if (!BreakJournalWrites()) GTEST_SKIP() << "no immutable flag on this filesystem";
  auto a = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", std::nullopt, "");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition) << a.status();
  EXPECT_THAT(a.status().message(), HasSubstr("nothing was changed"));
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_TRUE(manager_->List(10, false).empty());
}

TEST_F(ManagerTest, AnUnwritableJournalAtStartIsReportedNotFatal) {
  if (!BreakJournalWrites()) GTEST_SKIP() << "no immutable flag on this filesystem";
  Start();
  EXPECT_NE(manager_->JournalStatus().save_error, "");
  EXPECT_EQ(
      manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", std::nullopt, "").status().code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(ManagerTest, RollbacksGoNewestFirstOnAKnob) {
  SetValue("net.core.somaxconn", "16384");
  WriteJournal(
      {Record("old", ChangeState::kConfirmed, {{"net.core.somaxconn", "4096", "8192", ""}}),
       Record("new", ChangeState::kConfirmed, {{"net.core.somaxconn", "8192", "16384", ""}})});
  Start();
  auto refused = manager_->Rollback("old", "test", false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("changed again by change new"));
  EXPECT_EQ(Value("net.core.somaxconn"), "16384");
  ASSERT_TRUE(manager_->Rollback("new", "test", false).ok());
  ASSERT_TRUE(manager_->Rollback("old", "test", false).ok());
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
}

TEST_F(ManagerTest, CommitConfirmedAndTheJournalSurvivesARestart) {
  Start();
  auto applied = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", absl::Seconds(30), "");
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_TRUE(applied->change.has_value());
  const std::string id = applied->change->id;
  EXPECT_EQ(applied->change->state, ChangeState::kPending);
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  // Held while unconfirmed.
  auto held = manager_->Apply(Limits({{"somaxconn", "9000"}}), "op", std::nullopt, "");
  EXPECT_THAT(held.status().message(), HasSubstr("held by change " + id));
  // A plan with nothing to change applies nothing.
  auto nothing = manager_->Apply(Limits({{"tcp_synack_retries", "5"}}), "op", std::nullopt, "");
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(nothing->change.has_value());
  ASSERT_TRUE(manager_->Confirm(id, "op").ok());
  manager_.reset();
  Start();
  ChangeRecord r = Get(id);
  EXPECT_EQ(r.state, ChangeState::kConfirmed);
  EXPECT_EQ(r.caller, "op");
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  EXPECT_EQ(manager_->Apply(Limits({{"somaxconn", "9000"}}), "op", absl::ZeroDuration(), "")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      manager_->Apply(Limits({{"somaxconn", "9000"}}), "op", std::nullopt, "", id).status().code(),
      absl::StatusCode::kAlreadyExists);
}

TEST_F(ManagerTest, AChangeOfAnotherOwnerIsNeitherConfirmedNorRolledBack) {
  Start();
  // Run A's change; run B reused A's id and gives its own owner token.
  auto applied = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", absl::Seconds(30), "",
                                 "fix-1", "owner-a");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->change->owner, "owner-a");
  auto confirm = manager_->Confirm("fix-1", "op", "owner-b");
  EXPECT_TRUE(absl::IsNotFound(confirm.status())) << confirm.status();
  EXPECT_THAT(confirm.status().message(), HasSubstr("another owner"));
  auto rollback = manager_->Rollback("fix-1", "op", false, "owner-b");
  EXPECT_TRUE(absl::IsNotFound(rollback.status())) << rollback.status();
  EXPECT_EQ(Value("net.core.somaxconn"), "8192");
  EXPECT_EQ(Get("fix-1").state, ChangeState::kPending);
  // The owner survives a restart, and the owner's own calls (or a caller
  // that gives none, as `netctl tune` does) reach the change.
  manager_.reset();
  Start();
  EXPECT_EQ(Get("fix-1").owner, "owner-a");
  EXPECT_TRUE(absl::IsNotFound(manager_->Rollback("fix-1", "op", false, "owner-b").status()));
  ASSERT_TRUE(manager_->Confirm("fix-1", "op", "owner-a").ok());
  ASSERT_TRUE(manager_->Rollback("fix-1", "op", false).ok());
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  EXPECT_TRUE(absl::IsInvalidArgument(
      manager_->Apply(Limits({{"somaxconn", "9000"}}), "op", std::nullopt, "", "", "a b").status()));
}

TEST_F(ManagerTest, TheSameOwnerApplyingAnIdAgainGetsItsChangeAndNoOneElseDoes) {
  Start();
  auto first = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", absl::Seconds(30), "",
                               "fix-1", "owner-a");
  ASSERT_TRUE(first.ok()) << first.status();
  // A resumed run whose apply had landed: the change that is there.
  auto again = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", absl::Seconds(30), "",
                               "fix-1", "owner-a");
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(again->change.has_value());
  EXPECT_EQ(again->change->created, first->change->created);
  EXPECT_EQ(again->change->state, ChangeState::kPending);
  EXPECT_EQ(manager_->List(100, false).size(), 1u);
  EXPECT_TRUE(absl::IsAlreadyExists(manager_->Apply(Limits({{"somaxconn", "8192"}}), "op",
                                                    absl::Seconds(30), "", "fix-1", "owner-b")
                                        .status()));
  EXPECT_TRUE(absl::IsAlreadyExists(
      manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", absl::Seconds(30), "", "fix-1")
          .status()));
}

// Found by review: a change an older agent journaled (no owner) looked
// absent to the rollback of the run that made it, after an upgrade.
TEST_F(ManagerTest, AChangeFromBeforeOwnersIsReachedWhateverTheOwnerGiven) {
  SetValue("net.core.somaxconn", "8192");
  ChangeRecord legacy = Record("old-1", ChangeState::kConfirmed,
                               {{"net.core.somaxconn", "4096", "8192", ""}});
  legacy.owner_unknown = true;  // written without the key
  ChangeRecord mine = Record("new-1", ChangeState::kConfirmed, {});
  WriteJournal({legacy, mine});
  Start();
  EXPECT_TRUE(Get("old-1").owner_unknown);
  EXPECT_FALSE(Get("new-1").owner_unknown);  // the key is there, empty
  EXPECT_TRUE(absl::IsNotFound(manager_->Rollback("new-1", "op", false, "run-token").status()));
  ASSERT_TRUE(manager_->Rollback("old-1", "op", false, "run-token").ok());
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
}

// Log lines the manager writes while this lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(128)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string Text() const { return absl::StrJoin(sink_->last_formatted(), ""); }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

struct DamagedJournal {
  std::string fixture;
  std::string why;  // in the quarantine's error
};
void PrintTo(const DamagedJournal& d, std::ostream* os) { *os << d.fixture; }

class QuarantineTest : public ManagerTest, public ::testing::WithParamInterface<DamagedJournal> {};

TEST_P(QuarantineTest, TheAgentStartsSetsTheFileAsideAndWaitsForAnOperator) {
  const std::string original = Fixture("journal/" + GetParam().fixture);
  PutFixture(GetParam().fixture);
  LogCapture log;
  Start();  // the agent keeps serving everything else
  // Set aside byte for byte, under a name that says when.
  EXPECT_FALSE(std::filesystem::exists(JournalPath()));
  std::ifstream moved(QuarantinePath(), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(moved), {}), original);
  JournalHealth h = manager_->JournalStatus();
  ASSERT_TRUE(h.quarantine.has_value());
  EXPECT_EQ(h.quarantine->moved_to, QuarantinePath());
  EXPECT_THAT(h.quarantine->error, HasSubstr(GetParam().why));
  EXPECT_EQ(h.quarantine->since, clock_.Now());
  EXPECT_THAT(log.Text(), HasSubstr(JournalPath() + " could not be read"));
  EXPECT_THAT(log.Text(), HasSubstr("set aside as " + QuarantinePath()));
  // Nothing is written while it waits: the file set aside is the record.
  EXPECT_FALSE(std::filesystem::exists(JournalPath()));

  // Plans are harmless and allowed; they say applying is not.
  auto plan = manager_->PlanFor(Limits({{"somaxconn", "8192"}}));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(absl::StrJoin(plan->warnings, "|"), HasSubstr("applying is refused"));
  auto refused = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", std::nullopt, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              StartsWith("tuning is refused: the change journal"));
  EXPECT_THAT(refused.status().message(), HasSubstr(GetParam().why));
  EXPECT_THAT(refused.status().message(), HasSubstr(QuarantinePath()));
  EXPECT_THAT(refused.status().message(), HasSubstr("netctl tune journal ack"));
  EXPECT_EQ(Value("net.core.somaxconn"), "4096");
  // A change it may have held cannot be confirmed or rolled back here.
  for (auto r : {manager_->Confirm("20300102-031000-3c4d", "op"),
                 manager_->Rollback("20300102-031000-3c4d", "op", false)}) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(r.status().message(), HasSubstr("is unknown to this agent"));
  }

  // Only the file set aside is acknowledged, once.
  EXPECT_EQ(manager_->AcknowledgeJournal("op", "journal.yaml.corrupt-other").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto acked = manager_->AcknowledgeJournal("unix uid=0", "journal.yaml.corrupt-20300102T030405Z");
  ASSERT_TRUE(acked.ok()) << acked.status();
  EXPECT_EQ(acked->moved_to, QuarantinePath());
  EXPECT_EQ(manager_->AcknowledgeJournal("op", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  h = manager_->JournalStatus();
  EXPECT_FALSE(h.quarantine.has_value());
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].at, clock_.Now());
  EXPECT_THAT(h.events[0].what, HasSubstr("fresh journal: unix uid=0 acknowledged"));
  EXPECT_THAT(h.events[0].what, HasSubstr(QuarantinePath()));
  // Tuning works again, and the fresh journal outlives a restart.
  const std::string id = ApplyPending(absl::Seconds(30));
  manager_.reset();
  Start();
  EXPECT_FALSE(manager_->JournalStatus().quarantine.has_value());
  EXPECT_EQ(manager_->JournalStatus().events.size(), 1u);
  EXPECT_EQ(Get(id).state, ChangeState::kPending);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuarantineTest,
                         ::testing::Values(DamagedJournal{"truncated.yaml", "cut short"},
                                           DamagedJournal{"garbage.yaml", "yaml-cpp: error"},
                                           DamagedJournal{"unknown_version.yaml", "version \"2\""},
                                           DamagedJournal{"bad_state.yaml",
                                                          "state \"half_applied\""},
                                           DamagedJournal{"bad_time.yaml", "bad time"},
                                           DamagedJournal{"binary.bin", "binary data"},
                                           DamagedJournal{"empty.yaml", "empty (0 bytes)"}),
                         [](const auto& info) {
                           std::string n =
                               info.param.fixture.substr(0, info.param.fixture.find('.'));
                           n.erase(std::remove(n.begin(), n.end(), '_'), n.end());
                           return n;
                         });

TEST_F(ManagerTest, AQuarantineNamesTheKnobsThatMayBeLeftChanged) {
  PutFixture("truncated.yaml");
  Start();
  JournalHealth h = manager_->JournalStatus();
  ASSERT_TRUE(h.quarantine.has_value());
  ASSERT_EQ(h.quarantine->salvage.possibly_in_effect.size(), 2u);
  const std::string text = DescribeQuarantine(h.path, *h.quarantine);
  EXPECT_THAT(text, HasSubstr("can neither roll them back nor expire them, so values may be "
                              "left changed: possibly in effect: change 20300102-030405-1a2b "
                              "(confirmed): net.core.somaxconn \"4096\" -> \"8192\""));
  EXPECT_THAT(text, HasSubstr("was to roll back at 2030-01-02T03:15:00+00:00"));
  auto unknown = manager_->Rollback("20300102-031000-3c4d", "op", false);
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("the file set aside lists it as pending_confirm: net.ipv4.tcp_rmem "
                        "\"4096 131072 6291456\" -> \"4096 131072 50000000\""));
}

TEST_F(ManagerTest, AMissingJournalIsAFreshHistoryAndAGoodOneIsKept) {
  Start();
  EXPECT_FALSE(manager_->JournalStatus().quarantine.has_value());
  EXPECT_TRUE(std::filesystem::exists(JournalPath()));
  manager_.reset();
  PutFixture("valid.yaml");
  Start();
  EXPECT_FALSE(manager_->JournalStatus().quarantine.has_value());
  EXPECT_EQ(manager_->List(10, false).size(), 3u);
}

TEST_F(ManagerTest, ALeftoverTemporaryFileIsRemovedAndLogged) {
  for (const char* journal : {"valid.yaml", "garbage.yaml"}) {
    std::filesystem::remove_all(dir_ + "/tuning");
    std::filesystem::create_directories(dir_ + "/tuning");
    PutFixture(journal);
    std::ofstream(JournalPath() + ".tmp") << "version: 1\ncount: 1\n";  // cut short
    LogCapture log;
    Start();
    EXPECT_FALSE(std::filesystem::exists(JournalPath() + ".tmp")) << journal;
    EXPECT_THAT(log.Text(), HasSubstr("removed " + JournalPath() + ".tmp"));
    EXPECT_THAT(log.Text(), HasSubstr(JournalPath() + " stays in force"));
    manager_.reset();
  }
}

TEST_F(ManagerTest, AnAcknowledgementThatCannotBeWrittenKeepsTheQuarantine) {
  PutFixture("garbage.yaml");
  Start();
  if (!BreakJournalWrites()) GTEST_SKIP() << "no immutable flag on this filesystem";
  auto acked = manager_->AcknowledgeJournal("op", "");
  EXPECT_EQ(acked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(acked.status().message(), HasSubstr("fresh journal cannot be written"));
  EXPECT_TRUE(manager_->JournalStatus().quarantine.has_value());
  EXPECT_EQ(
      manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", std::nullopt, "").status().code(),
      absl::StatusCode::kFailedPrecondition);
  FixJournalWrites();
  ASSERT_TRUE(manager_->AcknowledgeJournal("op", "").ok());
  EXPECT_FALSE(manager_->JournalStatus().quarantine.has_value());
}

}  // namespace
}  // namespace netagent::tuners
