// CPU lists ("0-3,8,10-11", "0-15:2/4") and hex masks ("ff,00000001") as sysfs
// and procfs write them; what parses must format and parse back to itself.
#include "kernel/cpus.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  const absl::string_view text = fuzz::Text(data, size);
  if (auto list = kernel::ParseCpuList(text); list.ok()) {
    FUZZ_CHECK(list->size() <= kernel::kMaxCpu);
    auto again = kernel::ParseCpuList(kernel::FormatCpuList(*list));
    FUZZ_CHECK(again.ok() && *again == *list);
    auto mask = kernel::ParseCpuMask(kernel::FormatCpuMask(*list));
    FUZZ_CHECK(mask.ok() && *mask == *list);
  }
  if (auto mask = kernel::ParseCpuMask(text); mask.ok()) {
    auto again = kernel::ParseCpuMask(kernel::FormatCpuMask(*mask));
    FUZZ_CHECK(again.ok() && *again == *mask);
  }
  return 0;
}
