// The planners: a snapshot of the host and an intent in, a plan out. Pure
// functions; the snapshot is gathered by tuners/snapshot.h. Bad intents are
// INVALID_ARGUMENT naming the field ("rps.cpus", "channels.combined"); an
// intent the host cannot take (a device without channels) is
// FAILED_PRECONDITION with the kernel's reason.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collectors/ethtool.h"
#include "collectors/nic_queues.h"
#include "tuners/plan.h"

namespace netagent::tuners {

struct SysctlState {
  std::string value;  // normalized; empty when absent
  bool exists = false;
  bool writable = false;
  // Visible here but one setting for the whole host (the neighbour tables'
  // thresholds in a child namespace): not written from here.
  bool host_wide = false;
  // Not writable because /proc/sys is mounted read-only (a container without
  // the host's tree under --proc-root).
  bool read_only_mount = false;
};

// A busy established TCP flow, for the observed BDP.
struct FlowSample {
  std::string peer;
  uint64_t delivery_rate = 0;  // bytes per second
  uint32_t min_rtt_us = 0;
  uint64_t bytes = 0;  // acked + received
};

struct DeviceState {
  std::string name;
  int32_t numa_node = -1;
  absl::Status queues_status;
  collectors::QueueConfig queues;
  collectors::Section<collectors::Channels> channels;
  collectors::Section<collectors::NamedValues> coalesce;
  collectors::Section<collectors::Rss> rss;
  absl::Status irqs_status;
  std::vector<collectors::IrqInfo> irqs;
};

// The fast path on one device, as far as the planners need it.
struct DatapathState {
  std::string device;
  // Why the device has no fast path to write (not attached, the fast path
  // is off); empty: it has.
  std::string unavailable;
  // Prefixes, canonical (CanonicalPrefix): blocked by the agent's own rules
  // (a tuning change), allowed, and blocked by an operator's rule (its id),
  // which the agent neither adds beside nor removes.
  std::set<std::string> blocked, allowed;
  std::map<std::string, uint32_t> operator_blocked;
};

struct HostSnapshot {
  std::map<std::string, SysctlState> sysctls;  // every registry name
  // The kernel default of each registry sysctl: the built-in one, or the value
  // the agent first saw where the default depends on the machine.
  std::map<std::string, std::string> defaults;
  std::vector<std::string> available_cc;
  // tcp_allowed_congestion_control: outside the initial namespace the
  // default may only be one of these (the kernel says EPERM otherwise).
  std::vector<std::string> allowed_cc;
  bool initial_netns = true;
  // Qdiscs BBR may want (fq): available or the reason not.
  std::map<std::string, absl::Status> qdiscs;
  std::vector<uint32_t> online_cpus;
  std::map<uint32_t, int32_t> cpu_node;
  std::vector<uint32_t> isolated_cpus;
  std::optional<DeviceState> device;
  std::vector<FlowSample> flows;
  std::map<std::string, uint32_t> congestion_in_use;  // established sockets per algorithm
  // Why queue files (sysfs) and IRQ affinity (/proc/irq) cannot be written
  // here, when they are on a read-only mount (a container's); empty: they can.
  std::string queues_read_only;
  std::string irq_read_only;
  std::optional<DatapathState> datapath;  // when the request named a device
};

// What to do about a read-only /sys, /proc/irq or /proc/sys, after "a ".
std::string ReadOnlyQueuesWhy();
std::string ReadOnlyIrqWhy();
std::string ReadOnlySysctlsWhy();

// The plan for an intent, with changes to files on a read-only mount turned
// into refusals.
absl::StatusOr<Plan> PlanIntent(const Intent& intent, const HostSnapshot& host);

// Building blocks, exposed for tests.
absl::StatusOr<Plan> PlanBdp(const BdpIntent& in, const HostSnapshot& host);
absl::StatusOr<Plan> PlanCongestion(const CongestionIntent& in, const HostSnapshot& host);
absl::StatusOr<Plan> PlanRps(const RpsIntent& in, const HostSnapshot& host, bool clamp);
absl::StatusOr<Plan> PlanXps(const XpsIntent& in, const HostSnapshot& host, bool clamp);
absl::StatusOr<Plan> PlanRfs(const RfsIntent& in, const HostSnapshot& host, bool clamp);
absl::StatusOr<Plan> PlanChannels(const ChannelsIntent& in, const HostSnapshot& host, bool clamp);
absl::StatusOr<Plan> PlanRss(const RssIntent& in, const HostSnapshot& host);
absl::StatusOr<Plan> PlanIrqAffinity(const IrqAffinityIntent& in, const HostSnapshot& host);
absl::StatusOr<Plan> PlanCoalesce(const CoalesceIntent& in, const HostSnapshot& host, bool clamp);
absl::StatusOr<Plan> PlanDatapathBlock(const DatapathBlockIntent& in, const HostSnapshot& host);
absl::StatusOr<Plan> PlanSettings(const Settings& settings, const HostSnapshot& host, bool clamp,
                                  absl::string_view field, absl::string_view only_group);

// The value of the <dev>:channels/counts knob: "combined rx tx other".
std::string ChannelCounts(const collectors::Channels& c);

// The CPUs network work of a device may use: online, not isolated, on the
// device's NUMA node when it has CPUs there.
std::vector<uint32_t> EligibleCpus(const HostSnapshot& host);
// XPS: transmit queue q gets every CPU whose index in `cpus` is q modulo the
// queue count (or one CPU round-robin when queues outnumber CPUs).
std::vector<std::vector<uint32_t>> SpreadCpus(const std::vector<uint32_t>& cpus, uint32_t queues);
// RSS indirection table of `size` entries over `queues` queues, in proportion
// to `weights` (empty: even).
std::vector<uint32_t> SpreadIndirection(uint32_t size, uint32_t queues,
                                        const std::vector<uint32_t>& weights);

}  // namespace netagent::tuners
