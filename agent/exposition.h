// Prometheus exposition: metric families as plain data, written in the text
// format (version 0.0.4, what every Prometheus scrapes) or in OpenMetrics
// 1.0 when the scraper asks for it. Hand-written: the agent's families are
// a few hundred, built once per scrape and rendered once per format, so a
// registry library would only add copies.
//
// Names follow Prometheus: snake_case with the unit as a suffix ("_bytes",
// "_seconds"); a counter's family name has no "_total", its samples get it
// (in both formats). Whatever came from the kernel or a caller (device
// names, counter names, addresses) is made safe here: names are reduced to
// [a-zA-Z0-9_:], label values and help texts escaped, bytes that are not
// UTF-8 replaced.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"

namespace netagent::agent {

// kUntyped: a value whose kind the source does not say (a driver's ethtool
// statistics; node_exporter's netstat names): "untyped" in the text format,
// "unknown" in OpenMetrics.
enum class MetricType { kCounter, kGauge, kInfo, kUntyped };

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

struct MetricSample {
  MetricLabels labels;
  // Exact integers stay exact (a 64-bit counter past 2^53 is written in
  // full); doubles in their shortest form that reads back the same.
  using Value = std::variant<uint64_t, int64_t, double>;
  Value value;
};

struct MetricFamily {
  std::string name;  // without "_total" for a counter, without "_info" for info
  MetricType type = MetricType::kGauge;
  std::string help;
  // The base unit ("bytes", "seconds"); OpenMetrics states it when the name
  // ends with it.
  std::string unit;
  std::vector<MetricSample> samples;
};

// A deque: builders keep references to families they fill while adding more.
using Families = std::deque<MetricFamily>;

enum class ExpositionFormat { kText, kOpenMetrics };

// The Content-Type header of a format.
absl::string_view ExpositionContentType(ExpositionFormat format);
// OpenMetrics when `accept` (an HTTP Accept header) names it with a
// non-zero quality; the text format otherwise.
ExpositionFormat NegotiateExposition(absl::string_view accept);

// `families` written in `format`, in the order given. Families with no
// samples are left out; a family whose name came before is left out (two
// kernel names that reduce to one).
std::string WriteExposition(const Families& families, ExpositionFormat format);

// `text` compressed in the gzip format (RFC 1952), for Content-Encoding: gzip.
std::string Gzip(absl::string_view text);

// A metric or label name from any text: characters outside [a-zA-Z0-9_:]
// become '_', a leading digit gets a '_' before it.
std::string SanitizeMetricName(absl::string_view name);

}  // namespace netagent::agent
