// Probes of kernel features the agent depends on. Each answers available, or
// absent with the reason an operator can act on. Run once at agent start.
#pragma once

#include <string>

namespace netagent::kernel {

struct Capability {
  bool available = false;
  std::string reason;  // empty when available
};

// /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): needed for CO-RE programs.
Capability ProbeBtf();

// bpffs mounted at /sys/fs/bpf: needed to pin the fast path across restarts.
Capability ProbeBpffs(const std::string& path = "/sys/fs/bpf");

// ctnetlink answers IPCTNL_MSG_CT_GET_STATS in this namespace.
Capability ProbeConntrackNetlink();

}  // namespace netagent::kernel
