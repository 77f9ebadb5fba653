// This namespace's TCP sockets walked by a BPF iterator (iter/tcp, kernel
// 5.9+) instead of a sock_diag dump: the kernel writes a fixed 136-byte record
// per socket (collectors/bpf/netagent_sockets.h) instead of a netlink message
// with every attribute, which costs the kernel about a third of the dump's
// CPU. It carries what the socket summary reads (states, endpoints, queues,
// and the tcp_info figures of SocketSummarizer), not a full SocketRecord:
// listings (`sockets -i`) stay with sock_diag.
//
// Loaded once (verifier, CO-RE against the kernel's BTF, CONFIG_HZ from the
// kernel's config) and walked by any number of threads at once; each walk
// sees the network namespace the process is in.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "collectors/sockets.h"
#include "kernel/probe.h"

struct netagent_sockets;

namespace netagent::collectors {

inline constexpr size_t kIterRecordSize = 136;

// One record as the iterator wrote it into `out` (reused across records).
// DATA_LOSS for bytes that are not a record (wrong size or magic, a family or
// state the kernel does not have).
absl::Status ParseIterRecord(absl::string_view bytes, SocketRecord& out);

class TcpSocketIterator {
 public:
  static absl::StatusOr<std::unique_ptr<TcpSocketIterator>> Load();
  ~TcpSocketIterator();
  TcpSocketIterator(const TcpSocketIterator&) = delete;
  TcpSocketIterator& operator=(const TcpSocketIterator&) = delete;

  // Every TCP socket of the families and states `q` asks for (its address
  // and port filters must be empty: use sock_diag for those); `keep_going`
  // is asked every kSocketCheckEvery sockets.
  absl::StatusOr<uint64_t> Walk(const SocketQuery& q,
                                absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
                                absl::FunctionRef<absl::Status()> keep_going) const;

  // Whether Walk should answer `q`: TCP only, no address or port filter, not
  // listeners alone (sock_diag reads the listening table alone).
  static bool CanWalk(const SocketQuery& q);

 private:
  explicit TcpSocketIterator(netagent_sockets* skel) : skel_(skel) {}
  netagent_sockets* skel_;
};

// The iterator loaded by a thread of its own, so that a start does not wait
// for it (a load reads the kernel's BTF and config: 50-200 ms); walks before
// it is ready, and where it cannot load, use sock_diag.
class BackgroundTcpSocketIterator {
 public:
  // `enabled` false: never loaded (the agent's --socket-walk sock_diag).
  explicit BackgroundTcpSocketIterator(bool enabled);
  ~BackgroundTcpSocketIterator();  // waits for a load under way
  BackgroundTcpSocketIterator(const BackgroundTcpSocketIterator&) = delete;
  BackgroundTcpSocketIterator& operator=(const BackgroundTcpSocketIterator&) = delete;

  // Null until loaded, and for good when off or when the load failed.
  const TcpSocketIterator* get() const { return ready_.load(std::memory_order_acquire); }
  // Loaded; not yet ("loading"); or why not.
  kernel::Capability capability() const;

 private:
  std::atomic<const TcpSocketIterator*> ready_{nullptr};
  mutable std::mutex mu_;
  std::unique_ptr<TcpSocketIterator> iter_;
  kernel::Capability capability_;
  std::thread loader_;
};

}  // namespace netagent::collectors
