#include "agent/capabilities.h"

#include <linux/netlink.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "datapath/drop_collector.h"
#include "kernel/genl.h"
#include "kernel/netns.h"
#include "kernel/sysctl.h"

namespace netagent::agent {
namespace {

GenlCapability FromFamily(const absl::StatusOr<kernel::GenlFamily>& family, absl::string_view name,
                          absl::string_view absent_hint) {
  GenlCapability cap;
  if (!family.ok()) {
    cap.status = {false,
                  absl::IsNotFound(family.status())
                      ? absl::StrCat("no \"", name, "\" generic netlink family (", absent_hint, ")")
                      : std::string(family.status().message())};
    return cap;
  }
  cap.status = {true, ""};
  cap.family_id = family->id;
  cap.version = family->version;
  for (const kernel::GenlOp& op : family->ops) cap.ops.push_back(kernel::GenlOpName(name, op.id));
  return cap;
}

}  // namespace

kernel::Capability PrepareBpffs(const std::string& pin_root) {
  constexpr absl::string_view kStandard = "/sys/fs/bpf";
  if (pin_root.empty()) return kernel::ProbeBpffs(std::string(kStandard));
  if (absl::StartsWith(pin_root, absl::StrCat(kStandard, "/"))) {
    return kernel::EnsureBpffs(std::string(kStandard));
  }
  return kernel::ProbeBpffs(std::filesystem::path(pin_root).parent_path().string());
}

Capabilities ProbeCapabilities(kernel::Capability bpffs) {
  Capabilities caps;
  caps.probed_at = absl::Now();
  auto genl = kernel::NetlinkSocket::Open(NETLINK_GENERIC);
  absl::StatusOr<kernel::GenlFamily> ethtool =
      genl.ok() ? kernel::ResolveGenlFamily(*genl, "ethtool") : genl.status();
  absl::StatusOr<kernel::GenlFamily> netdev =
      genl.ok() ? kernel::ResolveGenlFamily(*genl, "netdev") : genl.status();
  caps.ethtool_netlink = FromFamily(ethtool, "ethtool",
                                    "kernel 5.6+ with CONFIG_ETHTOOL_NETLINK; ioctl fallback only");
  caps.netdev_netlink = FromFamily(netdev, "netdev", "kernel 6.3+");
  caps.btf = kernel::ProbeBtf();
  caps.bpffs = std::move(bpffs);
  if (genl.ok()) {
    caps.xdp = datapath::ProbeXdp(*genl, netdev);
  } else {
    caps.xdp.generic = caps.xdp.native = {false, std::string(genl.status().message())};
  }
  caps.conntrack_netlink = kernel::ProbeConntrackNetlink();
  caps.drop_reasons = datapath::ProbeDropReasons();
  if (auto v = kernel::ReadSysctlWords("net.ipv4.tcp_available_congestion_control"); v.ok()) {
    caps.cc_available = *v;
  }
  if (auto v = kernel::ReadSysctlWords("net.ipv4.tcp_allowed_congestion_control"); v.ok()) {
    caps.cc_allowed = *v;
  }
  if (auto v = kernel::ReadSysctl("net.ipv4.tcp_congestion_control"); v.ok()) caps.cc_current = *v;
  tuners::SystemPaths paths;
  paths.sysfs = kernel::NetSysfsRoot();
  paths.irq = kernel::ProcTree("irq");
  caps.writable_trees = tuners::ProbeWritableTrees(paths);
  return caps;
}

}  // namespace netagent::agent
