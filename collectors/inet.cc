#include "collectors/inet.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernel/text.h"

namespace netagent::collectors {

bool Prefix::Contains(const IpAddress& a) const {
  if (a.family != address.family) return false;
  const int full = length / 8, rest = length % 8;
  for (int i = 0; i < full; ++i) {
    if (a.bytes[i] != address.bytes[i]) return false;
  }
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (address.bytes[full] & mask);
}

absl::StatusOr<Prefix> ParsePrefix(absl::string_view text, absl::string_view field) {
  Prefix p;
  absl::string_view addr = text;
  absl::string_view len;
  if (size_t slash = text.find('/'); slash != absl::string_view::npos) {
    addr = text.substr(0, slash);
    len = text.substr(slash + 1);
  }
  std::string a(addr);
  if (inet_pton(AF_INET, a.c_str(), p.address.bytes.data()) == 1) {
    p.address.family = AF_INET;
  } else if (inet_pton(AF_INET6, a.c_str(), p.address.bytes.data()) == 1) {
    p.address.family = AF_INET6;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", kernel::Quote(text), " is not an IP address or CIDR prefix"));
  }
  const uint32_t max = p.address.family == AF_INET ? 32 : 128;
  uint32_t l = max;
  if (!len.empty() || text.back() == '/') {
    if (!absl::SimpleAtoi(len, &l) || l > max || len.empty() || len[0] == '+') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": prefix length ", kernel::Quote(len), " is not in 0-", max));
    }
  }
  p.length = static_cast<uint8_t>(l);
  for (uint32_t bit = l; bit < max; ++bit) {
    if (p.address.bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", kernel::Quote(text),
                                                     " has host bits set below /", l,
                                                     " (did you mean the network?)"));
    }
  }
  return p;
}

IpAddress UnmapV4(const IpAddress& a) {
  static constexpr std::array<uint8_t, 12> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.family != AF_INET6 || !std::equal(kMapped.begin(), kMapped.end(), a.bytes.begin())) {
    return a;
  }
  IpAddress v4;
  v4.family = AF_INET;
  std::copy(a.bytes.begin() + 12, a.bytes.end(), v4.bytes.begin());
  return v4;
}

absl::StatusOr<PortRange> ParsePortRange(absl::string_view text, absl::string_view field) {
  PortRange r;
  absl::string_view lo = text, hi = text;
  if (size_t dash = text.find('-'); dash != absl::string_view::npos) {
    lo = text.substr(0, dash);
    hi = text.substr(dash + 1);
  }
  uint32_t l, h;
  if (lo.empty() || hi.empty() || !absl::SimpleAtoi(lo, &l) || !absl::SimpleAtoi(hi, &h) ||
      lo[0] == '+' || hi[0] == '+' || l > 65535 || h > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", kernel::Quote(text),
                                                   " is not a port or a range like 1024-65535"));
  }
  if (l > h) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": range ", kernel::Quote(text), " runs backwards"));
  }
  r.low = static_cast<uint16_t>(l);
  r.high = static_cast<uint16_t>(h);
  return r;
}

absl::string_view FormatAddress(const IpAddress& a, AddressText& buf) {
  if (a.family == AF_INET) {
    // glibc's inet_ntop formats IPv4 through sprintf; this runs per entry of
    // tables with hundreds of thousands of addresses.
    char* p = buf.data();
    for (int i = 0; i < 4; ++i) {
      unsigned v = a.bytes[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
      if (i < 3) *p++ = '.';
    }
    return absl::string_view(buf.data(), static_cast<size_t>(p - buf.data()));
  }
  static_assert(sizeof(AddressText) >= INET6_ADDRSTRLEN);
  if (inet_ntop(a.family, a.bytes.data(), buf.data(), buf.size()) == nullptr) return "?";
  return buf.data();
}

std::string FormatAddress(const IpAddress& a) {
  AddressText buf;
  return std::string(FormatAddress(a, buf));
}

std::string FormatEndpoint(const IpAddress& a, uint16_t port) {
  return a.family == AF_INET6 ? absl::StrCat("[", FormatAddress(a), "]:", port)
                              : absl::StrCat(FormatAddress(a), ":", port);
}

}  // namespace netagent::collectors
