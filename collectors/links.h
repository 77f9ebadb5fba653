// Network interfaces from rtnetlink (RTM_GETLINK) through the agent's own
// netlink loop: flags, MTU, qdisc, queues, the 64-bit counters and any XDP
// program attached. What `ip -s -s link` shows.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace netagent::collectors {

// struct rtnl_link_stats64, 25 counters through 6.x (rx_otherhost_dropped
// last); a kernel that sends fewer leaves the rest unset.
inline constexpr int kLinkStatCount = 25;
extern const char* const kLinkStatNames[kLinkStatCount];

struct LinkXdp {
  // XDP_ATTACHED_*: 0 none, 1 driver, 2 generic (skb), 3 offload, 4 several.
  uint8_t attached = 0;
  uint32_t prog_id = 0;
  uint32_t driver_prog_id = 0, generic_prog_id = 0, offload_prog_id = 0;
};

struct LinkRecord {
  uint32_t ifindex = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: veth, bridge, vxlan... (empty for physical)
  uint32_t flags = 0;
  uint8_t operstate = 0;
  uint32_t mtu = 0;
  std::string qdisc;
  uint32_t txqlen = 0;
  uint32_t num_tx_queues = 0, num_rx_queues = 0;
  std::string address;  // aa:bb:cc:dd:ee:ff
  uint32_t master = 0;
  uint32_t link = 0;  // IFLA_LINK: the peer (veth) or lower device
  uint64_t stats[kLinkStatCount] = {};
  int stats_count = 0;
  LinkXdp xdp;
  // Times the carrier went up or down since the device was created
  // (IFLA_CARRIER_CHANGES); unset when the kernel does not say.
  std::optional<uint32_t> carrier_changes;
};

absl::Status ParseLink(const nlmsghdr& nlh, LinkRecord& out);

absl::StatusOr<std::vector<LinkRecord>> DumpLinks();
// NOT_FOUND naming the interface when there is none by that name.
absl::StatusOr<LinkRecord> GetLink(const std::string& name);

std::vector<std::string> LinkFlagNames(uint32_t flags);
std::string OperStateName(uint8_t state);
// The netlink name of an interface, validated (IFNAMSIZ, no '/', no spaces).
absl::Status ValidateInterfaceName(absl::string_view name, absl::string_view field);

}  // namespace netagent::collectors
