// Parsing `ss -tanimeH` output, the reference the socket tests compare with.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace netagent::testing {

struct SsSocket {
  std::string state;  // ss's label: ESTAB, LISTEN, TIME-WAIT ...
  uint32_t rq = 0, sq = 0;
  std::string local, peer;
  uint64_t inode = 0, cookie = 0;
  // The info line as key -> value: "cwnd" -> "10", "bbr" -> "", "rtt" -> "0.05/0.025".
  std::map<std::string, std::string> info;
};

inline std::vector<SsSocket> ParseSsOutput(const std::string& text) {
  std::vector<SsSocket> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> w =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (w.empty()) continue;
    if (line[0] != '\t') {
      if (w.size() < 5) continue;
      SsSocket s;
      s.state = std::string(w[0]);
      (void)absl::SimpleAtoi(w[1], &s.rq);
      (void)absl::SimpleAtoi(w[2], &s.sq);
      s.local = std::string(w[3]);
      s.peer = std::string(w[4]);
      for (absl::string_view t : w) {
        if (absl::ConsumePrefix(&t, "ino:")) (void)absl::SimpleAtoi(t, &s.inode);
        if (absl::ConsumePrefix(&t, "sk:")) (void)absl::SimpleHexAtoi(t, &s.cookie);
      }
      out.push_back(std::move(s));
    } else if (!out.empty()) {
      for (absl::string_view t : w) {
        const size_t colon = t.find(':');
        out.back().info[std::string(t.substr(0, colon))] =
            colon == absl::string_view::npos ? "" : std::string(t.substr(colon + 1));
      }
    }
  }
  return out;
}

}  // namespace netagent::testing
