// Attaching the XDP program to a device and keeping it there across agent
// restarts: the program is attached through a bpf_link, and the link and every
// map are pinned under <pin_root>/<ifname>/ (bpffs), so the fast path, its
// rules and its counters stay when the agent stops; a new agent opens the
// pins. Detach unpins, which releases the link and so the attachment.
//
// Devices are resolved in the calling thread's network namespace; the agent
// passes a pin root per served namespace so equal names do not collide.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "netagent_dp.h"

namespace netagent::datapath {

enum class AttachMode { kAuto, kNative, kGeneric };

struct XdpSwitches {
  bool allow_exact = true, allow_cidr = true, block_exact = true, block_cidr = true;
  bool ports = true, syn_guard = false, global_guard = true, syn_ports_only = false;
  bool rule_hits = true, samples = true;
};

struct AttachSpec {
  std::string device;
  AttachMode mode = AttachMode::kAuto;
  XdpSwitches switches;
  na_config config{};
  // Replace an XDP program someone else attached.
  bool force = false;
};

struct AttachedXdp {
  std::string device;
  uint32_t ifindex = 0;
  std::string mode;  // "native" or "generic"
  std::string note;  // why not what was asked ("native XDP refused by the driver: ...")
  uint32_t prog_id = 0;
  std::string pin_dir;
};

// The pinned fast path of one device: map fds by name ("exact4", "counters").
class PinnedXdp {
 public:
  ~PinnedXdp();
  PinnedXdp(const PinnedXdp&) = delete;
  PinnedXdp& operator=(const PinnedXdp&) = delete;

  const AttachedXdp& info() const { return info_; }
  // -1 when the program has no such map.
  int map_fd(const std::string& name) const;

 private:
  friend absl::StatusOr<std::unique_ptr<PinnedXdp>> AttachXdp(const AttachSpec&,
                                                              const std::string&);
  friend absl::StatusOr<std::unique_ptr<PinnedXdp>> OpenPinnedXdp(const std::string&,
                                                                  const std::string&);
  PinnedXdp() = default;

  AttachedXdp info_;
  std::map<std::string, int> maps_;
};

// Loads and attaches; pins the link and the maps. FAILED_PRECONDITION when
// another program is attached (unless force) or our pins already exist for the
// device (Detach first); NOT_FOUND for an unknown device.
absl::StatusOr<std::unique_ptr<PinnedXdp>> AttachXdp(const AttachSpec& spec,
                                                     const std::string& pin_root);

// Opens what an earlier agent pinned for `device` (NOT_FOUND when nothing is).
absl::StatusOr<std::unique_ptr<PinnedXdp>> OpenPinnedXdp(const std::string& device,
                                                         const std::string& pin_root);

// Removes the pins: the link goes, and with it the attachment. NOT_FOUND when
// nothing was pinned for the device.
absl::Status DetachXdp(const std::string& device, const std::string& pin_root);

}  // namespace netagent::datapath
