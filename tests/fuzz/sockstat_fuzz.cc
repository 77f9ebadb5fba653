// /proc/net/sockstat and sockstat6 text. What parses, rendered back in the
// file's layout, parses to the same thing.
#include "absl/strings/str_cat.h"
#include "collectors/sockstat.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  auto s = collectors::ParseSockstat(fuzz::Text(data, size));
  if (!s.ok()) return 0;
  std::string again;
  for (const auto& [proto, values] : *s) {
    absl::StrAppend(&again, proto, ":");
    for (const auto& [name, v] : values) absl::StrAppend(&again, " ", name, " ", v);
    absl::StrAppend(&again, "\n");
  }
  auto t = collectors::ParseSockstat(again);
  FUZZ_CHECK(t.ok() && *t == *s);
  return 0;
}
