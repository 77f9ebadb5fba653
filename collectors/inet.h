// IP addresses, prefixes and port ranges as sockets and conntrack use them:
// parsing what a caller sends (INVALID_ARGUMENT naming the field) and
// formatting what the kernel gives.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::collectors {

struct IpAddress {
  int family = AF_UNSPEC;           // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 in the first 4

  size_t size() const { return family == AF_INET ? 4 : 16; }
  bool operator==(const IpAddress& o) const { return family == o.family && bytes == o.bytes; }
  bool operator<(const IpAddress& o) const {
    return family != o.family ? family < o.family : bytes < o.bytes;
  }
};

struct Prefix {
  IpAddress address;
  uint8_t length = 0;  // 0..32 or 0..128

  bool Contains(const IpAddress& a) const;
};

struct PortRange {
  uint16_t low = 0;
  uint16_t high = 65535;

  bool Contains(uint16_t port) const { return port >= low && port <= high; }
};

// "10.0.0.1", "10.0.0.0/8", "fd00::/64", "::1". Host bits below the prefix
// must be zero ("10.0.0.1/8" is refused: it is ambiguous).
absl::StatusOr<Prefix> ParsePrefix(absl::string_view text, absl::string_view field);

// "443" or "1024-65535".
absl::StatusOr<PortRange> ParsePortRange(absl::string_view text, absl::string_view field);

// An IPv4 peer of a dual-stack (::) socket, ::ffff:a.b.c.d, as the IPv4
// address it is; any other address as it is.
IpAddress UnmapV4(const IpAddress& a);

std::string FormatAddress(const IpAddress& a);
// The same text in `buf`, without allocating (bulk listings format four
// addresses per entry): a view of `buf`.
using AddressText = std::array<char, 48>;
absl::string_view FormatAddress(const IpAddress& a, AddressText& buf);
// "10.0.0.1:80", "[fd00::1]:443".
std::string FormatEndpoint(const IpAddress& a, uint16_t port);

}  // namespace netagent::collectors
