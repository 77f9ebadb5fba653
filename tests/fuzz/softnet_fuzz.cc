// /proc/net/softnet_stat of any width, CPU ids from the id column, the online
// list or the line number, and a window between two samples: the input is
// the file before, and after a NUL byte the file after (the same file when
// there is none).
#include "collectors/softnet.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  const absl::string_view text = fuzz::Text(data, size);
  const size_t nul = text.find('\0');
  const absl::string_view first = text.substr(0, nul);
  const absl::string_view second = nul == absl::string_view::npos ? first : text.substr(nul + 1);
  for (const std::vector<uint32_t>& online : {std::vector<uint32_t>{}, {0, 1}, {0, 2, 5, 7}}) {
    auto before = collectors::ParseSoftnet(first, online);
    auto after = collectors::ParseSoftnet(second, online);
    if (!before.ok() || !after.ok()) continue;
    after->taken = before->taken + absl::Seconds(1);
    const collectors::SoftnetReport report = collectors::BuildSoftnetReport(&*before, *after);
    FUZZ_CHECK(report.cpus.size() == after->rows.size());
    (void)collectors::BuildSoftnetReport(nullptr, *before);
  }
  return 0;
}
