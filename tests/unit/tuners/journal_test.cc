#include "tuners/journal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace netagent::tuners {
namespace {

using ::testing::HasSubstr;

ChangeRecord Sample(const std::string& id, ChangeState state) {
  ChangeRecord r;
  r.id = id;
  r.created = absl::FromUnixSeconds(1795000000);
  r.caller = "unix uid=0 gid=0 pid=42";
  r.intent = "sysctl net.ipv4.tcp_rmem=4096 131072 50000000";
  r.digest = "0123456789abcdef";
  r.state = state;
  r.confirm_deadline = absl::FromUnixSeconds(1795000060) + absl::Milliseconds(250);
  r.knobs.push_back({"net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 50000000",
                     "max = 2 x BDP: \"quoted\", colon: yes\ttab"});
  r.knobs.push_back({"veth0:rx-0/rps_cpus", "0", "3", "spread"});
  r.Event(r.created, "applying for unix uid=0");
  r.drift.push_back({"veth0:rx-0/rps_cpus", "3", "1", r.created + absl::Seconds(5)});
  return r;
}

TEST(Journal, RoundTripsEveryField) {
  Journal j = *Journal::FromYaml("", "/nonexistent");
  j.records().push_back(Sample("a", ChangeState::kPending));
  j.records().push_back(Sample("b", ChangeState::kRollbackFailed));
  j.baseline()["net.ipv4.tcp_rmem"] = {"4096 131072 6291456", absl::FromUnixSeconds(1794999999)};
  const std::string yaml = j.ToYaml();
  auto back = Journal::FromYaml(yaml, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->records().size(), 2u);
  const ChangeRecord& r = back->records()[0];
  const ChangeRecord want = Sample("a", ChangeState::kPending);
  EXPECT_EQ(r.id, "a");
  EXPECT_EQ(r.created, want.created);
  EXPECT_EQ(r.caller, want.caller);
  EXPECT_EQ(r.intent, want.intent);
  EXPECT_EQ(r.state, ChangeState::kPending);
  EXPECT_EQ(r.confirm_deadline, want.confirm_deadline);
  ASSERT_EQ(r.knobs.size(), 2u);
  EXPECT_EQ(r.knobs[0].reason, want.knobs[0].reason);
  EXPECT_EQ(r.knobs[0].new_value, "4096 131072 50000000");
  EXPECT_EQ(r.events[0].what, "applying for unix uid=0");
  EXPECT_EQ(r.drift[0].observed, "1");
  EXPECT_EQ(back->records()[1].state, ChangeState::kRollbackFailed);
  EXPECT_EQ(back->baseline()["net.ipv4.tcp_rmem"].value, "4096 131072 6291456");
  EXPECT_EQ(back->ToYaml(), yaml);
}

TEST(Journal, IdsAndBaselineNamesWithControlCharactersRoundTrip) {
  // They were written as plain scalars: a CR at the end was read back as a
  // line break, so "c-\r" came back as "c-" (the change lost its id).
  Journal j = *Journal::FromYaml("", "x");
  j.records().push_back(Sample("c-\r", ChangeState::kConfirmed));
  j.records().push_back(Sample("d\r- e", ChangeState::kPending));
  j.baseline()["k\r"] = {"1", absl::FromUnixSeconds(1794999999)};
  const std::string yaml = j.ToYaml();
  auto back = Journal::FromYaml(yaml, "x");
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
  ASSERT_EQ(back->records().size(), 2u);
  EXPECT_EQ(back->records()[0].id, "c-\r");
  EXPECT_EQ(back->records()[1].id, "d\r- e");
  EXPECT_EQ(back->baseline().count("k\r"), 1u);
  EXPECT_EQ(back->ToYaml(), yaml);
}

TEST(Journal, ACorruptFileIsAnErrorNotAnEmptyJournal) {
  EXPECT_EQ(Journal::FromYaml("version: 1\nchanges: [ {id: x", "j").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_THAT(Journal::FromYaml("version: 7\n", "j").status().message(), HasSubstr("version 1"));
  EXPECT_THAT(
      Journal::FromYaml(
          "version: 1\nchanges:\n- {id: x, created: 2026-01-01T00:00:00Z, state: odd}\n", "j")
          .status()
          .message(),
      HasSubstr("state \"odd\""));
}

TEST(Journal, SavesAtomicallyAndLoads) {
  char tmpl[] = "/tmp/na-journal-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/journal.yaml";
  {
    auto j = Journal::Load(path);  // absent: empty
    ASSERT_TRUE(j.ok());
    EXPECT_TRUE(j->records().empty());
    j->records().push_back(Sample("a", ChangeState::kConfirmed));
    ASSERT_TRUE(j->Save().ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto j = Journal::Load(path);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->records()[0].state, ChangeState::kConfirmed);
  std::filesystem::remove_all(tmpl);
}

TEST(Journal, EventsAreBoundedAndSayWhatWasDropped) {
  ChangeRecord r;
  for (int i = 0; i < 1000; ++i) r.Event(absl::FromUnixSeconds(i), absl::StrCat("e", i));
  EXPECT_EQ(r.events.size(), 200u);
  EXPECT_EQ(r.events[0].what, "e0");
  EXPECT_EQ(r.events[19].what, "e19 (some later events dropped)");
  EXPECT_EQ(r.events[20].what, "e820");
  EXPECT_EQ(r.events.back().what, "e999");
}

TEST(Journal, PruneKeepsEveryActiveChange) {
  Journal j = *Journal::FromYaml("", "x");
  j.records().push_back(Sample("old-done", ChangeState::kRolledBack));
  j.records().push_back(Sample("active", ChangeState::kConfirmed));
  j.records().push_back(Sample("done", ChangeState::kExpired));
  j.records().push_back(Sample("pending", ChangeState::kPending));
  j.Prune(1);
  ASSERT_EQ(j.records().size(), 3u);
  EXPECT_EQ(j.records()[0].id, "active");
  EXPECT_EQ(j.records()[1].id, "done");
  EXPECT_EQ(j.records()[2].id, "pending");
}

}  // namespace
}  // namespace netagent::tuners
