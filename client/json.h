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

#include <string>

#include "absl/strings/string_view.h"

namespace netagent::client {

// Appends `message` as one JSON object.
void AppendJson(const google::protobuf::Message& message, std::string* out);

// Appends `text` as a JSON string literal; bytes that are not UTF-8 become
// U+FFFD.
void AppendJsonString(absl::string_view text, std::string* out);

}  // namespace netagent::client
