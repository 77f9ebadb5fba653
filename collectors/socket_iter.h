// This namespace's TCP sockets walked by a BPF iterator (iter/tcp, kernel
// 5.12+) instead of a sock_diag dump: the kernel writes a fixed 136-byte record
// per socket (collectors/bpf/netagent_sockets.h) instead of a netlink message
// with every attribute, which costs the kernel about a third of the dump's
// CPU. It carries what the socket summary reads (states, endpoints, queues,
// and the tcp_info figures of SocketSummarizer), not a full SocketRecord:
// listings (`sockets -i`) stay with sock_diag.
//
// Loaded once (verifier, CO-RE against the kernel's BTF; HZ measured from two
// walks a quarter second apart) and walked by any number of threads at once;
// each walk sees the network namespace of the thread that walks. Kernel 5.12+.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
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

// The footer that ends every walk: the kernel's jiffies and monotonic clock.
struct IterFooter {
  uint64_t jiffies = 0;
  uint64_t ktime_ns = 0;
};

// One record as the iterator wrote it: a socket into `out` (reused across
// records; durations in jiffies converted with `hz`) and true, or the walk's
// footer into `footer` and false. DATA_LOSS for bytes that are not a record
// (wrong size or magic, a family or state the kernel does not have).
absl::StatusOr<bool> ParseIterRecord(absl::string_view bytes, uint32_t hz, SocketRecord& out,
                                     IterFooter& footer);

// The kernel's HZ from the footers of two walks: jiffies over the clock
// between them, the one of the rates kernels are built with (100, 250, 300,
// 1000) it is within 2% and a tick and a half of. Needs 100 ms between them.
absl::StatusOr<uint32_t> HzFromFooters(const IterFooter& first, const IterFooter& second);

// Cuts what reads of the iterator give (any sizes) into whole records.
class IterRecordStream {
 public:
  // Every whole record in `chunk` (with what the last chunk left over).
  absl::Status Feed(absl::string_view chunk,
                    absl::FunctionRef<absl::Status(absl::string_view record)> on_record);
  // DATA_LOSS when the reads ended inside a record.
  absl::Status Finish() const;

 private:
  std::string partial_;
};

enum class IterDetail { kRecords, kSummary };

class TcpSocketIterator {
 public:
  static absl::StatusOr<std::unique_ptr<TcpSocketIterator>> Load();
  ~TcpSocketIterator();
  TcpSocketIterator(const TcpSocketIterator&) = delete;
  TcpSocketIterator& operator=(const TcpSocketIterator&) = delete;

  // Every TCP socket of the families and states `q` asks for (its address
  // and port filters must be empty: use sock_diag for those); `keep_going`
  // is asked every kSocketCheckEvery sockets. kRecords: each as sock_diag
  // gives it (queues, cookie; tcp_info too, whatever q says). kSummary
  // without q.tcp_info or q.memory: what a SocketSummarizer reads and no
  // more (state, addresses and ports; a listener's queues): a lighter walk.
  absl::StatusOr<uint64_t> Walk(const SocketQuery& q,
                                absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
                                absl::FunctionRef<absl::Status()> keep_going,
                                IterDetail detail = IterDetail::kRecords) const;

  uint32_t hz() const { return hz_; }

  // Whether Walk should answer `q`: TCP only, no address or port filter, not
  // listeners alone (sock_diag reads the listening table alone).
  static bool CanWalk(const SocketQuery& q);

 private:
  explicit TcpSocketIterator(netagent_sockets* skel) : skel_(skel) {}
  // Reads one walk's records to `on_record`, by the summary's program or
  // the full one.
  absl::Status Read(bool summary,
                    absl::FunctionRef<absl::Status(absl::string_view record)> on_record) const;
  // One walk that writes the footer alone (while calibrating).
  absl::StatusOr<IterFooter> Footer() const;
  netagent_sockets* skel_;
  uint32_t hz_ = 0;
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
