#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "client/commands.h"
#include "netagent/v1/diagnosis.pb.h"

namespace netagent::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Doctor, IntentsBecomeTheCommandsToRun) {
  v1::TuningIntent i;
  auto* s = i.mutable_limits()->add_settings();
  s->set_name("somaxconn");
  s->set_value("1024");
  auto* r = i.mutable_limits()->add_settings();
  r->set_name("ip_local_port_range");
  r->set_value("10240 65000");
  EXPECT_EQ(IntentCommand(i, "plan"),
            "netctl tune plan limits --set somaxconn=1024 --set 'ip_local_port_range=10240 65000'");
  v1::TuningIntent c;
  c.mutable_congestion()->set_algorithm("bbr");
  EXPECT_EQ(IntentCommand(c, "apply"), "netctl tune apply cc bbr");
  v1::TuningIntent irq;
  irq.mutable_irq_affinity()->set_device("eth0");
  EXPECT_EQ(IntentCommand(irq, "plan"), "netctl tune plan irq --dev eth0");
  v1::TuningIntent bdp;
  bdp.mutable_bdp()->set_observed(true);
  EXPECT_EQ(IntentCommand(bdp, "apply"), "netctl tune apply bdp --observed");
  v1::TuningIntent sys;
  auto* x = sys.mutable_sysctl()->add_settings();
  x->set_name("net.core.netdev_max_backlog");
  x->set_value("2048");
  EXPECT_EQ(IntentCommand(sys, "plan"),
            "netctl tune plan sysctl --set net.core.netdev_max_backlog=2048");
}

TEST(Doctor, AFindingPrintsEvidenceWhereWhyFixAndVerify) {
  v1::DiagnoseResponse resp;
  resp.mutable_window()->set_seconds(5);
  resp.set_rules_run(14);
  auto* f = resp.add_findings();
  f->set_rule("listen-overflow");
  f->set_severity(v1::SEVERITY_CRITICAL);
  f->set_summary("412 accept-queue overflows in 10 s");
  auto* e = f->add_evidence();
  e->set_name("TcpExtListenOverflows");
  e->set_value(41.2);
  e->set_unit("/s");
  e->set_delta(412);
  auto* a = f->add_attribution();
  a->set_kind("listener");
  a->set_object("0.0.0.0:8080\x1b[31m");  // a caller's bytes must not reach the terminal
  a->set_detail("full in 9 of 9 samples");
  f->set_explanation("the mechanism");
  auto* set = f->mutable_remediation()->mutable_intent()->mutable_limits()->add_settings();
  set->set_name("somaxconn");
  set->set_value("1024\x1b]0;x\a");
  f->mutable_remediation()->set_summary("raise somaxconn");
  auto* ch = f->mutable_remediation()->mutable_plan()->add_changes();
  ch->set_knob("net.core.somaxconn");
  ch->set_old_value("64");
  ch->set_new_value("1024");
  f->mutable_remediation()->add_limits("the backlog is fixed at listen()");
  f->mutable_verification()->set_measurement("TcpExtListenOverflows per second");
  f->mutable_verification()->set_condition("0 over the same window");
  resp.add_unavailable("conntrack: no module");
  std::ostringstream out;
  PrintDiagnosis(resp, out);
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("CRITICAL listen-overflow: 412 accept-queue overflows in 10 s\n"));
  EXPECT_THAT(text, HasSubstr("TcpExtListenOverflows  41.2 /s    412\n"));
  EXPECT_THAT(text, HasSubstr("  where: listener 0.0.0.0:8080"));
  EXPECT_THAT(text, Not(HasSubstr("\x1b"))) << "escapes reach the terminal";
  EXPECT_THAT(text, HasSubstr("  fix: raise somaxconn\n    netctl tune plan limits --set"));
  EXPECT_THAT(text, HasSubstr("    plan: net.core.somaxconn 64 -> 1024\n"));
  EXPECT_THAT(text, HasSubstr("  cannot: the backlog is fixed at listen()\n"));
  EXPECT_THAT(text,
              HasSubstr("  verify: TcpExtListenOverflows per second: 0 over the same window"));
  EXPECT_THAT(text, HasSubstr("not measured: conntrack: no module"));
  std::ostringstream none;
  PrintDiagnosis(v1::DiagnoseResponse(), none);
  EXPECT_THAT(none.str(), HasSubstr("no findings (0 rules over 0 s)"));
}

}  // namespace
}  // namespace netagent::client
