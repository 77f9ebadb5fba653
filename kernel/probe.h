// Probes of kernel features the agent depends on. Each answers available, or
// absent with the reason an operator can act on. Run once at agent start.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace netagent::kernel {

struct Capability {
  bool available = false;
  std::string reason;  // empty when available
  std::string note;    // how it became available, when the agent had a hand in it
};

// /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): needed for CO-RE programs.
Capability ProbeBtf();

// bpffs mounted at /sys/fs/bpf: needed to pin the fast path across restarts.
Capability ProbeBpffs(const std::string& path = "/sys/fs/bpf");

// Mounts a bpf filesystem at `path` when none is there (a fresh host has
// none; Cilium's init step does the same), creating the directory if needed.
// The result says whether it was already there or mounted now, and, when the
// agent's mount namespace is not the host's (a container without the host's
// /sys/fs/bpf, or a private test namespace), that pins there live only as
// long as that namespace does.
Capability EnsureBpffs(const std::string& path = "/sys/fs/bpf");

// ctnetlink answers IPCTNL_MSG_CT_GET_STATS in this namespace.
Capability ProbeConntrackNetlink();

// Whether the kernel has the qdisc `kind` (fq, fq_codel, ...): built in or
// loaded (its enqueue function is in /proc/kallsyms) or loadable (a module
// under /lib/modules/<release>). The reason says which, or why not.
Capability ProbeQdisc(const std::string& kind, const std::string& kallsyms = "/proc/kallsyms",
                      const std::string& modules_root = "/lib/modules");
// The same for several kinds in one pass over kallsyms (~100k lines, tens of
// milliseconds to read: one pass, not one per kind).
std::map<std::string, Capability> ProbeQdiscs(const std::vector<std::string>& kinds,
                                              const std::string& kallsyms = "/proc/kallsyms",
                                              const std::string& modules_root = "/lib/modules");

}  // namespace netagent::kernel
