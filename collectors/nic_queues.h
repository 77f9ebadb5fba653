// A device's queues and interrupts: per-queue RPS/XPS settings from sysfs
// (of the served namespace, see kernel::NetSysfsRoot), per-queue counters from
// the netdev family's qstats (6.9+, where the driver has them), and the
// device's IRQs with their CPU affinity (/proc/irq, /proc/interrupts).
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collectors/ethtool.h"

namespace netagent::collectors {

struct RxQueueConfig {
  uint32_t id = 0;
  std::string rps_cpus;  // the kernel's hex mask, as read
  std::optional<uint32_t> rps_flow_cnt;
};

struct TxQueueConfig {
  uint32_t id = 0;
  std::string xps_cpus;  // empty where the device has no XPS
  std::string xps_rxqs;
  std::optional<uint32_t> tx_maxrate;
};

struct QueueConfig {
  std::vector<RxQueueConfig> rx;
  std::vector<TxQueueConfig> tx;
};

absl::StatusOr<QueueConfig> ReadQueueConfig(const std::string& dev, const std::string& sysfs_root);

struct QueueStats {
  std::string type;  // "rx" or "tx"
  uint32_t id = 0;
  NamedValues values;  // netdev qstats names: rx-packets, rx-hw-drops, tx-stop...
};

absl::StatusOr<QueueStats> ParseQueueStats(const nlmsghdr& nlh);
// NETDEV_CMD_QSTATS_GET dump scoped to queues of `ifindex`.
absl::StatusOr<std::vector<QueueStats>> GetQueueStats(uint32_t ifindex);

// A receive queue's packets and drops, from whichever the device gives:
// the netdev family's qstats (rx-packets; rx-hw-drops + rx-hw-drop-overruns)
// or the driver's own per-queue statistics, which every driver names its
// own way (rx_queue_3_packets, rx-3.packets, rx3_packets, queue_3_rx_cnt,
// "[3]: rx_ucast_packets"; drops as drops, dropped or discards).
struct RxQueueCounters {
  uint32_t queue = 0;
  std::optional<uint64_t> packets, drops;
  std::string packets_from, drops_from;  // "qstats rx-packets", "driver rx3_drops"
};
std::vector<RxQueueCounters> RxQueuesFromQstats(const std::vector<QueueStats>& queues);
std::vector<RxQueueCounters> RxQueuesFromDriverStats(const NamedValues& stats);
// The two merged by queue: a figure qstats has wins over the driver's.
std::vector<RxQueueCounters> MergeRxQueues(std::vector<RxQueueCounters> qstats,
                                           const std::vector<RxQueueCounters>& driver);

struct IrqInfo {
  uint32_t irq = 0;
  std::string name;    // the action name in /proc/interrupts (eth0-TxRx-0)
  uint64_t count = 0;  // interrupts so far, all CPUs
  std::string affinity_list;
  std::string effective_affinity_list;
};

struct InterruptLine {
  std::string name;
  uint64_t count = 0;
};
// /proc/interrupts: IRQ number -> action name and total count.
std::map<uint32_t, InterruptLine> ParseInterrupts(absl::string_view text);

// Whether the action names of a /proc/interrupts line ("eth0-TxRx-0,
// eth0-misc") name `dev`: an action that is the name, or the name followed by
// '-' or ':' ("eth1-rx-0", "eth1:lsc"); never a longer name (eth10 for eth1).
bool ActionsNameDevice(absl::string_view actions, absl::string_view dev);

// The device's MSI IRQs (device/msi_irqs, or for a virtio device the virtio
// transport's, its parent's) plus any line of /proc/interrupts naming the
// device (ActionsNameDevice). UNIMPLEMENTED for a virtual device, which has
// none.
absl::StatusOr<std::vector<IrqInfo>> ReadDeviceIrqs(const std::string& dev,
                                                    const std::string& sysfs_root,
                                                    const std::string& proc_root = "/proc");

}  // namespace netagent::collectors
