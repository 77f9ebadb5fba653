#include "agent/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "agent/logging.h"
#include "kernel/errors.h"
#include "kernel/netns.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(const Options& options,
                                                                AgentContext& ctx) {
  std::unique_ptr<AgentServer> s(new AgentServer(options, ctx));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  if (options.listen) {
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (options.tls) {
      NETAGENT_ASSIGN_OR_RETURN(s->tls_,
                                TlsStore::Create(*options.tls, options.state_dir + "/tls"));
      creds = s->tls_->Credentials();
    } else {
      creds = grpc::InsecureServerCredentials();
      spdlog::warn("TCP listener {} is plaintext: callers there are viewers (read-only)",
                   options.listen->ToGrpc());
    }
    builder.AddListeningPort(options.listen->ToGrpc(), creds, &s->tcp_port_);
  }
  // Bind the socket before starting gRPC, so a second agent fails before it
  // listens anywhere.
  if (!options.socket.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(
        s->unix_, UnixListener::Bind(options.socket, options.socket_mode, options.socket_group));
  }
  s->host_ = std::make_unique<HostService>(ctx);
  s->telemetry_ = std::make_unique<TelemetryService>(ctx);
  builder.RegisterService(s->host_.get());
  s->services_.push_back(netagent::v1::HostService::service_full_name());
  builder.RegisterService(s->telemetry_.get());
  s->services_.push_back(netagent::v1::TelemetryService::service_full_name());
  s->sockets_ = std::make_unique<SocketService>(ctx);
  builder.RegisterService(s->sockets_.get());
  s->services_.push_back(netagent::v1::SocketService::service_full_name());
  s->nics_ = std::make_unique<NicService>(ctx);
  builder.RegisterService(s->nics_.get());
  s->services_.push_back(netagent::v1::NicService::service_full_name());
  s->conntrack_ = std::make_unique<ConntrackService>(ctx);
  builder.RegisterService(s->conntrack_.get());
  s->services_.push_back(netagent::v1::ConntrackService::service_full_name());
  if (!options.state_dir.empty()) {
    tuners::TuningManager::Options topts;
    topts.state_dir = options.state_dir;
    topts.paths.sysfs = kernel::NetSysfsRoot();
    auto io = std::make_unique<tuners::SystemKnobs>(topts.paths);
    io->set_failing_writes(options.fault_inject_writes);
    topts.io = std::move(io);
    NETAGENT_ASSIGN_OR_RETURN(s->tuning_manager_, tuners::TuningManager::Start(std::move(topts)));
  }
  s->tuning_ = std::make_unique<TuningService>(ctx, s->tuning_manager_.get());
  builder.RegisterService(s->tuning_.get());
  s->services_.push_back(netagent::v1::TuningService::service_full_name());
  std::string datapath_off = "the fast path is off: the agent has no bpf pin root";
  if (!options.bpf_pin_root.empty()) {
    datapath::DatapathManager::Options dopts;
    dopts.pin_root = options.bpf_pin_root;
    dopts.netns_cookie = ctx.netns.cookie;
    auto m = datapath::DatapathManager::Start(std::move(dopts));
    if (m.ok()) {
      s->datapath_manager_ = std::move(*m);
    } else {
      // Telemetry and tuning still serve; the fast path says why it cannot.
      datapath_off = absl::StrCat("the fast path is off: ", m.status().message());
      spdlog::error("{}", datapath_off);
    }
  }
  s->datapath_ = std::make_unique<DatapathService>(ctx, s->datapath_manager_.get(), datapath_off);
  builder.RegisterService(s->datapath_.get());
  s->services_.push_back(netagent::v1::DatapathService::service_full_name());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<AuthInterceptorFactory>(ctx.auth));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  grpc::ResourceQuota quota("netagentd");
  quota.SetMaxThreads(ctx.long_calls.total() + kShortCallThreads);
  builder.SetResourceQuota(quota);
  // Long Watch streams: let clients keep idle connections alive.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  // gRPC sets SO_REUSEPORT by default: a second agent on the same port would
  // silently share its connections with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);

  s->server_ = builder.BuildAndStart();
  if (!s->server_) {
    return absl::UnavailableError(absl::StrCat(
        "cannot start the gRPC server",
        options.listen ? absl::StrCat(" (listen ", options.listen->ToGrpc(), ")") : ""));
  }
  if (options.listen && s->tcp_port_ == 0) {
    s->server_->Shutdown();
    return absl::UnavailableError(absl::StrCat("listen: cannot bind ", options.listen->ToGrpc()));
  }
  if (s->unix_) s->unix_->Start(s->server_.get(), ctx.auth);
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

AgentServer::~AgentServer() { Shutdown(); }

void AgentServer::Shutdown() {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  ctx_.lifecycle.BeginShutdown(options_.shutdown_grace);
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (unix_) unix_->Stop();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(options_.shutdown_grace));
  server_->Wait();
}

absl::Status AgentServer::ReloadTls() {
  if (!tls_) return absl::FailedPreconditionError("no TLS listener configured");
  return tls_->Reload();
}

}  // namespace netagent::agent
