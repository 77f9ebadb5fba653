// Every method of every registered service, called by a viewer, must be
// refused exactly when its proto option says operator; an operator gets past
// authorization everywhere. A handler that forgets Admit() fails here.
#include <arpa/inet.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "agent/health_service.h"
#include "agent/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "netagent/v1/host.grpc.pb.h"
#include "netagent/v1/options.pb.h"
#include "tests/common/raw_call.h"

namespace netagent::agent {
namespace {

// Sends one request message (empty unless given) to `method`.
grpc::Status CallGeneric(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                         const std::string& request = "", std::string* response = nullptr) {
  return testing::RawCall(channel, method, request, response);
}

class ServerAuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("netagent-authz-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    ctx_.auth = std::make_shared<AuthState>(AuthPolicy{});
    ctx_.started_at = absl::Now();
    ctx_.version = "test";
    AgentServer::Options o;
    o.socket = (dir_ / "agent.sock").string();
    o.listen = ListenAddress{"127.0.0.1", 0};
    o.health_listen = ListenAddress{"127.0.0.1", 0};
    o.state_dir = (dir_ / "state").string();
    o.shutdown_grace = absl::Seconds(2);
    auto server = AgentServer::Start(o, ctx_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    tcp_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->tcp_port()),
                               grpc::InsecureChannelCredentials());
    unix_ = grpc::CreateChannel("unix://" + o.socket, grpc::InsecureChannelCredentials());
    health_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->health_port()),
                                  grpc::InsecureChannelCredentials());
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<const google::protobuf::MethodDescriptor*> Methods() const {
    std::vector<const google::protobuf::MethodDescriptor*> out;
    for (const std::string& name : server_->services()) {
      const auto* svc = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
      EXPECT_NE(svc, nullptr) << name;
      for (int i = 0; svc != nullptr && i < svc->method_count(); ++i) out.push_back(svc->method(i));
    }
    return out;
  }

  std::filesystem::path dir_;
  AgentContext ctx_;
  std::unique_ptr<AgentServer> server_;
  std::shared_ptr<grpc::Channel> tcp_, unix_, health_;
};

TEST_F(ServerAuthzTest, PlaintextTcpViewerIsRefusedExactlyTheOperatorMethods) {
  auto methods = Methods();
  ASSERT_GE(methods.size(), 5u);
  int operator_methods = 0;
  for (const auto* m : methods) {
    const std::string path = "/" + m->service()->full_name() + "/" + m->name();
    const bool needs_operator =
        m->options().GetExtension(netagent::v1::access) != netagent::v1::ACCESS_VIEWER;
    operator_methods += needs_operator ? 1 : 0;
    grpc::Status st = CallGeneric(tcp_, path);
    if (needs_operator) {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << path;
      EXPECT_NE(st.error_message().find("plaintext TCP is read-only"), std::string::npos) << path;
    } else {
      EXPECT_NE(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << path << ": " << st.error_message();
    }
  }
  EXPECT_GE(operator_methods, 1);  // SetLogLevel at least: the check is exercised
}

TEST_F(ServerAuthzTest, RootOnTheUnixSocketPassesEverywhere) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the unix peer must be uid 0";
  for (const auto* m : Methods()) {
    const std::string path = "/" + m->service()->full_name() + "/" + m->name();
    grpc::Status st = CallGeneric(unix_, path);
    EXPECT_NE(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << path;
  }
}

TEST_F(ServerAuthzTest, ReflectionListsTheServices) {
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  std::string response;
  CallGeneric(tcp_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              std::string("\x3a\x00", 2), &response);
  EXPECT_NE(response.find("netagent.v1.HostService"), std::string::npos);
  EXPECT_NE(response.find("netagent.v1.TelemetryService"), std::string::npos);
  EXPECT_NE(response.find("grpc.health.v1.Health"), std::string::npos);
}

// The plaintext health port (for Kubernetes' gRPC probes) answers health
// checks and nothing else: no API method, no reflection.
TEST_F(ServerAuthzTest, TheHealthPortServesHealthAlone) {
  ASSERT_GT(server_->health_port(), 0);
  grpc::health::v1::Health::Stub stub(health_);
  grpc::ClientContext c;
  grpc::health::v1::HealthCheckResponse r;
  ASSERT_TRUE(stub.Check(&c, {}, &r).ok());
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  for (const auto* m : Methods()) {
    const std::string path = "/" + m->service()->full_name() + "/" + m->name();
    EXPECT_EQ(CallGeneric(health_, path).error_code(), grpc::StatusCode::UNIMPLEMENTED) << path;
  }
  std::string response;
  grpc::Status reflection =
      CallGeneric(health_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                  std::string("\x3a\x00", 2), &response);
  EXPECT_EQ(reflection.error_code(), grpc::StatusCode::UNIMPLEMENTED) << response;
}

TEST_F(ServerAuthzTest, TheHealthPortKnowsOneServiceAndFewWatches) {
  grpc::health::v1::Health::Stub stub(health_);
  grpc::health::v1::HealthCheckRequest other;
  other.set_service("netagent.v1.TuningService");
  grpc::ClientContext c;
  grpc::health::v1::HealthCheckResponse r;
  EXPECT_EQ(stub.Check(&c, other, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  // Each watch on a connection of its own (one connection carries at most 4
  // calls at a time).
  auto own_connection = [this](int i) {
    grpc::ChannelArguments args;
    args.SetInt("netagent.test.connection", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->health_port()),
                                     grpc::InsecureChannelCredentials(), args);
  };
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(20);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::health::v1::Health::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>>> watches;
  for (int i = 0; i <= HealthOnlyService::kMaxWatches; ++i) {
    channels.push_back(own_connection(i));
    stubs.push_back(std::make_unique<grpc::health::v1::Health::Stub>(channels.back()));
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->set_deadline(deadline);
    watches.push_back(stubs.back()->Watch(contexts.back().get(), {}));
    if (i < HealthOnlyService::kMaxWatches) {
      ASSERT_TRUE(watches.back()->Read(&r)) << i;  // each holds a thread now
    }
  }
  EXPECT_FALSE(watches.back()->Read(&r));
  EXPECT_EQ(watches.back()->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  watches.pop_back();
  for (auto& ctx : contexts) ctx->TryCancel();
  for (auto& w : watches) w->Finish();
}

// Connections from the host itself (here loopback) have a budget of their
// own (16), beyond the per-peer limit (8) and bounded: past it the host is
// refused too, so no local process can take the agent's descriptors.
TEST_F(ServerAuthzTest, TheHostHasItsOwnBudgetOnTheHealthPort) {
  auto check = [this] {
    grpc::ChannelArguments args;  // a connection of its own each time
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto fresh = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->health_port()),
                                           grpc::InsecureChannelCredentials(), args);
    grpc::health::v1::Health::Stub stub(fresh);
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    grpc::health::v1::HealthCheckResponse r;
    return stub.Check(&c, {}, &r);
  };
  std::vector<int> held;
  auto hold = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(fd, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(server_->health_port()));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      held.push_back(fd);
    }
  };
  hold(12);  // more than any peer may hold
  grpc::Status st = check();
  EXPECT_TRUE(st.ok()) << st.error_message();
  hold(4);  // 16 held: the host's budget is spent
  EXPECT_FALSE(check().ok());
  for (int fd : held) ::close(fd);
}

// A watch sees SERVING, then NOT_SERVING as soon as a shutdown begins (while
// the API drains), then its end.
TEST_F(ServerAuthzTest, TheHealthPortsWatchSeesTheShutdown) {
  grpc::health::v1::Health::Stub stub(health_);
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub.Watch(&c, {});
  grpc::health::v1::HealthCheckResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  std::thread stop([this] { server_->Shutdown(); });
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  while (reader->Read(&r)) {
  }
  stop.join();
  EXPECT_NE(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

// The stop that follows the change at once (no call left to drain) must not
// hide it: the watch writes NOT_SERVING, then ends. CI once saw the bare end.
TEST(HealthOnlyService, AStopRightBehindTheChangeStillShowsTheChange) {
  for (int round = 0; round < 20; ++round) {
    HealthOnlyService service;
    service.SetServing(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                       grpc::InsecureChannelCredentials());
    grpc::health::v1::Health::Stub stub(channel);
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub.Watch(&c, {});
    grpc::health::v1::HealthCheckResponse r;
    ASSERT_TRUE(reader->Read(&r));
    ASSERT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
    service.SetServing(false);
    service.Stop();
    ASSERT_TRUE(reader->Read(&r)) << "round " << round;
    EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    EXPECT_FALSE(reader->Read(&r));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
    server->Shutdown(std::chrono::system_clock::now());
  }
}

TEST_F(ServerAuthzTest, GetHostInfoTellsTheCallerWhoItIs) {
  netagent::v1::HostService::Stub tcp(tcp_), unix(unix_);
  netagent::v1::GetHostInfoResponse r;
  grpc::ClientContext c1;
  ASSERT_TRUE(tcp.GetHostInfo(&c1, {}, &r).ok());
  EXPECT_EQ(r.caller().transport(), netagent::v1::TRANSPORT_TCP);
  EXPECT_EQ(r.caller().role(), netagent::v1::ROLE_VIEWER);
  grpc::ClientContext c2;
  ASSERT_TRUE(unix.GetHostInfo(&c2, {}, &r).ok());
  EXPECT_EQ(r.caller().transport(), netagent::v1::TRANSPORT_UNIX);
  EXPECT_EQ(r.caller().uid(), geteuid());
  EXPECT_EQ(r.caller().pid(), getpid());
}

}  // namespace
}  // namespace netagent::agent
