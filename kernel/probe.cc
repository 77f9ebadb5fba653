#include "kernel/probe.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernel/netlink.h"

namespace netagent::kernel {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

}  // namespace

Capability ProbeBtf() {
  struct stat st;
  if (::stat("/sys/kernel/btf/vmlinux", &st) == 0) return {true, ""};
  return {false, absl::StrCat("/sys/kernel/btf/vmlinux: ", strerror(errno),
                              " (kernel built without CONFIG_DEBUG_INFO_BTF)")};
}

Capability ProbeBpffs(const std::string& path) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) {
    return {false, absl::StrCat(path, ": ", strerror(errno))};
  }
  if (static_cast<long>(fs.f_type) != kBpfFsMagic) {
    return {false,
            absl::StrCat("no bpf filesystem mounted at ", path, " (mount -t bpf bpf ", path, ")")};
  }
  return {true, ""};
}

Capability ProbeConntrackNetlink() {
  auto sock = NetlinkSocket::Open(NETLINK_NETFILTER);
  if (!sock.ok()) return {false, std::string(sock.status().message())};
  NetlinkMessage req((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS, 0);
  auto* nfg = req.PutHeader<nfgenmsg>();
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  absl::Status st =
      sock->Request(req, "conntrack statistics", [](const nlmsghdr&) { return absl::OkStatus(); });
  if (!st.ok()) return {false, std::string(st.message())};
  return {true, ""};
}

}  // namespace netagent::kernel
