// The agent's TCP listener. The agent accepts connections itself, so it can
// count them per peer address and in all (ConnectionTable) before gRPC sees
// them, then hands each to the gRPC server through an external connection
// acceptor, with the listener's credentials (plaintext, TLS or mTLS).
#pragma once

#include <grpcpp/server_builder.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/config.h"
#include "agent/connections.h"
#include "kernel/fd.h"

namespace netagent::agent {

class TcpListener {
 public:
  // Binds and listens (so a taken port fails before anything serves). An
  // empty host listens on every address of both families.
  static absl::StatusOr<std::unique_ptr<TcpListener>> Bind(const ListenAddress& address,
                                                           ConnectionLimits limits);
  ~TcpListener();

  // Starts accepting into `acceptor` (whose server is started).
  void Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);
  void Stop();

  int port() const { return port_; }
  // Connections handed to gRPC that are still open (as of the last sweep).
  size_t open_connections() const;

 private:
  TcpListener(kernel::UniqueFd fd, int port, ConnectionLimits limits);
  void OnConnection(int fd);

  kernel::UniqueFd fd_;
  int port_;
  kernel::UniqueFd wake_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  mutable std::mutex mu_;
  ConnectionTable table_;
  uint64_t refused_ = 0;  // accept thread only
  std::chrono::steady_clock::time_point last_refusal_log_;
  std::thread thread_;
};

}  // namespace netagent::agent
