// Small packet builders for BPF_PROG_TEST_RUN fixtures: each layer takes its
// payload and fills in the lengths, so a test truncates or corrupts exactly
// one layer. Addresses are text ("10.0.0.1", "2001:db8::1").
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace netagent::bpftest {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEthIp = 0x0800;
inline constexpr uint16_t kEthIp6 = 0x86dd;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kVlan = 0x8100;
inline constexpr uint16_t kQinQ = 0x88a8;
inline constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1, kIcmp6 = 58;
inline constexpr uint8_t kHop = 0, kRouting = 43, kFrag = 44, kAh = 51, kDst = 60, kNone = 59;
inline constexpr uint8_t kSyn = 0x02, kAck = 0x10;

inline void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}

inline Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline Bytes Addr4(const std::string& a) {
  Bytes b(4);
  if (inet_pton(AF_INET, a.c_str(), b.data()) != 1) throw std::invalid_argument(a);
  return b;
}

inline Bytes Addr6(const std::string& a) {
  Bytes b(16);
  if (inet_pton(AF_INET6, a.c_str(), b.data()) != 1) throw std::invalid_argument(a);
  return b;
}

// TCP header with `opt_len` bytes of NOP options (data offset follows).
inline Bytes Tcp(uint16_t dport, uint8_t flags = kSyn, size_t opt_len = 0, uint16_t sport = 40000) {
  Bytes b(20 + opt_len, 0);
  Put16(b, 0, sport);
  Put16(b, 2, dport);
  b[12] = static_cast<uint8_t>(((20 + opt_len) / 4) << 4);
  b[13] = flags;
  Put16(b, 14, 65535);
  for (size_t i = 20; i < b.size(); i++) b[i] = 1;  // NOP
  return b;
}

// TCP header with the given option bytes (padded with EOL to a multiple of 4).
inline Bytes TcpWithOptions(uint16_t dport, uint8_t flags, Bytes opts, uint16_t sport = 40000) {
  while (opts.size() % 4) opts.push_back(0);
  Bytes b = Tcp(dport, flags, opts.size(), sport);
  std::copy(opts.begin(), opts.end(), b.begin() + 20);
  return b;
}
inline Bytes MssOption(uint16_t mss) {
  return {2, 4, static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss & 0xff)};
}

inline uint32_t SumWords(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n % 2) sum += p[n - 1] << 8;
  return sum;
}
inline uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Offset of the L3 header in an Ethernet frame built by Eth() without tags.
inline constexpr size_t kL3 = 14;

// TCP checksum over the pseudo-header, IPv4 (l3 at kL3, no options) or IPv6
// (no extension headers). Set writes it; Valid checks it.
inline uint32_t TcpPseudoSum(const Bytes& f) {
  bool v6 = (f[kL3] >> 4) == 6;
  size_t l4 = kL3 + (v6 ? 40 : (f[kL3] & 0xf) * 4);
  uint32_t len = static_cast<uint32_t>(f.size() - l4);
  uint32_t sum = v6 ? SumWords(&f[kL3 + 8], 32) : SumWords(&f[kL3 + 12], 8);
  return sum + 6 + (len >> 16) + (len & 0xffff);
}
inline size_t TcpOffset(const Bytes& f) {
  return kL3 + ((f[kL3] >> 4) == 6 ? 40 : (f[kL3] & 0xf) * 4);
}
inline void SetTcpChecksum(Bytes& f) {
  size_t l4 = TcpOffset(f);
  f[l4 + 16] = f[l4 + 17] = 0;
  uint16_t c = ~Fold(SumWords(&f[l4], f.size() - l4, TcpPseudoSum(f)));
  Put16(f, l4 + 16, c);
}
inline bool TcpChecksumValid(const Bytes& f) {
  size_t l4 = TcpOffset(f);
  return Fold(SumWords(&f[l4], f.size() - l4, TcpPseudoSum(f))) == 0xffff;
}

inline Bytes Udp(uint16_t dport, size_t payload = 8, uint16_t sport = 40000) {
  Bytes b(8 + payload, 0);
  Put16(b, 0, sport);
  Put16(b, 2, dport);
  Put16(b, 4, static_cast<uint16_t>(b.size()));
  return b;
}

inline Bytes Icmp(uint8_t type = 8) {
  Bytes b(8, 0);
  b[0] = type;
  return b;
}

struct Ip4Opts {
  Bytes options;      // appended to the 20-byte header; IHL follows
  uint16_t frag = 0;  // flags + offset field (0x2000 = MF)
  int ihl = -1;       // override
  int tot_len = -1;   // override
  uint8_t version = 4;
};

inline Bytes Ip4(const std::string& src, uint8_t proto, const Bytes& payload, Ip4Opts o = {},
                 const std::string& dst = "192.0.2.1") {
  const size_t hl = 20 + o.options.size();
  Bytes b(hl + payload.size(), 0);
  std::copy(o.options.begin(), o.options.end(), b.begin() + 20);
  std::copy(payload.begin(), payload.end(), b.begin() + hl);
  int ihl = o.ihl >= 0 ? o.ihl : static_cast<int>(hl / 4);
  b[0] = static_cast<uint8_t>((o.version << 4) | (ihl & 0xf));
  Put16(b, 2, static_cast<uint16_t>(o.tot_len >= 0 ? o.tot_len : b.size()));
  Put16(b, 6, o.frag);
  b[8] = 64;
  b[9] = proto;
  Bytes s = Addr4(src), d = Addr4(dst);
  std::copy(s.begin(), s.end(), b.begin() + 12);
  std::copy(d.begin(), d.end(), b.begin() + 16);
  return b;
}

// `payload` starts with any extension headers; `nexthdr` names the first.
inline Bytes Ip6(const std::string& src, uint8_t nexthdr, const Bytes& payload,
                 int payload_len = -1, uint8_t version = 6,
                 const std::string& dst = "2001:db8:ffff::1") {
  Bytes b(40, 0);
  b[0] = static_cast<uint8_t>(version << 4);
  Put16(b, 4, static_cast<uint16_t>(payload_len >= 0 ? payload_len : payload.size()));
  b[6] = nexthdr;
  b[7] = 64;
  Bytes s = Addr6(src), d = Addr6(dst);
  std::memcpy(&b[8], s.data(), 16);
  std::memcpy(&b[24], d.data(), 16);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Hop-by-hop, routing or destination options: (len8 + 1) * 8 bytes.
inline Bytes Ext6(uint8_t next, uint8_t len8 = 0) {
  Bytes b((len8 + 1) * 8, 0);
  b[0] = next;
  b[1] = len8;
  if (b.size() > 2) b[2] = 1;  // PadN
  return b;
}

inline Bytes Frag6(uint8_t next, uint16_t offset8, bool more) {
  Bytes b(8, 0);
  b[0] = next;
  Put16(b, 2, static_cast<uint16_t>((offset8 << 3) | (more ? 1 : 0)));
  b[7] = 42;  // identification
  return b;
}

inline Bytes Ah6(uint8_t next, uint8_t len4 = 4) {  // (len4 + 2) * 4 bytes
  Bytes b((len4 + 2) * 4, 0);
  b[0] = next;
  b[1] = len4;
  return b;
}

// Ethernet with VLAN tags (outermost first), then `proto`.
inline Bytes Eth(uint16_t proto, const Bytes& payload, std::initializer_list<uint16_t> tpids = {}) {
  Bytes b = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  uint16_t vid = 10;
  for (uint16_t t : tpids) {
    b.push_back(t >> 8);
    b.push_back(t & 0xff);
    b.push_back(0);
    b.push_back(static_cast<uint8_t>(vid++));
  }
  b.push_back(proto >> 8);
  b.push_back(proto & 0xff);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

inline Bytes Truncate(Bytes b, size_t n) {
  b.resize(n);
  return b;
}

// Common shapes.
inline Bytes Syn4(const std::string& src, uint16_t dport = 80) {
  return Eth(kEthIp, Ip4(src, kTcp, Tcp(dport)));
}
inline Bytes Syn6(const std::string& src, uint16_t dport = 80) {
  return Eth(kEthIp6, Ip6(src, kTcp, Tcp(dport)));
}

}  // namespace netagent::bpftest
