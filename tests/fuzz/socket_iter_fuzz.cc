// What the BPF socket iterator's read gives: records of 136 bytes, any bytes.
// Each whole record is parsed into a reused SocketRecord and the ones that
// parse go through the socket summary, as a walk does; a cut record at the
// end must be refused.
#include "collectors/socket_iter.h"
#include "collectors/socket_summary.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent::collectors;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  SocketRecord s;
  SocketSummarizer summary;
  size_t off = 0;
  for (; off + kIterRecordSize <= bytes.size(); off += kIterRecordSize) {
    const absl::Status st = ParseIterRecord(bytes.substr(off, kIterRecordSize), s);
    if (!st.ok()) {
      FUZZ_CHECK(absl::IsDataLoss(st));
      continue;
    }
    FUZZ_CHECK(s.local.family == s.peer.family);
    FUZZ_CHECK(s.state >= 1 && s.state <= 12);
    (void)FormatEndpoint(s.local, s.local_port);
    summary.Add(s);
  }
  if (off < bytes.size()) FUZZ_CHECK(absl::IsDataLoss(ParseIterRecord(bytes.substr(off), s)));
  (void)summary.Finish(10, PortRange{32768, 60999});
  return 0;
}
