// spdlog to stderr, as text for people or one JSON object per line for log
// pipelines ({"time","level","msg"}). Text lines show control characters
// escaped (kernel::EscapeText): a name read from the system cannot rewrite
// an operator's terminal.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "spdlog/common.h"
#include "spdlog/fmt/fmt.h"

namespace netagent::agent {

// Also routes protobuf's log lines (RouteProtobufLogs).
void SetupLogging(absl::string_view format, absl::string_view level);

// Protobuf's own log lines go to spdlog at debug. It logs an ERROR line for
// every string field that is not UTF-8 when parsing, i.e. once per bad request
// any caller chooses to send; the caller already gets INVALID_ARGUMENT naming
// the field (agent/request_guard.h).
void RouteProtobufLogs();

// "info" -> spdlog::level::info; unknown names give info.
spdlog::level::level_enum ParseLogLevel(absl::string_view level);

// Escapes text for a JSON string (quotes, backslashes, control characters).
std::string JsonEscape(absl::string_view text);

}  // namespace netagent::agent

// Debian's absl has its own string_view type; let spdlog/fmt print it.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
