// The journal's health as the agent reports it: conditions for GetHostInfo
// and the GetJournalStatus message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/tuning_service.h"

namespace netagent::agent {
namespace {

using ::testing::HasSubstr;

tuners::JournalHealth Quarantined() {
  tuners::JournalHealth h;
  h.path = "/var/lib/netagent/tuning/journal.yaml";
  tuners::JournalHealth::Quarantine q;
  q.moved_to = h.path + ".corrupt-20300102T030405Z";
  q.error = "cut short: no end line (it begins saying 2 changes)";
  q.since = absl::FromUnixSeconds(1893553445);
  q.salvage.changes_read = 2;
  tuners::SalvagedChange c;
  c.id = "c1";
  c.state = tuners::ChangeState::kPending;
  c.confirm_deadline = absl::FromUnixSeconds(1893553500);
  c.knobs.push_back({"net.core.somaxconn", "4096", "8192", ""});
  q.salvage.possibly_in_effect.push_back(c);
  h.quarantine = q;
  return h;
}

TEST(JournalConditions, AHealthyJournalHasNone) {
  tuners::JournalHealth h;
  h.path = "/x/journal.yaml";
  EXPECT_TRUE(JournalConditions(h).empty());
}

TEST(JournalConditions, AQuarantineIsCriticalAndSaysWhatToDo) {
  auto conditions = JournalConditions(Quarantined());
  ASSERT_EQ(conditions.size(), 1u);
  const Condition& c = conditions[0];
  EXPECT_EQ(c.id, "tuning-journal-quarantined");
  EXPECT_EQ(c.severity, ConditionSeverity::kCritical);
  EXPECT_THAT(c.summary, HasSubstr("/var/lib/netagent/tuning/journal.yaml could not be read (cut "
                                   "short"));
  EXPECT_THAT(c.summary, HasSubstr("set aside as /var/lib/netagent/tuning/journal.yaml.corrupt-"));
  EXPECT_THAT(c.summary, HasSubstr("net.core.somaxconn \"4096\" -> \"8192\""));
  EXPECT_THAT(c.summary, HasSubstr("applying tuning is refused"));
  EXPECT_THAT(c.action, HasSubstr("netctl tune journal ack"));
  EXPECT_EQ(c.since, absl::FromUnixSeconds(1893553445));
}

TEST(JournalConditions, FailingWritesAreAWarningNamingTheDirectory) {
  tuners::JournalHealth h;
  h.path = "/var/lib/netagent/tuning/journal.yaml";
  h.save_error = "create ...tmp: Read-only file system (errno 30)";
  h.save_failing_since = absl::FromUnixSeconds(1893553445);
  auto conditions = JournalConditions(h);
  ASSERT_EQ(conditions.size(), 1u);
  EXPECT_EQ(conditions[0].id, "tuning-journal-not-saved");
  EXPECT_EQ(conditions[0].severity, ConditionSeverity::kWarning);
  EXPECT_THAT(conditions[0].summary, HasSubstr("Read-only file system"));
  EXPECT_THAT(conditions[0].action, HasSubstr("make /var/lib/netagent/tuning writable"));
}

TEST(JournalStatusProto, CarriesWhatTheFileHeld) {
  netagent::v1::JournalStatus s;
  ToProto(Quarantined(), &s);
  ASSERT_TRUE(s.has_quarantine());
  EXPECT_EQ(s.quarantine().changes_read(), 2u);
  ASSERT_EQ(s.quarantine().possibly_in_effect_size(), 1);
  const auto& c = s.quarantine().possibly_in_effect(0);
  EXPECT_EQ(c.id(), "c1");
  EXPECT_EQ(c.state(), netagent::v1::CHANGE_STATE_PENDING_CONFIRM);
  EXPECT_EQ(c.confirm_deadline().seconds(), 1893553500);
  EXPECT_EQ(c.knobs(0).new_value(), "8192");
  EXPECT_THAT(s.quarantine().summary(), HasSubstr("values may be left changed"));
  EXPECT_FALSE(s.has_save_failing_since());
}

}  // namespace
}  // namespace netagent::agent
