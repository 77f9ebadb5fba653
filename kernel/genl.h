// Generic netlink family resolution (CTRL_CMD_GETFAMILY): the family id, its
// version, the operations this kernel registered and its multicast groups.
// Operation names for the families the agent uses come from a table of the
// kernel's append-only command enums, so a newer kernel's ops show up as
// "op-<id>" rather than being dropped.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/netlink.h"

namespace netagent::kernel {

struct GenlOp {
  uint32_t id = 0;
  uint32_t flags = 0;  // GENL_CMD_CAP_DO / _DUMP / _HASPOL / ADMIN_PERM ...
};

struct GenlFamily {
  std::string name;
  uint16_t id = 0;
  uint32_t version = 0;
  std::vector<GenlOp> ops;
  std::map<std::string, uint32_t> mcast_groups;

  bool HasOp(uint32_t cmd) const;
};

// Parses one CTRL_CMD_NEWFAMILY message.
absl::StatusOr<GenlFamily> ParseGenlFamily(const nlmsghdr& nlh);

// NOT_FOUND when the kernel has no such family (module absent, old kernel).
absl::StatusOr<GenlFamily> ResolveGenlFamily(NetlinkSocket& sock, absl::string_view name);

// "channels-get" for ETHTOOL_MSG_CHANNELS_GET of family "ethtool"; known
// families: ethtool, netdev. Unknown ids give "op-<id>".
std::string GenlOpName(absl::string_view family, uint32_t cmd);

}  // namespace netagent::kernel
