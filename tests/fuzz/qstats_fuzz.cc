// The netdev family's QSTATS_GET replies: per-queue counters (6.9+).
#include "collectors/nic_queues.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  fuzz::ForEachMessage(data, size, [](const nlmsghdr& m) {
    if (auto q = collectors::ParseQueueStats(m); q.ok()) {
      FUZZ_CHECK(q->type == "rx" || q->type == "tx");
    }
  });
  return 0;
}
