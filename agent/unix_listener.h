// The agent's unix socket. gRPC cannot tell who is on the other end of a unix
// connection, so the agent accepts connections itself, records the peer's
// SO_PEERCRED and SO_PEERGROUPS, and hands each connection to the gRPC server
// (AddInsecureChannelFromFd), where it shows as peer "fd:<n>". Connections are
// counted per uid (ConnectionTable); operators are never refused.
#pragma once

#include <grpcpp/server.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/connections.h"
#include "agent/interceptor.h"
#include "kernel/fd.h"

namespace netagent::agent {

class UnixListener {
 public:
  // Creates the directory if needed, refuses a path another live agent serves,
  // replaces a stale socket, binds with `mode` and chowns to `group` if set.
  static absl::StatusOr<std::unique_ptr<UnixListener>> Bind(const std::string& path, uint32_t mode,
                                                            std::optional<gid_t> group,
                                                            ConnectionLimits limits = {});
  ~UnixListener();

  // Starts accepting into `server` (already started); peers go to `state`.
  void Start(grpc::Server* server, std::shared_ptr<AuthState> state);
  // Stops accepting and removes the socket file if it is still ours.
  void Stop();

  const std::string& path() const { return path_; }

 private:
  UnixListener(std::string path, kernel::UniqueFd fd, ino_t inode, ConnectionLimits limits);
  void OnConnection(int fd);

  std::string path_;
  kernel::UniqueFd fd_;
  ino_t inode_;
  kernel::UniqueFd wake_;  // eventfd that ends the accept loop
  grpc::Server* server_ = nullptr;
  std::shared_ptr<AuthState> state_;
  ConnectionTable table_;  // accept thread only
  uint64_t refused_ = 0;
  std::chrono::steady_clock::time_point last_refusal_log_;
  std::thread thread_;
};

}  // namespace netagent::agent
