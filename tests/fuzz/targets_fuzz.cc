// netctl's targets: a targets file, and each line as a -t value and a --dns
// NAME:PORT.
#include "absl/strings/str_split.h"
#include "client/targets.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  const absl::string_view text = fuzz::Text(data, size);
  (void)client::ParseTargetsFile(text, "fleet.txt");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (auto t = client::ParseTarget(line); t.ok()) FUZZ_CHECK(!t->address.empty());
    (void)client::ParseDnsName(line);
  }
  return 0;
}
