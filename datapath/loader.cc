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
#include "netagent_xdp.skel.h"

namespace netagent::datapath {
namespace {

constexpr char kLinkPin[] = "link";

absl::Status Errno(int err, absl::string_view what) {
  errno = err < 0 ? -err : err;
  return kernel::LastErrnoStatus(what);
}

absl::StatusOr<uint32_t> Ifindex(const std::string& device) {
  if (device.empty() || device.size() >= IFNAMSIZ || device.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("device: \"", device, "\" is not an interface name"));
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
  NETAGENT_ASSIGN_OR_RETURN(uint32_t ifindex, Ifindex(spec.device));
  const std::string dir = absl::StrCat(pin_root, "/", spec.device);
  struct stat st;
  if (stat(absl::StrCat(dir, "/", kLinkPin).c_str(), &st) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        spec.device, ": the fast path is already attached (pinned at ", dir, "); detach it first"));
  }
  uint32_t other = 0;
  const std::string current = AttachedMode(ifindex, &other);
  if (other != 0) {
    if (!spec.force) {
      return absl::FailedPreconditionError(
          absl::StrCat(spec.device, ": another XDP program (id ", other, ", ", current,
                       ") is attached; not replaced unless forced"));
    }
    const uint32_t flags = current == "generic"  ? XDP_FLAGS_SKB_MODE
                           : current == "native" ? XDP_FLAGS_DRV_MODE
                                                 : 0;
    if (int err = bpf_xdp_detach(static_cast<int>(ifindex), flags, nullptr)) {
      return Errno(err, absl::StrCat(spec.device, ": detaching XDP program ", other));
    }
  }

  libbpf_set_print(nullptr);
  netagent_xdp* skel = netagent_xdp__open();
  if (skel == nullptr) return kernel::LastErrnoStatus("open the XDP program");
  struct SkelCloser {
    netagent_xdp* s;
    ~SkelCloser() { netagent_xdp__destroy(s); }
  } closer{skel};
  const XdpSwitches& sw = spec.switches;
  skel->rodata->en_allow_exact = sw.allow_exact;
  skel->rodata->en_allow_cidr = sw.allow_cidr;
  skel->rodata->en_block_exact = sw.block_exact;
  skel->rodata->en_block_cidr = sw.block_cidr;
  skel->rodata->en_ports = sw.ports;
  skel->rodata->en_syn_guard = sw.syn_guard;
  skel->rodata->en_global_guard = sw.global_guard;
  skel->rodata->syn_ports_only = sw.syn_ports_only;
  skel->rodata->en_rule_hits = sw.rule_hits;
  skel->rodata->en_samples = sw.samples;
  NETAGENT_RETURN_IF_ERROR(MakeDirs(dir));
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) continue;
    bpf_map__set_pin_path(map, absl::StrCat(dir, "/", bpf_map__name(map)).c_str());
  }
  auto fail = [&](absl::Status s) {
    RemovePins(dir);
    return s;
  };
  if (int err = netagent_xdp__load(skel)) return fail(Errno(err, "load the XDP program"));
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.na_config), &zero, &spec.config, BPF_ANY) != 0) {
    return fail(kernel::LastErrnoStatus("write the XDP config"));
  }

  auto out = std::unique_ptr<PinnedXdp>(new PinnedXdp());
  out->info_.device = spec.device;
  out->info_.ifindex = ifindex;
  out->info_.pin_dir = dir;
  const int prog_fd = bpf_program__fd(skel->progs.netagent_xdp);
  int link = -1;
  auto attach = [&](uint32_t flags) {
    LIBBPF_OPTS(bpf_link_create_opts, o, .flags = flags);
    link = bpf_link_create(prog_fd, static_cast<int>(ifindex), BPF_XDP, &o);
    return link >= 0 ? 0 : -errno;
  };
  int err = 0;
  if (spec.mode == AttachMode::kGeneric) {
    err = attach(XDP_FLAGS_SKB_MODE);
  } else {
    err = attach(XDP_FLAGS_DRV_MODE);
    if (err != 0 && spec.mode == AttachMode::kAuto) {
      out->info_.note =
          absl::StrCat("native XDP refused (", std::strerror(-err), "): attached in generic mode");
      err = attach(XDP_FLAGS_SKB_MODE);
    }
  }
  if (err != 0) return fail(Errno(err, absl::StrCat(spec.device, ": attach XDP")));
  if (bpf_obj_pin(link, absl::StrCat(dir, "/", kLinkPin).c_str()) != 0) {
    absl::Status s = kernel::LastErrnoStatus("pin the XDP link");
    close(link);
    return fail(s);
  }
  close(link);  // the pin holds it
  out->info_.mode = AttachedMode(ifindex, &out->info_.prog_id);
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) continue;
    out->maps_[bpf_map__name(map)] = dup(bpf_map__fd(map));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<PinnedXdp>> OpenPinnedXdp(const std::string& device,
                                                         const std::string& pin_root) {
  NETAGENT_ASSIGN_OR_RETURN(uint32_t ifindex, Ifindex(device));
  const std::string dir = absl::StrCat(pin_root, "/", device);
  const int link = bpf_obj_get(absl::StrCat(dir, "/", kLinkPin).c_str());
  if (link < 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat(device, ": nothing pinned at ", dir));
    return kernel::LastErrnoStatus(absl::StrCat("open ", dir, "/", kLinkPin));
  }
  bpf_link_info li{};
  uint32_t len = sizeof(li);
  const int rc = bpf_obj_get_info_by_fd(link, &li, &len);
  close(link);
  if (rc != 0) return kernel::LastErrnoStatus("XDP link info");
  if (li.xdp.ifindex != ifindex) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, ": the pinned link belongs to ifindex ", li.xdp.ifindex, ", ", device, " is ", ifindex,
        " (a device that went away and came back): detach and attach again"));
  }
  auto out = std::unique_ptr<PinnedXdp>(new PinnedXdp());
  out->info_.device = device;
  out->info_.ifindex = ifindex;
  out->info_.pin_dir = dir;
  out->info_.mode = AttachedMode(ifindex, &out->info_.prog_id);
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.' || std::strcmp(e->d_name, kLinkPin) == 0) continue;
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
        absl::StrCat("device: \"", device, "\" is not an interface name"));
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
  RemovePins(dir);
  if (stat(dir.c_str(), &st) == 0) {
    return absl::InternalError(absl::StrCat(dir, ": could not remove every pin"));
  }
  return absl::OkStatus();
}

}  // namespace netagent::datapath
