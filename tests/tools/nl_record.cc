// Records netlink replies from the running kernel for tests/fixtures/netlink,
// through the agent's own socket code (NetlinkSocket::set_recorder).
//
//   nl_record genl-family NAME FILE   CTRL_CMD_GETFAMILY reply for family NAME
//   nl_record netdev-dev-get FILE     netdev dev-get dump (xdp-features)
#include <linux/genetlink.h>
#include <linux/netlink.h>

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
  std::fprintf(stderr, "unknown command\n");
  return 2;
}
