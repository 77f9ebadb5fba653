#include "collectors/links.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernel/errors.h"
#include "kernel/netlink.h"
#include "kernel/text.h"

namespace netagent::collectors {

const char* const kLinkStatNames[kLinkStatCount] = {
    "rx_packets",          "tx_packets",        "rx_bytes",         "tx_bytes",
    "rx_errors",           "tx_errors",         "rx_dropped",       "tx_dropped",
    "multicast",           "collisions",        "rx_length_errors", "rx_over_errors",
    "rx_crc_errors",       "rx_frame_errors",   "rx_fifo_errors",   "rx_missed_errors",
    "tx_aborted_errors",   "tx_carrier_errors", "tx_fifo_errors",   "tx_heartbeat_errors",
    "tx_window_errors",    "rx_compressed",     "tx_compressed",    "rx_nohandler",
    "rx_otherhost_dropped"};

absl::Status ParseLink(const nlmsghdr& nlh, LinkRecord& out) {
  if (nlh.nlmsg_type != RTM_NEWLINK || nlh.nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) {
    return absl::DataLossError("rtnetlink: not a link message");
  }
  out = LinkRecord();
  ifinfomsg ifi;
  std::memcpy(&ifi, NLMSG_DATA(&nlh), sizeof(ifi));
  out.ifindex = static_cast<uint32_t>(ifi.ifi_index);
  out.flags = ifi.ifi_flags;
  kernel::AttrTable t(nlh, sizeof(ifinfomsg), IFLA_MAX);
  out.name = t.str(IFLA_IFNAME).value_or("");
  out.mtu = t.u32(IFLA_MTU).value_or(0);
  out.qdisc = t.str(IFLA_QDISC).value_or("");
  out.txqlen = t.u32(IFLA_TXQLEN).value_or(0);
  out.operstate = t.u8(IFLA_OPERSTATE).value_or(0);
  out.num_tx_queues = t.u32(IFLA_NUM_TX_QUEUES).value_or(0);
  out.num_rx_queues = t.u32(IFLA_NUM_RX_QUEUES).value_or(0);
  out.master = t.u32(IFLA_MASTER).value_or(0);
  out.link = t.u32(IFLA_LINK).value_or(0);
  out.carrier_changes = t.u32(IFLA_CARRIER_CHANGES);
  const absl::string_view mac = t.bytes(IFLA_ADDRESS);
  for (size_t i = 0; i < mac.size(); ++i) {
    absl::StrAppendFormat(&out.address, "%s%02x", i ? ":" : "", static_cast<uint8_t>(mac[i]));
  }
  if (const nlattr* info = t.get(IFLA_LINKINFO)) {
    kernel::AttrTable li(info, IFLA_INFO_MAX);
    out.kind = li.str(IFLA_INFO_KIND).value_or("");
  }
  const absl::string_view stats = t.bytes(IFLA_STATS64);
  out.stats_count = static_cast<int>(std::min<size_t>(stats.size() / 8, kLinkStatCount));
  // Without IFLA_STATS64 the source is null: memcpy must not see it.
  if (out.stats_count > 0) std::memcpy(out.stats, stats.data(), out.stats_count * 8);
  if (const nlattr* xdp = t.get(IFLA_XDP)) {
    kernel::AttrTable x(xdp, IFLA_XDP_MAX);
    out.xdp.attached = x.u8(IFLA_XDP_ATTACHED).value_or(0);
    out.xdp.prog_id = x.u32(IFLA_XDP_PROG_ID).value_or(0);
    out.xdp.driver_prog_id = x.u32(IFLA_XDP_DRV_PROG_ID).value_or(0);
    out.xdp.generic_prog_id = x.u32(IFLA_XDP_SKB_PROG_ID).value_or(0);
    out.xdp.offload_prog_id = x.u32(IFLA_XDP_HW_PROG_ID).value_or(0);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LinkRecord>> DumpLinks() {
  kernel::NetlinkSocket::Options opts;
  opts.strict_check = true;
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_ROUTE, opts));
  kernel::NetlinkMessage req(RTM_GETLINK, NLM_F_DUMP);
  req.PutHeader<ifinfomsg>()->ifi_family = AF_UNSPEC;
  std::vector<LinkRecord> out;
  for (int attempt = 0;; ++attempt) {
    out.clear();
    absl::Status st = sock.Request(req, "rtnetlink link dump", [&](const nlmsghdr& m) {
      LinkRecord r;
      NETAGENT_RETURN_IF_ERROR(ParseLink(m, r));
      out.push_back(std::move(r));
      return absl::OkStatus();
    });
    // Links coming and going mark the dump; it is short, so read it again.
    if (kernel::IsDumpInterrupted(st) && attempt < 3) continue;
    if (!st.ok()) return st;
    return out;
  }
}

absl::StatusOr<LinkRecord> GetLink(const std::string& name) {
  NETAGENT_RETURN_IF_ERROR(ValidateInterfaceName(name, "interface"));
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock, kernel::NetlinkSocket::Open(NETLINK_ROUTE));
  kernel::NetlinkMessage req(RTM_GETLINK, 0);
  req.PutHeader<ifinfomsg>()->ifi_family = AF_UNSPEC;
  req.PutString(IFLA_IFNAME, name);
  LinkRecord out;
  absl::Status st = sock.Request(req, absl::StrCat("rtnetlink get link ", name),
                                 [&](const nlmsghdr& m) { return ParseLink(m, out); });
  if (absl::IsNotFound(st)) {
    return absl::NotFoundError(
        absl::StrCat("interface ", kernel::Quote(name), " does not exist in this namespace"));
  }
  if (!st.ok()) return st;
  return out;
}

std::vector<std::string> LinkFlagNames(uint32_t flags) {
  static constexpr std::pair<uint32_t, const char*> kFlags[] = {{IFF_UP, "UP"},
                                                                {IFF_BROADCAST, "BROADCAST"},
                                                                {IFF_DEBUG, "DEBUG"},
                                                                {IFF_LOOPBACK, "LOOPBACK"},
                                                                {IFF_POINTOPOINT, "POINTOPOINT"},
                                                                {IFF_NOTRAILERS, "NOTRAILERS"},
                                                                {IFF_RUNNING, "RUNNING"},
                                                                {IFF_NOARP, "NOARP"},
                                                                {IFF_PROMISC, "PROMISC"},
                                                                {IFF_ALLMULTI, "ALLMULTI"},
                                                                {IFF_MASTER, "MASTER"},
                                                                {IFF_SLAVE, "SLAVE"},
                                                                {IFF_MULTICAST, "MULTICAST"},
                                                                {IFF_PORTSEL, "PORTSEL"},
                                                                {IFF_AUTOMEDIA, "AUTOMEDIA"},
                                                                {IFF_DYNAMIC, "DYNAMIC"},
                                                                {IFF_LOWER_UP, "LOWER_UP"},
                                                                {IFF_DORMANT, "DORMANT"},
                                                                {IFF_ECHO, "ECHO"}};
  std::vector<std::string> out;
  for (const auto& [bit, name] : kFlags) {
    if (flags & bit) out.emplace_back(name);
  }
  return out;
}

std::string OperStateName(uint8_t state) {
  static constexpr const char* kStates[] = {"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN",
                                            "TESTING", "DORMANT",    "UP"};
  return state < 7 ? kStates[state] : absl::StrCat("STATE-", state);
}

absl::Status ValidateInterfaceName(absl::string_view name, absl::string_view field) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": interface names have 1 to ", IFNAMSIZ - 1, " characters"));
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", kernel::Quote(name), " is not an interface name"));
    }
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", kernel::Quote(name), " is not an interface name"));
  }
  return absl::OkStatus();
}

}  // namespace netagent::collectors
