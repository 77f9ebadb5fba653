// A conntrack table for tests that run the collector against the kernel: UDP
// entries made through ctnetlink, as `conntrack -I` makes them, in the network
// namespace of the calling thread (a test unshares one of its own first).
#pragma once

#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernel/errors.h"
#include "kernel/netlink.h"

namespace netagent::testing {

// Entry i: 10.1.x.y:1000 -> 10.2.0.1:53 and its reply, timeout 600 s.
inline absl::Status InsertUdpEntry(kernel::NetlinkSocket& sock, uint32_t i) {
  kernel::NetlinkMessage m((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_CREATE);
  auto* nfg = m.PutHeader<nfgenmsg>();
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  const uint32_t client = htonl(0x0a010000 | i), server = htonl(0x0a020001);
  auto tuple = [&](uint16_t type, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport) {
    void* t = m.BeginNest(type);
    void* ip = m.BeginNest(CTA_TUPLE_IP);
    m.PutBytes(CTA_IP_V4_SRC, &src, 4);
    m.PutBytes(CTA_IP_V4_DST, &dst, 4);
    m.EndNest(ip);
    void* proto = m.BeginNest(CTA_TUPLE_PROTO);
    m.PutU8(CTA_PROTO_NUM, IPPROTO_UDP);
    m.PutU16(CTA_PROTO_SRC_PORT, htons(sport));
    m.PutU16(CTA_PROTO_DST_PORT, htons(dport));
    m.EndNest(proto);
    m.EndNest(t);
  };
  tuple(CTA_TUPLE_ORIG, client, server, 1000, 53);
  tuple(CTA_TUPLE_REPLY, server, client, 53, 1000);
  m.PutU32(CTA_TIMEOUT, htonl(600));
  return sock.Request(m, "conntrack insert", [](const nlmsghdr&) { return absl::OkStatus(); });
}

// Entries 1..n; NOT_FOUND / UNIMPLEMENTED when the kernel has no ctnetlink
// (the caller skips).
inline absl::Status MakeUdpTable(uint32_t n) {
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_NETFILTER));
  for (uint32_t i = 1; i <= n; ++i) NETAGENT_RETURN_IF_ERROR(InsertUdpEntry(sock, i));
  return absl::OkStatus();
}

}  // namespace netagent::testing
