// /proc/net/stat/nf_conntrack, the statistics' fallback without ctnetlink.
#include "collectors/conntrack.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  (void)collectors::ParseProcConntrackStat(fuzz::Text(data, size));
  return 0;
}
