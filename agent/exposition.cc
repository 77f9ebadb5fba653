#include "agent/exposition.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cmath>
#include <iterator>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace netagent::agent {
namespace {

// The length of the valid UTF-8 sequence at the start of `s`, 0 when there is
// none (overlong forms, surrogates and code points past U+10FFFF included).
size_t Utf8Length(absl::string_view s) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// Escapes '\\' and '\n' (and '"' in label values); bytes that are not UTF-8
// become U+FFFD, control characters other than newline a space.
void AppendEscaped(std::string& out, absl::string_view s, bool label_value) {
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && label_value) {
      out += "\\\"";
    } else if (static_cast<uint8_t>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else {
      const size_t n = Utf8Length(s.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
        continue;
      }
      out.append(s.data() + i, n);
      i += n;
      continue;
    }
    ++i;
  }
}

void AppendValue(std::string& out, const MetricSample::Value& v) {
  auto it = std::back_inserter(out);
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    fmt::format_to(it, "{}", *u);
  } else if (const auto* i = std::get_if<int64_t>(&v)) {
    fmt::format_to(it, "{}", *i);
  } else {
    const double d = std::get<double>(v);
    if (std::isnan(d)) {
      out += "NaN";
    } else if (std::isinf(d)) {
      out += d > 0 ? "+Inf" : "-Inf";
    } else {
      fmt::format_to(it, "{}", d);  // shortest round trip
    }
  }
}

void AppendSample(std::string& out, absl::string_view name, absl::string_view suffix,
                  const MetricSample& s) {
  out.append(name.data(), name.size());
  out.append(suffix.data(), suffix.size());
  if (!s.labels.empty()) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : s.labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      AppendEscaped(out, v, true);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  AppendValue(out, s.value);
  out += '\n';
}

}  // namespace

absl::string_view ExpositionContentType(ExpositionFormat format) {
  return format == ExpositionFormat::kOpenMetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

ExpositionFormat NegotiateExposition(absl::string_view accept) {
  for (absl::string_view item : absl::StrSplit(accept, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]),
                                "application/openmetrics-text")) {
      continue;
    }
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&p, "q=") && !absl::SimpleAtod(p, &q)) q = 0;
    }
    if (q > 0) return ExpositionFormat::kOpenMetrics;
  }
  return ExpositionFormat::kText;
}

std::string Gzip(absl::string_view text) {
  z_stream z{};
  // 15 window bits + 16: the gzip wrapper; level 1: a scrape's text is
  // repetitive, the fastest level takes most of what there is to take.
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, text.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(rc == Z_STREAM_END ? z.total_out : 0);
  deflateEnd(&z);
  return out;
}

std::string SanitizeMetricName(absl::string_view name) {
  std::string out;
  out.reserve(name.size() + 1);
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) out += '_';
  for (char c : name) {
    out += absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':' ? c : '_';
  }
  return out;
}

std::string WriteExposition(const Families& families, ExpositionFormat format) {
  const bool om = format == ExpositionFormat::kOpenMetrics;
  std::string out;
  out.reserve(families.size() * 160);
  std::set<std::string, std::less<>> seen;
  for (const MetricFamily& f : families) {
    if (f.samples.empty()) continue;
    // The name as the samples carry it in the text format, and the family's
    // name in OpenMetrics (without the counter's or info's suffix).
    const absl::string_view suffix = f.type == MetricType::kCounter ? "_total"
                                     : f.type == MetricType::kInfo  ? "_info"
                                                                    : "";
    const std::string full = f.name + std::string(suffix);
    if (!seen.insert(full).second) continue;
    const std::string& declared = om ? f.name : full;
    out += "# HELP ";
    out += declared;
    out += ' ';
    AppendEscaped(out, f.help, om);  // OpenMetrics escapes '"' in help too
    out += "\n# TYPE ";
    out += declared;
    out += f.type == MetricType::kCounter         ? " counter\n"
           : f.type == MetricType::kInfo && om    ? " info\n"
           : f.type == MetricType::kUntyped && om ? " unknown\n"
           : f.type == MetricType::kUntyped       ? " untyped\n"
                                                  : " gauge\n";
    if (om && !f.unit.empty() && absl::EndsWith(f.name, "_" + f.unit)) {
      out += "# UNIT ";
      out += f.name;
      out += ' ';
      out += f.unit;
      out += '\n';
    }
    for (const MetricSample& s : f.samples) AppendSample(out, f.name, suffix, s);
  }
  if (om) out += "# EOF\n";
  return out;
}

}  // namespace netagent::agent
