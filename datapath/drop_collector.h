// The kernel-drop collector: netagent_drops on the skb:kfree_skb tracepoint
// (BTF-typed), counting drops per (reason, device, protocol) of the served
// network namespace (per-CPU tables, see netagent_drops.h) and sampling a few flows per second per
// CPU into a ring buffer. Nothing is pinned: the program, its maps and its link are the agent's and
// go with it. Reason names come from the running kernel's BTF (kernel_drops.h); a kernel without
// them (older than 5.17, or without BTF) gets FAILED_PRECONDITION saying which, and nothing is
// loaded.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "datapath/kernel_drops.h"
#include "kernel/probe.h"

struct btf;
struct netagent_drops;
struct ring_buffer;

namespace netagent::datapath {

inline constexpr uint32_t kMaxDropSamplesPerSecond = 10000;

// The reason names of `btf` (a kernel's), after checking that its
// skb:kfree_skb tracepoint carries the reason (the prototype's third
// argument is an enum skb_drop_reason). FAILED_PRECONDITION naming what is
// missing; `kernel` (a release) goes into the message.
absl::StatusOr<DropReasonNames> DropReasonNamesFromBtf(const btf* btf, absl::string_view kernel);
// The same for the running kernel (its vmlinux BTF).
absl::StatusOr<DropReasonNames> LoadDropReasonNames();
// Whether the running kernel can give drop reasons, and why not; probed once
// at agent start (reads the kernel's BTF, loads nothing).
kernel::Capability ProbeDropReasons();

struct DropCollectorOptions {
  // Count drops of this network namespace only (its inode); 0: every one.
  // Drops with neither a device nor a socket have no namespace: counted as
  // `no_netns` events when a namespace is set.
  uint32_t netns_inode = 0;
  // Flow samples per second per CPU (0: none), at most kMaxDropSamplesPerSecond.
  uint32_t samples_per_second = 100;
  // The newest samples kept in memory.
  size_t kept_samples = 512;
  // Distinct (reason, device, protocol) keys the overflow hash holds (for
  // keys that find no room in a CPU's table of ND_SLOTS); drops of a new key
  // beyond it are counted as `table_full` events.
  uint32_t max_keys = ND_MAX_KEYS;
  // How often the ring buffer is read (samples carry no wakeup).
  absl::Duration drain_every = absl::Milliseconds(250);
  // Load the program that reads packet bytes with bpf_probe_read_kernel even
  // where bpf_rdonly_cast exists (what kernels before 6.2 get; tests).
  bool compat = false;
  // Slots of a CPU's table tried per key, at most ND_PROBES (tests: 0 sends
  // every key to the overflow hash).
  uint32_t table_probes = ND_PROBES;
};

// What a caller is told about the collector behind an answer.
struct DropCollectorStatus {
  absl::Time attached_at;
  bool attached_now = false;  // by the call being answered
  uint32_t samples_per_second = 0;
  uint32_t prog_id = 0;
  bool compat = false;  // reads packet bytes with bpf_probe_read_kernel
  size_t reasons_known = 0;
};

class DropCollector {
 public:
  // Checks the kernel, loads and attaches. FAILED_PRECONDITION when the
  // kernel cannot give reasons; INVALID_ARGUMENT for options out of range;
  // the load's errno (with the verifier's last words) otherwise.
  static absl::StatusOr<std::unique_ptr<DropCollector>> Start(const DropCollectorOptions& options);
  ~DropCollector();
  DropCollector(const DropCollector&) = delete;
  DropCollector& operator=(const DropCollector&) = delete;

  // Every count so far (summed over CPUs), the events, and the names of the
  // devices counted; reads the ring buffer first so Samples() is current.
  absl::StatusOr<KernelDropSnapshot> Snapshot();
  // The kept samples, oldest first.
  std::vector<KernelDropSample> Samples() const;

  const DropReasonNames& names() const { return names_; }
  const DropCollectorOptions& options() const { return options_; }
  absl::Time attached_at() const { return attached_at_; }
  uint32_t prog_id() const { return prog_id_; }
  // Whether the program reads the IP protocol through bpf_rdonly_cast (else
  // through bpf_probe_read_kernel: kernels before 6.2).
  bool uses_cast() const { return cast_; }
  DropCollectorStatus Status(bool attached_now) const;

 private:
  DropCollector() = default;
  void Drain();
  void DrainLoop();
  void OnSample(const nd_sample& s);

  DropCollectorOptions options_;
  DropReasonNames names_;
  absl::Time attached_at_;
  uint32_t prog_id_ = 0;
  bool cast_ = false;
  netagent_drops* skel_ = nullptr;
  ring_buffer* rb_ = nullptr;
  int slots_fd_ = -1, counts_fd_ = -1, events_fd_ = -1;

  std::mutex drain_mu_;          // ring_buffer__consume is not for two threads at once
  int64_t mono_to_real_ns_ = 0;  // drain_mu_
  mutable std::mutex samples_mu_;
  std::deque<KernelDropSample> samples_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread drainer_;
};

// The collector started by its first user and kept (what the agent holds).
// A kernel that cannot give reasons is told once, at construction, and
// every Get() answers with it; a load that failed for another reason is
// tried again after a pause (never by every caller in a row).
class DropCollectorOnDemand {
 public:
  // `probed`: ProbeDropReasons() at start.
  DropCollectorOnDemand(DropCollectorOptions options, kernel::Capability probed);

  // The collector, started now when it was not running; `started_now` says so.
  absl::StatusOr<std::shared_ptr<DropCollector>> Get(bool* started_now = nullptr);
  // The collector when it runs; null otherwise (nothing is started).
  std::shared_ptr<DropCollector> Running();

 private:
  DropCollectorOptions options_;
  kernel::Capability probed_;
  std::mutex mu_;
  std::shared_ptr<DropCollector> collector_;
  absl::Status last_error_;
  absl::Time last_try_ = absl::InfinitePast();
};

}  // namespace netagent::datapath
