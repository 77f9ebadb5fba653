// A one-line reading of a frame's first bytes for people ("TCP
// 192.0.2.7:40000 > 10.0.0.1:443 SYN"), and the source address and ports the
// fast path's rules match on. Used for drop samples (128 bytes: may be cut
// short) and TestPacket. Pure; tolerant of any bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "datapath/rules.h"

namespace netagent::datapath {

struct DecodedPacket {
  std::optional<IpPrefix> src;  // exact prefix (/32, /128) when IP
  std::optional<IpPrefix> dst;
  uint8_t l4 = 0;  // IPPROTO_*; 0 when not reached
  uint16_t sport = 0, dport = 0;
  uint8_t tcp_flags = 0;
  bool fragment = false;
  std::string summary;
};

DecodedPacket DecodePacket(const uint8_t* data, size_t len);

}  // namespace netagent::datapath
