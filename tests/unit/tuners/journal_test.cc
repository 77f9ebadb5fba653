#include "tuners/journal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "tests/unit/fixtures.h"
#include "tuners/knobs.h"

namespace netagent::tuners {
namespace {

using ::netagent::testing::Fixture;
using ::testing::HasSubstr;
using ::testing::Not;

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
  Journal j = Journal::Empty("/nonexistent");
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

// Ids and owners the agent never gives are damage, not changes: two ids of
// non-UTF-8 bytes ("c\x9f-0", "c\xa4-0") both saved as "c\uFFFD-0", and
// the journal the agent had just written refused to load (found by the
// fuzz campaign).
TEST(Journal, IdsAndOwnersTheAgentNeverGivesAreRefused) {
  for (const std::string& id :
       std::vector<std::string>{"c\r", "d\r- e", "c\x9f-0", "has space", std::string(65, 'a')}) {
    Journal j = Journal::Empty("x");
    j.records().push_back(Sample(id, ChangeState::kConfirmed));
    auto back = Journal::FromYaml(j.ToYaml(), "x");
    ASSERT_FALSE(back.ok()) << id;
    EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(back.status().message(), HasSubstr("never gives"));
  }
  Journal j = Journal::Empty("x");
  j.records().push_back(Sample("c-1", ChangeState::kConfirmed));
  j.records().back().owner =
      "tok\xa4"
      "en";
  auto back = Journal::FromYaml(j.ToYaml(), "x");
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(back.status().message(), HasSubstr("never keeps"));
}

// The agent writes UTF-8 only: other bytes anywhere (here knob names of the
// baseline, which would save as U+FFFD, in another order) are damage, not a
// journal it wrote. Found by the journal fuzz harness.
TEST(Journal, BytesThatAreNotUtf8AreDamage) {
  const std::string text =
      "version: 1\ncount: 0\nbaseline:\n"
      "  \"net.core.\xff\xffrmem_max\":\n    value: \"1\"\n    seen: 2026-12-04T10:00:00Z\n"
      "  \"net.core.rmem_max\":\n    value: \"2\"\n    seen: 2026-12-04T10:00:00Z\n"
      "changes: []\nend: 0\n";
  auto j = Journal::FromYaml(text, "j");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(j.status().message(), HasSubstr("not UTF-8 at byte 42"));
  // The same journal in UTF-8 loads, and saves to text that loads the same.
  std::string fixed = text;
  fixed.replace(fixed.find("\xff\xff"), 2, "x");
  fixed.replace(fixed.find("value: \"1\""), 10, "value: \"caf\xc3\xa9\"");
  // But not with escapes that spell the noncharacters the writer replaces
  // too (values of U+FFFE and U+FFFF would save as one).
  for (const std::string& value : {"\\uFFFE", "\\U0010FFFF", "\\uFDD0"}) {
    std::string escaped = fixed;
    escaped.replace(escaped.find("caf\xc3\xa9"), 5, value);
    auto e = Journal::FromYaml(escaped, "j");
    ASSERT_FALSE(e.ok()) << value;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kDataLoss) << value;
    EXPECT_THAT(e.status().message(), HasSubstr("not text the agent writes")) << value;
  }
  auto ok = Journal::FromYaml(fixed, "j");
  ASSERT_TRUE(ok.ok()) << ok.status();
  auto again = Journal::FromYaml(ok->ToYaml(), "j");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToYaml(), ok->ToYaml());
}

// Baselines are of sysctls: another name (control characters, or over 1,024
// bytes, which YAML cannot even save as a key) is damage. Found by the
// journal fuzz harness.
TEST(Journal, BaselineNamesAreSysctlNames) {
  for (const std::string& name :
       {std::string("net.core\x19\x1f"), std::string(1100, 'a'), std::string("a b")}) {
    Journal j = Journal::Empty("x");
    j.baseline()[name] = {"1", absl::FromUnixSeconds(1795000000)};
    auto back = Journal::FromYaml(j.ToYaml(), "x");
    ASSERT_FALSE(back.ok()) << name.size();
    EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(back.status().message(), HasSubstr("no sysctl name the agent keeps"));
  }
  // Every sysctl the agent manages keeps its baseline, and reads back as is.
  Journal j = Journal::Empty("x");
  for (const SysctlSpec& spec : SysctlRegistry())
    j.baseline()[spec.name] = {"1", absl::FromUnixSeconds(1795000000)};
  ASSERT_GT(j.baseline().size(), 10u);
  auto back = Journal::FromYaml(j.ToYaml(), "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToYaml(), j.ToYaml());
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
  Journal j = Journal::Empty("x");
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

// Files a journal can become: each is DATA_LOSS saying why, never an empty
// or a shorter history.
TEST(Journal, EveryDamagedFixtureIsDataLossSayingWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty.yaml", "empty (0 bytes)"},
      {"truncated.yaml", "cut short: no end line (it begins saying 3 changes)"},
      {"garbage.yaml", "yaml-cpp: error at line 1"},
      {"unknown_version.yaml", "version \"2\", and this agent reads version 1"},
      {"bad_state.yaml", "change \"20300102-031000-3c4d\" has state \"half_applied\""},
      {"bad_time.yaml", "bad time in change \"20300102-031000-3c4d\": \"in five minutes\""},
      {"binary.bin", "binary data (a NUL byte at offset 3)"},
  };
  for (const auto& [file, why] : cases) {
    auto j = Journal::FromYaml(Fixture("journal/" + file), "j");
    EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss) << file << ": " << j.status();
    EXPECT_THAT(j.status().message(), HasSubstr(why)) << file;
  }
  EXPECT_THAT(Journal::FromYaml(" \n\n", "j").status().message(), HasSubstr("empty (3 bytes)"));
}

TEST(Journal, TheWrittenLayoutRoundTripsAndALegacyOneStillLoads) {
  const std::string valid = Fixture("journal/valid.yaml");
  auto j = Journal::FromYaml(valid, "j");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->records().size(), 3u);
  EXPECT_EQ(j->ToYaml(), valid);
  // As agents before `count` and `end` wrote it.
  auto legacy = Journal::FromYaml(Fixture("journal/legacy_v1.yaml"), "j");
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_EQ(legacy->ToYaml(), valid);
}

TEST(Journal, AFileCutAnywhereDoesNotLoad) {
  const std::string valid = Fixture("journal/valid.yaml");
  // Only the final newline may go.
  for (size_t n = 0; n + 1 < valid.size(); ++n) {
    auto j = Journal::FromYaml(valid.substr(0, n), "j");
    ASSERT_FALSE(j.ok()) << "a file cut at byte " << n << " loaded:\n" << valid.substr(0, n);
    EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss) << n;
  }
  EXPECT_TRUE(Journal::FromYaml(valid.substr(0, valid.size() - 1), "j").ok());
}

TEST(Journal, JournalEventsAndBadStructureAreChecked) {
  Journal j = Journal::Empty("x");
  j.events().push_back({absl::FromUnixSeconds(1893553445), "fresh journal: acknowledged"});
  auto back = Journal::FromYaml(j.ToYaml(), "x");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->events().size(), 1u);
  EXPECT_EQ(back->events()[0].what, "fresh journal: acknowledged");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"version: 1\nchanges: {a: b}\n", "changes is not a list"},
      {"version: 1\nchanges:\n  - {created: 2030-01-01T00:00:00Z, state: confirmed}\n",
       "change 1 has no id"},
      {"version: 1\nchanges:\n  - {id: a, created: 2030-01-01T00:00:00Z, state: confirmed}\n"
       "  - {id: a, created: 2030-01-01T00:00:00Z, state: confirmed}\n",
       "change \"a\" appears twice"},
      {"version: 1\nchanges:\n  - {id: a, created: 2030-01-01T00:00:00Z, state: "
       "pending_confirm}\n",
       "waits for a confirmation but has no deadline"},
      {"version: 1\ncount: 2\nchanges: []\nend: 2\n", "it says 2 changes and holds 0"},
      {"version: 1\ncount: 1\nchanges: []\nend: 12\n", "ends with \"12\""},
      {"just a line of text\n", "not a journal"},
      {"version: [1]\n", "version (a list)"},
  };
  for (const auto& [text, why] : cases) {
    auto r = Journal::FromYaml(text, "j");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << text;
    EXPECT_THAT(r.status().message(), HasSubstr(why)) << text;
  }
}

TEST(Journal, SalvageNamesWhatADamagedFileMayHaveLeftOnTheHost) {
  Salvage s = SalvageJournal(Fixture("journal/truncated.yaml"));
  EXPECT_EQ(s.changes_read, 3u);
  ASSERT_EQ(s.possibly_in_effect.size(), 2u);  // the rolled-back one is not
  const SalvagedChange& confirmed = s.possibly_in_effect[0];
  EXPECT_EQ(confirmed.id, "20300102-030405-1a2b");
  EXPECT_EQ(confirmed.state, ChangeState::kConfirmed);
  ASSERT_EQ(confirmed.knobs.size(), 2u);
  EXPECT_EQ(confirmed.knobs[1].knob, "net.ipv4.tcp_fin_timeout");
  EXPECT_EQ(confirmed.knobs[1].old_value, "60");
  EXPECT_EQ(confirmed.knobs[1].new_value, "30");
  const SalvagedChange& pending = s.possibly_in_effect[1];
  EXPECT_EQ(pending.state, ChangeState::kPending);
  EXPECT_EQ(pending.confirm_deadline, absl::FromUnixSeconds(1893554100));
  ASSERT_EQ(pending.knobs.size(), 1u);  // not the drift entry
  EXPECT_EQ(pending.knobs[0].new_value, "4096 131072 50000000");
  EXPECT_EQ(DescribeSalvage(s),
            "possibly in effect: change 20300102-030405-1a2b (confirmed): net.core.somaxconn "
            "\"4096\" -> \"8192\", net.ipv4.tcp_fin_timeout \"60\" -> \"30\"; change "
            "20300102-031000-3c4d (pending_confirm, was to roll back at "
            "2030-01-02T03:15:00+00:00): net.ipv4.tcp_rmem \"4096 131072 6291456\" -> \"4096 "
            "131072 50000000\"");
  // A state that does not read counts as possibly in effect.
  Salvage odd = SalvageJournal(Fixture("journal/bad_state.yaml"));
  ASSERT_EQ(odd.possibly_in_effect.size(), 2u);
  EXPECT_FALSE(odd.possibly_in_effect[1].state.has_value());
  EXPECT_THAT(DescribeSalvage(odd), HasSubstr("(state unreadable)"));
  for (const char* f : {"garbage.yaml", "binary.bin", "empty.yaml"}) {
    Salvage none = SalvageJournal(Fixture(std::string("journal/") + f));
    EXPECT_EQ(none.changes_read, 0u) << f;
    EXPECT_EQ(DescribeSalvage(none), "nothing could be read from it: check the knobs by hand");
  }
}

TEST(Journal, SalvagedTextIsMadePrintable) {
  // The damaged file may hold anything; what is read from it goes to logs
  // and terminals.
  Salvage s = SalvageJournal(
      "changes:\n  - id: a\x1b]0;owned\x07\n    state: confirmed\n    knobs:\n"
      "      - knob: \"net.core.somaxconn\"\n        old: \"4096\"\n        new: \"\x1b[2J\"\n");
  ASSERT_EQ(s.possibly_in_effect.size(), 1u);
  EXPECT_EQ(s.possibly_in_effect[0].id, "a\\x1b]0;owned\\x07");
  EXPECT_EQ(s.possibly_in_effect[0].knobs[0].new_value, "\\x1b[2J");
  EXPECT_EQ(DescribeSalvage(s).find('\x1b'), std::string::npos);
}

TEST(Journal, QuarantineRenamesAsideNeverOverAnEarlierOne) {
  char tmpl[] = "/tmp/na-journal-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/journal.yaml";
  const absl::Time at = absl::FromUnixSeconds(1893553445);
  std::ofstream(path) << "first";
  auto first = QuarantineJournalFile(path, at);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, path + ".corrupt-20300102T030405Z");
  std::ofstream(path) << "second";
  auto second = QuarantineJournalFile(path, at);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, path + ".corrupt-20300102T030405Z-2");
  EXPECT_FALSE(std::filesystem::exists(path));
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read(*first), "first");
  EXPECT_EQ(read(*second), "second");
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace netagent::tuners

namespace netagent::tuners {
namespace {

class JournalLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/na-journal-log-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/journal.yaml";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void Write(const std::string& p, const std::string& text) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  }
  // The journal as a load of the files finds it, in the snapshot's layout.
  std::string Loaded() {
    auto j = Journal::Load(path_);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? j->ToYaml() : "";
  }

  std::string dir_, path_;
};

// A save appends one entry per record that changed, whatever the history's
// length; the snapshot stays as it was; a load gives back the journal.
TEST_F(JournalLogTest, ASaveAppendsOnlyWhatChanged) {
  Journal j = Journal::Empty(path_);
  for (int i = 0; i < 300; ++i)
    j.records().push_back(Sample(absl::StrCat("c", i), ChangeState::kConfirmed));
  ASSERT_TRUE(j.Save().ok());  // the first save writes a snapshot
  const std::string snapshot = Read(path_);
  const size_t log_after_snapshot = Read(path_ + ".log.1").size();
  ASSERT_TRUE(j.Save().ok());  // nothing changed: nothing written
  EXPECT_EQ(Read(path_ + ".log.1").size(), log_after_snapshot);
  j.Find("c7")->state = ChangeState::kRolledBack;
  j.Find("c7")->Event(absl::FromUnixSeconds(1795000100), "rolled back by op");
  ASSERT_TRUE(j.Save().ok());
  const std::string log = Read(path_ + ".log.1");
  EXPECT_EQ(Read(path_), snapshot);
  EXPECT_LT(log.size() - log_after_snapshot, 2000u) << "more than one record was written";
  EXPECT_THAT(log, HasSubstr("id: \"c7\""));
  j.records().push_back(Sample("new", ChangeState::kPending));
  j.baseline()["net.core.somaxconn"] = {"4096", absl::FromUnixSeconds(1795000000)};
  ASSERT_TRUE(j.Save().ok());
  EXPECT_EQ(Loaded(), j.ToYaml());
}

// The last append cut at any byte (a crash in the middle of it) is dropped,
// and the log cut back so the next append follows whole entries.
TEST_F(JournalLogTest, AnAppendCutShortAnywhereIsDroppedAndTheRestLoads) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kPending));
  ASSERT_TRUE(j.Save().ok());
  j.Find("a")->state = ChangeState::kConfirmed;
  ASSERT_TRUE(j.Save().ok());
  const std::string before = j.ToYaml();
  const std::string log_before = Read(path_ + ".log.1");
  j.Find("a")->state = ChangeState::kRolledBack;
  ASSERT_TRUE(j.Save().ok());
  const std::string after = j.ToYaml();
  const std::string log_after = Read(path_ + ".log.1");
  ASSERT_GT(log_after.size(), log_before.size());
  for (size_t cut = log_before.size(); cut <= log_after.size(); ++cut) {
    Write(path_ + ".log.1", log_after.substr(0, cut));
    const bool whole = cut == log_after.size();
    EXPECT_EQ(Loaded(), whole ? after : before) << "cut at " << cut;
    if (!whole) EXPECT_EQ(Read(path_ + ".log.1"), log_before) << "cut at " << cut;
    if (HasFailure()) return;
  }
  // The last entry whole but wrong (zeros a crash can leave): dropped too.
  std::string zeroed = log_after;
  std::fill(zeroed.begin() + static_cast<long>(log_after.size()) - 20, zeroed.end(), '\0');
  Write(path_ + ".log.1", zeroed);
  EXPECT_EQ(Loaded(), before);
}

TEST_F(JournalLogTest, DamageBeforeTheLastEntryIsDataLoss) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kPending));
  ASSERT_TRUE(j.Save().ok());
  for (auto s : {ChangeState::kConfirmed, ChangeState::kRolledBack}) {
    j.Find("a")->state = s;
    ASSERT_TRUE(j.Save().ok());
  }
  std::string log = Read(path_ + ".log.1");
  const size_t first_state = log.find("state: confirmed");
  ASSERT_NE(first_state, std::string::npos);
  log[first_state + 7] = 'X';
  Write(path_ + ".log.1", log);
  auto loaded = Journal::Load(path_);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().message(), HasSubstr("checksum"));
  Write(path_ + ".log.1", "garbage\n");
  EXPECT_EQ(Journal::Load(path_).status().code(), absl::StatusCode::kDataLoss);
}

// An entry whose checksum matches but whose bytes are not UTF-8 was not
// written by the agent: data loss, like any other damage.
TEST_F(JournalLogTest, AnEntryThatIsNotUtf8IsDataLoss) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kPending));
  ASSERT_TRUE(j.Save().ok());
  const std::string log = Read(path_ + ".log.1");
  const std::string body =
      "baseline:\n  \"net.core.\xffsomaxconn\":\n    value: \"1\"\n"
      "    seen: 2026-12-04T10:00:00Z";
  uint64_t sum = 1469598103934665603ull;  // FNV-1a, as the journal frames entries
  for (unsigned char c : body) {
    sum ^= c;
    sum *= 1099511628211ull;
  }
  Write(path_ + ".log.1", absl::StrCat(log, "entry baseline ", body.size() + 1, " ",
                                       absl::Hex(sum, absl::kZeroPad16), "\n", body, "\n"));
  auto loaded = Journal::Load(path_);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().message(), HasSubstr("is not UTF-8"));
}

// Salvage reads the log's entries like the snapshot's changes; a change's
// last version counts.
TEST_F(JournalLogTest, SalvageReadsTheLogToo) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("old", ChangeState::kConfirmed));
  ASSERT_TRUE(j.Save().ok());
  j.records().push_back(Sample("only-in-log", ChangeState::kPending));
  ASSERT_TRUE(j.Save().ok());
  j.Find("old")->state = ChangeState::kRolledBack;
  ASSERT_TRUE(j.Save().ok());
  const Salvage s = SalvageJournal(Read(path_) + "\n" + Read(path_ + ".log.1"));
  EXPECT_EQ(s.changes_read, 2u);
  ASSERT_EQ(s.possibly_in_effect.size(), 1u);
  EXPECT_EQ(s.possibly_in_effect[0].id, "only-in-log");
  EXPECT_EQ(s.possibly_in_effect[0].knobs.size(), 2u);
}

// Compaction: appends move to the next log at once; the snapshot is written
// later (by the manager's thread, outside its lock). Killed in between, a
// load replays the old snapshot and both logs; once written, the old log
// goes.
TEST_F(JournalLogTest, CompactionChainsLogsUntilItsSnapshotIsWritten) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kPending));
  ASSERT_TRUE(j.Save().ok());
  EXPECT_THAT(Read(path_), HasSubstr("log_generation: 1"));
  for (size_t i = 0; i + 1 < Journal::kCompactAfterEntries; ++i) {
    j.Find("a")->digest = absl::StrCat("digest ", i);
    ASSERT_TRUE(j.Save().ok());
    EXPECT_FALSE(j.StartCompaction().has_value()) << i;
  }
  j.Find("a")->digest = "last in log 1";
  ASSERT_TRUE(j.Save().ok());
  std::optional<Journal::PendingSnapshot> pending = j.StartCompaction();
  ASSERT_TRUE(pending.has_value());
  EXPECT_EQ(pending->generation, 2u);
  EXPECT_THAT(pending->text, HasSubstr("last in log 1"));
  // Saves go on into log 2 while the snapshot is not written yet...
  j.Find("a")->digest = "in log 2";
  j.records().push_back(Sample("b", ChangeState::kConfirmed));
  ASSERT_TRUE(j.Save().ok());
  EXPECT_THAT(Read(path_ + ".log.2"), HasSubstr("in log 2"));
  // ...and an agent killed now finds everything: snapshot 1, log 1, log 2.
  EXPECT_THAT(Read(path_), HasSubstr("log_generation: 1"));
  EXPECT_EQ(Loaded(), j.ToYaml());
  ASSERT_TRUE(pending->Write().ok());
  j.FinishCompaction(*pending, absl::OkStatus());
  EXPECT_THAT(Read(path_), HasSubstr("log_generation: 2"));
  EXPECT_FALSE(std::filesystem::exists(path_ + ".log.1"));
  EXPECT_EQ(Loaded(), j.ToYaml());
  // A log older than the snapshot (left if the agent stopped before removing
  // it) is ignored, and removed by the next load.
  Write(path_ + ".log.1", "netagent journal log 1 follows generation 1\n");
  EXPECT_EQ(Loaded(), j.ToYaml());
  EXPECT_FALSE(std::filesystem::exists(path_ + ".log.1"));
  // A log of the chain missing in the middle is damage.
  Write(path_ + ".log.3", "netagent journal log 1 follows generation 3\n");
  std::filesystem::remove(path_ + ".log.2");
  EXPECT_EQ(Journal::Load(path_).status().code(), absl::StatusCode::kDataLoss);
}

// While a background snapshot is out, a save that would have to rewrite the
// snapshot itself fails (two writers could leave the older snapshot, naming
// a log already removed); once the compaction is finished it succeeds.
TEST_F(JournalLogTest, NoSecondSnapshotWhileACompactionIsOut) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kPending));
  ASSERT_TRUE(j.Save().ok());
  for (size_t i = 0; i < Journal::kCompactAfterEntries; ++i) {
    j.Find("a")->digest = absl::StrCat("digest ", i);
    ASSERT_TRUE(j.Save().ok());
  }
  std::optional<Journal::PendingSnapshot> pending = j.StartCompaction();
  ASSERT_TRUE(pending.has_value());
  EXPECT_FALSE(j.StartCompaction().has_value()) << "a second compaction while one is out";
  // Log 2 replaced behind the journal's back: the append refuses it and the
  // save would rewrite the snapshot, which must wait.
  Write(path_ + ".other", "netagent journal log 1 follows generation 2\n");
  std::filesystem::rename(path_ + ".other", path_ + ".log.2");
  j.Find("a")->state = ChangeState::kConfirmed;
  EXPECT_EQ(j.Save().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(pending->Write().ok());
  j.FinishCompaction(*pending, absl::OkStatus());
  ASSERT_TRUE(j.Save().ok());
  EXPECT_EQ(Loaded(), j.ToYaml());
}

// A snapshot that cannot be written leaves no log behind that follows no
// snapshot: the next save tries the whole snapshot again.
TEST_F(JournalLogTest, AFailedSnapshotLeavesNothingBehind) {
  ASSERT_EQ(::mkdir((path_ + ".tmp").c_str(), 0700), 0);  // the snapshot's write fails
  std::ofstream(path_ + ".tmp/keep") << "x";
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kPending));
  EXPECT_FALSE(j.Save().ok());
  EXPECT_FALSE(j.Save().ok()) << "the second save appended to a log no snapshot names";
  EXPECT_FALSE(std::filesystem::exists(path_ + ".log.1"));
  std::filesystem::remove_all(path_ + ".tmp");
  ASSERT_TRUE(j.Save().ok());
  EXPECT_EQ(Loaded(), j.ToYaml());
}

// A snapshot naming no log (written by an agent that kept none) is newer
// than any log beside it: those are ignored and removed.
TEST_F(JournalLogTest, ASnapshotWithoutALogIgnoresLeftoverLogs) {
  Journal j = Journal::Empty(path_);
  j.records().push_back(Sample("a", ChangeState::kConfirmed));
  Write(path_, j.ToYaml());
  ASSERT_THAT(Read(path_), Not(HasSubstr("log_generation")));
  Write(path_ + ".log.3", "netagent journal log 1 follows generation 3\n");
  EXPECT_EQ(Loaded(), j.ToYaml());
  EXPECT_FALSE(std::filesystem::exists(path_ + ".log.3"));
}

}  // namespace
}  // namespace netagent::tuners
