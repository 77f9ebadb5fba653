// What every diagnosis rule reads: two snapshots of the network stack taken a
// window apart, collected once and shared by all rules. A snapshot holds what
// the collectors return (counters, softnet, sockets, conntrack, devices,
// sockstat) and the sysctls the rules compare against; whatever could not be
// read is named with the reason, so a rule can say it was skipped instead of
// reading zeros.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "collectors/conntrack.h"
#include "collectors/counters.h"
#include "collectors/ethtool.h"
#include "collectors/links.h"
#include "collectors/neighbour.h"
#include "collectors/nic_queues.h"
#include "collectors/socket_summary.h"
#include "collectors/sockstat.h"
#include "collectors/softirqs.h"
#include "collectors/softnet.h"

namespace netagent::diagnosis {

// What the kernel freed as dropped, by reason (the agent's kernel-drop
// collector on skb:kfree_skb, when it runs): counts since the collector
// attached, per reason name ("TCP_LISTEN_OVERFLOW") and device index (0 when
// the packet had none). Compared by index: a device that went away or was
// renamed between two snapshots is still the same key.
struct KernelDrops {
  absl::Time attached_at;  // counts start here: two snapshots compare only with the same
  std::map<std::pair<std::string, uint32_t>, uint64_t> counts;  // (reason, ifindex)
  std::map<uint32_t, std::string> devices;                      // ifindex -> name when taken
  uint64_t table_full = 0;  // drops counted nowhere (no room for a new key)
};

// A source prefix that sampled drops came from over the window.
struct DropSource {
  std::string prefix;  // "10.1.2.0/24", "2001:db8::/64"
  uint64_t samples = 0;
  std::string reason;  // the reason most of its samples had
};

// A device the agent's fast path (XDP/TC) is attached to.
struct FastPath {
  std::string device;
  bool blocklist = false;  // its blocklist is compiled in
  // Source prefixes of its allow rules ("10.0.0.0/8"): checked before any
  // block, so a block of a network they overlap leaves that part in.
  std::vector<std::string> allowed;
  std::string rules_unread;  // why its rules could not be read ("": they were)
};

struct Snapshot {
  absl::Time taken;
  absl::Duration mono;  // CLOCK_MONOTONIC when taken (zero: unknown)
  std::optional<collectors::CounterSample> counters;
  std::optional<collectors::SoftnetSample> softnet;
  std::optional<collectors::SocketSummary> sockets;
  std::optional<collectors::ConntrackStats> conntrack;
  std::optional<std::vector<collectors::LinkRecord>> links;
  std::optional<collectors::Sockstat> sockstat;
  std::optional<std::vector<collectors::NeighbourStats>> neighbours;
  std::optional<collectors::Softirqs> softirqs;
  std::optional<KernelDrops> drops;
  // Per physical device (no link kind, not loopback; at most
  // kMaxQueueDevices), its receive queues' packets and drops, where the
  // device gives any per queue.
  std::map<std::string, std::vector<collectors::RxQueueCounters>> rx_queues;
  // name -> value as read ("4096", "4096 131072 6291456"); absent when the
  // sysctl does not exist here or could not be read.
  std::map<std::string, std::string> sysctls;
  // Where the agent's fast path runs (empty: nowhere, or no agent).
  std::vector<FastPath> fast_paths;
};

// A listener's accept queue over the window: sampled every second (a queue
// that overflows is full only for moments), folded as the samples come so a
// long window costs no more memory than a short one.
struct ListenerWatch {
  uint32_t backlog = 0;          // the last seen (sk_max_ack_backlog)
  uint32_t max_queue = 0;        // the longest accept queue seen
  size_t samples = 0, full = 0;  // full: queue above the backlog, dropping
};

struct SnapshotPair {
  Snapshot before, after;
  // By listening endpoint ("0.0.0.0:8080"), and how many samples were taken.
  std::map<std::string, ListenerWatch> listeners;
  size_t listener_samples = 0;
  // Ring sizes (ethtool: rx, rx-max, ...) of the devices that lost frames in
  // hardware (missed, fifo, over) over the window, at most kMaxRingDevices.
  std::map<std::string, collectors::NamedValues> rings;
  // Where sampled kernel drops came from over the window (with `drops`).
  std::vector<DropSource> drop_sources;
  // Inputs that could not be read ("conntrack: ...", "sockets: ..."), each once.
  std::vector<std::string> unavailable;

  // Measured on the monotonic clock when both snapshots have it (a wall
  // clock step during the window does not change it).
  absl::Duration window() const {
    if (before.mono > absl::ZeroDuration() && after.mono > absl::ZeroDuration())
      return after.mono - before.mono;
    return after.taken - before.taken;
  }
};

inline constexpr size_t kMaxRingDevices = 8;
inline constexpr size_t kMaxQueueDevices = 16;

// The devices whose receive queues a snapshot reads: physical ones (no
// link kind), not loopback, by name, at most kMaxQueueDevices.
std::vector<std::string> QueueDevices(const std::vector<collectors::LinkRecord>& links);

// The devices that lost frames in hardware between two snapshots (receive
// missed, fifo or over errors moved), the most lost first, at most `max`.
std::vector<std::string> HardwareLossDevices(const Snapshot& before, const Snapshot& after,
                                             size_t max);

// Reads the rings of `pair`'s HardwareLossDevices through `o.rings`.
struct CollectOptions;
void AddRings(const CollectOptions& o, SnapshotPair& pair);

// Folds one sample of the listeners into `pair`.
void FoldListeners(SnapshotPair& pair, const std::vector<collectors::ListenerStats>& listeners);

// The sysctls the rules read.
const std::vector<std::string>& DiagnosisSysctls();

// Reads `dev`'s rings through ethtool netlink.
absl::StatusOr<collectors::NamedValues> DefaultRings(const std::string& dev);
// Reads `dev`'s receive queues' counters: qstats merged with the driver's
// own statistics (ethtool -S, which some drivers answer from firmware).
absl::StatusOr<std::vector<collectors::RxQueueCounters>> DefaultRxQueues(const std::string& dev,
                                                                         uint32_t ifindex);
// qstats alone (a netlink dump): what the agent's continuous evaluation
// reads every interval, leaving ethtool -S to the diagnoses asked for.
absl::StatusOr<std::vector<collectors::RxQueueCounters>> QstatsRxQueues(const std::string& dev,
                                                                        uint32_t ifindex);

// How the collection reaches the host. The defaults read the agent's own
// namespace; tests and the agent may swap any of them.
struct CollectOptions {
  absl::Duration window = absl::Seconds(10);
  absl::Duration listener_every = absl::Seconds(1);
  size_t top = 10;
  // Asked between steps and during socket walks: non-OK ends the collection
  // with it (the caller went away, the agent stops).
  std::function<absl::Status()> keep_going = [] { return absl::OkStatus(); };
  // Called between batches of a socket walk (the agent shares CPUs there).
  std::function<void()> yield = [] {};
  // Waits between samples (the agent gives its CPU share up meanwhile).
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
  // Kernel drops by reason; unset: not collected (no collector here). An
  // error says why they are missing (it goes to `unavailable`).
  std::function<absl::StatusOr<KernelDrops>()> drops;
  // A device's ring sizes (ethtool), read after the window for the devices
  // that lost frames in hardware; unset: not read.
  std::function<absl::StatusOr<collectors::NamedValues>(const std::string& dev)> rings =
      DefaultRings;
  // A device's receive queue counters, read in each snapshot for the
  // QueueDevices; unset: not read.
  std::function<absl::StatusOr<std::vector<collectors::RxQueueCounters>>(const std::string& dev,
                                                                         uint32_t ifindex)>
      rx_queues = DefaultRxQueues;
  // The source prefixes of drops sampled since a time, most first.
  std::function<std::vector<DropSource>(absl::Time since)> drop_sources;
  // The BPF socket iterator, once the agent loaded it; unset or not yet
  // loaded: sock_diag.
  const collectors::BackgroundTcpSocketIterator* socket_iter = nullptr;
  // The devices the agent's fast path is attached to; unset: none.
  std::function<std::vector<FastPath>()> fast_paths;
};

// One snapshot now; what could not be read goes to `unavailable` (may be
// null). Fails only when keep_going says stop.
absl::StatusOr<Snapshot> CollectSnapshot(const CollectOptions& options,
                                         std::vector<std::string>* unavailable);

// Takes `before`, samples listeners through the window, then `after`. A
// collector that fails is recorded in `unavailable`; only a stop from
// keep_going fails the whole collection.
absl::StatusOr<SnapshotPair> CollectPair(const CollectOptions& options);

}  // namespace netagent::diagnosis
