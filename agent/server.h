// The gRPC server of netagentd: the netagent.v1 services behind the
// authorization interceptor, grpc.health.v1, server reflection, the unix socket
// and the optional TCP listener (plaintext: viewers only; TLS; mTLS).
#pragma once

#include <grpcpp/server.h>

#include <memory>
#include <optional>
#include <set>

#include "absl/status/statusor.h"
#include "agent/config.h"
#include "agent/conntrack_service.h"
#include "agent/context.h"
#include "agent/datapath_service.h"
#include "agent/host_service.h"
#include "agent/nic_service.h"
#include "agent/socket_service.h"
#include "agent/telemetry_service.h"
#include "agent/tls.h"
#include "agent/tuning_service.h"
#include "agent/unix_listener.h"

namespace netagent::agent {

class AgentServer {
 public:
  struct Options {
    // Unix socket; empty for none (in-process tests).
    std::string socket;
    uint32_t socket_mode = 0660;
    std::optional<gid_t> socket_group;
    std::optional<ListenAddress> listen;  // port 0 picks a free port (tests)
    std::optional<TlsPaths> tls;
    std::string state_dir;
    // The fast path's bpffs pins; empty: the DatapathService answers
    // FAILED_PRECONDITION.
    std::string bpf_pin_root;
    // Test hook: writes of these knobs fail (see tuners::SystemKnobs).
    std::set<std::string> fault_inject_writes;
    absl::Duration shutdown_grace = absl::Seconds(10);
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

  // Full names of the netagent.v1 services registered ("netagent.v1.HostService").
  const std::vector<std::string>& services() const { return services_; }

 private:
  AgentServer(const Options& options, AgentContext& ctx) : options_(options), ctx_(ctx) {}

  Options options_;
  AgentContext& ctx_;
  std::unique_ptr<TlsStore> tls_;
  std::unique_ptr<HostService> host_;
  std::unique_ptr<TelemetryService> telemetry_;
  std::unique_ptr<SocketService> sockets_;
  std::unique_ptr<NicService> nics_;
  std::unique_ptr<ConntrackService> conntrack_;
  std::unique_ptr<tuners::TuningManager> tuning_manager_;
  std::unique_ptr<TuningService> tuning_;
  std::unique_ptr<datapath::DatapathManager> datapath_manager_;
  std::unique_ptr<DatapathService> datapath_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<UnixListener> unix_;
  std::vector<std::string> services_;
  int tcp_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace netagent::agent
