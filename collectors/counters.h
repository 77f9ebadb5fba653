// The SNMP and netstat MIBs of the network namespace: /proc/net/snmp,
// /proc/net/netstat (pairs of "Group: names..." / "Group: values..." lines),
// /proc/net/snmp6 and /proc/net/sctp/snmp ("Name value" lines): the files
// nstat reads. Parsed by header, so fields a new
// kernel adds appear without a code change. Names follow nstat:
// group + field ("TcpExtListenOverflows").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace re2 {
class RE2;
}

namespace netagent::collectors {

enum class CounterSource { kSnmp, kNetstat, kSnmp6, kSctp };
absl::string_view CounterSourceFile(CounterSource source);

struct CounterValue {
  std::string group;
  std::string field;
  CounterSource source = CounterSource::kSnmp;
  int64_t value = 0;
  // Settings and current values (Tcp CurrEstab, Ip DefaultTTL): no rate.
  bool gauge = false;

  std::string name() const { return group + field; }
};

// Parses the paired-line format of /proc/net/snmp and /proc/net/netstat.
absl::StatusOr<std::vector<CounterValue>> ParseSnmpPairs(absl::string_view text,
                                                         CounterSource source);
// Parses the "Name value" files: /proc/net/snmp6, where the group is the name
// up to its first '6' (Ip6, Icmp6, Udp6, UdpLite6), and /proc/net/sctp/snmp,
// where it is "Sctp".
absl::StatusOr<std::vector<CounterValue>> ParseNameValueMib(absl::string_view text,
                                                            CounterSource source);

bool IsGaugeCounter(absl::string_view group, absl::string_view field);

struct UnavailableSource {
  CounterSource source;
  std::string reason;
};

struct CounterSample {
  std::vector<CounterValue> values;
  std::vector<UnavailableSource> unavailable;
  absl::Time taken;
};

// snmp and netstat are required; snmp6 (IPv6 disabled) and sctp/snmp (module
// not loaded) are reported unavailable with the reason when absent.
absl::StatusOr<CounterSample> ReadCounters(const std::string& proc_net = "/proc/net");

// A window over two samples: counters get a delta (modulo 2^64, a decrease is a
// reset and the delta is the new value) and a rate; gauges get the signed
// change (saturated at the int64 range) and no rate.
int64_t CounterDelta(const CounterValue& before, const CounterValue& after);

struct CounterReading {
  CounterValue value;
  std::optional<int64_t> delta;
  std::optional<double> rate;
};

struct CounterQuery {
  // Searched in name() when set (RE2: linear time, safe on untrusted input).
  std::shared_ptr<const re2::RE2> filter;
  // Keep only readings whose delta (with a window) or value is non-zero.
  bool nonzero = false;
};

// Validates a name filter (RE2) from a request: INVALID_ARGUMENT names `field`.
absl::StatusOr<std::shared_ptr<const re2::RE2>> CompileNameFilter(absl::string_view pattern,
                                                                  absl::string_view field);

struct CounterReport {
  std::vector<CounterReading> counters;
  std::vector<UnavailableSource> unavailable;
  absl::Time taken;
  std::optional<absl::Duration> window;
};

CounterReport BuildCounterReport(const CounterSample* before, const CounterSample& after,
                                 const CounterQuery& query);

}  // namespace netagent::collectors
