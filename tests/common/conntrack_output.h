// Parsing `conntrack -L` and `conntrack -S` output, the reference the
// conntrack tests compare with.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace netagent::testing {

struct CtLine {
  std::string protocol;
  std::string state;  // TCP only
  // First occurrence = original direction, second = reply.
  std::vector<std::map<std::string, std::string>> tuples;
  std::set<std::string> flags;              // UNREPLIED, ASSURED ...
  std::map<std::string, std::string> rest;  // mark, use ...

  // "udp 127.0.0.1:60321 > 127.0.0.1:1026", the original direction.
  std::string Key() const {
    const auto& o = tuples.at(0);
    auto get = [&](const char* k) { return o.count(k) ? o.at(k) : std::string("-"); };
    return protocol + " " + get("src") + ":" + get("sport") + " > " + get("dst") + ":" +
           get("dport");
  }
};

inline std::vector<CtLine> ParseConntrackL(const std::string& text) {
  std::vector<CtLine> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (w.size() < 4 || absl::StartsWith(line, "conntrack v")) continue;
    CtLine c;
    c.protocol = std::string(w[0]);
    for (size_t i = 3; i < w.size(); ++i) {
      absl::string_view t = w[i];
      if (t.front() == '[' && t.back() == ']') {
        c.flags.insert(std::string(t.substr(1, t.size() - 2)));
        continue;
      }
      const size_t eq = t.find('=');
      if (eq == absl::string_view::npos) {
        c.state = std::string(t);
        continue;
      }
      const std::string key(t.substr(0, eq)), value(t.substr(eq + 1));
      if (key == "src") c.tuples.emplace_back();
      if (key == "mark" || key == "use" || key == "zone") {
        c.rest[key] = value;
      } else if (!c.tuples.empty()) {
        c.tuples.back()[key] = value;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

// conntrack -S: "cpu=0 found=0 invalid=0 ..." -> cpu -> name -> value.
inline std::map<uint32_t, std::map<std::string, uint64_t>> ParseConntrackS(
    const std::string& text) {
  std::map<uint32_t, std::map<std::string, uint64_t>> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    uint32_t cpu = 0;
    std::map<std::string, uint64_t> values;
    for (absl::string_view t : absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      const size_t eq = t.find('=');
      if (eq == absl::string_view::npos) continue;
      uint64_t v = 0;
      (void)absl::SimpleAtoi(t.substr(eq + 1), &v);
      if (t.substr(0, eq) == "cpu") {
        cpu = static_cast<uint32_t>(v);
      } else {
        values[std::string(t.substr(0, eq))] = v;
      }
    }
    out[cpu] = std::move(values);
  }
  return out;
}

}  // namespace netagent::testing
