// Everything the agent probes once at start and reports through GetHostInfo.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "datapath/probe.h"
#include "kernel/probe.h"
#include "tuners/system.h"

namespace netagent::agent {

struct GenlCapability {
  kernel::Capability status;
  uint32_t family_id = 0;
  uint32_t version = 0;
  std::vector<std::string> ops;
};

struct Capabilities {
  GenlCapability ethtool_netlink;
  GenlCapability netdev_netlink;
  kernel::Capability btf;
  kernel::Capability bpffs;
  datapath::XdpSupport xdp;
  kernel::Capability conntrack_netlink;
  // skb:kfree_skb with drop reasons named in the kernel's BTF (5.17+).
  kernel::Capability drop_reasons;
  std::vector<std::string> cc_available;
  std::vector<std::string> cc_allowed;
  std::string cc_current;
  // Where the tuners write and whether they can (see --proc-root).
  std::vector<tuners::TreeAccess> writable_trees;
  absl::Time probed_at;
};

// `bpffs`: what PrepareBpffs found or did (probed before anything is pinned).
Capabilities ProbeCapabilities(kernel::Capability bpffs);

// The bpffs the fast path pins under `pin_root`: at the standard place
// (/sys/fs/bpf) it is mounted when absent; elsewhere it is only probed.
kernel::Capability PrepareBpffs(const std::string& pin_root);

}  // namespace netagent::agent
