// spdlog to stderr, as text for people or one JSON object per line for log
// pipelines ({"time","level","msg"}).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "spdlog/common.h"
#include "spdlog/fmt/fmt.h"

namespace netagent::agent {

void SetupLogging(absl::string_view format, absl::string_view level);

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
