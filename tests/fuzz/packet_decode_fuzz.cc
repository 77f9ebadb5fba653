// Frames as drop samples carry them (the first 128 bytes, possibly cut
// short) and as TestPacket takes them: any bytes.
#include "datapath/decode.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  const datapath::DecodedPacket p = datapath::DecodePacket(data, size);
  FUZZ_CHECK(!p.summary.empty());
  FUZZ_CHECK(p.src.has_value() == p.dst.has_value());
  return 0;
}
