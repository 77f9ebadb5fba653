// Generic netlink: CTRL_CMD_GETFAMILY replies (ops, multicast groups) and the
// netdev family's DEV_GET replies (XDP features), the two the agent resolves
// and probes at start.
#include "datapath/probe.h"
#include "kernel/genl.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  fuzz::ForEachMessage(data, size, [](const nlmsghdr& m) {
    if (auto family = kernel::ParseGenlFamily(m); family.ok()) {
      FUZZ_CHECK(family->id != 0);
      for (const kernel::GenlOp& op : family->ops) {
        FUZZ_CHECK(family->HasOp(op.id));
        (void)kernel::GenlOpName(family->name, op.id);
      }
    }
    (void)datapath::ParseNetdevDev(m);
  });
  return 0;
}
