// What reads of the BPF socket iterator give: any bytes, cut into reads of
// sizes the first byte chooses, through the record stream; each whole
// record parsed into a reused SocketRecord (at an HZ the second byte picks,
// 0 among them: not measured) and the sockets summarized, as a walk does. A
// stream that ends inside a record must say so.
#include "collectors/socket_iter.h"
#include "collectors/socket_summary.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent::collectors;
  if (size < 2) return 0;
  const size_t cut = 1 + data[0] * 3;
  static constexpr uint32_t kHz[] = {0, 100, 250, 300, 1000};
  const uint32_t hz = kHz[data[1] % 5];
  const absl::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  SocketRecord s;
  IterFooter footer;
  SocketSummarizer summary;
  IterRecordStream stream;
  size_t records = 0;
  for (size_t off = 0; off < bytes.size(); off += cut) {
    const absl::Status fed = stream.Feed(bytes.substr(off, cut), [&](absl::string_view rec) {
      FUZZ_CHECK(rec.size() == kIterRecordSize);
      ++records;
      auto r = ParseIterRecord(rec, hz, s, footer);
      if (!r.ok()) {
        FUZZ_CHECK(absl::IsDataLoss(r.status()));
        return absl::OkStatus();
      }
      if (!*r) return absl::OkStatus();
      FUZZ_CHECK(s.local.family == s.peer.family);
      FUZZ_CHECK(s.state >= 1 && s.state <= 12);
      FUZZ_CHECK(hz != 0 || !s.has_tcp_info());
      (void)FormatEndpoint(s.local, s.local_port);
      summary.Add(s);
      return absl::OkStatus();
    });
    FUZZ_CHECK(fed.ok());
  }
  FUZZ_CHECK(records == bytes.size() / kIterRecordSize);
  FUZZ_CHECK(stream.Finish().ok() == (bytes.size() % kIterRecordSize == 0));
  (void)summary.Finish(10, PortRange{32768, 60999});
  return 0;
}
