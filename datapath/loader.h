// Attaching the guard to a device and keeping it there across agent restarts.
// In the XDP modes the XDP program is attached through a bpf_link; in kTc
// mode (devices without native XDP) the same pipeline runs as a TC clsact
// ingress filter. Links, programs and every map are pinned under
// <pin_root>/<ifname>/ (bpffs), so the fast path, its rules and its counters
// stay when the agent stops; a new agent opens the pins. Detach unpins (which
// releases the XDP link) and removes the TC filters we added.
//
// TC filters are ours by slot: handle kTcHandle at kTcGuardPriority (guard,
// ingress) and kTcAcctPriority (accounting/MSS clamp, ingress and egress), so
// the guard runs first and a packet it passes goes on to the accounting
// filter. The clsact qdisc is created when missing and left in place on
// detach (other filters may use it; an empty one costs next to nothing).
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

// kTc: no XDP; the guard runs on clsact ingress (netagent_tc_guard).
enum class AttachMode { kAuto, kNative, kGeneric, kTc };

inline constexpr uint32_t kTcHandle = 0x4e41;         // "NA"
inline constexpr uint16_t kTcGuardPriority = 0x4e40;  // before the accounting filter
inline constexpr uint16_t kTcAcctPriority = 0x4e41;

struct XdpSwitches {
  bool allow_exact = true, allow_cidr = true, block_exact = true, block_cidr = true;
  bool ports = true, syn_guard = false, global_guard = true, syn_ports_only = false;
  bool rule_hits = true, samples = true;
};

// The TC program besides the guard (netagent_tc: per-class accounting and
// MSS clamping, on clsact ingress and egress). Attached in any mode when
// accounting or a clamp is set; the clamps go to its tc_config map.
struct TcOptions {
  bool accounting = false;
  uint16_t clamp_mss4 = 0;  // 0: no clamp
  uint16_t clamp_mss6 = 0;
};

struct AttachSpec {
  std::string device;
  AttachMode mode = AttachMode::kAuto;
  XdpSwitches switches;
  na_config config{};
  // Replace an XDP program, or a TC filter in one of our slots, that someone
  // else attached.
  bool force = false;
  TcOptions tc;
};

struct AttachedXdp {
  std::string device;
  uint32_t ifindex = 0;
  std::string mode;      // "native", "generic" or "tc"
  std::string note;      // why not what was asked ("native XDP refused by the driver: ...")
  uint32_t prog_id = 0;  // the guard: the XDP program, or the TC guard in "tc" mode
  std::string pin_dir;
  uint32_t tc_prog_id = 0;  // the accounting/clamp program on ingress; 0: none
};

// The pinned fast path of one device: map fds by name ("exact4", "counters",
// "tc_counters").
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

// Loads and attaches; pins the link or TC programs and the maps.
// FAILED_PRECONDITION when another XDP program is attached (XDP modes) or one
// of our TC slots holds someone else's filter, unless force; or when our pins
// already exist for the device (Detach first). NOT_FOUND for an unknown device.
absl::StatusOr<std::unique_ptr<PinnedXdp>> AttachXdp(const AttachSpec& spec,
                                                     const std::string& pin_root);

// Opens what an earlier agent pinned for `device` (NOT_FOUND when nothing is).
absl::StatusOr<std::unique_ptr<PinnedXdp>> OpenPinnedXdp(const std::string& device,
                                                         const std::string& pin_root);

// Detaches the XDP link, removes the TC filters in our slots that still hold
// our pinned programs, and removes the pins. NOT_FOUND when nothing was
// pinned for the device.
absl::Status DetachXdp(const std::string& device, const std::string& pin_root);

}  // namespace netagent::datapath
