// RTM_NEWLINK messages of a link dump or get reply (collectors/links).
#include "collectors/links.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  collectors::LinkRecord r;
  fuzz::ForEachMessage(data, size, [&](const nlmsghdr& m) {
    if (!collectors::ParseLink(m, r).ok()) return;
    FUZZ_CHECK(r.stats_count >= 0 && r.stats_count <= collectors::kLinkStatCount);
    (void)collectors::LinkFlagNames(r.flags);
    (void)collectors::OperStateName(r.operstate);
    (void)collectors::ValidateInterfaceName(r.name, "name");
  });
  return 0;
}
