// Input hygiene at the API edge, against the real netagentd over its unix
// socket (as root: every handler runs, operator ones included) and the real
// netctl: huge values, text that is not UTF-8 or holds terminal escapes,
// enum values the proto does not define, bytes that are no protobuf at all,
// and Ctrl-C during a stream. The agent serves a namespace of its own with a
// veth pair in it, and the fast path attached to one end.
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "netagent/v1/datapath.pb.h"
#include "netagent/v1/sockets.pb.h"
#include "tests/common/proto_paths.h"
#include "tests/common/raw_call.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace pb = ::google::protobuf;
namespace v1 = ::netagent::v1;

constexpr char kDev[] = "hy0";

std::vector<const pb::MethodDescriptor*> AllMethods() {
  std::vector<const pb::MethodDescriptor*> out;
  for (const char* file :
       {"netagent/v1/host.proto", "netagent/v1/telemetry.proto", "netagent/v1/sockets.proto",
        "netagent/v1/nic.proto", "netagent/v1/conntrack.proto", "netagent/v1/tuning.proto",
        "netagent/v1/datapath.proto"}) {
    const pb::FileDescriptor* fd = pb::DescriptorPool::generated_pool()->FindFileByName(file);
    EXPECT_NE(fd, nullptr) << file;
    for (int s = 0; fd != nullptr && s < fd->service_count(); ++s) {
      for (int m = 0; m < fd->service(s)->method_count(); ++m) {
        out.push_back(fd->service(s)->method(m));
      }
    }
  }
  return out;
}

std::string PathOf(const pb::MethodDescriptor* m) {
  return "/" + m->service()->full_name() + "/" + m->name();
}

class HygieneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT("network namespaces, XDP");
    ASSERT_EQ(
        RunCommand(ns_.Exec({"ip", "link", "add", kDev, "type", "veth", "peer", "name", "hy1"}))
            .exit_code,
        0);
    for (const char* dev : {kDev, "hy1"}) {
      ASSERT_EQ(RunCommand(ns_.Exec({"ip", "link", "set", dev, "up"})).exit_code, 0);
    }
    pin_root_ = absl::StrCat("/sys/fs/bpf/netagent-hy-", getpid(), "-", ns_.name());
    agent_ = std::make_unique<Agent>(ns_, std::vector<std::string>{"--bpf-pin-root", pin_root_});
    ASSERT_TRUE(agent_->ok()) << agent_->error();
    channel_ = grpc::CreateChannel(agent_->target(), grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    agent_.reset();
    std::error_code ec;
    if (!pin_root_.empty()) std::filesystem::remove_all(pin_root_, ec);
  }

  RunResult Ctl(std::vector<std::string> args) const { return agent_->Netctl(std::move(args)); }

  void Attach() {
    RunResult r = Ctl({"datapath", "attach", kDev, "--mode", "generic"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  v1::ListRulesResponse Rules() const {
    v1::ListRulesRequest req;
    req.set_device(kDev);
    std::string bytes;
    grpc::Status st = RawCall(channel_, "/netagent.v1.DatapathService/ListRules",
                              req.SerializeAsString(), &bytes, /*cancel_after_first=*/false);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v1::ListRulesResponse out;
    EXPECT_TRUE(out.ParseFromString(bytes));
    return out;
  }

  Netns ns_;
  std::string pin_root_;
  std::unique_ptr<Agent> agent_;
  std::shared_ptr<grpc::Channel> channel_;
};

// A 1 MB value in any string field of any request gets a short answer that
// is not RESOURCE_EXHAUSTED (the client's limit on the error it receives) and
// not INTERNAL; the known cases name the field.
TEST_F(HygieneTest, HugeValuesGetAShortErrorNamingTheField) {
  Attach();
  const std::string huge(1 << 20, '1');
  size_t checked = 0;
  for (const auto* m : AllMethods()) {
    for (const FieldPath& p : StringAndEnumPaths(m->input_type())) {
      if (p.leaf()->type() != pb::FieldDescriptor::TYPE_STRING) continue;
      grpc::Status st = RawCall(channel_, PathOf(m), RequestWith(m->input_type(), p, huge, 0));
      EXPECT_NE(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << PathOf(m) << " " << p.text;
      EXPECT_NE(st.error_code(), grpc::StatusCode::INTERNAL) << PathOf(m) << " " << p.text;
      EXPECT_NE(st.error_code(), grpc::StatusCode::UNKNOWN) << PathOf(m) << " " << p.text;
      EXPECT_LT(st.error_message().size(), 512u) << PathOf(m) << " " << p.text;
      ++checked;
    }
  }
  EXPECT_GE(checked, 40u);

  // The reported cases, by name: a socket filter, a conntrack filter, a rule.
  v1::ListSocketsRequest sockets;
  sockets.mutable_filter()->set_source(huge);
  grpc::Status st =
      RawCall(channel_, "/netagent.v1.SocketService/ListSockets", sockets.SerializeAsString());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "filter.source: \"" + std::string(64, '1') +
                                    "\"... (1048576 bytes) is not an IP address or CIDR prefix");
  v1::UpdateRulesRequest rules;
  rules.set_device(kDev);
  v1::DatapathRule* r = rules.add_edits()->mutable_add();
  r->set_prefix("10.9.9.9");
  r->set_action(v1::RULE_ACTION_BLOCK);
  r->set_comment(huge);
  st = RawCall(channel_, "/netagent.v1.DatapathService/UpdateRules", rules.SerializeAsString());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "edits[0].add.comment: at most 128 bytes");
  RunResult ct = Ctl({"conntrack", "list", "--src", huge.substr(0, 100000)});
  EXPECT_EQ(ct.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(ct.err, "INVALID_ARGUMENT: filter.source: \"111")) << ct.err.size();
  EXPECT_LT(ct.err.size(), 512u);
}

// A comment that clears its line and prints an "allow" row of its own is
// refused, and netctl shows the refusal without obeying the escape.
TEST_F(HygieneTest, ACommentWithAnAnsiEscapeIsRefusedAndNothingIsStored) {
  Attach();
  const std::string fake = "\x1b[2K\r2  allow  10.0.0.1  trusted";
  RunResult r = Ctl({"datapath", "rules", "add", kDev, "--block", "10.9.9.9", "--comment", fake});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.err, "INVALID_ARGUMENT: edits[0].add.comment: control character U+001B at byte 0"))
      << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);
  EXPECT_EQ(Rules().rules_size(), 0);
  RunResult list = Ctl({"datapath", "rules", "list", kDev});
  EXPECT_EQ(list.out.find('\x1b'), std::string::npos) << list.out;
  // Plain text, not ASCII only, still goes in.
  r = Ctl({"datapath", "rules", "add", kDev, "--block", "10.9.9.9", "--comment", "incident 42 ✓"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Rules().rules_size(), 1);
  EXPECT_EQ(Rules().rules(0).comment(), "incident 42 ✓");
}

// It was stored as a block rule.
TEST_F(HygieneTest, APortRuleWithAnUnknownActionIsRefused) {
  Attach();
  v1::UpdateRulesRequest req;
  req.set_device(kDev);
  v1::DatapathRule* r = req.add_edits()->mutable_add();
  r->mutable_port()->set_port(8080);
  r->mutable_port()->set_block_tcp(true);
  r->set_action(static_cast<v1::RuleAction>(99));
  grpc::Status st =
      RawCall(channel_, "/netagent.v1.DatapathService/UpdateRules", req.SerializeAsString());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(st.error_message(), "edits[0].add.action: unknown value 99"))
      << st.error_message();
  EXPECT_EQ(Rules().rules_size(), 0);
}

// Every enum field of every request, through the real agent: a value the
// enum does not define is refused naming the field, whatever the method.
TEST_F(HygieneTest, OutOfRangeEnumValuesAreRefusedNamingTheField) {
  Attach();
  size_t checked = 0;
  for (const auto* m : AllMethods()) {
    for (const FieldPath& p : StringAndEnumPaths(m->input_type())) {
      if (p.leaf()->type() != pb::FieldDescriptor::TYPE_ENUM) continue;
      for (int value : {99, -1}) {
        grpc::Status st = RawCall(channel_, PathOf(m), RequestWith(m->input_type(), p, "", value));
        EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
            << PathOf(m) << " " << p.text;
        EXPECT_TRUE(
            absl::StartsWith(st.error_message(), absl::StrCat(p.text, ": unknown value ", value)))
            << PathOf(m) << ": " << st.error_message();
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 6u);
  EXPECT_EQ(Rules().rules_size(), 0);
}

// gRPC answered these with INTERNAL and an empty message; protobuf logged an
// ERROR line for each, so any caller could fill the agent's log.
TEST_F(HygieneTest, TextThatIsNotUtf8AndGarbageAreInvalidArgumentAndLeaveTheLogAlone) {
  Attach();
  v1::UpdateRulesRequest req;
  req.set_device(kDev);
  v1::DatapathRule* r = req.add_edits()->mutable_add();
  r->set_prefix("10.9.9.9");
  r->set_action(v1::RULE_ACTION_BLOCK);
  r->set_comment("caf\xe9");
  std::string bytes;
  {
    pb::LogSilencer quiet;
    bytes = req.SerializeAsString();
  }
  for (int i = 0; i < 200; ++i) {
    grpc::Status st = RawCall(channel_, "/netagent.v1.DatapathService/UpdateRules", bytes);
    ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    ASSERT_EQ(st.error_message(), "edits[0].add.comment: not valid UTF-8");
  }
  grpc::Status st = RawCall(channel_, "/netagent.v1.DatapathService/UpdateRules", "\xff\xff\xff");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(),
            "request: not a valid netagent.v1.UpdateRulesRequest (malformed protobuf)");
  EXPECT_EQ(Rules().rules_size(), 0);
  // One audit line per operator call stays (the interceptor's); protobuf's
  // own error per bad string does not reach the log at info.
  const std::string log = agent_->log();
  EXPECT_FALSE(absl::StrContains(log, "UTF-8")) << log.substr(0, 2000);
  EXPECT_FALSE(absl::StrContains(log, "String field")) << log.substr(0, 2000);
}

// netctl blocked SIGINT only after gRPC had started its threads: the signal
// could land on one of them and end netctl by the signal, mid-output.
TEST_F(HygieneTest, CtrlCDuringAStreamEndsNetctlCleanlyEveryTime) {
  int signaled = 0, not_zero = 0, stuck = 0;
  for (int i = 0; i < 20; ++i) {
    TempDir tmp;
    Process watch({NetctlPath(), "-t", agent_->target(), "watch", "--interval", "100ms"},
                  tmp / "watch.out");
    ASSERT_TRUE(Eventually([&] { return !Lines(ReadFile(tmp / "watch.out")).empty(); }))
        << "no sample from netctl watch";
    watch.Signal(SIGINT);
    std::optional<int> code = watch.Wait(std::chrono::seconds(5));
    if (!code) {
      ++stuck;
      continue;
    }
    if (*code == -1) {
      ++signaled;  // Process reports an end by a signal as -1
    } else if (*code != 0) {
      ++not_zero;
    }
  }
  EXPECT_EQ(signaled, 0) << "netctl died by SIGINT";
  EXPECT_EQ(not_zero, 0);
  EXPECT_EQ(stuck, 0) << "netctl did not end within 5s of SIGINT";
}

// A command that does not stream ends promptly on the signal: the calls in
// flight are cancelled, the targets that did not answer are named, exit 130.
// A second signal ends it by the signal.
TEST_F(HygieneTest, CtrlCDuringAOneShotCommandStillEndsIt) {
  TempDir tmp;
  // A 5 s window keeps `softnet` waiting on the agent.
  Process softnet({NetctlPath(), "-t", agent_->target(), "softnet", "--window", "5s"},
                  tmp / "softnet.out");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  softnet.Signal(SIGTERM);
  std::optional<int> code = softnet.Wait(std::chrono::seconds(3));
  ASSERT_TRUE(code.has_value()) << "netctl did not end on SIGTERM";
  EXPECT_EQ(*code, 130);
  EXPECT_NE(ReadFile(tmp / "softnet.out").find("interrupted; no answer from 1 of 1 targets"),
            std::string::npos)
      << ReadFile(tmp / "softnet.out");
}

}  // namespace
}  // namespace netagent::testing
