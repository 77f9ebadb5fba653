#include "collectors/softirqs.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::collectors {

absl::StatusOr<Softirqs> ParseSoftirqs(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::DataLossError("softirqs: empty");
  Softirqs out;
  for (absl::string_view col : absl::StrSplit(lines[0], ' ', absl::SkipEmpty())) {
    uint32_t cpu = 0;
    if (!absl::ConsumePrefix(&col, "CPU") || !absl::SimpleAtoi(col, &cpu)) {
      return absl::DataLossError(
          absl::StrCat("softirqs: header column ", kernel::Quote(col, 24), " is not CPUn"));
    }
    out.cpus.push_back(cpu);
  }
  if (out.cpus.empty()) return absl::DataLossError("softirqs: no CPU in the header");
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat("softirqs line ", i + 1, ": no name"));
    }
    const std::string name(absl::StripAsciiWhitespace(lines[i].substr(0, colon)));
    std::vector<absl::string_view> cols =
        absl::StrSplit(lines[i].substr(colon + 1), ' ', absl::SkipEmpty());
    if (cols.size() > out.cpus.size()) {
      return absl::DataLossError(absl::StrCat("softirqs line ", i + 1, ": ", cols.size(),
                                              " values for ", out.cpus.size(), " CPUs"));
    }
    std::vector<uint64_t> values(out.cpus.size(), 0);
    for (size_t c = 0; c < cols.size(); ++c) {
      if (!absl::SimpleAtoi(cols[c], &values[c])) {
        return absl::DataLossError(absl::StrCat("softirqs line ", i + 1, ": ",
                                                kernel::Quote(cols[c], 24), " is not a number"));
      }
    }
    out.counts[name] = std::move(values);
  }
  return out;
}

absl::StatusOr<Softirqs> ReadSoftirqs(const std::string& proc) {
  auto text = kernel::ReadFile(proc + "/softirqs");
  if (!text.ok()) return text.status();
  return ParseSoftirqs(*text);
}

}  // namespace netagent::collectors
