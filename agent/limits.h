// Bounds on calls that hold a server thread for long: Watch streams and
// windowed Gets. Without them a viewer could open enough watches to take every
// thread and lock everyone out, operators included. Short calls are never
// limited here; the thread pool is sized so they always find a thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace netagent::agent {

class LongCallLimiter {
 public:
  // `what` names the calls in refusals ("watches and windowed calls").
  LongCallLimiter(int total, int per_caller, std::string what = "watches and windowed calls")
      : total_(total), per_caller_(per_caller), what_(std::move(what)) {}

  // Held for the length of the call.
  class Slot {
   public:
    Slot(LongCallLimiter* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { owner_->Release(key_); }

   private:
    LongCallLimiter* owner_;
    std::string key_;
  };

  // A slot for `caller_key` (who is calling: uid, certificate, address), or
  // RESOURCE_EXHAUSTED naming the limit reached.
  absl::StatusOr<std::unique_ptr<Slot>> Acquire(const std::string& caller_key);

  int total() const { return total_; }
  int per_caller() const { return per_caller_; }
  int in_use() const;
  // Calls that held a slot and ended, since start.
  uint64_t finished() const;

 private:
  void Release(const std::string& key);

  const int total_;
  const int per_caller_;
  const std::string what_;
  mutable absl::Mutex mu_;
  int in_use_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t finished_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> by_caller_ ABSL_GUARDED_BY(mu_);
};

// The CPUs table walks (socket and conntrack dumps and summaries) may use at
// once: all but one (at least one), so that however many walks viewers
// start, the rest of the agent -- operators' calls, health, the fast path's
// control -- always finds a CPU. A walk holds a share while it reads and
// converts a batch, and yields it between batches (and while a batch goes
// out: the network decides how long that takes). Shares are granted in the
// order they were asked for.
class CpuShares {
 public:
  explicit CpuShares(int shares) : granted_(static_cast<uint64_t>(shares)) {}
  // Shares: the online CPUs less one, at least one.
  static int ForThisHost();

  class Hold {
   public:
    explicit Hold(CpuShares* owner) : owner_(owner) { owner_->Take(); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() {
      if (held_) owner_->Give();
    }
    // Gives the share up for the length of `fn`.
    template <typename F>
    auto Without(F&& fn) {
      owner_->Give();
      held_ = false;
      struct Retake {
        Hold* h;
        ~Retake() {
          h->owner_->Take();
          h->held_ = true;
        }
      } retake{this};
      return fn();
    }
    // Lets the walks waiting their turn go first.
    void Yield() {
      Without([] { return 0; });
    }

   private:
    CpuShares* owner_;
    bool held_ = true;
  };

 private:
  void Take();
  void Give();

  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t granted_ ABSL_GUARDED_BY(mu_);
};

// The gRPC thread pool: enough for every long call plus this many short ones.
inline constexpr int kShortCallThreads = 32;
// Calls one connection may have in flight (HTTP/2 MAX_CONCURRENT_STREAMS);
// a client that opens more waits for one to finish.
inline constexpr int kStreamsPerConnection = 16;

}  // namespace netagent::agent
