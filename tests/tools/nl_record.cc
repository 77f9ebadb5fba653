// Records netlink replies from the running kernel for tests/fixtures/netlink,
// through the agent's own socket code (NetlinkSocket::set_recorder).
//
//   nl_record genl-family NAME FILE   CTRL_CMD_GETFAMILY reply for family NAME
//   nl_record netdev-dev-get FILE     netdev dev-get dump (xdp-features)
//   nl_record sock-diag tcp|udp 4|6 FILE   SOCK_DIAG_BY_FAMILY dump, all states,
//                                     with INFO, VEGASINFO, CONG and SKMEMINFO
#include <linux/genetlink.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "kernel/genl.h"
#include "kernel/netlink.h"

using netagent::kernel::NetlinkMessage;
using netagent::kernel::NetlinkSocket;

namespace {

int Save(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return out ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: nl_record genl-family NAME FILE | netdev-dev-get FILE\n");
    return 2;
  }
  const std::string what = argv[1];
  auto sock = NetlinkSocket::Open(NETLINK_GENERIC);
  if (!sock.ok()) {
    std::fprintf(stderr, "%s\n", std::string(sock.status().message()).c_str());
    return 1;
  }
  std::string recording;
  if (what == "genl-family" && argc == 4) {
    sock->set_recorder(&recording);
    auto fam = netagent::kernel::ResolveGenlFamily(*sock, argv[2]);
    if (!fam.ok()) {
      std::fprintf(stderr, "%s\n", std::string(fam.status().message()).c_str());
      return 1;
    }
    return Save(argv[3], recording);
  }
  if (what == "netdev-dev-get" && argc == 3) {
    auto fam = netagent::kernel::ResolveGenlFamily(*sock, "netdev");
    if (!fam.ok()) {
      std::fprintf(stderr, "%s\n", std::string(fam.status().message()).c_str());
      return 1;
    }
    sock->set_recorder(&recording);
    NetlinkMessage req(fam->id, NLM_F_DUMP);
    auto* g = req.PutHeader<genlmsghdr>();
    g->cmd = 1;  // NETDEV_CMD_DEV_GET
    g->version = 1;
    absl::Status st =
        sock->Request(req, "netdev dev-get", [](const nlmsghdr&) { return absl::OkStatus(); });
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
      return 1;
    }
    return Save(argv[2], recording);
  }
  if (what == "sock-diag" && argc == 5) {
    auto diag = NetlinkSocket::Open(NETLINK_SOCK_DIAG);
    if (!diag.ok()) return 1;
    diag->set_recorder(&recording);
    NetlinkMessage req(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP);
    auto* r = req.PutHeader<inet_diag_req_v2>();
    r->sdiag_family = std::string(argv[3]) == "6" ? AF_INET6 : AF_INET;
    r->sdiag_protocol = std::string(argv[2]) == "udp" ? IPPROTO_UDP : IPPROTO_TCP;
    r->idiag_ext = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_VEGASINFO - 1)) |
                   (1 << (INET_DIAG_CONG - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
    r->idiag_states = 0xfff;
    absl::Status st =
        diag->Request(req, "sock_diag", [](const nlmsghdr&) { return absl::OkStatus(); });
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
      return 1;
    }
    return Save(argv[4], recording);
  }
  std::fprintf(stderr, "unknown command\n");
  return 2;
}
