// The tuners' edge to the kernel: reading and writing knobs by key (see
// knobs.h) in the namespace the agent serves, and gathering the snapshot the
// planners work from. Everything else in tuners/ is pure.
#pragma once

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "kernel/netlink.h"
#include "kernel/sysctl.h"
#include "tuners/planners.h"

namespace netagent::tuners {

class KnobIo {
 public:
  virtual ~KnobIo() = default;
  // The knob's value in its canonical form (knobs.h Normalize).
  virtual absl::StatusOr<std::string> Read(const std::string& key) = 0;
  virtual absl::Status Write(const std::string& key, const std::string& value) = 0;
};

struct SystemPaths {
  std::string sysfs = "/sys";  // kernel::NetSysfsRoot() in the agent
  std::string proc = "/proc";
  // Where IRQ affinity is written: kernel::ProcTree("irq") in the agent (a
  // container's /proc/irq is read-only).
  std::string irq = "/proc/irq";
};

// Sysctls through /proc/sys, queue files through sysfs, channels, coalescing
// and RSS through ethtool netlink (the RSS ioctl where the kernel has no
// RSS_SET), IRQ affinity through /proc/irq.
class SystemKnobs : public KnobIo {
 public:
  explicit SystemKnobs(SystemPaths paths) : paths_(std::move(paths)) {}

  absl::StatusOr<std::string> Read(const std::string& key) override;
  absl::Status Write(const std::string& key, const std::string& value) override;

  // Test hook (the agent's --fault-inject-write): writes of these knobs fail
  // with UNAVAILABLE before touching the kernel, to prove that a change set
  // failing half-way is restored.
  void set_failing_writes(std::set<std::string> keys) { failing_ = std::move(keys); }

 private:
  SystemPaths paths_;
  std::set<std::string> failing_;
};

// The attributes of the ethtool set-request for a channels, coalescing or
// RSS knob (after the request header): the same attribute ids and widths the
// kernel uses in its replies (u8 for the adaptive and CQE flags, u32 else,
// a u32 array for the indirection table). Pure, for tests.
absl::Status PutSetAttributes(const KnobKey& key, const std::vector<int64_t>& value,
                              kernel::NetlinkMessage& msg);
// The ethtool command of such a knob (CHANNELS_SET, COALESCE_SET, RSS_SET).
uint8_t SetCommand(KnobType type);

// A /proc tree the tuners write ("net.ipv4": its sysctls; "irq": IRQ
// affinity) and how much of it the agent can write here.
struct TreeAccess {
  std::string name;
  std::string path;  // the directory written (under --proc-root when mounted there)
  int knobs = 0;     // the tuners' knobs in it that exist here (0 for irq)
  int writable_knobs = 0;
  bool writable = false;         // all of it
  bool read_only_mount = false;  // what cannot be written is so for its mount
  std::string reason;            // why not, when not
};

struct KnobAccess {
  std::string name;  // net.ipv4.tcp_rmem
  kernel::SysctlAccess access;
  bool host_wide = false;  // one value for the host, seen from a child namespace
};

// The knobs' access grouped by tree (the first two parts of the name), in
// the order the trees first appear. Pure, for tests; `path` is left empty.
std::vector<TreeAccess> SummarizeTrees(const std::vector<KnobAccess>& knobs);

// Whether `path` is on a file system mounted read-only.
bool ReadOnlyMount(const std::string& path);

// Every tree of the registry's sysctls, the devices' queue files (sysfs) and
// irq, as the agent finds them.
std::vector<TreeAccess> ProbeWritableTrees(const SystemPaths& paths);

struct SnapshotRequest {
  std::string device;       // the device an intent is about (NOT_FOUND if absent)
  bool flows = false;       // busiest TCP flows, for the observed BDP
  bool congestion = false;  // congestion control of established sockets
  // The fast path's rules on this device (HostSnapshot::datapath). Filled by
  // whoever runs the fast path (the agent), not by TakeSnapshot.
  std::string datapath_device;
};

// Reads what the planners need. `baseline` holds the first-seen values that
// stand in for machine-dependent kernel defaults.
// Fills what snapshots read once per process (the qdiscs the kernel has),
// so that the first plan after start does not pay for it.
void WarmSnapshotCaches();

absl::StatusOr<HostSnapshot> TakeSnapshot(const SnapshotRequest& req, const SystemPaths& paths,
                                          const std::map<std::string, std::string>& baseline);

// What an intent needs in its snapshot.
SnapshotRequest SnapshotFor(const Intent& intent);

}  // namespace netagent::tuners
