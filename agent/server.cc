#include "agent/server.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/datapath_knobs.h"
#include "agent/logging.h"
#include "agent/metrics_compat.h"
#include "kernel/errors.h"
#include "kernel/netns.h"
#include "kernel/sysctl.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {

std::unique_ptr<AgentServer::Services> AgentServer::MakeServices(const std::string& datapath_off) {
  auto s = std::make_unique<Services>();
  s->host = std::make_unique<HostService>(ctx_);
  s->telemetry = std::make_unique<TelemetryService>(ctx_, drops_.get());
  s->sockets = std::make_unique<SocketService>(ctx_);
  s->nics = std::make_unique<NicService>(ctx_);
  s->conntrack = std::make_unique<ConntrackService>(ctx_);
  s->tuning = std::make_unique<TuningService>(ctx_, tuning_manager_.get(), tuning_off_);
  s->datapath = std::make_unique<DatapathService>(ctx_, datapath_manager_.get(), datapath_off);
  s->diagnosis =
      std::make_unique<DiagnosisService>(ctx_, tuning_manager_.get(), options_.diagnosis_thresholds,
                                         monitor_.get(), drops_.get(), datapath_manager_.get());
  return s;
}

absl::StatusOr<std::unique_ptr<grpc::ServerBuilder>> AgentServer::Builder(
    Services& services, const std::string& pool, std::vector<std::string>* names) {
  auto builder = std::make_unique<grpc::ServerBuilder>();
  absl::Status guarded;
  // The server dispatches to each service through its request guard.
  auto add = [&](absl::StatusOr<std::unique_ptr<GuardedService>> guard, const char* name) {
    if (!guard.ok()) {
      guarded.Update(guard.status());
      return;
    }
    builder->RegisterService(guard->get());
    services.guards.push_back(std::move(*guard));
    if (names) names->push_back(name);
  };
  namespace v1 = ::netagent::v1;
  add(GuardRequests<v1::HostService>(services.host.get()), v1::HostService::service_full_name());
  add(GuardRequests<v1::TelemetryService>(services.telemetry.get()),
      v1::TelemetryService::service_full_name());
  add(GuardRequests<v1::SocketService>(services.sockets.get()),
      v1::SocketService::service_full_name());
  add(GuardRequests<v1::NicService>(services.nics.get()), v1::NicService::service_full_name());
  add(GuardRequests<v1::ConntrackService>(services.conntrack.get(), services.conntrack->Handlers()),
      v1::ConntrackService::service_full_name());
  add(GuardRequests<v1::TuningService>(services.tuning.get()),
      v1::TuningService::service_full_name());
  add(GuardRequests<v1::DatapathService>(services.datapath.get()),
      v1::DatapathService::service_full_name());
  add(GuardRequests<v1::DiagnosisService>(services.diagnosis.get()),
      v1::DiagnosisService::service_full_name());
  if (!guarded.ok()) return guarded;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<AuthInterceptorFactory>(ctx_.auth));
  builder->experimental().SetInterceptorCreators(std::move(interceptors));
  grpc::ResourceQuota quota(pool);
  quota.SetMaxThreads(ctx_.long_calls.total() + kShortCallThreads);
  builder->SetResourceQuota(quota);
  // Long Watch streams: let clients keep idle connections alive.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  // A connection holds at most this many calls at once; more wait in the
  // client (HTTP/2 flow control) instead of taking server threads.
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kStreamsPerConnection);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                              static_cast<int>(absl::ToInt64Milliseconds(options_.idle_timeout)));
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000);
  // A peer that stops answering HTTP/2 pings (gone, or a connection opened
  // only to hold a descriptor) is closed within 40 s; gRPC clients answer.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return builder;
}

namespace {

// Leaves out the server builder's plugins (reflection): the health-only
// port describes nothing of the API.
class NoPlugins final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(const Options& options,
                                                                AgentContext& ctx) {
  std::unique_ptr<AgentServer> s(new AgentServer(options, ctx));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  // Bind both listeners before starting gRPC, so a second agent fails before
  // it serves anywhere.
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (options.listen) {
    if (options.tls) {
      NETAGENT_ASSIGN_OR_RETURN(s->tls_,
                                TlsStore::Create(*options.tls, options.state_dir + "/tls"));
      creds = s->tls_->Credentials();
    } else {
      creds = grpc::InsecureServerCredentials();
      spdlog::warn("TCP listener {} is plaintext: callers there are viewers (read-only)",
                   options.listen->ToGrpc());
    }
    NETAGENT_ASSIGN_OR_RETURN(s->tcp_, TcpListener::Bind(*options.listen, options.tcp_limits));
    s->tcp_port_ = s->tcp_->port();
  }
  if (options.health_listen) {
    // A probe holds one connection at a time; a few per peer are plenty.
    // The host itself (the kubelet) has 16 of its own that no remote peer
    // can take.
    NETAGENT_ASSIGN_OR_RETURN(
        s->health_tcp_, TcpListener::Bind(*options.health_listen, ConnectionLimits{64, 8, 16}));
  }
  if (!options.socket.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(
        s->unix_, UnixListener::Bind(options.socket, options.socket_mode, options.socket_group,
                                     options.unix_limits));
  }
  // Before tuning: its journal may hold fast-path blocks to expire.
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

  if (!options.state_dir.empty()) {
    tuners::TuningManager::Options topts;
    topts.state_dir = options.state_dir;
    topts.paths.sysfs = kernel::NetSysfsRoot();
    topts.paths.irq = kernel::ProcTree("irq");
    auto io = std::make_unique<tuners::SystemKnobs>(topts.paths);
    io->set_failing_writes(options.fault_inject_writes);
    topts.io = std::make_unique<DatapathKnobs>(std::move(io), s->datapath_manager_, datapath_off,
                                               options.fault_inject_writes);
    topts.snapshot = [paths = topts.paths, dp = s->datapath_manager_, datapath_off](
                         const tuners::SnapshotRequest& req,
                         const std::map<std::string, std::string>& baseline) {
      auto snap = tuners::TakeSnapshot(req, paths, baseline);
      if (snap.ok() && !req.datapath_device.empty()) {
        snap->datapath = DatapathStateOf(dp.get(), datapath_off, req.datapath_device);
      }
      return snap;
    };
    auto m = tuners::TuningManager::Start(std::move(topts));
    if (m.ok()) {
      s->tuning_manager_ = std::move(*m);
      ctx.conditions.AddSource([weak = std::weak_ptr(s->tuning_manager_)] {
        auto t = weak.lock();
        return t ? JournalConditions(t->JournalStatus()) : std::vector<Condition>{};
      });
      // The first plan would otherwise spend a tenth of a second on kallsyms.
      std::thread(tuners::WarmSnapshotCaches).detach();
    } else {
      // Telemetry and the fast path still serve; tuning says why it cannot.
      s->tuning_off_ = absl::StrCat("tuning is off: ", m.status().message());
      spdlog::error("{}", s->tuning_off_);
      ctx.conditions.Set({"tuning-off", ConditionSeverity::kCritical, s->tuning_off_,
                          absl::StrCat("fix ", options.state_dir,
                                       "/tuning (the journal there may hold changes to expire), "
                                       "then restart the agent"),
                          absl::Now()});
    }
  }
  {
    datapath::DropCollectorOptions dopts;
    dopts.netns_inode = static_cast<uint32_t>(ctx.netns.inode);
    dopts.samples_per_second = options.drop_samples;
    kernel::Capability cap = ctx.capabilities.drop_reasons;
    if (options.drop_reasons == DropReasonsMode::kOff) {
      cap = {false, "the kernel-drop collector is off (netagentd --drop-reasons off)", ""};
    }
    s->drops_ = std::make_unique<datapath::DropCollectorOnDemand>(dopts, cap);
    if (options.drop_reasons == DropReasonsMode::kStart) {
      // Failures are logged by the collector and told to every caller.
      (void)s->drops_->Get();
    } else if (options.drop_reasons == DropReasonsMode::kOnDemand && !cap.available) {
      spdlog::warn("drop reasons unavailable: {}", cap.reason);
    }
  }
  ctx.socket_iter = std::make_unique<collectors::BackgroundTcpSocketIterator>(options.socket_iter);
  {
    diagnosis::Monitor::Options mopts;
    mopts.collect.socket_iter = ctx.socket_iter.get();
    // Every interval: per-queue counters from qstats only, no ethtool -S.
    mopts.collect.rx_queues = diagnosis::QstatsRxQueues;
    mopts.interval = options.diagnosis_interval;
    mopts.overrides = options.diagnosis_thresholds;
    // Its walks give way to everything else (and the thread is at nice 19).
    mopts.collect.yield = [] { std::this_thread::yield(); };
    mopts.collect.keep_going = [&ctx]() {
      return ctx.lifecycle.stopping() ? absl::UnavailableError("the agent is stopping")
                                      : absl::OkStatus();
    };
    // Background work: below every caller's priority (lowering needs no
    // privilege).
    mopts.on_thread_start = [] {
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19);
    };
    // Drop reasons only with --drop-reasons start: what the evaluation
    // reports (and alerts on) must not depend on whether a caller once
    // attached the collector. It never attaches it by itself.
    if (options.drop_reasons == DropReasonsMode::kStart) {
      AddKernelDrops(s->drops_.get(), false, mopts.collect);
    }
    AddFastPaths(s->datapath_manager_.get(), mopts.collect);
    s->monitor_ = std::make_unique<diagnosis::Monitor>(std::move(mopts));
  }
  if (!options.auto_playbooks.empty()) {
    if (!s->tuning_manager_) {
      return absl::FailedPreconditionError(
          absl::StrCat("--playbook: auto playbooks need tuning: ", s->tuning_off_));
    }
    if (options.diagnosis_interval <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "--playbook: auto playbooks act on the agent's own diagnosis: --diagnosis-interval "
          "must not be 0");
    }
    s->auto_ = std::make_unique<AutoRemediation>(options.auto_playbooks, s->monitor_.get(),
                                                 s->tuning_manager_.get(),
                                                 options.diagnosis_thresholds, ctx);
  }
  if (options.metrics) {
    NETAGENT_ASSIGN_OR_RETURN(
        auto sources, AgentMetricsSources(options.metrics->selection, ctx, s->monitor_.get(),
                                          s->tuning_manager_.get(), s->datapath_manager_.get()));
    MetricsScraper::Options mo;
    mo.on_failure = MetricsFailureLog();
    if (options.metrics->selection.node_exporter_names) {
      mo.finish = [page = static_cast<int64_t>(::sysconf(_SC_PAGESIZE))](Families& families) {
        Families compat;
        AddNodeExporterFamilies(families, page, compat);
        for (MetricFamily& f : compat) families.push_back(std::move(f));
      };
    }
    s->scraper_ = std::make_unique<MetricsScraper>(std::move(sources), std::move(mo));
    MetricsServer::Options so;
    so.listen = options.metrics->listen;
    NETAGENT_ASSIGN_OR_RETURN(s->metrics_, MetricsServer::Start(so, s->scraper_.get()));
    spdlog::info("metrics on http://{}/metrics",
                 ListenAddress{options.metrics->listen.host, s->metrics_->port()}.ToGrpc());
  }
  s->local_services_ = s->MakeServices(datapath_off);
  NETAGENT_ASSIGN_OR_RETURN(auto local,
                            s->Builder(*s->local_services_, "netagentd-local", &s->services_));
  s->local_ = local->BuildAndStart();
  if (!s->local_) return absl::UnavailableError("cannot start the gRPC server");
  if (s->tcp_) {
    s->network_services_ = s->MakeServices(datapath_off);
    NETAGENT_ASSIGN_OR_RETURN(auto builder,
                              s->Builder(*s->network_services_, "netagentd-network", nullptr));
    auto acceptor = builder->experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, creds);
    s->network_ = builder->BuildAndStart();
    if (!s->network_) {
      s->local_->Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot start the gRPC server for ", options.listen->ToGrpc()));
    }
    s->tcp_->Start(std::move(acceptor));
  }
  if (s->health_tcp_) {
    // grpc.health.v1 alone (our own service; gRPC's default one off): no
    // API service, no interceptor, no reflection. SERVING once the API
    // serves, NOT_SERVING from the start of a shutdown.
    grpc::ServerBuilder builder;
    builder.SetOption(std::make_unique<NoPlugins>());
    builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    s->health_service_ = std::make_unique<HealthOnlyService>();
    builder.RegisterService(s->health_service_.get());
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 4);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 60000);
    // No connection lives longer than 5 minutes, watches included.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 300000);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    // Its own few threads: watches (at most HealthOnlyService::kMaxWatches)
    // and checks.
    grpc::ResourceQuota quota("netagentd-health");
    quota.SetMaxThreads(16);
    builder.SetResourceQuota(quota);
    builder.SetMaxReceiveMessageSize(4096);
    auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
        grpc::InsecureServerCredentials());
    s->health_ = builder.BuildAndStart();
    if (!s->health_) {
      return absl::UnavailableError(
          absl::StrCat("cannot start the health server for ", options.health_listen->ToGrpc()));
    }
    s->health_tcp_->Start(std::move(acceptor));
    spdlog::info(
        "gRPC health (plaintext, grpc.health.v1 only) on {}",
        ListenAddress{options.health_listen->host, static_cast<uint16_t>(s->health_tcp_->port())}
            .ToGrpc());
  }
  if (s->unix_) s->unix_->Start(s->local_.get(), ctx.auth);
  for (grpc::Server* server : {s->local_.get(), s->network_.get()})
    if (server) server->GetHealthCheckService()->SetServingStatus(true);
  if (s->health_service_) s->health_service_->SetServing(true);
  s->trimmer_ = std::thread([p = s.get()] { p->TrimLoop(); });
  return s;
}

void AgentServer::TrimLoop() {
  uint64_t trimmed_at = 0;
  std::unique_lock<std::mutex> l(trim_mu_);
  while (!trim_cv_.wait_for(l, std::chrono::seconds(2), [this] { return trim_stop_; })) {
    const uint64_t finished = ctx_.long_calls.finished();
    if (finished == trimmed_at || ctx_.long_calls.in_use() > 0) continue;
    malloc_trim(0);
    trimmed_at = finished;
  }
}

AgentServer::~AgentServer() { Shutdown(); }

void AgentServer::Shutdown() {
  if (shut_down_ || !local_) return;
  shut_down_ = true;
  // First: probes and load balancers stop sending while the rest stops.
  for (grpc::Server* server : {local_.get(), network_.get()})
    if (server) server->GetHealthCheckService()->SetServingStatus(false);
  if (health_service_) health_service_->SetServing(false);
  {
    std::lock_guard<std::mutex> l(trim_mu_);
    trim_stop_ = true;
  }
  trim_cv_.notify_all();
  if (trimmer_.joinable()) trimmer_.join();
  ctx_.lifecycle.BeginShutdown(options_.shutdown_grace);
  metrics_.reset();
  // A change being verified stays pending and rolls back at its deadline.
  if (auto_) auto_->Stop();
  // Ends the watches of findings and the evaluation thread.
  if (monitor_) monitor_->Stop();
  if (unix_) unix_->Stop();
  if (tcp_) tcp_->Stop();
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options_.shutdown_grace);
  // Both drain at once: each Shutdown waits for its in-flight calls.
  std::thread network([&] {
    if (network_) network_->Shutdown(deadline);
  });
  local_->Shutdown(deadline);
  network.join();
  local_->Wait();
  if (network_) network_->Wait();
  // Last: probes see NOT_SERVING while the API drains.
  if (health_tcp_) health_tcp_->Stop();
  if (health_) {
    health_service_->Stop();
    health_->Shutdown(std::chrono::system_clock::now());
    health_->Wait();
  }
}

absl::Status AgentServer::ReloadTls() {
  if (!tls_) return absl::FailedPreconditionError("no TLS listener configured");
  return tls_->Reload();
}

}  // namespace netagent::agent
