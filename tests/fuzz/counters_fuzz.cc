// The MIB files in both formats, header/value pairs (/proc/net/snmp,
// netstat) and "name value" lines (snmp6, sctp/snmp), and a window between
// two samples: the input is the file before, and after a NUL byte the file
// after (the same file when there is none).
#include "collectors/counters.h"
#include "tests/fuzz/fuzz_support.h"

namespace netagent::fuzz {
namespace {

collectors::CounterSample Parse(absl::string_view text) {
  using collectors::CounterSource;
  collectors::CounterSample sample;
  for (CounterSource s : {CounterSource::kSnmp, CounterSource::kNetstat}) {
    if (auto v = collectors::ParseSnmpPairs(text, s); v.ok()) {
      sample.values.insert(sample.values.end(), v->begin(), v->end());
    }
  }
  for (CounterSource s : {CounterSource::kSnmp6, CounterSource::kSctp}) {
    if (auto v = collectors::ParseNameValueMib(text, s); v.ok()) {
      sample.values.insert(sample.values.end(), v->begin(), v->end());
    }
  }
  return sample;
}

}  // namespace
}  // namespace netagent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  static const auto filter = *collectors::CompileNameFilter("^(Tcp|Ip6)", "filter");
  const absl::string_view text = fuzz::Text(data, size);
  const size_t nul = text.find('\0');
  const collectors::CounterSample before = fuzz::Parse(text.substr(0, nul));
  collectors::CounterSample after =
      nul == absl::string_view::npos ? before : fuzz::Parse(text.substr(nul + 1));
  after.taken = before.taken + absl::Seconds(2);
  collectors::CounterQuery query;
  (void)collectors::BuildCounterReport(&before, after, query);
  query.filter = filter;
  query.nonzero = true;
  (void)collectors::BuildCounterReport(&before, after, query);
  (void)collectors::BuildCounterReport(nullptr, after, query);
  return 0;
}
