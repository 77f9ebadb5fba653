// What the kernel offers the XDP fast path in the served namespace: generic
// (skb) XDP wherever the kernel accepts XDP programs, native XDP per device as
// the netdev family's xdp-features report it (6.3+). Nothing is attached to
// probe: attaching to a real NIC can reset its rings.
#pragma once

#include <string>
#include <vector>

#include "kernel/genl.h"
#include "kernel/probe.h"

namespace netagent::datapath {

struct XdpSupport {
  kernel::Capability generic;
  kernel::Capability native;
  std::vector<std::string> native_interfaces;
};

// `netdev` is the resolved netdev family, or its resolution error.
XdpSupport ProbeXdp(kernel::NetlinkSocket& genl, const absl::StatusOr<kernel::GenlFamily>& netdev);

// Parses one NETDEV_CMD_DEV_GET reply: ifindex and the xdp-features bits.
struct NetdevXdpFeatures {
  uint32_t ifindex = 0;
  uint64_t xdp_features = 0;
};
absl::StatusOr<NetdevXdpFeatures> ParseNetdevDev(const nlmsghdr& nlh);

inline constexpr uint64_t kNetdevXdpActBasic = 1;  // NETDEV_XDP_ACT_BASIC

}  // namespace netagent::datapath
