#include "datapath/loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernel/errors.h"
#include "kernel/libbpf_log.h"
#include "kernel/text.h"
#include "netagent_tc.skel.h"
#include "netagent_tc_guard.skel.h"
#include "netagent_xdp.skel.h"

namespace netagent::datapath {
namespace {

constexpr char kLinkPin[] = "link";

// A TC filter we own: where it hangs and the name its program is pinned as.
struct TcSlot {
  bpf_tc_attach_point point;
  uint16_t priority;
  const char* pin;
  const char* what;
};
constexpr TcSlot kGuardSlot{BPF_TC_INGRESS, kTcGuardPriority, "tc_guard", "TC guard (ingress)"};
constexpr TcSlot kAcctInSlot{BPF_TC_INGRESS, kTcAcctPriority, "tc_acct_in",
                             "TC accounting (ingress)"};
constexpr TcSlot kAcctOutSlot{BPF_TC_EGRESS, kTcAcctPriority, "tc_acct_out",
                              "TC accounting (egress)"};
constexpr const TcSlot* kTcSlots[] = {&kGuardSlot, &kAcctInSlot, &kAcctOutSlot};

// Pins that are not maps.
bool IsProgramPin(const char* name) {
  if (std::strcmp(name, kLinkPin) == 0) return true;
  for (const TcSlot* s : kTcSlots)
    if (std::strcmp(name, s->pin) == 0) return true;
  return false;
}

absl::Status Errno(int err, absl::string_view what) {
  errno = err < 0 ? -err : err;
  return kernel::LastErrnoStatus(what);
}

absl::StatusOr<uint32_t> Ifindex(const std::string& device) {
  if (device.empty() || device.size() >= IFNAMSIZ || device.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("device: ", kernel::Quote(device), " is not an interface name"));
  }
  const uint32_t ifindex = if_nametoindex(device.c_str());
  if (ifindex == 0)
    return absl::NotFoundError(absl::StrCat("device ", device, ": no such interface"));
  return ifindex;
}

// The attach mode of the XDP program on `ifindex`, "" when none.
std::string AttachedMode(uint32_t ifindex, uint32_t* prog_id) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0) return "";
  if (prog_id) *prog_id = q.prog_id;
  switch (q.attach_mode) {
    case XDP_ATTACHED_DRV:
      return "native";
    case XDP_ATTACHED_SKB:
      return "generic";
    case XDP_ATTACHED_HW:
      return "offload";
    case XDP_ATTACHED_MULTI:
      return "multiple";
    default:
      return "";
  }
}

// The id of the program in our TC slot on `ifindex`, 0 when the slot (or the
// clsact qdisc) is empty.
uint32_t TcSlotProg(uint32_t ifindex, const TcSlot& slot) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = slot.point);
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = kTcHandle, .priority = slot.priority);
  // No qdisc or no filter there: EINVAL or ENOENT, and libbpf logs the
  // kernel's message about it; an answer, not an error.
  kernel::LibbpfLogCapture quiet;
  return bpf_tc_query(&hook, &o) == 0 ? o.prog_id : 0;
}

// A failed load, with the end of libbpf's log (the verifier's reasons).

uint32_t ProgId(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0 ? info.id : 0;
}

// The id of the program pinned as `pin` in `dir`, 0 when there is none.
uint32_t PinnedProgId(const std::string& dir, const char* pin) {
  const int fd = bpf_obj_get(absl::StrCat(dir, "/", pin).c_str());
  if (fd < 0) return 0;
  const uint32_t id = ProgId(fd);
  close(fd);
  return id;
}

absl::Status TcAttach(uint32_t ifindex, const TcSlot& slot, int prog_fd, bool replace) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  if (int err = bpf_tc_hook_create(&hook); err != 0 && err != -EEXIST) {
    return Errno(err, "create the clsact qdisc");
  }
  hook.attach_point = slot.point;
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .flags = replace ? BPF_TC_F_REPLACE : 0u,
              .handle = kTcHandle, .priority = slot.priority);
  if (int err = bpf_tc_attach(&hook, &o)) return Errno(err, absl::StrCat("attach the ", slot.what));
  return absl::OkStatus();
}

void TcDetach(uint32_t ifindex, const TcSlot& slot) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = slot.point);
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = kTcHandle, .priority = slot.priority);
  kernel::LibbpfLogCapture quiet;
  bpf_tc_detach(&hook, &o);
}

void RemovePins(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      unlink(absl::StrCat(dir, "/", e->d_name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

absl::Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const std::string p = path.substr(0, i);
      if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
        return kernel::LastErrnoStatus(absl::StrCat("mkdir ", p));
      }
    }
  }
  return absl::OkStatus();
}

// The switches have the same names in the XDP program and the TC guard.
template <typename Rodata>
void SetSwitches(Rodata* r, const XdpSwitches& sw) {
  r->en_allow_exact = sw.allow_exact;
  r->en_allow_cidr = sw.allow_cidr;
  r->en_block_exact = sw.block_exact;
  r->en_block_cidr = sw.block_cidr;
  r->en_ports = sw.ports;
  r->en_syn_guard = sw.syn_guard;
  r->en_global_guard = sw.global_guard;
  r->syn_ports_only = sw.syn_ports_only;
  r->en_rule_hits = sw.rule_hits;
  r->en_samples = sw.samples;
}

void SetPinPaths(bpf_object* obj, const std::string& dir) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) continue;
    bpf_map__set_pin_path(map, absl::StrCat(dir, "/", bpf_map__name(map)).c_str());
  }
}

void CollectMaps(bpf_object* obj, std::map<std::string, int>& out) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) continue;
    out[bpf_map__name(map)] = dup(bpf_map__fd(map));
  }
}

// A skeleton destroyed when it goes out of scope (the pins and the
// attachments keep what they need).
template <typename Skel>
using SkelPtr = std::unique_ptr<Skel, void (*)(Skel*)>;

// What AttachXdp attached so far, undone unless Keep(): our filters and link
// removed and, where a forced attach replaced someone else's program, that
// program put back. Holds a reference (fd) to each replaced program from
// before it was replaced, so it cannot be freed meanwhile. Owns the XDP
// link's fd (the pin holds the link once kept).
class Undo {
 public:
  Undo(uint32_t ifindex, std::string dir) : ifindex_(ifindex), dir_(std::move(dir)) {}
  ~Undo() {
    if (!keep_) {
      for (const auto& [s, foreign] : slots_) {
        if (foreign < 0 || !TcAttach(ifindex_, *s, foreign, true).ok()) TcDetach(ifindex_, *s);
      }
      if (link_ >= 0) bpf_link_detach(link_);
      if (foreign_xdp_ >= 0)
        bpf_xdp_attach(static_cast<int>(ifindex_), foreign_xdp_, foreign_flags_, nullptr);
      RemovePins(dir_);
    }
    for (const auto& [s, foreign] : slots_)
      if (foreign >= 0) close(foreign);
    if (foreign_xdp_ >= 0) close(foreign_xdp_);
    if (link_ >= 0) close(link_);
  }
  // A reference to the program `id` (0: none), taken before it is replaced.
  static int Hold(uint32_t id) { return id != 0 ? bpf_prog_get_fd_by_id(id) : -1; }
  // Call once `s` holds our program; `foreign`: Hold() of what it held before.
  void Slot(const TcSlot& s, int foreign) { slots_.emplace_back(&s, foreign); }
  void Link(int fd) { link_ = fd; }
  // A foreign XDP program (Hold()) detached to make room; put back unless kept.
  void ForeignXdp(int fd, uint32_t flags) {
    foreign_xdp_ = fd;
    foreign_flags_ = flags;
  }
  void Keep() { keep_ = true; }

 private:
  uint32_t ifindex_;
  std::string dir_;
  std::vector<std::pair<const TcSlot*, int>> slots_;
  int link_ = -1;
  int foreign_xdp_ = -1;
  uint32_t foreign_flags_ = 0;
  bool keep_ = false;
};

}  // namespace

PinnedXdp::~PinnedXdp() {
  for (auto& [name, fd] : maps_) close(fd);
}

int PinnedXdp::map_fd(const std::string& name) const {
  auto it = maps_.find(name);
  return it == maps_.end() ? -1 : it->second;
}

absl::StatusOr<std::unique_ptr<PinnedXdp>> AttachXdp(const AttachSpec& spec,
                                                     const std::string& pin_root) {
  kernel::InstallLibbpfLog();
  NETAGENT_ASSIGN_OR_RETURN(uint32_t ifindex, Ifindex(spec.device));
  const std::string dir = absl::StrCat(pin_root, "/", spec.device);
  struct stat st;
  for (const char* pin : {kLinkPin, kGuardSlot.pin}) {
    if (stat(absl::StrCat(dir, "/", pin).c_str(), &st) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(spec.device, ": the fast path is already attached (pinned at ", dir,
                       "); detach it first"));
    }
  }
  const bool tc_mode = spec.mode == AttachMode::kTc;
  const TcOptions& tco = spec.tc;
  const bool tc_acct = tco.accounting || tco.clamp_mss4 != 0 || tco.clamp_mss6 != 0;

  // Our TC slots must be free (or forced) before anything changes.
  std::vector<const TcSlot*> slots;
  if (tc_mode) slots.push_back(&kGuardSlot);
  if (tc_acct) {
    slots.push_back(&kAcctInSlot);
    slots.push_back(&kAcctOutSlot);
  }
  std::map<const TcSlot*, uint32_t> taken;
  for (const TcSlot* s : slots) {
    const uint32_t other = TcSlotProg(ifindex, *s);
    taken[s] = other;
    if (other != 0 && !spec.force) {
      return absl::FailedPreconditionError(absl::StrCat(
          spec.device, ": the ", s->what, " slot (tc filter pref ", s->priority, " handle 0x",
          absl::Hex(kTcHandle), ") holds program id ", other, "; not replaced unless forced"));
    }
  }
  // A foreign XDP program is detached only once ours is loaded and verified,
  // right before our link takes its place, and put back if that fails.
  uint32_t foreign = 0, foreign_flags = 0;
  if (!tc_mode) {
    const std::string current = AttachedMode(ifindex, &foreign);
    if (foreign != 0 && !spec.force) {
      return absl::FailedPreconditionError(
          absl::StrCat(spec.device, ": another XDP program (id ", foreign, ", ", current,
                       ") is attached; not replaced unless forced"));
    }
    foreign_flags = current == "generic"  ? XDP_FLAGS_SKB_MODE
                    : current == "native" ? XDP_FLAGS_DRV_MODE
                                          : 0;
  }

  NETAGENT_RETURN_IF_ERROR(MakeDirs(dir));
  Undo undo(ifindex, dir);
  auto out = std::unique_ptr<PinnedXdp>(new PinnedXdp());
  out->info_.device = spec.device;
  out->info_.ifindex = ifindex;
  out->info_.pin_dir = dir;
  uint32_t zero = 0;

  if (tc_mode) {
    SkelPtr<netagent_tc_guard> skel(netagent_tc_guard__open(), netagent_tc_guard__destroy);
    if (!skel) return kernel::LastErrnoStatus("open the TC guard");
    SetSwitches(skel->rodata, spec.switches);
    SetPinPaths(skel->obj, dir);
    kernel::LibbpfLogCapture log;
    if (int err = netagent_tc_guard__load(skel.get()))
      return kernel::LoadError(err, "load the TC guard", log, kernel::kNetProgramNeeds);
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.na_config), &zero, &spec.config, BPF_ANY)) {
      return kernel::LastErrnoStatus("write the guard config");
    }
    const int prog = bpf_program__fd(skel->progs.netagent_tc_guard);
    if (bpf_obj_pin(prog, absl::StrCat(dir, "/", kGuardSlot.pin).c_str()) != 0) {
      return kernel::LastErrnoStatus("pin the TC guard");
    }
    const int before = Undo::Hold(taken[&kGuardSlot]);
    if (absl::Status st = TcAttach(ifindex, kGuardSlot, prog, taken[&kGuardSlot] != 0); !st.ok()) {
      if (before >= 0) close(before);
      return st;
    }
    undo.Slot(kGuardSlot, before);
    out->info_.mode = "tc";
    out->info_.prog_id = ProgId(prog);
    CollectMaps(skel->obj, out->maps_);
  } else {
    SkelPtr<netagent_xdp> skel(netagent_xdp__open(), netagent_xdp__destroy);
    if (!skel) return kernel::LastErrnoStatus("open the XDP program");
    SetSwitches(skel->rodata, spec.switches);
    SetPinPaths(skel->obj, dir);
    kernel::LibbpfLogCapture log;
    if (int err = netagent_xdp__load(skel.get()))
      return kernel::LoadError(err, "load the XDP program", log, kernel::kNetProgramNeeds);
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.na_config), &zero, &spec.config, BPF_ANY)) {
      return kernel::LastErrnoStatus("write the XDP config");
    }
    const int prog_fd = bpf_program__fd(skel->progs.netagent_xdp);
    int link = -1;
    auto attach = [&](uint32_t flags) {
      LIBBPF_OPTS(bpf_link_create_opts, o, .flags = flags);
      link = bpf_link_create(prog_fd, static_cast<int>(ifindex), BPF_XDP, &o);
      return link >= 0 ? 0 : -errno;
    };
    if (foreign != 0) {
      const int held = Undo::Hold(foreign);
      if (int err = bpf_xdp_detach(static_cast<int>(ifindex), foreign_flags, nullptr)) {
        if (held >= 0) close(held);
        return Errno(err, absl::StrCat(spec.device, ": detaching XDP program ", foreign));
      }
      undo.ForeignXdp(held, foreign_flags);
    }
    int err = 0;
    if (spec.mode == AttachMode::kGeneric) {
      err = attach(XDP_FLAGS_SKB_MODE);
    } else {
      err = attach(XDP_FLAGS_DRV_MODE);
      if (err != 0 && spec.mode == AttachMode::kAuto) {
        out->info_.note = absl::StrCat("native XDP refused (", std::strerror(-err),
                                       "): attached in generic mode");
        err = attach(XDP_FLAGS_SKB_MODE);
      }
    }
    if (err != 0) {
      return Errno(err,
                   absl::StrCat(spec.device, ": attach XDP",
                                foreign ? absl::StrCat(" (program ", foreign, " put back)") : ""));
    }
    undo.Link(link);
    if (bpf_obj_pin(link, absl::StrCat(dir, "/", kLinkPin).c_str()) != 0) {
      return kernel::LastErrnoStatus("pin the XDP link");
    }
    out->info_.mode = AttachedMode(ifindex, &out->info_.prog_id);
    CollectMaps(skel->obj, out->maps_);
  }

  if (tc_acct) {
    SkelPtr<netagent_tc> skel(netagent_tc__open(), netagent_tc__destroy);
    if (!skel) return kernel::LastErrnoStatus("open the TC accounting program");
    skel->rodata->en_class_stats = tco.accounting;
    skel->rodata->en_mss_clamp = tco.clamp_mss4 != 0 || tco.clamp_mss6 != 0;
    SetPinPaths(skel->obj, dir);
    kernel::LibbpfLogCapture log;
    if (int err = netagent_tc__load(skel.get())) {
      return kernel::LoadError(err, "load the TC accounting program", log,
                               kernel::kNetProgramNeeds);
    }
    const na_tc_config tc_config{tco.clamp_mss4, tco.clamp_mss6, 0};
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.tc_config), &zero, &tc_config, BPF_ANY)) {
      return kernel::LastErrnoStatus("write the TC accounting config");
    }
    for (const auto& [slot, prog] : {std::pair{&kAcctInSlot, skel->progs.netagent_tc_ingress},
                                     std::pair{&kAcctOutSlot, skel->progs.netagent_tc_egress}}) {
      const int fd = bpf_program__fd(prog);
      if (bpf_obj_pin(fd, absl::StrCat(dir, "/", slot->pin).c_str()) != 0) {
        return kernel::LastErrnoStatus(absl::StrCat("pin the ", slot->what));
      }
      const int before = Undo::Hold(taken[slot]);
      if (absl::Status st = TcAttach(ifindex, *slot, fd, taken[slot] != 0); !st.ok()) {
        if (before >= 0) close(before);
        return st;
      }
      undo.Slot(*slot, before);
    }
    out->info_.tc_prog_id = ProgId(bpf_program__fd(skel->progs.netagent_tc_ingress));
    CollectMaps(skel->obj, out->maps_);
  }
  undo.Keep();
  return out;
}

absl::StatusOr<std::unique_ptr<PinnedXdp>> OpenPinnedXdp(const std::string& device,
                                                         const std::string& pin_root) {
  kernel::InstallLibbpfLog();
  NETAGENT_ASSIGN_OR_RETURN(uint32_t ifindex, Ifindex(device));
  const std::string dir = absl::StrCat(pin_root, "/", device);
  auto out = std::unique_ptr<PinnedXdp>(new PinnedXdp());
  out->info_.device = device;
  out->info_.ifindex = ifindex;
  out->info_.pin_dir = dir;
  const std::string gone = " (a device that went away and came back?): detach and attach again";

  const int link = bpf_obj_get(absl::StrCat(dir, "/", kLinkPin).c_str());
  if (link >= 0) {
    bpf_link_info li{};
    uint32_t len = sizeof(li);
    const int rc = bpf_obj_get_info_by_fd(link, &li, &len);
    close(link);
    if (rc != 0) return kernel::LastErrnoStatus("XDP link info");
    if (li.xdp.ifindex != ifindex) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": the pinned link belongs to ifindex ", li.xdp.ifindex, ", ", device,
                       " is ", ifindex, gone));
    }
    out->info_.mode = AttachedMode(ifindex, &out->info_.prog_id);
  } else if (errno != ENOENT) {
    return kernel::LastErrnoStatus(absl::StrCat("open ", dir, "/", kLinkPin));
  } else {
    const uint32_t guard = PinnedProgId(dir, kGuardSlot.pin);
    if (guard == 0) return absl::NotFoundError(absl::StrCat(device, ": nothing pinned at ", dir));
    if (TcSlotProg(ifindex, kGuardSlot) != guard) {
      return absl::FailedPreconditionError(absl::StrCat(dir, ": the pinned TC guard (id ", guard,
                                                        ") is not attached to ", device, gone));
    }
    out->info_.mode = "tc";
    out->info_.prog_id = guard;
  }
  if (const uint32_t acct = PinnedProgId(dir, kAcctInSlot.pin); acct != 0) {
    if (TcSlotProg(ifindex, kAcctInSlot) == acct) {
      out->info_.tc_prog_id = acct;
    } else {
      out->info_.note =
          absl::StrCat("the pinned TC accounting program (id ", acct, ") is no longer attached");
    }
  }
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.' || IsProgramPin(e->d_name)) continue;
      const int fd = bpf_obj_get(absl::StrCat(dir, "/", e->d_name).c_str());
      if (fd >= 0) out->maps_[e->d_name] = fd;
    }
    closedir(d);
  }
  return out;
}

absl::Status DetachXdp(const std::string& device, const std::string& pin_root) {
  if (device.empty() || device.find('/') != std::string::npos || device == "." || device == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("device: ", kernel::Quote(device), " is not an interface name"));
  }
  const std::string dir = absl::StrCat(pin_root, "/", device);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(device, ": nothing pinned at ", dir));
  }
  // Detach now rather than when the kernel gets round to freeing the link.
  if (const int link = bpf_obj_get(absl::StrCat(dir, "/", kLinkPin).c_str()); link >= 0) {
    bpf_link_detach(link);
    close(link);
  }
  // Our TC filters: only where the slot still holds the program we pinned.
  kernel::InstallLibbpfLog();
  if (const uint32_t ifindex = if_nametoindex(device.c_str()); ifindex != 0) {
    for (const TcSlot* s : kTcSlots) {
      const uint32_t ours = PinnedProgId(dir, s->pin);
      if (ours != 0 && TcSlotProg(ifindex, *s) == ours) TcDetach(ifindex, *s);
    }
  }
  RemovePins(dir);
  if (stat(dir.c_str(), &st) == 0) {
    return absl::InternalError(absl::StrCat(dir, ": could not remove every pin"));
  }
  return absl::OkStatus();
}

}  // namespace netagent::datapath
