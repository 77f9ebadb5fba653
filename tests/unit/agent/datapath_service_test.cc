// The DatapathService converters: every enum value the proto does not define
// and every comment a terminal would obey are refused naming the field.
#include "agent/datapath_service.h"

#include <gtest/gtest.h>

#include <string>

namespace netagent::agent {
namespace {

namespace v1 = ::netagent::v1;

google::protobuf::RepeatedPtrField<v1::RuleEdit> PortEdit(int action) {
  google::protobuf::RepeatedPtrField<v1::RuleEdit> edits;
  v1::DatapathRule* r = edits.Add()->mutable_add();
  r->mutable_port()->set_port(443);
  r->mutable_port()->set_block_tcp(true);
  r->set_action(static_cast<v1::RuleAction>(action));
  return edits;
}

TEST(EditsFromProto, PortRulesBlockWhetherTheActionIsUnsetOrBlock) {
  for (int action : {v1::RULE_ACTION_UNSPECIFIED, v1::RULE_ACTION_BLOCK}) {
    auto edits = EditsFromProto(PortEdit(action));
    ASSERT_TRUE(edits.ok()) << edits.status();
    EXPECT_EQ(edits->at(0).rule.action, datapath::RuleAction::kBlock);
  }
  EXPECT_EQ(EditsFromProto(PortEdit(v1::RULE_ACTION_ALLOW)).status().message(),
            "edits[0].add.action: port rules block or guard");
}

// It was stored as a block rule.
TEST(EditsFromProto, APortRuleWithAnUnknownActionIsRefused) {
  for (int action : {3, 99, -1}) {
    auto edits = EditsFromProto(PortEdit(action));
    ASSERT_FALSE(edits.ok()) << action;
    EXPECT_EQ(edits.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(edits.status().message(),
              "edits[0].add.action: unknown value " + std::to_string(action));
  }
}

TEST(EditsFromProto, APrefixRuleWithAnUnknownActionIsRefused) {
  google::protobuf::RepeatedPtrField<v1::RuleEdit> edits;
  v1::DatapathRule* r = edits.Add()->mutable_add();
  r->set_prefix("10.0.0.0/8");
  r->set_action(static_cast<v1::RuleAction>(99));
  EXPECT_EQ(EditsFromProto(edits).status().message(),
            "edits[0].add.action: allow or block (not 99)");
}

TEST(EditsFromProto, CommentsWithControlCharactersAreRefused) {
  google::protobuf::RepeatedPtrField<v1::RuleEdit> edits;
  edits.Add()->set_delete_id(7);
  v1::DatapathRule* r = edits.Add()->mutable_add();
  r->set_prefix("10.0.0.1");
  r->set_action(v1::RULE_ACTION_BLOCK);
  // A comment that would print a fake "allow" row over its own.
  r->set_comment("\x1b[2K\rallow 10.0.0.1  # trusted");
  auto out = EditsFromProto(edits);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "edits[1].add.comment: control character U+001B at byte 0");
  r->set_comment("tab\there");
  EXPECT_EQ(EditsFromProto(edits).status().message(),
            "edits[1].add.comment: control character U+0009 at byte 3");
  r->set_comment(std::string(1 << 20, 'c'));
  EXPECT_EQ(EditsFromProto(edits).status().message(), "edits[1].add.comment: at most 128 bytes");
  r->set_comment("blocked after incident 42, see OPS-1 ✓");
  EXPECT_TRUE(EditsFromProto(edits).ok());
}

TEST(EditsFromProto, AHugePrefixIsNotEchoed) {
  google::protobuf::RepeatedPtrField<v1::RuleEdit> edits;
  v1::DatapathRule* r = edits.Add()->mutable_add();
  r->set_prefix(std::string(1 << 20, '1'));
  r->set_action(v1::RULE_ACTION_BLOCK);
  auto out = EditsFromProto(edits);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(out.status().message().size(), 200u) << out.status().message().substr(0, 200);
  r->set_prefix("10.0.0.1\x1b[2K/8");
  out = EditsFromProto(edits);
  EXPECT_EQ(out.status().message().find('\x1b'), std::string::npos) << out.status();
}

TEST(AttachFromProto, AnUnknownModeIsRefusedNamingTheField) {
  v1::AttachRequest req;
  req.set_device("eth0");
  req.set_mode(static_cast<v1::XdpMode>(99));
  auto a = AttachFromProto(req);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.status().message(), "mode: unknown value 99");
}

TEST(AttachFromProto, ADeviceNameIsNotEchoedRaw) {
  v1::AttachRequest req;
  req.set_device("e\x1b[31m");
  auto a = AttachFromProto(req);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.status().message(), "device: \"e\\x1b[31m\" is not an interface name");
}

}  // namespace
}  // namespace netagent::agent
