// The request guard: the pure explanations, and the guard in front of every
// method of every netagent.v1 service the server answers for (as reflection
// lists them), so a service or field added later is covered or fails here.
#include "agent/request_guard.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/logging.h"
#include "agent/server.h"
#include "netagent/v1/datapath.pb.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/tuning.pb.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/common/proto_paths.h"
#include "tests/common/raw_call.h"

namespace netagent::agent {
namespace {

namespace pb = ::google::protobuf;
namespace v1 = ::netagent::v1;

// An UpdateRulesRequest whose second edit's comment is not UTF-8, as bytes
// (protobuf serializes it, logging an error, but will not parse it back).
std::string BadCommentRequest() {
  v1::UpdateRulesRequest req;
  req.set_device("eth0");
  req.add_edits()->set_delete_id(3);
  v1::DatapathRule* r = req.add_edits()->mutable_add();
  r->set_prefix("10.0.0.0/8");
  r->set_comment("caf\xe9");
  pb::LogSilencer quiet;
  return req.SerializeAsString();
}

TEST(ExplainUnparsable, NamesTheStringFieldThatIsNotUtf8) {
  const std::string bytes = BadCommentRequest();
  v1::UpdateRulesRequest parsed;
  {
    pb::LogSilencer quiet;
    ASSERT_FALSE(parsed.ParseFromString(bytes));  // what gRPC runs into
  }
  absl::Status st = ExplainUnparsable(bytes, *v1::UpdateRulesRequest::descriptor());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "edits[1].add.comment: not valid UTF-8");
}

TEST(ExplainUnparsable, MapKeysAndTopLevelFields) {
  v1::ApplyTuningRequest req;
  (*req.mutable_intent()->mutable_coalesce()->mutable_values())["rx-usecs\xff"] = 5;
  req.set_change_id("ok");
  std::string bytes;
  {
    pb::LogSilencer quiet;
    bytes = req.SerializeAsString();
  }
  EXPECT_EQ(ExplainUnparsable(bytes, *v1::ApplyTuningRequest::descriptor()).message(),
            "intent.coalesce.values[0].key: not valid UTF-8");

  v1::DetachRequest d;
  d.set_device("\xc0\xaf");
  {
    pb::LogSilencer quiet;
    bytes = d.SerializeAsString();
  }
  EXPECT_EQ(ExplainUnparsable(bytes, *v1::DetachRequest::descriptor()).message(),
            "device: not valid UTF-8");
}

TEST(ExplainUnparsable, GarbageIsAMalformedMessage) {
  for (const std::string& bytes : {std::string("\xff\xff\xff\xff"),
                                   std::string("\x0a\x10"
                                               "ab"),
                                   std::string("\x08", 1)}) {
    absl::Status st = ExplainUnparsable(bytes, *v1::UpdateRulesRequest::descriptor());
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message(),
              "request: not a valid netagent.v1.UpdateRulesRequest (malformed protobuf)");
  }
}

TEST(CheckRequestFields, UnknownEnumValuesAreRefusedNamingTheField) {
  v1::UpdateRulesRequest req;
  req.add_edits()->mutable_add()->set_prefix("10.0.0.0/8");
  v1::DatapathRule* port = req.add_edits()->mutable_add();
  port->mutable_port()->set_port(80);
  port->set_action(static_cast<v1::RuleAction>(99));  // proto3 keeps it as it came
  absl::Status st = CheckRequestFields(req);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "edits[1].add.action: unknown value 99 of netagent.v1.RuleAction");

  v1::ListSocketsRequest sockets;
  sockets.mutable_filter()->add_protocols(v1::SOCKET_PROTOCOL_TCP);
  sockets.mutable_filter()->add_protocols(static_cast<v1::SocketProtocol>(-3));
  EXPECT_EQ(CheckRequestFields(sockets).message(),
            "filter.protocols[1]: unknown value -3 of netagent.v1.SocketProtocol");
}

TEST(CheckRequestFields, ControlCharactersInTextAreRefusedNamingTheField) {
  v1::UpdateRulesRequest req;
  req.set_device("eth0");
  v1::DatapathRule* r = req.add_edits()->mutable_add();
  r->set_prefix("10.0.0.1");
  r->set_comment("\x1b[2K\rallow 10.6.6.6  # fake");
  EXPECT_EQ(CheckRequestFields(req).message(),
            "edits[0].add.comment: control character U+001B at byte 0");
  r->set_comment(
      "ok \xc2\x9b"
      "31m");  // C1 CSI
  EXPECT_EQ(CheckRequestFields(req).message(),
            "edits[0].add.comment: control character U+009B at byte 3");
  r->set_comment("blocked after incident #42 — see OPS-1");
  EXPECT_TRUE(CheckRequestFields(req).ok());
}

TEST(CheckRequestFields, ValidRequestsPassAndBytesAreData) {
  v1::TestPacketRequest t;
  t.set_device("eth0");
  t.set_packet(std::string("\x1b\x00\xff", 3));
  EXPECT_TRUE(CheckRequestFields(t).ok());
  v1::ApplyTuningRequest a;
  auto* s = a.mutable_intent()->mutable_sysctl()->add_settings();
  s->set_name("net.ipv4.tcp_rmem");
  s->set_value("4096\t131072\t6291456");  // as /proc shows it
  EXPECT_TRUE(CheckRequestFields(a).ok());
}

// The guard hands a parsed request to CheckRequestFields through a
// MessageLite pointer; that holds only if every request type has its
// MessageLite base at offset 0.
TEST(GuardedService, AnOverrideForAMethodTheServiceLacksIsRefused) {
  v1::HostService::Service host;
  HandlerOverrides overrides;
  overrides["NoSuchMethod"] = std::make_unique<grpc::internal::RpcMethodHandler<
      v1::HostService::Service, v1::GetHostInfoRequest, v1::GetHostInfoResponse,
      google::protobuf::MessageLite, google::protobuf::MessageLite>>(
      [](v1::HostService::Service*, grpc::ServerContext*, const v1::GetHostInfoRequest*,
         v1::GetHostInfoResponse*) { return grpc::Status::OK; },
      &host);
  auto guard = GuardRequests<v1::HostService>(&host, std::move(overrides));
  EXPECT_EQ(guard.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(guard.status().message(), "NoSuchMethod")) << guard.status();
}

TEST(GuardedService, EveryRequestTypeReadsAsItsMessageLiteBase) {
  for (const char* file :
       {"netagent/v1/host.proto", "netagent/v1/telemetry.proto", "netagent/v1/sockets.proto",
        "netagent/v1/nic.proto", "netagent/v1/conntrack.proto", "netagent/v1/tuning.proto",
        "netagent/v1/datapath.proto"}) {
    const pb::FileDescriptor* fd = pb::DescriptorPool::generated_pool()->FindFileByName(file);
    ASSERT_NE(fd, nullptr) << file;
    for (int s = 0; s < fd->service_count(); ++s) {
      for (int m = 0; m < fd->service(s)->method_count(); ++m) {
        const pb::Descriptor* type = fd->service(s)->method(m)->input_type();
        std::unique_ptr<pb::Message> msg(
            pb::MessageFactory::generated_factory()->GetPrototype(type)->New());
        EXPECT_EQ(dynamic_cast<void*>(msg.get()),
                  static_cast<void*>(static_cast<pb::MessageLite*>(msg.get())))
            << type->full_name();
      }
    }
  }
}

// The netagent.v1 services the server answers for, from reflection
// (ServerReflectionResponse.list_services_response.service[].name).
std::vector<std::string> ReflectedServices(const std::shared_ptr<grpc::Channel>& channel) {
  std::string response;
  testing::RawCall(channel, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                   std::string("\x3a\x00", 2), &response);
  std::vector<std::string> out;
  pb::UnknownFieldSet top, list;
  if (!top.ParseFromString(response)) return out;
  for (int i = 0; i < top.field_count(); ++i) {
    if (top.field(i).number() != 6 || !list.ParseFromString(top.field(i).length_delimited()))
      continue;
    for (int k = 0; k < list.field_count(); ++k) {
      pb::UnknownFieldSet service;
      if (!service.ParseFromString(list.field(k).length_delimited())) continue;
      for (int n = 0; n < service.field_count(); ++n) {
        const std::string& name = service.field(n).length_delimited();
        if (absl::StartsWith(name, "netagent.v1.")) out.push_back(name);
      }
    }
  }
  return out;
}

// The whole server, in process, on loopback TCP without TLS: callers there
// are viewers, so no operator method runs whatever the sweep sends (the guard
// answers before authorization).
class RequestGuardServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("netagent-guard-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    ctx_.auth = std::make_shared<AuthState>(AuthPolicy{});
    ctx_.started_at = absl::Now();
    ctx_.version = "test";
    AgentServer::Options o;
    o.listen = ListenAddress{"127.0.0.1", 0};
    o.state_dir = (dir_ / "state").string();
    o.shutdown_grace = absl::Seconds(2);
    auto server = AgentServer::Start(o, ctx_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->tcp_port()),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<const pb::MethodDescriptor*> Methods() {
    std::vector<const pb::MethodDescriptor*> out;
    const std::vector<std::string> names = ReflectedServices(channel_);
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
              std::set<std::string>(server_->services().begin(), server_->services().end()));
    for (const std::string& name : names) {
      const auto* svc = pb::DescriptorPool::generated_pool()->FindServiceByName(name);
      EXPECT_NE(svc, nullptr) << name;
      for (int i = 0; svc != nullptr && i < svc->method_count(); ++i) out.push_back(svc->method(i));
    }
    return out;
  }

  static std::string PathOf(const pb::MethodDescriptor* m) {
    return "/" + m->service()->full_name() + "/" + m->name();
  }

  std::filesystem::path dir_;
  AgentContext ctx_;
  std::unique_ptr<AgentServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(RequestGuardServerTest, EveryStringFieldOfEveryRequestNamedWhenNotUtf8OrControl) {
  const auto methods = Methods();
  ASSERT_GE(methods.size(), 25u);
  size_t checked = 0;
  for (const auto* m : methods) {
    for (const testing::FieldPath& p : testing::StringAndEnumPaths(m->input_type())) {
      if (p.fields.back()->type() != pb::FieldDescriptor::TYPE_STRING) continue;
      grpc::Status st = testing::RawCall(channel_, PathOf(m),
                                         testing::RequestWith(m->input_type(), p, "ok\xff", 0));
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << PathOf(m) << " " << p.text;
      EXPECT_EQ(st.error_message(), p.text + ": not valid UTF-8") << PathOf(m);
      st = testing::RawCall(channel_, PathOf(m),
                            testing::RequestWith(m->input_type(), p, "\x1b[2K\rallow", 0));
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << PathOf(m) << " " << p.text;
      EXPECT_EQ(st.error_message(), p.text + ": control character U+001B at byte 0") << PathOf(m);
      ++checked;
    }
  }
  EXPECT_GE(checked, 40u);
}

TEST_F(RequestGuardServerTest, EveryEnumFieldOfEveryRequestNamedWhenOutOfRange) {
  size_t checked = 0;
  for (const auto* m : Methods()) {
    for (const testing::FieldPath& p : testing::StringAndEnumPaths(m->input_type())) {
      const pb::FieldDescriptor* f = p.fields.back();
      if (f->type() != pb::FieldDescriptor::TYPE_ENUM) continue;
      ASSERT_EQ(f->enum_type()->FindValueByNumber(99), nullptr);
      grpc::Status st =
          testing::RawCall(channel_, PathOf(m), testing::RequestWith(m->input_type(), p, "", 99));
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << PathOf(m) << " " << p.text;
      EXPECT_EQ(st.error_message(),
                absl::StrCat(p.text, ": unknown value 99 of ", f->enum_type()->full_name()))
          << PathOf(m);
      ++checked;
    }
  }
  // AttachRequest.mode, DatapathRule.action, SocketFilter.protocols and
  // .families, ConntrackFilter.family, SetLogLevelRequest.level at least.
  EXPECT_GE(checked, 6u);
}

TEST_F(RequestGuardServerTest, GarbageIsInvalidArgumentNotInternal) {
  for (const auto* m : Methods()) {
    grpc::Status st = testing::RawCall(channel_, PathOf(m), "\xff\xff\xff\xff");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << PathOf(m);
    EXPECT_EQ(st.error_message(),
              absl::StrCat("request: not a valid ", m->input_type()->full_name(),
                           " (malformed protobuf)"))
        << PathOf(m);
  }
}

TEST_F(RequestGuardServerTest, ValidRequestsStillReachTheHandlers) {
  // A viewer may read host info: the guard lets a valid request through.
  std::string response;
  grpc::Status st = testing::RawCall(channel_, "/netagent.v1.HostService/GetHostInfo", "",
                                     &response, /*cancel_after_first=*/false);
  EXPECT_TRUE(st.ok()) << st.error_message();
  v1::GetHostInfoResponse info;
  ASSERT_TRUE(info.ParseFromString(response));
  EXPECT_FALSE(info.hostname().empty());
  // And an operator method refuses the viewer once the request is valid.
  v1::SetLogLevelRequest level;
  level.set_level(v1::LOG_LEVEL_DEBUG);
  st =
      testing::RawCall(channel_, "/netagent.v1.HostService/SetLogLevel", level.SerializeAsString());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // A server-streaming method gets its request through the guard too.
  v1::WatchRequest watch;
  watch.set_count(1);
  response.clear();
  st = testing::RawCall(channel_, "/netagent.v1.TelemetryService/Watch", watch.SerializeAsString(),
                        &response);
  v1::WatchResponse sample;
  ASSERT_TRUE(sample.ParseFromString(response)) << st.error_message();
  EXPECT_EQ(sample.sequence(), 1u);
}

TEST(RouteProtobufLogs, AnInvalidUtf8ParseLogsAtDebugOnly) {
  std::ostringstream captured;
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  logger->set_level(spdlog::level::info);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  pb::LogHandler* original = pb::SetLogHandler(nullptr);
  RouteProtobufLogs();
  const std::string bytes = BadCommentRequest();
  v1::UpdateRulesRequest parsed;
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(parsed.ParseFromString(bytes));
  logger->flush();
  EXPECT_EQ(captured.str(), "");
  logger->set_level(spdlog::level::debug);
  EXPECT_FALSE(parsed.ParseFromString(bytes));
  logger->flush();
  EXPECT_NE(captured.str().find("invalid UTF-8"), std::string::npos) << captured.str();
  spdlog::set_default_logger(previous);
  pb::SetLogHandler(original);
}

}  // namespace
}  // namespace netagent::agent
