#include "kernel/genl.h"

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "kernel/errors.h"

namespace netagent::kernel {
namespace {

// The kernel's ETHTOOL_MSG_* user-to-kernel enum, from 1 (strset-get, 5.6)
// through rss-delete-act (6.17).
constexpr std::array<absl::string_view, 51> kEthtoolOps = {
    "",
    "strset-get",
    "linkinfo-get",
    "linkinfo-set",
    "linkmodes-get",
    "linkmodes-set",
    "linkstate-get",
    "debug-get",
    "debug-set",
    "wol-get",
    "wol-set",
    "features-get",
    "features-set",
    "privflags-get",
    "privflags-set",
    "rings-get",
    "rings-set",
    "channels-get",
    "channels-set",
    "coalesce-get",
    "coalesce-set",
    "pause-get",
    "pause-set",
    "eee-get",
    "eee-set",
    "tsinfo-get",
    "cable-test-act",
    "cable-test-tdr-act",
    "tunnel-info-get",
    "fec-get",
    "fec-set",
    "module-eeprom-get",
    "stats-get",
    "phc-vclocks-get",
    "module-get",
    "module-set",
    "pse-get",
    "pse-set",
    "rss-get",
    "plca-get-cfg",
    "plca-set-cfg",
    "plca-get-status",
    "mm-get",
    "mm-set",
    "module-fw-flash-act",
    "phy-get",
    "tsconfig-get",
    "tsconfig-set",
    "rss-set",
    "rss-create-act",
    "rss-delete-act",
};

// NETDEV_CMD_* (6.3+): notifications included so the ids line up.
constexpr std::array<absl::string_view, 16> kNetdevOps = {
    "",
    "dev-get",
    "dev-add-ntf",
    "dev-del-ntf",
    "dev-change-ntf",
    "page-pool-get",
    "page-pool-add-ntf",
    "page-pool-del-ntf",
    "page-pool-change-ntf",
    "page-pool-stats-get",
    "queue-get",
    "napi-get",
    "qstats-get",
    "bind-rx",
    "napi-set",
    "bind-tx",
};

GenlOp ParseOp(const nlattr& op) {
  AttrTable t(&op, CTRL_ATTR_OP_MAX);
  return GenlOp{t.u32(CTRL_ATTR_OP_ID).value_or(0), t.u32(CTRL_ATTR_OP_FLAGS).value_or(0)};
}

}  // namespace

bool GenlFamily::HasOp(uint32_t cmd) const {
  return std::any_of(ops.begin(), ops.end(), [cmd](const GenlOp& op) { return op.id == cmd; });
}

absl::StatusOr<GenlFamily> ParseGenlFamily(const nlmsghdr& nlh) {
  if (nlh.nlmsg_type != GENL_ID_CTRL) {
    return absl::DataLossError(
        absl::StrCat("genl: expected a nlctrl message, got type ", nlh.nlmsg_type));
  }
  if (nlh.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) {
    return absl::DataLossError("genl: truncated family message");
  }
  AttrTable t(nlh, GENL_HDRLEN, CTRL_ATTR_MAX);
  GenlFamily family;
  family.id = t.u16(CTRL_ATTR_FAMILY_ID).value_or(0);
  family.name = t.str(CTRL_ATTR_FAMILY_NAME).value_or("");
  family.version = t.u32(CTRL_ATTR_VERSION).value_or(0);
  ForEachNested(t.get(CTRL_ATTR_OPS), [&](const nlattr& op) {
    GenlOp parsed = ParseOp(op);
    if (parsed.id != 0) family.ops.push_back(parsed);
  });
  ForEachNested(t.get(CTRL_ATTR_MCAST_GROUPS), [&](const nlattr& grp) {
    AttrTable g(&grp, CTRL_ATTR_MCAST_GRP_MAX);
    if (auto name = g.str(CTRL_ATTR_MCAST_GRP_NAME)) {
      family.mcast_groups[*name] = g.u32(CTRL_ATTR_MCAST_GRP_ID).value_or(0);
    }
  });
  if (family.id == 0) return absl::DataLossError("genl: family message without an id");
  std::sort(family.ops.begin(), family.ops.end(),
            [](const GenlOp& a, const GenlOp& b) { return a.id < b.id; });
  return family;
}

absl::StatusOr<GenlFamily> ResolveGenlFamily(NetlinkSocket& sock, absl::string_view name) {
  NetlinkMessage req(GENL_ID_CTRL, 0);
  auto* g = req.PutHeader<genlmsghdr>();
  g->cmd = CTRL_CMD_GETFAMILY;
  g->version = 1;
  req.PutString(CTRL_ATTR_FAMILY_NAME, name);
  absl::StatusOr<GenlFamily> out = absl::NotFoundError(absl::StrCat("genl family ", name));
  absl::Status st = sock.Request(req, absl::StrCat("genl family ", name), [&](const nlmsghdr& m) {
    out = ParseGenlFamily(m);
    return out.status();
  });
  if (!st.ok()) return st;
  return out;
}

std::string GenlOpName(absl::string_view family, uint32_t cmd) {
  if (family == "ethtool" && cmd > 0 && cmd < kEthtoolOps.size()) {
    return std::string(kEthtoolOps[cmd]);
  }
  if (family == "netdev" && cmd > 0 && cmd < kNetdevOps.size()) return std::string(kNetdevOps[cmd]);
  return absl::StrCat("op-", cmd);
}

}  // namespace netagent::kernel
