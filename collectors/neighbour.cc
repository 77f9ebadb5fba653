#include "collectors/neighbour.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::collectors {

absl::StatusOr<NeighbourStats> ParseNeighbourStats(absl::string_view text,
                                                   absl::string_view table) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return absl::DataLossError(absl::StrCat(table, ": empty"));
  std::vector<absl::string_view> header = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  NeighbourStats out;
  out.table = std::string(table);
  for (absl::string_view name : header) {
    if (name != "entries") out.totals.emplace_back(std::string(name), 0);
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<absl::string_view> cols = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    if (cols.size() != header.size()) {
      return absl::DataLossError(absl::StrCat(table, " line ", i + 1, ": ", cols.size(),
                                              " columns, the header has ", header.size()));
    }
    size_t k = 0;
    for (size_t c = 0; c < cols.size(); ++c) {
      uint64_t v = 0;
      if (!absl::SimpleHexAtoi(cols[c], &v)) {
        return absl::DataLossError(absl::StrCat(table, " line ", i + 1, ": ",
                                                kernel::Quote(cols[c], 24), " is not hex"));
      }
      if (header[c] == "entries") {
        out.entries = v;
      } else {
        out.totals[k++].second += v;
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<NeighbourStats>> ReadNeighbourStats(const std::string& proc_net) {
  std::vector<NeighbourStats> out;
  for (const char* table : {"arp_cache", "ndisc_cache"}) {
    auto text = kernel::ReadFile(absl::StrCat(proc_net, "/stat/", table));
    if (!text.ok()) {
      if (absl::IsNotFound(text.status())) continue;
      return text.status();
    }
    auto s = ParseNeighbourStats(*text, table);
    if (!s.ok()) return s.status();
    out.push_back(std::move(*s));
  }
  return out;
}

}  // namespace netagent::collectors
