// deploy/prometheus/netagent.rules.yml against the diagnosis catalog: one
// alert per rule, none for a rule the agent does not have.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "diagnosis/rules.h"
#include "re2/re2.h"

namespace netagent::diagnosis {
namespace {

TEST(AlertRules, OneAlertPerRuleOfTheCatalog) {
  const YAML::Node doc =
      YAML::LoadFile(std::string(NETAGENT_SOURCE_DIR) + "/deploy/prometheus/netagent.rules.yml");
  std::set<std::string> alerted;
  for (const auto& group : doc["groups"]) {
    if (group["name"].as<std::string>() != "netagent-findings") continue;
    for (const auto& rule : group["rules"]) {
      std::string id;
      const std::string expr = rule["expr"].as<std::string>();
      ASSERT_TRUE(RE2::FullMatch(expr, R"re(netagent_finding\{rule="([a-z-]+)"\} == 1)re", &id))
          << expr;
      EXPECT_TRUE(alerted.insert(id).second) << "two alerts for " << id;
      EXPECT_TRUE(FindRule(id)) << "an alert for " << id << ", which the catalog does not have";
      EXPECT_THAT(rule["annotations"]["description"].as<std::string>(),
                  ::testing::HasSubstr("--explain " + id));
    }
  }
  std::set<std::string> catalog;
  for (const RuleSpec& r : Catalog()) catalog.insert(r.id);
  EXPECT_EQ(alerted, catalog);
}

}  // namespace
}  // namespace netagent::diagnosis
