#include "collectors/counters.h"

#include <re2/re2.h>

#include <array>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "collectors/softnet.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::collectors {
namespace {

constexpr size_t kMaxFilterLength = 256;

// A MIB value: unsigned counters print with %lu, a few (Tcp MaxConn) with %ld.
bool ParseMibValue(absl::string_view s, int64_t& out) {
  if (!s.empty() && s.front() == '-') return absl::SimpleAtoi(s, &out);
  uint64_t u;
  if (!absl::SimpleAtoi(s, &u)) return false;
  out = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
            ? std::numeric_limits<int64_t>::max()
            : static_cast<int64_t>(u);
  return true;
}

std::string Key(const CounterValue& v) {
  return absl::StrCat(static_cast<int>(v.source), ":", v.group, ":", v.field);
}

}  // namespace

absl::string_view CounterSourceFile(CounterSource source) {
  switch (source) {
    case CounterSource::kSnmp:
      return "snmp";
    case CounterSource::kNetstat:
      return "netstat";
    case CounterSource::kSnmp6:
      return "snmp6";
    case CounterSource::kSctp:
      return "sctp/snmp";
  }
  return "";
}

bool IsGaugeCounter(absl::string_view group, absl::string_view field) {
  static constexpr std::array<std::pair<absl::string_view, absl::string_view>, 7> kGauges = {{
      {"Ip", "Forwarding"},
      {"Ip", "DefaultTTL"},
      {"Tcp", "RtoAlgorithm"},
      {"Tcp", "RtoMin"},
      {"Tcp", "RtoMax"},
      {"Tcp", "MaxConn"},
      {"Tcp", "CurrEstab"},
  }};
  for (const auto& [g, f] : kGauges) {
    if (g == group && f == field) return true;
  }
  return false;
}

absl::StatusOr<std::vector<CounterValue>> ParseSnmpPairs(absl::string_view text,
                                                         CounterSource source) {
  std::vector<CounterValue> out;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  const absl::string_view file = CounterSourceFile(source);
  if (lines.size() % 2 != 0) {
    return absl::DataLossError(
        absl::StrCat(file, ": ", lines.size(), " lines, expected header/value pairs"));
  }
  for (size_t i = 0; i < lines.size(); i += 2) {
    std::vector<absl::string_view> names = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    std::vector<absl::string_view> values = absl::StrSplit(lines[i + 1], ' ', absl::SkipEmpty());
    if (names.empty() || values.empty() || names[0] != values[0] || names[0].back() != ':') {
      return absl::DataLossError(
          absl::StrCat(file, " line ", i + 1, ": header and value lines do not pair up"));
    }
    if (names.size() != values.size()) {
      return absl::DataLossError(absl::StrCat(file, " line ", i + 1, ": ", names.size() - 1,
                                              " names but ", values.size() - 1, " values"));
    }
    absl::string_view group = names[0];
    group.remove_suffix(1);
    for (size_t k = 1; k < names.size(); ++k) {
      CounterValue v;
      v.group = std::string(group);
      v.field = std::string(names[k]);
      v.source = source;
      if (!ParseMibValue(values[k], v.value)) {
        return absl::DataLossError(absl::StrCat(file, " line ", i + 2, ": ", group, " ", names[k],
                                                " = \"", values[k], "\" is not a number"));
      }
      v.gauge = IsGaugeCounter(v.group, v.field);
      out.push_back(std::move(v));
    }
  }
  return out;
}

absl::StatusOr<std::vector<CounterValue>> ParseNameValueMib(absl::string_view text,
                                                            CounterSource source) {
  std::vector<CounterValue> out;
  const absl::string_view file = CounterSourceFile(source);
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line_no;
    std::vector<absl::string_view> cols =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (cols.size() != 2) {
      return absl::DataLossError(
          absl::StrCat(file, " line ", line_no, ": expected \"name value\""));
    }
    size_t group_len = 0;
    if (source == CounterSource::kSctp) {
      if (absl::StartsWith(cols[0], "Sctp")) group_len = 4;
    } else if (size_t six = cols[0].find('6'); six != absl::string_view::npos) {
      group_len = six + 1;
    }
    if (group_len == 0 || group_len >= cols[0].size()) {
      return absl::DataLossError(
          absl::StrCat(file, " line ", line_no, ": name \"", cols[0], "\" has no group prefix"));
    }
    CounterValue v;
    v.group = std::string(cols[0].substr(0, group_len));
    v.field = std::string(cols[0].substr(group_len));
    v.source = source;
    if (!ParseMibValue(cols[1], v.value)) {
      return absl::DataLossError(
          absl::StrCat(file, " line ", line_no, ": \"", cols[1], "\" is not a number"));
    }
    v.gauge = IsGaugeCounter(v.group, v.field);
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<CounterSample> ReadCounters(const std::string& proc_net) {
  CounterSample sample;
  sample.taken = absl::Now();
  for (CounterSource source : {CounterSource::kSnmp, CounterSource::kNetstat}) {
    NETAGENT_ASSIGN_OR_RETURN(
        std::string text, kernel::ReadFile(absl::StrCat(proc_net, "/", CounterSourceFile(source))));
    NETAGENT_ASSIGN_OR_RETURN(std::vector<CounterValue> values, ParseSnmpPairs(text, source));
    for (auto& v : values) sample.values.push_back(std::move(v));
  }
  struct Optional {
    CounterSource source;
    const char* absent;
  };
  for (const Optional& o :
       {Optional{CounterSource::kSnmp6, "IPv6 is disabled or not built into this kernel"},
        Optional{CounterSource::kSctp, "the sctp module is not loaded"}}) {
    const std::string path = absl::StrCat(proc_net, "/", CounterSourceFile(o.source));
    auto text = kernel::ReadFile(path);
    if (!text.ok()) {
      sample.unavailable.push_back({o.source, absl::IsNotFound(text.status())
                                                  ? absl::StrCat("no ", path, ": ", o.absent)
                                                  : std::string(text.status().message())});
      continue;
    }
    NETAGENT_ASSIGN_OR_RETURN(std::vector<CounterValue> values, ParseNameValueMib(*text, o.source));
    for (auto& v : values) sample.values.push_back(std::move(v));
  }
  return sample;
}

int64_t CounterDelta(const CounterValue& before, const CounterValue& after) {
  if (after.gauge) {
    // A gauge is whatever signed 64-bit value the file says: the change
    // between two extremes does not fit, and saturates instead of overflowing.
    int64_t change;
    if (__builtin_sub_overflow(after.value, before.value, &change)) {
      return after.value > before.value ? std::numeric_limits<int64_t>::max()
                                        : std::numeric_limits<int64_t>::min();
    }
    return change;
  }
  const auto b = static_cast<uint64_t>(before.value);
  const auto a = static_cast<uint64_t>(after.value);
  return static_cast<int64_t>(a >= b ? a - b : a);
}

absl::StatusOr<std::shared_ptr<const re2::RE2>> CompileNameFilter(absl::string_view pattern,
                                                                  absl::string_view field) {
  if (pattern.empty()) return std::shared_ptr<const re2::RE2>();
  if (pattern.size() > kMaxFilterLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", kMaxFilterLength, " characters"));
  }
  RE2::Options options;
  options.set_log_errors(false);
  auto re =
      std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": invalid regular expression: ",
                     kernel::EscapeText(re->error().substr(0, kMaxFilterLength))));
  }
  return re;
}

CounterReport BuildCounterReport(const CounterSample* before, const CounterSample& after,
                                 const CounterQuery& query) {
  CounterReport report;
  report.unavailable = after.unavailable;
  report.taken = after.taken;
  absl::flat_hash_map<std::string, const CounterValue*> prev;
  if (before != nullptr) {
    report.window = after.taken - before->taken;
    prev.reserve(before->values.size());
    for (const CounterValue& v : before->values) prev.emplace(Key(v), &v);
  }
  for (const CounterValue& v : after.values) {
    if (query.filter && !RE2::PartialMatch(v.name(), *query.filter)) continue;
    CounterReading r{v, std::nullopt, std::nullopt};
    if (before != nullptr) {
      if (auto it = prev.find(Key(v)); it != prev.end()) {
        r.delta = CounterDelta(*it->second, v);
        if (!v.gauge) r.rate = PerSecond(static_cast<double>(*r.delta), *report.window);
      }
    }
    if (query.nonzero && (before != nullptr ? r.delta.value_or(0) == 0 : v.value == 0)) continue;
    report.counters.push_back(std::move(r));
  }
  return report;
}

}  // namespace netagent::collectors
