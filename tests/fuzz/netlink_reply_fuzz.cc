// The reply walk itself: a recording as tests/fixtures/netlink stores it
// (ReplayRecording), and the same bytes as one datagram (ParseReply) with the
// first message's sequence and port as the request's, so both the matching
// and the skipped paths run. Every message delivered is walked with the
// attribute helpers under several family-header sizes.
#include <cstring>

#include "tests/fuzz/fuzz_support.h"

namespace netagent::fuzz {
namespace {

void Walk(const nlattr& a, int depth) {
  (void)kernel::ScalarValue(a);
  kernel::AttrTable t(&a, kernel::AttrTable::kMaxType);
  for (uint16_t type = 0; type < 8; ++type) {
    (void)t.u8(type);
    (void)t.u16(type);
    (void)t.u32(type);
    (void)t.u64(type);
    (void)t.be64(type);
    (void)t.str(type);
    (void)t.bytes(type);
  }
  if (depth < 4) kernel::ForEachNested(&a, [&](const nlattr& inner) { Walk(inner, depth + 1); });
}

absl::Status WalkMessage(const nlmsghdr& m) {
  // No family header, genlmsghdr / nfgenmsg, ifinfomsg, inet_diag_msg.
  for (size_t header : {size_t{0}, size_t{4}, size_t{16}, size_t{72}}) {
    kernel::AttrTable t(m, header, kernel::AttrTable::kMaxType);
    (void)t.str(1);
    kernel::ForEachAttr(m, header, [](const nlattr& a) { Walk(a, 0); });
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace netagent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  (void)kernel::ReplayRecording(fuzz::Text(data, size), "fuzz", fuzz::WalkMessage);

  uint32_t seq = 0, portid = 0;
  if (size >= sizeof(nlmsghdr)) {
    nlmsghdr first;
    std::memcpy(&first, data, sizeof(first));
    seq = first.nlmsg_seq;
    portid = first.nlmsg_pid;
  }
  kernel::ReplyProgress progress;
  (void)kernel::ParseReply(data, size, seq, portid, "fuzz", fuzz::WalkMessage, progress);
  return 0;
}
