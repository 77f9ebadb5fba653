// Records netlink replies from the running kernel for tests/fixtures/netlink,
// through the agent's own socket code (NetlinkSocket::set_recorder).
//
//   nl_record genl-family NAME FILE   CTRL_CMD_GETFAMILY reply for family NAME
//   nl_record netdev-dev-get FILE     netdev dev-get dump (xdp-features)
//   nl_record ethtool IFACE DIR       replies of linkmodes, linkstate, channels,
//                                     features (compact), coalesce, strset features
//   nl_record links FILE              RTM_GETLINK dump
//   nl_record conntrack DIR           ctnetlink table dump, per-CPU and global stats
//   nl_record sock-diag tcp|udp 4|6 FILE   SOCK_DIAG_BY_FAMILY dump, all states,
//                                     with INFO, VEGASINFO, CONG and SKMEMINFO
#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "collectors/ethtool.h"
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
  if (what == "ethtool" && argc == 4) {
    auto client = netagent::collectors::EthtoolClient::Open();
    if (!client.ok()) return 1;
    const std::string dev = argv[2], dir = argv[3];
    auto none = [](NetlinkMessage&) {};
    struct Item {
      const char* file;
      uint8_t cmd;
      std::string dev;
      uint32_t flags;
    };
    for (const Item& item : std::vector<Item>{
             {"linkmodes", ETHTOOL_MSG_LINKMODES_GET, dev, ETHTOOL_FLAG_COMPACT_BITSETS},
             {"linkstate", ETHTOOL_MSG_LINKSTATE_GET, dev, 0},
             {"channels", ETHTOOL_MSG_CHANNELS_GET, dev, 0},
             {"features", ETHTOOL_MSG_FEATURES_GET, dev, ETHTOOL_FLAG_COMPACT_BITSETS},
             {"coalesce", ETHTOOL_MSG_COALESCE_GET, dev, 0}}) {
      std::string rec;
      client->set_recorder(&rec);
      (void)client->Request(item.cmd, item.dev, item.flags, none);
      if (Save(dir + "/ethtool_" + item.file + ".bin", rec) != 0) return 1;
    }
    std::string rec;
    client->set_recorder(&rec);
    (void)client->Request(ETHTOOL_MSG_STRSET_GET, "", 0, [](NetlinkMessage& m) {
      void* sets = m.BeginNest(ETHTOOL_A_STRSET_STRINGSETS);
      void* set = m.BeginNest(ETHTOOL_A_STRINGSETS_STRINGSET);
      m.PutU32(ETHTOOL_A_STRINGSET_ID, ETH_SS_FEATURES);
      m.EndNest(set);
      m.EndNest(sets);
    });
    return Save(dir + "/ethtool_strset_features.bin", rec);
  }
  if (what == "conntrack" && argc == 3) {
    const std::string dir = argv[2];
    auto ct = NetlinkSocket::Open(NETLINK_NETFILTER);
    if (!ct.ok()) return 1;
    struct Item {
      const char* file;
      uint8_t type;
      uint16_t flags;
    };
    for (const Item& item : {Item{"ctnetlink_dump", IPCTNL_MSG_CT_GET, NLM_F_DUMP},
                             Item{"ctnetlink_stats_cpu", IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_DUMP},
                             Item{"ctnetlink_stats", IPCTNL_MSG_CT_GET_STATS, 0}}) {
      std::string rec;
      ct->set_recorder(&rec);
      NetlinkMessage req((NFNL_SUBSYS_CTNETLINK << 8) | item.type, item.flags);
      auto* nfg = req.PutHeader<nfgenmsg>();
      nfg->nfgen_family = AF_UNSPEC;
      nfg->version = NFNETLINK_V0;
      absl::Status st =
          ct->Request(req, item.file, [](const nlmsghdr&) { return absl::OkStatus(); });
      if (!st.ok() || Save(dir + "/" + item.file + ".bin", rec) != 0) return 1;
    }
    return 0;
  }
  if (what == "links" && argc == 3) {
    auto rt = NetlinkSocket::Open(NETLINK_ROUTE);
    if (!rt.ok()) return 1;
    rt->set_recorder(&recording);
    NetlinkMessage req(RTM_GETLINK, NLM_F_DUMP);
    req.PutHeader<ifinfomsg>()->ifi_family = AF_UNSPEC;
    absl::Status st = rt->Request(req, "links", [](const nlmsghdr&) { return absl::OkStatus(); });
    if (!st.ok()) return 1;
    return Save(argv[2], recording);
  }
  std::fprintf(stderr, "unknown command\n");
  return 2;
}
