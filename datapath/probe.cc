#include "datapath/probe.h"

#include <bpf/libbpf.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <net/if.h>

#include "absl/strings/str_cat.h"

namespace netagent::datapath {
namespace {

// linux/netdev.h (6.3+), absent from older UAPI headers.
constexpr uint8_t kNetdevCmdDevGet = 1;
constexpr uint16_t kNetdevAttrIfindex = 1;
constexpr uint16_t kNetdevAttrXdpFeatures = 3;

}  // namespace

absl::StatusOr<NetdevXdpFeatures> ParseNetdevDev(const nlmsghdr& nlh) {
  if (nlh.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) {
    return absl::DataLossError("netdev dev-get: truncated message");
  }
  kernel::AttrTable t(nlh, GENL_HDRLEN, kNetdevAttrXdpFeatures);
  NetdevXdpFeatures out;
  out.ifindex = t.u32(kNetdevAttrIfindex).value_or(0);
  out.xdp_features = t.u64(kNetdevAttrXdpFeatures).value_or(0);
  if (out.ifindex == 0) return absl::DataLossError("netdev dev-get: reply without ifindex");
  return out;
}

XdpSupport ProbeXdp(kernel::NetlinkSocket& genl, const absl::StatusOr<kernel::GenlFamily>& netdev) {
  XdpSupport s;
  int probe = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr);
  if (probe == 1) {
    s.generic = {true, ""};
  } else {
    s.generic = {false, probe == 0 ? "the kernel rejects XDP programs (CONFIG_XDP_SOCKETS/BPF)"
                                   : absl::StrCat("probing XDP: ", strerror(-probe))};
  }
  if (!netdev.ok()) {
    s.native = {false, absl::StrCat("netdev netlink family unavailable (kernel 6.3+): ",
                                    netdev.status().message(),
                                    "; native support shows only when attaching")};
    return s;
  }
  kernel::NetlinkMessage req(netdev->id, NLM_F_DUMP);
  auto* g = req.PutHeader<genlmsghdr>();
  g->cmd = kNetdevCmdDevGet;
  g->version = 1;
  absl::Status st = genl.Request(req, "netdev dev-get", [&](const nlmsghdr& m) {
    auto dev = ParseNetdevDev(m);
    if (!dev.ok()) return dev.status();
    if (dev->xdp_features & kNetdevXdpActBasic) {
      char name[IF_NAMESIZE] = {};
      if (if_indextoname(dev->ifindex, name) != nullptr) s.native_interfaces.push_back(name);
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    s.native = {false, absl::StrCat("netdev dev-get: ", st.message())};
  } else if (s.native_interfaces.empty()) {
    s.native = {false, "no device in this namespace reports native XDP (xdp-features basic)"};
  } else {
    s.native = {true, ""};
  }
  return s;
}

}  // namespace netagent::datapath
