#include "datapath/rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace netagent::datapath {
namespace {

using ::testing::HasSubstr;

RuleEdit Add(RuleAction a, const char* prefix) {
  RuleEdit e;
  e.rule.action = a;
  e.rule.prefix = *ParsePrefix(prefix, "p");
  return e;
}
RuleEdit Del(uint32_t id) {
  RuleEdit e;
  e.kind = RuleEdit::kDelete;
  e.id = id;
  return e;
}

TEST(Prefixes, ParseBothFamiliesAndRefuseHostBits) {
  auto p = ParsePrefix("10.0.0.0/8", "f");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->family, 4);
  EXPECT_EQ(p->len, 8);
  EXPECT_FALSE(p->exact());
  EXPECT_TRUE(ParsePrefix("10.1.2.3", "f")->exact());
  EXPECT_EQ(ParsePrefix("0.0.0.0/0", "f")->len, 0);
  EXPECT_EQ(ParsePrefix("2001:db8::/32", "f")->family, 6);
  EXPECT_TRUE(ParsePrefix("::1", "f")->exact());
  EXPECT_EQ(ParsePrefix("::/0", "f")->len, 0);
  EXPECT_EQ(FormatPrefix(*ParsePrefix("2001:db8::/32", "f")), "2001:db8::/32");
  EXPECT_EQ(FormatPrefix(*ParsePrefix("192.0.2.1", "f")), "192.0.2.1");
  auto host = ParsePrefix("10.1.2.3/8", "rules[0].prefix");
  EXPECT_THAT(host.status().message(), HasSubstr("rules[0].prefix"));
  EXPECT_THAT(host.status().message(), HasSubstr("the network is 10.0.0.0/8"));
  EXPECT_THAT(ParsePrefix("10.0.0.128/25", "f").status().code(), absl::StatusCode::kOk);
  EXPECT_FALSE(ParsePrefix("10.0.0.129/25", "f").ok());
  EXPECT_FALSE(ParsePrefix("2001:db8::1/127", "f").ok());
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0",
                          "host.example", "1.2.3.4/8x", "fe80::1%eth0"}) {
    EXPECT_EQ(ParsePrefix(bad, "f").status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(RuleEdits, ABatchIsAllOrNothingAgainstARevision) {
  RuleSet s;
  auto r1 = ApplyEdits(
      s, 0, {Add(RuleAction::kBlock, "10.0.0.0/8"), Add(RuleAction::kAllow, "10.1.0.0/16")}, {});
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->revision, 1u);
  EXPECT_EQ(r1->rules.size(), 2u);
  EXPECT_EQ(r1->rules.at(1).action, RuleAction::kBlock);
  EXPECT_EQ(r1->rules.at(2).action, RuleAction::kAllow);
  // Stale revision.
  auto stale = ApplyEdits(*r1, 0, {Add(RuleAction::kBlock, "192.0.2.1")}, {});
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(stale.status().message(), HasSubstr("revision 1"));
  // One bad edit refuses the whole batch, naming it.
  auto bad = ApplyEdits(*r1, 1, {Add(RuleAction::kBlock, "192.0.2.1"), Del(99)}, {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(bad.status().message(), HasSubstr("edits[1].id"));
  // The same prefix may be on both lists (allow beats block), not twice on one.
  auto dup = ApplyEdits(*r1, 1, {Add(RuleAction::kBlock, "10.0.0.0/8")}, {});
  EXPECT_THAT(dup.status().message(), HasSubstr("edits[0]: block 10.0.0.0/8 is already rule 1"));
  EXPECT_TRUE(ApplyEdits(*r1, 1, {Add(RuleAction::kAllow, "10.0.0.0/8")}, {}).ok());
  // Deleting frees the id for reuse.
  auto r2 = ApplyEdits(*r1, 1, {Del(1), Add(RuleAction::kBlock, "203.0.113.0/24")}, {});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(FormatPrefix(*r2->rules.at(1).prefix), "203.0.113.0/24");
  EXPECT_EQ(r2->revision, 2u);
}

TEST(RuleEdits, SizeLimitsAreEnforced) {
  RuleLimits small;
  small.max_batch = 3;
  small.max_exact = 2;
  small.max_cidr = 1;
  RuleSet s;
  EXPECT_THAT(
      ApplyEdits(s, 0,
                 {Add(RuleAction::kBlock, "192.0.2.1"), Add(RuleAction::kBlock, "192.0.2.2"),
                  Add(RuleAction::kBlock, "192.0.2.3"), Add(RuleAction::kBlock, "192.0.2.4")},
                 small)
          .status()
          .message(),
      HasSubstr("4 edits; at most 3"));
  auto full =
      ApplyEdits(s, 0,
                 {Add(RuleAction::kBlock, "192.0.2.1"), Add(RuleAction::kBlock, "192.0.2.2"),
                  Add(RuleAction::kBlock, "192.0.2.3")},
                 small);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("3 exact IPv4 entries; at most 2"));
  // Per family and list: an IPv6 entry and an allow entry do not count against it.
  EXPECT_TRUE(
      ApplyEdits(s, 0,
                 {Add(RuleAction::kBlock, "192.0.2.1"), Add(RuleAction::kBlock, "192.0.2.2"),
                  Add(RuleAction::kBlock, "2001:db8::1")},
                 small)
          .ok());
  small.max_rule_id = 1;
  EXPECT_EQ(
      ApplyEdits(s, 0,
                 {Add(RuleAction::kBlock, "192.0.2.1"), Add(RuleAction::kBlock, "2001:db8::1")},
                 small)
          .status()
          .code(),
      absl::StatusCode::kResourceExhausted);
}

// Comments are printed in `rules list`: one holding an ANSI escape could
// draw a fake row over its own.
TEST(RuleEdits, CommentsAreTextWithoutControlCharacters) {
  RuleSet s;
  RuleEdit e = Add(RuleAction::kBlock, "192.0.2.1");
  for (const char* bad : {"\x1b[2K\rallow 10.0.0.1", "a\nb",
                          "\xc2\x9b"
                          "2K",
                          "caf\xe9"}) {
    e.rule.comment = bad;
    auto r = ApplyEdits(s, 0, {e}, RuleLimits());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("edits[0].comment: ")) << bad;
  }
  e.rule.comment = "blocked after incident 42 ✓";
  EXPECT_TRUE(ApplyEdits(s, 0, {e}, RuleLimits()).ok());
}

TEST(Prefixes, TheEchoIsQuotedAndEscaped) {
  auto p = ParsePrefix("10.0.0.1\x1b[2K", "edits[0].add.prefix");
  EXPECT_EQ(p.status().message(),
            "edits[0].add.prefix: \"10.0.0.1\\x1b[2K\" is not an IPv4 or IPv6 address");
}

TEST(RuleEdits, PortRules) {
  RuleEdit e;
  e.rule.port = PortRule{443, true, false, false};
  RuleSet s;
  auto r = ApplyEdits(s, 0, {e}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rules.at(1).port->port, 443);
  e.rule.port->port = 0;
  EXPECT_THAT(ApplyEdits(s, 0, {e}, {}).status().message(), HasSubstr("edits[0].port"));
  e.rule.port = PortRule{80, false, false, false};
  EXPECT_THAT(ApplyEdits(s, 0, {e}, {}).status().message(), HasSubstr("SYN guard"));
  e.rule.prefix = *ParsePrefix("10.0.0.0/8", "f");
  EXPECT_THAT(ApplyEdits(s, 0, {e}, {}).status().message(), HasSubstr("either a prefix or a port"));
  EXPECT_THAT(ApplyEdits(s, 0, {}, {}).status().message(), HasSubstr("empty batch"));
}

}  // namespace
}  // namespace netagent::datapath
