#include "datapath/decode.h"

#include <netinet/in.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace netagent::datapath {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

IpPrefix Addr(int family, const uint8_t* p) {
  IpPrefix a;
  a.family = family;
  a.len = family == 4 ? 32 : 128;
  std::memcpy(a.addr.data(), p, family == 4 ? 4 : 16);
  return a;
}

std::string Flags(uint8_t f) {
  static constexpr struct {
    uint8_t bit;
    const char* name;
  } kNames[] = {{0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"},
                {0x08, "PSH"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"}};
  std::string out;
  for (const auto& n : kNames)
    if (f & n.bit) absl::StrAppend(&out, out.empty() ? "" : "|", n.name);
  return out;
}

std::string Endpoint(const IpPrefix& a, int family, uint16_t port) {
  const std::string addr = FormatPrefix(a);
  return family == 6 ? absl::StrCat("[", addr, "]:", port) : absl::StrCat(addr, ":", port);
}

}  // namespace

DecodedPacket DecodePacket(const uint8_t* d, size_t len) {
  DecodedPacket out;
  std::string vlans;
  if (len < 14) {
    out.summary = absl::StrCat("truncated Ethernet header (", len, " bytes)");
    return out;
  }
  size_t off = 12;
  uint16_t type = Be16(d + off);
  off += 2;
  for (int tags = 0; (type == 0x8100 || type == 0x88a8) && tags < 4; ++tags) {
    if (len < off + 4) {
      out.summary = "truncated VLAN tag";
      return out;
    }
    absl::StrAppend(&vlans, "vlan ", Be16(d + off) & 0x0fff, " ");
    type = Be16(d + off + 2);
    off += 4;
  }
  int family = 0;
  const uint8_t* ip = d + off;
  uint8_t proto = 0;
  size_t l4 = 0;
  if (type == 0x0800) {
    if (len < off + 20 || (ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5) {
      out.summary = absl::StrCat(vlans, "malformed IPv4 header");
      return out;
    }
    family = 4;
    out.src = Addr(4, ip + 12);
    out.dst = Addr(4, ip + 16);
    proto = ip[9];
    l4 = off + (ip[0] & 0xf) * 4u;
    const uint16_t frag = Be16(ip + 6);
    out.fragment = (frag & 0x3fff) != 0;
    if ((frag & 0x1fff) != 0) l4 = 0;  // a later fragment: no L4 header
  } else if (type == 0x86dd) {
    if (len < off + 40 || (ip[0] >> 4) != 6) {
      out.summary = absl::StrCat(vlans, "malformed IPv6 header");
      return out;
    }
    family = 6;
    out.src = Addr(6, ip + 8);
    out.dst = Addr(6, ip + 24);
    proto = ip[6];
    l4 = off + 40;
    for (int i = 0; i < 8 && l4; ++i) {
      if (proto != 0 && proto != 43 && proto != 44 && proto != 51 && proto != 60) break;
      if (len < l4 + 8) {
        l4 = 0;
        break;
      }
      const uint8_t next = d[l4];
      if (proto == 44) {
        out.fragment = true;
        if ((Be16(d + l4 + 2) & 0xfff8) != 0) {
          proto = next;
          l4 = 0;
          break;
        }
        l4 += 8;
      } else if (proto == 51) {
        l4 += (d[l4 + 1] + 2u) * 4u;
      } else {
        l4 += (d[l4 + 1] + 1u) * 8u;
      }
      proto = next;
    }
  } else {
    out.summary =
        absl::StrFormat("%snon-IP ethertype 0x%04x%s", vlans, type, type == 0x0806 ? " (ARP)" : "");
    return out;
  }
  out.l4 = proto;
  const std::string src = FormatPrefix(*out.src), dst = FormatPrefix(*out.dst);
  const std::string frag = out.fragment ? " fragment" : "";
  if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) && l4 && len >= l4 + 4) {
    out.sport = Be16(d + l4);
    out.dport = Be16(d + l4 + 2);
    std::string flags;
    if (proto == IPPROTO_TCP && len >= l4 + 14) {
      out.tcp_flags = d[l4 + 13];
      flags = absl::StrCat(" ", Flags(out.tcp_flags));
    }
    out.summary = absl::StrCat(vlans, proto == IPPROTO_TCP ? "TCP " : "UDP ",
                               Endpoint(*out.src, family, out.sport), " > ",
                               Endpoint(*out.dst, family, out.dport), flags, frag);
  } else if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) && l4 && len >= l4 + 2) {
    out.summary = absl::StrCat(vlans, proto == IPPROTO_ICMP ? "ICMP " : "ICMPv6 ", src, " > ", dst,
                               " type ", d[l4], " code ", d[l4 + 1], frag);
  } else {
    out.summary = absl::StrCat(vlans, "IPv", family, " ", src, " > ", dst, " proto ", proto, frag);
  }
  return out;
}

}  // namespace netagent::datapath
