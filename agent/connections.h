// The connections a listener has handed to gRPC, each counted against its
// peer (an address on TCP, a uid on the unix socket), and the limits on them:
// at most `total` open at once and `per_peer` from one peer, so that no
// caller can take the agent's descriptors or threads from the others.
// Exempt peers (operators on the unix socket) are counted but never refused.
//
// gRPC closes a connection without telling the listener: Sweep() finds the
// descriptors that no longer hold the socket recorded (closed, or reused for
// another file) and forgets them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace netagent::agent {

struct ConnectionLimits {
  size_t total = 512;
  size_t per_peer = 16;
  // TCP: connections from the host itself (loopback, or the address they
  // connected to: the kubelet probing a hostNetwork pod) have a budget of
  // their own, all such addresses together, outside `total` and `per_peer`:
  // remote peers cannot keep them out. 0: counted like any other peer. For
  // the health-only port, whose probes must get in.
  size_t local = 0;
};

class ConnectionTable {
 public:
  explicit ConnectionTable(ConnectionLimits limits) : limits_(limits) {}

  // Records the connection on `fd` (the socket's inode) for `peer`, or
  // RESOURCE_EXHAUSTED naming the limit it would pass. A record of an
  // earlier connection on the same fd number is dropped first: that one is
  // gone.
  absl::Status Admit(int fd, uint64_t inode, const std::string& peer, bool exempt);

  // Forgets the records whose fd no longer holds their socket: `inode_of`
  // answers the inode an fd holds now (0: closed). Returns how many.
  size_t Sweep(const std::function<uint64_t(int)>& inode_of);

  size_t size() const { return by_fd_.size(); }
  size_t of(const std::string& peer) const;
  const ConnectionLimits& limits() const { return limits_; }

 private:
  struct Entry {
    uint64_t inode;
    std::string peer;
  };
  void Forget(std::map<int, Entry>::iterator it);

  ConnectionLimits limits_;
  std::map<int, Entry> by_fd_;
  std::map<std::string, size_t> by_peer_;
};

// The inode of the socket `fd` holds, 0 when it holds none (closed).
uint64_t SocketInode(int fd);

// The accept loop both listeners run: accepts on `listen_fd` until `wake_fd`
// is readable, handing each connection (non-blocking, close-on-exec) to
// `on_connection`, which owns it; `on_tick` runs at least every `tick_ms`.
// Out of descriptors (EMFILE), it gives up a reserved one to accept and
// close the pending connection, so the loop neither spins nor leaves callers
// hanging.
void RunAcceptLoop(int listen_fd, int wake_fd, const std::function<void(int)>& on_connection,
                   const std::function<void()>& on_tick, int tick_ms = 1000);

}  // namespace netagent::agent
