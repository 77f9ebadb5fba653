// SOCK_DIAG_BY_FAMILY replies parsed in place into one reused record (as the
// dump does), for TCP and UDP, and summarized as `netctl sockets summary`
// does while a dump streams.
#include <netinet/in.h>

#include "collectors/socket_summary.h"
#include "collectors/sockets.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  collectors::SocketRecord record;
  collectors::SocketSummarizer summary;
  fuzz::ForEachMessage(data, size, [&](const nlmsghdr& m) {
    for (int protocol : {IPPROTO_TCP, IPPROTO_UDP}) {
      if (!collectors::ParseSocket(m, protocol, record).ok()) continue;
      FUZZ_CHECK(record.tcp_info_length <= sizeof(record.tcp_info));
      FUZZ_CHECK(record.memory.count <= 9);
      (void)collectors::SocketStateName(record.state);
      (void)collectors::FormatEndpoint(record.local, record.local_port);
      summary.Add(record);
    }
  });
  (void)summary.Finish(5, collectors::PortRange{32768, 60999});
  return 0;
}
