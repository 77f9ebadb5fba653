// /proc/softirqs. What parses has one value per header CPU in every row.
#include "collectors/softirqs.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  auto s = collectors::ParseSoftirqs(fuzz::Text(data, size));
  if (!s.ok()) return 0;
  FUZZ_CHECK(!s->cpus.empty());
  for (const auto& [name, values] : s->counts) FUZZ_CHECK(values.size() == s->cpus.size());
  return 0;
}
