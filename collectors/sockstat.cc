#include "collectors/sockstat.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::collectors {

absl::StatusOr<Sockstat> ParseSockstat(absl::string_view text) {
  Sockstat out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line_no;
    const size_t colon = line.find(':');
    std::vector<absl::string_view> words =
        absl::StrSplit(colon == absl::string_view::npos ? "" : line.substr(colon + 1), ' ',
                       absl::SkipEmpty());
    if (colon == absl::string_view::npos || colon == 0 || words.size() % 2 != 0) {
      return absl::DataLossError(
          absl::StrCat("sockstat line ", line_no, ": ", kernel::Quote(line, 80)));
    }
    auto& proto = out[std::string(line.substr(0, colon))];
    for (size_t i = 0; i < words.size(); i += 2) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(words[i + 1], &v)) {
        return absl::DataLossError(absl::StrCat("sockstat line ", line_no, ": ",
                                                kernel::Quote(words[i + 1], 40),
                                                " is not a number"));
      }
      proto[std::string(words[i])] = v;
    }
  }
  return out;
}

absl::StatusOr<Sockstat> ReadSockstat(const std::string& proc_net) {
  auto text = kernel::ReadFile(proc_net + "/sockstat");
  if (!text.ok()) return text.status();
  auto out = ParseSockstat(*text);
  if (!out.ok()) return out.status();
  if (auto six = kernel::ReadFile(proc_net + "/sockstat6"); six.ok()) {
    auto more = ParseSockstat(*six);
    if (!more.ok()) return more.status();
    out->merge(*more);
  }
  return out;
}

}  // namespace netagent::collectors
