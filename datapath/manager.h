// The fast path of the served namespace's devices, as the agent runs it:
// attach and detach (through the loader), the operator's rules in revisioned
// all-or-nothing batches, counters, drop samples and "why would this packet
// be dropped?". Everything it needs to carry on lives in bpffs under the pin
// root, beside the program's maps: two copies of rule_meta (each rule's id,
// prefix or port, comment) and dp_meta (what was asked at attach, the rules
// revision and which rule_meta copy is in force). A batch writes the spare
// copy and the tables, then switches dp_meta in one write, so an agent killed
// anywhere in a batch leaves the old rules in force; a new manager picks
// every pinned device up and repairs table entries that do not match them.
//
// Locking: the device map has a short lock of its own; attach and detach are
// serialized; each device serializes its rule batches; readers (stats, rule
// lists, TestPacket) work on a snapshot and never wait for a batch, and
// TestPacket runs a copy of the program loaded once per device.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "datapath/bpf_map.h"
#include "datapath/loader.h"
#include "datapath/render.h"
#include "datapath/rules.h"

namespace netagent::datapath {

// "pass", "block", "malformed_ipv4"... for enum na_reason; "" out of range.
absl::string_view ReasonName(uint32_t reason);
absl::string_view EventName(uint32_t event);
absl::string_view TcProtoName(uint32_t proto);

struct DropSampleRecord {
  absl::Time at;
  std::string reason;
  uint32_t rule_id = 0;
  uint32_t packet_length = 0;
  uint32_t rx_queue = 0;
  std::string data;
  std::string summary;
};

// How the sample reader meets ring-buffer poll errors: retried after a pause
// that starts at 10 ms and doubles to 1 s (never a busy loop); a success
// resets it; errors without a success for a minute end the reader.
class PollBackoff {
 public:
  struct Next {
    absl::Duration pause;  // before the next poll
    bool give_up = false;
  };
  // `rc`: what ring_buffer__poll returned (>= 0 or -EINTR: fine).
  Next After(int rc, absl::Time now);

 private:
  absl::Duration pause_ = absl::Milliseconds(10);
  absl::Time failing_since_ = absl::InfiniteFuture();
};

// One subscriber's queue of samples; bounded (oldest dropped and counted).
class SampleQueue {
 public:
  explicit SampleQueue(size_t cap) : cap_(cap) {}
  void Push(const DropSampleRecord& s);
  void Close();
  // Waits up to `timeout` for samples; returns what is queued (at most
  // `max`). Empty and closed(): the device went away.
  std::vector<DropSampleRecord> Wait(absl::Duration timeout, size_t max);
  bool closed() const;
  uint64_t overflowed() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<DropSampleRecord> q_;
  size_t cap_;
  bool closed_ = false;
  uint64_t overflowed_ = 0;
};

class DatapathManager {
 public:
  struct Options {
    std::string pin_root;
    RuleLimits limits;
    size_t sample_backlog = 256;  // kept per device for new subscribers
    // SO_NETNS_COOKIE of the served namespace, recorded at attach and checked
    // at pick-up (0: not known; not checked).
    uint64_t netns_cookie = 0;
    // Tests: called after each map write of a rule batch with the count so far
    // (a crash at every point of a batch).
    std::function<void(size_t)> after_batch_write;
  };

  struct AttachOptions {
    std::string device;
    AttachMode mode = AttachMode::kAuto;
    Features features;
    bool force = false;
  };

  struct DeviceStatus {
    AttachedXdp info;
    DpMeta meta;
    size_t rules = 0;
    std::string note;  // from attach (generic fallback) or pick-up (repairs)
  };

  struct UpdateResult {
    uint64_t revision = 0;
    std::vector<Rule> added;
  };

  struct RuleHits {
    Rule rule;
    uint64_t packets = 0, bytes = 0;
  };
  struct RuleList {
    uint64_t revision = 0;
    std::vector<RuleHits> rules;
    uint32_t next_id = 0;  // list again from here; 0: done
  };

  struct VerdictCount {
    uint32_t reason = 0;
    bool dropped = false;
    uint64_t packets = 0, bytes = 0;
  };
  struct ClassCount {
    bool egress = false;
    uint32_t proto = 0;  // enum na_tc_proto
    uint32_t port_class = 0;
    uint64_t packets = 0, bytes = 0;
  };
  struct Stats {
    std::vector<VerdictCount> total;                 // non-zero only
    std::vector<ClassCount> classes;                 // TC accounting, non-zero only
    std::vector<std::vector<VerdictCount>> per_cpu;  // when asked; index = CPU
    std::vector<std::pair<std::string, uint64_t>> events;
  };

  struct TestResult {
    bool dropped = false;
    uint32_t reason = 0;
    std::optional<Rule> rule;
    std::string summary;
  };

  // Picks up what earlier agents pinned under options.pin_root. Devices that
  // went away (pins of a deleted interface) are unpinned and logged.
  static absl::StatusOr<std::unique_ptr<DatapathManager>> Start(Options options);
  ~DatapathManager();

  absl::StatusOr<DeviceStatus> Attach(const AttachOptions& a);
  absl::Status Detach(const std::string& device);
  std::vector<DeviceStatus> Status();
  absl::StatusOr<UpdateResult> UpdateRules(const std::string& device, uint64_t expected_revision,
                                           const std::vector<RuleEdit>& edits);
  absl::StatusOr<RuleList> ListRules(const std::string& device, uint32_t from_id, size_t limit);
  // The device's rules in force (a shared snapshot: no copy, no map reads).
  absl::StatusOr<std::shared_ptr<const RuleSet>> Rules(const std::string& device);
  absl::StatusOr<Stats> GetStats(const std::string& device, bool per_cpu);
  // Runs `frame` through a private copy of the device's program (loaded once
  // per device) that reads its live rules but has its own counters and SYN
  // buckets, cleared after each run (so a SYN is judged as from a source not
  // seen before). Runs one at a time per device, outside every other lock.
  absl::StatusOr<TestResult> TestPacket(const std::string& device, const std::string& frame);
  // Recent samples first (up to sample_backlog) unless live_only, then live ones.
  absl::StatusOr<std::shared_ptr<SampleQueue>> SubscribeSamples(const std::string& device,
                                                                bool live_only);
  void Unsubscribe(const std::string& device, const std::shared_ptr<SampleQueue>& q);

  const std::string& pin_root() const { return options_.pin_root; }

 private:
  struct Device;
  class Tester;
  explicit DatapathManager(Options o);
  // Builds the device's state from its pins (fresh attach or pick-up).
  absl::StatusOr<std::shared_ptr<Device>> Load(const std::string& name, const std::string& note);
  absl::StatusOr<std::shared_ptr<Device>> Find(const std::string& device) const;
  DeviceStatus StatusOf(const Device& d) const;

  Options options_;
  std::mutex config_mu_;   // attach and detach, one at a time
  mutable std::mutex mu_;  // devices_ only
  std::map<std::string, std::shared_ptr<Device>> devices_;
};

}  // namespace netagent::datapath
