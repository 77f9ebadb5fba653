#include "kernel/probe.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "kernel/caps.h"
#include "kernel/netlink.h"

namespace netagent::kernel {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

}  // namespace

Capability ProbeBtf() {
  struct stat st;
  if (::stat("/sys/kernel/btf/vmlinux", &st) == 0) return {true, ""};
  return {false, absl::StrCat("/sys/kernel/btf/vmlinux: ", strerror(errno),
                              " (kernel built without CONFIG_DEBUG_INFO_BTF)")};
}

Capability ProbeBpffs(const std::string& path) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) {
    return {false, absl::StrCat(path, ": ", strerror(errno))};
  }
  if (static_cast<long>(fs.f_type) != kBpfFsMagic) {
    return {false,
            absl::StrCat("no bpf filesystem mounted at ", path, " (mount -t bpf bpf ", path, ")")};
  }
  return {true, ""};
}

Capability EnsureBpffs(const std::string& path) {
  Capability cap = ProbeBpffs(path);
  if (cap.available) return cap;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return {false, absl::StrCat("mkdir ", path, ": ", ec.message())};
  if (::mount("bpf", path.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
    const int err = errno;
    return {false,
            absl::StrCat("no bpf filesystem at ", path, " and mounting one failed: ", strerror(err),
                         err == EPERM ? CapabilityHint({{CAP_SYS_ADMIN}}) : "")};
  }
  cap = ProbeBpffs(path);
  if (!cap.available) return cap;
  cap.note = absl::StrCat("mounted at ", path, " by netagentd (none was mounted)");
  struct stat mine {
  }, host{};
  if (::stat("/proc/self/ns/mnt", &mine) != 0 || ::stat("/proc/1/ns/mnt", &host) != 0 ||
      mine.st_ino != host.st_ino) {
    absl::StrAppend(&cap.note,
                    " in a mount namespace that is not the host's: pins outlive the agent only "
                    "while that namespace lives (give the agent the host's /sys/fs/bpf)");
  }
  return cap;
}

Capability ProbeConntrackNetlink() {
  auto sock = NetlinkSocket::Open(NETLINK_NETFILTER);
  if (!sock.ok()) return {false, std::string(sock.status().message())};
  NetlinkMessage req((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS, 0);
  auto* nfg = req.PutHeader<nfgenmsg>();
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  absl::Status st =
      sock->Request(req, "conntrack statistics", [](const nlmsghdr&) { return absl::OkStatus(); });
  if (!st.ok()) return {false, std::string(st.message())};
  return {true, ""};
}

}  // namespace netagent::kernel

namespace netagent::kernel {

std::map<std::string, Capability> ProbeQdiscs(const std::vector<std::string>& kinds,
                                              const std::string& kallsyms,
                                              const std::string& modules_root) {
  // Symbol lines are "<address> <type> <name>[\t[module]]"; the name may
  // carry a compiler suffix (".isra.0"). fq_pie names its "<kind>_qdisc_enqueue".
  std::vector<std::pair<std::string, std::string>> symbols;  // " name", kind
  for (const std::string& kind : kinds) {
    symbols.emplace_back(absl::StrCat(" ", kind, "_enqueue"), kind);
    symbols.emplace_back(absl::StrCat(" ", kind, "_qdisc_enqueue"), kind);
  }
  std::map<std::string, Capability> out;
  if (FILE* f = std::fopen(kallsyms.c_str(), "re")) {
    std::vector<char> buf(1 << 16);
    std::setvbuf(f, buf.data(), _IOFBF, buf.size());
    char line[512];
    while (out.size() < kinds.size() && std::fgets(line, sizeof(line), f)) {
      for (const auto& [symbol, kind] : symbols) {
        if (out.count(kind)) continue;
        const char* hit = std::strstr(line, symbol.c_str());
        if (hit == nullptr || hit - line < 3 || hit[-2] != ' ') continue;
        const char end = hit[symbol.size()];
        if (end == '\n' || end == '\t' || end == '\0' || end == '.') out[kind] = {true, "", ""};
      }
    }
    std::fclose(f);
  }
  struct utsname u;
  const bool named = ::uname(&u) == 0;
  for (const std::string& kind : kinds) {
    if (out.count(kind)) continue;
    bool module = false;
    if (named) {
      const std::string dir =
          absl::StrCat(modules_root, "/", u.release, "/kernel/net/sched/sch_", kind);
      for (const char* ext : {".ko", ".ko.xz", ".ko.zst", ".ko.gz"}) {
        struct stat st;
        if (::stat((dir + ext).c_str(), &st) == 0) module = true;
      }
    }
    out[kind] = module
                    ? Capability{true, "", ""}
                    : Capability{false,
                                 absl::StrCat("qdisc ", kind,
                                              " is neither built in nor a module of this kernel"),
                                 ""};
  }
  return out;
}

Capability ProbeQdisc(const std::string& kind, const std::string& kallsyms,
                      const std::string& modules_root) {
  return ProbeQdiscs({kind}, kallsyms, modules_root).at(kind);
}

}  // namespace netagent::kernel
