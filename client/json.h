// A JSON writer for protobuf messages that walks the message by reflection
// and appends to one string: the protobuf JSON mapping (lowerCamelCase names,
// 64-bit integers as strings, enums by name, bytes in base64, Timestamp and
// Duration as strings, NaN and infinities as strings) with every primitive
// field printed, as protobuf's own printer does with
// always_print_primitive_fields. Its output means the same as protobuf's
// (tests/unit/client/json_test.cc compares both on random messages); it is
// several times faster, because protobuf's printer serializes the message and
// re-reads it through a type resolver. Bulk streams (sockets, conntrack) print
// tens of megabytes through it.
#pragma once

#include <google/protobuf/message.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace netagent::client {

// Appends `message` as one JSON object.
void AppendJson(const google::protobuf::Message& message, std::string* out);

// One UTF-8 sequence at `pos` of `s`: its code point and length, or length 0
// when the bytes there are not well-formed UTF-8 (overlong, surrogate,
// > U+10FFFF). Shared with the terminal escaping in output.cc.
struct Utf8 {
  uint32_t cp = 0;
  size_t len = 0;
};
Utf8 DecodeUtf8(absl::string_view s, size_t pos);

// Appends `text` as a JSON string literal; bytes that are not UTF-8 become
// U+FFFD.
void AppendJsonString(absl::string_view text, std::string* out);

}  // namespace netagent::client
