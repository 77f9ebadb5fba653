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
#include "collectors/links.h"
#include "collectors/neighbour.h"
#include "collectors/socket_summary.h"
#include "collectors/sockstat.h"
#include "collectors/softirqs.h"
#include "collectors/softnet.h"

namespace netagent::diagnosis {

struct Snapshot {
  absl::Time taken;
  std::optional<collectors::CounterSample> counters;
  std::optional<collectors::SoftnetSample> softnet;
  std::optional<collectors::SocketSummary> sockets;
  std::optional<collectors::ConntrackStats> conntrack;
  std::optional<std::vector<collectors::LinkRecord>> links;
  std::optional<collectors::Sockstat> sockstat;
  std::optional<std::vector<collectors::NeighbourStats>> neighbours;
  std::optional<collectors::Softirqs> softirqs;
  // name -> value as read ("4096", "4096 131072 6291456"); absent when the
  // sysctl does not exist here or could not be read.
  std::map<std::string, std::string> sysctls;
};

// The listeners' accept queues seen at one moment (a listen-only dump, cheap):
// the window samples them every second, since a queue that overflows is full
// only for moments.
struct ListenerSample {
  absl::Time taken;
  std::vector<collectors::ListenerStats> listeners;
};

struct SnapshotPair {
  Snapshot before, after;
  std::vector<ListenerSample> listener_samples;
  // Inputs that could not be read ("conntrack: ...", "sockets: ..."), each once.
  std::vector<std::string> unavailable;

  absl::Duration window() const { return after.taken - before.taken; }
};

// The sysctls the rules read.
const std::vector<std::string>& DiagnosisSysctls();

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
