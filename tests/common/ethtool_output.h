// Parsing ethtool's text output, the reference the NIC tests compare with.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace netagent::testing {

struct EthtoolFeature {
  bool on = false;
  bool fixed = false;
};

// ethtool -k: "name: on|off [fixed]" (indented or not).
inline std::map<std::string, EthtoolFeature> ParseEthtoolK(const std::string& text) {
  std::map<std::string, EthtoolFeature> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    line = absl::StripAsciiWhitespace(line);
    const size_t colon = line.find(": ");
    if (colon == absl::string_view::npos) continue;
    absl::string_view value = line.substr(colon + 2);
    EthtoolFeature f;
    f.on = absl::StartsWith(value, "on");
    f.fixed = absl::StrContains(value, "[fixed]");
    out[std::string(line.substr(0, colon))] = f;
  }
  return out;
}

struct EthtoolChannels {
  std::map<std::string, std::optional<uint32_t>> max, current;  // "RX" -> 2, "Other" -> n/a
};

// ethtool -l.
inline EthtoolChannels ParseEthtoolL(const std::string& text) {
  EthtoolChannels out;
  auto* section = &out.max;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "Current hardware settings")) section = &out.current;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (value.empty()) continue;
    uint32_t v;
    (*section)[std::string(line.substr(0, colon))] =
        absl::SimpleAtoi(value, &v) ? std::optional<uint32_t>(v) : std::nullopt;
  }
  return out;
}

// ethtool -S: "     name: value" after the "NIC statistics:" line.
inline std::map<std::string, uint64_t> ParseEthtoolS(const std::string& text) {
  std::map<std::string, uint64_t> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, " ")) continue;
    line = absl::StripAsciiWhitespace(line);
    const size_t colon = line.rfind(": ");
    uint64_t v;
    if (colon != absl::string_view::npos && absl::SimpleAtoi(line.substr(colon + 2), &v)) {
      out[std::string(line.substr(0, colon))] = v;
    }
  }
  return out;
}

}  // namespace netagent::testing
