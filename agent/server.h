// The gRPC servers of netagentd: the netagent.v1 services behind the
// authorization interceptor, grpc.health.v1 and server reflection, served
// twice: on the unix socket and on the optional TCP listener (plaintext:
// viewers only; TLS; mTLS). Two grpc::Server instances with a thread pool
// each, so that callers on the network, however many, can never take the
// threads of the local socket where operators work. Both listeners accept
// connections themselves and count them per peer before gRPC sees them.
#pragma once

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/auto_remediation.h"
#include "agent/config.h"
#include "agent/connections.h"
#include "agent/conntrack_service.h"
#include "agent/context.h"
#include "agent/datapath_service.h"
#include "agent/diagnosis_service.h"
#include "agent/health_service.h"
#include "agent/host_service.h"
#include "agent/metrics_server.h"
#include "agent/metrics_sources.h"
#include "agent/nic_service.h"
#include "agent/request_guard.h"
#include "agent/socket_service.h"
#include "agent/tcp_listener.h"
#include "agent/telemetry_service.h"
#include "agent/tls.h"
#include "agent/tuning_service.h"
#include "agent/unix_listener.h"
#include "datapath/drop_collector.h"
#include "diagnosis/monitor.h"

namespace netagent::agent {

class AgentServer {
 public:
  struct Options {
    // Unix socket; empty for none (in-process tests).
    std::string socket;
    uint32_t socket_mode = 0660;
    std::optional<gid_t> socket_group;
    std::optional<ListenAddress> listen;  // port 0 picks a free port (tests)
    // Per peer address and in all; the unix socket counts per uid, and
    // operators there are never refused.
    ConnectionLimits tcp_limits{512, 16};
    ConnectionLimits unix_limits{512, 32};
    // A connection with no call for this long is closed (watches keep theirs).
    absl::Duration idle_timeout = absl::Minutes(5);
    std::optional<TlsPaths> tls;
    std::string state_dir;
    // The fast path's bpffs pins; empty: the DatapathService answers
    // FAILED_PRECONDITION.
    std::string bpf_pin_root;
    // Test hook: writes of these knobs fail (see tuners::SystemKnobs).
    std::set<std::string> fault_inject_writes;
    absl::Duration shutdown_grace = absl::Seconds(10);
    // Diagnosis levels over the catalog's defaults (from the config).
    diagnosis::LevelOverrides diagnosis_thresholds;
    // Continuous evaluation for WatchFindings; zero: none.
    absl::Duration diagnosis_interval = absl::Seconds(10);
    // The kernel-drop collector (TelemetryService.GetDropReasons). Off here
    // unless asked (in-process tests load no tracing program); netagentd's
    // default is on-demand.
    DropReasonsMode drop_reasons = DropReasonsMode::kOff;
    uint32_t drop_samples = 100;
    // Load the BPF socket iterator for summaries and diagnoses (sock_diag
    // until it is loaded, where it cannot load, or when false). Off here
    // unless asked (in-process tests load no program); netagentd's default
    // is on.
    bool socket_iter = false;
    // `mode: auto` playbooks the agent runs by itself (needs the continuous
    // diagnosis and tuning); empty: none.
    std::vector<playbook::Playbook> auto_playbooks;
    // The Prometheus endpoint; unset: none.
    struct Metrics {
      ListenAddress listen;
      MetricsSelection selection;
    };
    std::optional<Metrics> metrics;
    // Plaintext gRPC serving grpc.health.v1 alone (Kubernetes' gRPC
    // probes cannot present a client certificate); unset: none.
    std::optional<ListenAddress> health_listen;
  };

  // `ctx` must outlive the server.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Start(const Options& options,
                                                            AgentContext& ctx);
  ~AgentServer();

  // Ends streams, stops accepting, lets in-flight calls finish within the
  // grace period, then cancels what is left. Idempotent.
  void Shutdown();

  // SIGHUP: stages the TLS files again; an error keeps the running ones.
  absl::Status ReloadTls();

  // The TCP port actually bound (0 without a TCP listener).
  int tcp_port() const { return tcp_port_; }
  // The metrics port actually bound (0 without the endpoint).
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  int health_port() const { return health_tcp_ ? health_tcp_->port() : 0; }

  // Full names of the netagent.v1 services registered ("netagent.v1.HostService").
  const std::vector<std::string>& services() const { return services_; }

 private:
  AgentServer(const Options& options, AgentContext& ctx) : options_(options), ctx_(ctx) {}

  // One server's instances of the services (gRPC registers an instance with
  // a single server); all of them share the managers.
  struct Services {
    std::unique_ptr<HostService> host;
    std::unique_ptr<TelemetryService> telemetry;
    std::unique_ptr<SocketService> sockets;
    std::unique_ptr<NicService> nics;
    std::unique_ptr<ConntrackService> conntrack;
    std::unique_ptr<TuningService> tuning;
    std::unique_ptr<DatapathService> datapath;
    std::unique_ptr<DiagnosisService> diagnosis;
    // What the server dispatches to: each service above behind the request
    // guard (agent/request_guard.h).
    std::vector<std::unique_ptr<GuardedService>> guards;
  };
  std::unique_ptr<Services> MakeServices(const std::string& datapath_off);
  // A server with its own thread pool; `names` gets the services' names.
  absl::StatusOr<std::unique_ptr<grpc::ServerBuilder>> Builder(Services& services,
                                                               const std::string& pool,
                                                               std::vector<std::string>* names);

  Options options_;
  AgentContext& ctx_;
  std::unique_ptr<TlsStore> tls_;
  // Shared so that the condition source registered in the context (which
  // outlives this server) can tell when it is gone.
  std::shared_ptr<tuners::TuningManager> tuning_manager_;
  std::string tuning_off_ = "tuning is off: the agent has no state directory for its journal";
  // Shared with the tuning manager's knobs (the fast path's blocks), which
  // its thread reads until it stops.
  std::shared_ptr<datapath::DatapathManager> datapath_manager_;
  // Before the services: they watch it, and go first.
  std::unique_ptr<diagnosis::Monitor> monitor_;
  // After the monitor and the tuning manager, stopped before them.
  std::unique_ptr<AutoRemediation> auto_;
  std::unique_ptr<datapath::DropCollectorOnDemand> drops_;
  // After everything its sources read; the server goes first.
  std::unique_ptr<MetricsScraper> scraper_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<Services> local_services_, network_services_;
  std::unique_ptr<grpc::Server> local_, network_;
  std::unique_ptr<UnixListener> unix_;
  std::unique_ptr<TcpListener> tcp_;
  // The health-only port: its own server, no API service, no reflection.
  std::unique_ptr<HealthOnlyService> health_service_;
  std::unique_ptr<grpc::Server> health_;
  std::unique_ptr<TcpListener> health_tcp_;
  std::vector<std::string> services_;
  int tcp_port_ = 0;
  bool shut_down_ = false;

  // Gives memory back to the system once table walks and watches are over:
  // glibc keeps what their buffers used, per thread arena, otherwise.
  void TrimLoop();
  std::mutex trim_mu_;
  std::condition_variable trim_cv_;
  bool trim_stop_ = false;
  std::thread trimmer_;
};

}  // namespace netagent::agent
