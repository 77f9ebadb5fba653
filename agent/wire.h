// Protocol buffers' wire format appended straight to a string, for the bulk
// streams whose messages would otherwise be built only to be serialized and
// dropped (hundreds of thousands of conntrack entries per listing). Fields
// are written as protobuf writes them: in field-number order, proto3 scalars
// and strings left out when zero or empty, fields with presence always. Each
// encoder has a test comparing its bytes with protobuf's own serialization.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace netagent::agent::wire {

inline void Varint(std::string& out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2 };

inline void Tag(std::string& out, uint32_t field, WireType type) {
  Varint(out, (static_cast<uint64_t>(field) << 3) | type);
}

// A scalar with presence (`optional`): written even when 0.
inline void PresentUint(std::string& out, uint32_t field, uint64_t v) {
  Tag(out, field, kVarint);
  Varint(out, v);
}

// A proto3 scalar without presence (uint32, uint64, bool, enum): left out when 0.
inline void Uint(std::string& out, uint32_t field, uint64_t v) {
  if (v != 0) PresentUint(out, field, v);
}

// An element of a repeated string or bytes field: written even when empty.
inline void PresentBytes(std::string& out, uint32_t field, absl::string_view s) {
  Tag(out, field, kLengthDelimited);
  Varint(out, s.size());
  out.append(s.data(), s.size());
}

// A proto3 string or bytes field: left out when empty.
inline void Bytes(std::string& out, uint32_t field, absl::string_view s) {
  if (!s.empty()) PresentBytes(out, field, s);
}

// A message field (or an element of a repeated one): its tag, the length of
// what `body(out)` appends, then that. The length is patched in once known:
// one byte reserved, widened in place for a body of 128 bytes or more.
template <typename Body>
void Message(std::string& out, uint32_t field, Body&& body) {
  Tag(out, field, kLengthDelimited);
  const size_t at = out.size();
  out.push_back(0);
  body(out);
  const size_t len = out.size() - at - 1;
  if (len < 0x80) {
    out[at] = static_cast<char>(len);
    return;
  }
  std::string prefix;
  Varint(prefix, len);
  out[at] = prefix[0];
  out.insert(at + 1, prefix, 1, std::string::npos);
}

}  // namespace netagent::agent::wire
