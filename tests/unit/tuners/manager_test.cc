// The manager's state machine over an in-memory knob store and a journal in a
// temporary directory: recovery at start, expiry with retries, rollback order,
// commit-confirmed. The kernel paths are covered by tests/integration/tuning_test.
#include "tuners/manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>
#include <thread>

namespace netagent::tuners {
namespace {

using ::testing::HasSubstr;

class MemoryKnobs : public KnobIo {
 public:
  std::map<std::string, std::string>* values;
  std::set<std::string>* fail_write;
  absl::StatusOr<std::string> Read(const std::string& key) override {
    auto it = values->find(key);
    if (it == values->end()) return absl::NotFoundError(key);
    return it->second;
  }
  absl::Status Write(const std::string& key, const std::string& value) override {
    if (fail_write->count(key)) return absl::InvalidArgumentError(key + ": Invalid argument");
    (*values)[key] = value;
    return absl::OkStatus();
  }
};

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/na-manager-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/tuning");
    values_ = {{"net.core.somaxconn", "4096"},
               {"net.ipv4.tcp_fin_timeout", "60"},
               {"net.ipv4.tcp_synack_retries", "5"}};
  }
  void TearDown() override {
    manager_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A snapshot of the in-memory host, as a child namespace shows it.
  HostSnapshot Snapshot() {
    HostSnapshot h;
    for (const auto& s : SysctlRegistry()) {
      SysctlState st;
      auto it = values_.find(s.name);
      st.exists = st.writable = it != values_.end();
      if (st.exists) st.value = it->second;
      h.sysctls[s.name] = st;
    }
    return h;
  }

  void Start() {
    TuningManager::Options o;
    o.state_dir = dir_;
    auto io = std::make_unique<MemoryKnobs>();
    io->values = &values_;
    io->fail_write = &fail_;
    o.io = std::move(io);
    o.expiry_retry = absl::Milliseconds(1);
    o.snapshot = [this](const SnapshotRequest&, const std::map<std::string, std::string>&) {
      return absl::StatusOr<HostSnapshot>(Snapshot());
    };
    auto m = TuningManager::Start(std::move(o));
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
  }

  void WriteJournal(std::vector<ChangeRecord> records) {
    Journal j = *Journal::FromYaml("", dir_ + "/tuning/journal.yaml");
    for (auto& r : records) j.records().push_back(std::move(r));
    ASSERT_TRUE(j.Save().ok());
  }

  ChangeRecord Record(const std::string& id, ChangeState state, std::vector<KnobChange> knobs) {
    ChangeRecord r;
    r.id = id;
    r.created = absl::Now() - absl::Minutes(1);
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

  std::string dir_;
  std::map<std::string, std::string> values_;
  std::set<std::string> fail_;
  std::unique_ptr<TuningManager> manager_;
};

TEST_F(ManagerTest, AnApplyInterruptedByACrashIsUndoneAtStart) {
  // The agent died after writing somaxconn and before fin_timeout.
  values_["net.core.somaxconn"] = "8192";
  WriteJournal({Record(
      "c1", ChangeState::kApplying,
      {{"net.core.somaxconn", "4096", "8192", ""}, {"net.ipv4.tcp_fin_timeout", "60", "30", ""}})});
  Start();
  EXPECT_EQ(values_["net.core.somaxconn"], "4096");
  EXPECT_EQ(values_["net.ipv4.tcp_fin_timeout"], "60");
  EXPECT_EQ(Get("c1").state, ChangeState::kRolledBack);
}

TEST_F(ManagerTest, AThirdValueAfterACrashKeepsTheChangeRollbackable) {
  values_["net.core.somaxconn"] = "8192";
  values_["net.ipv4.tcp_fin_timeout"] = "31";  // rounded by the kernel, say
  WriteJournal({Record(
      "c1", ChangeState::kApplying,
      {{"net.core.somaxconn", "4096", "8192", ""}, {"net.ipv4.tcp_fin_timeout", "60", "30", ""}})});
  Start();
  EXPECT_EQ(values_["net.core.somaxconn"], "4096");
  EXPECT_EQ(values_["net.ipv4.tcp_fin_timeout"], "31");
  ChangeRecord r = Get("c1");
  EXPECT_EQ(r.state, ChangeState::kRollbackFailed);
  EXPECT_THAT(r.events.back().what, HasSubstr("changed by someone else"));
  ASSERT_TRUE(manager_->Rollback("c1", "test", /*force=*/true).ok());
  EXPECT_EQ(values_["net.ipv4.tcp_fin_timeout"], "60");
}

TEST_F(ManagerTest, ExpiryRestoresWhatItCanRetriesThenGivesUp) {
  values_["net.core.somaxconn"] = "8192";
  values_["net.ipv4.tcp_fin_timeout"] = "30";
  fail_.insert("net.ipv4.tcp_fin_timeout");
  ChangeRecord r = Record(
      "c1", ChangeState::kPending,
      {{"net.core.somaxconn", "4096", "8192", ""}, {"net.ipv4.tcp_fin_timeout", "60", "30", ""}});
  r.confirm_deadline = absl::Now() - absl::Seconds(1);
  WriteJournal({r});
  Start();  // overdue: the first attempt runs at start
  // somaxconn is restored and stays restored; fin_timeout cannot be written.
  EXPECT_EQ(values_["net.core.somaxconn"], "4096");
  EXPECT_EQ(values_["net.ipv4.tcp_fin_timeout"], "30");
  EXPECT_EQ(Get("c1").state, ChangeState::kPending);
  for (int i = 0; i < 200 && Get("c1").state == ChangeState::kPending; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    manager_->Tick();
  }
  ChangeRecord after = Get("c1");
  EXPECT_EQ(after.state, ChangeState::kRollbackFailed);
  EXPECT_THAT(after.events.back().what, HasSubstr("gave up rolling back after 5 attempts"));
  EXPECT_EQ(values_["net.core.somaxconn"], "4096");
  // Once the cause is gone, a rollback finishes it.
  fail_.clear();
  ASSERT_TRUE(manager_->Rollback("c1", "test", false).ok());
  EXPECT_EQ(values_["net.ipv4.tcp_fin_timeout"], "60");
}

TEST_F(ManagerTest, RollbacksGoNewestFirstOnAKnob) {
  values_["net.core.somaxconn"] = "16384";
  WriteJournal(
      {Record("old", ChangeState::kConfirmed, {{"net.core.somaxconn", "4096", "8192", ""}}),
       Record("new", ChangeState::kConfirmed, {{"net.core.somaxconn", "8192", "16384", ""}})});
  Start();
  auto refused = manager_->Rollback("old", "test", false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("changed again by change new"));
  EXPECT_EQ(values_["net.core.somaxconn"], "16384");
  ASSERT_TRUE(manager_->Rollback("new", "test", false).ok());
  ASSERT_TRUE(manager_->Rollback("old", "test", false).ok());
  EXPECT_EQ(values_["net.core.somaxconn"], "4096");
}

TEST_F(ManagerTest, CommitConfirmedAndTheJournalSurvivesARestart) {
  Start();
  auto applied = manager_->Apply(Limits({{"somaxconn", "8192"}}), "op", absl::Seconds(30), "");
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_TRUE(applied->change.has_value());
  const std::string id = applied->change->id;
  EXPECT_EQ(applied->change->state, ChangeState::kPending);
  EXPECT_EQ(values_["net.core.somaxconn"], "8192");
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
  EXPECT_EQ(values_["net.core.somaxconn"], "8192");
  EXPECT_EQ(manager_->Apply(Limits({{"somaxconn", "9000"}}), "op", absl::ZeroDuration(), "")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      manager_->Apply(Limits({{"somaxconn", "9000"}}), "op", std::nullopt, "", id).status().code(),
      absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace netagent::tuners
