// The attribute walkers on any bytes: the input is one attribute (a nest
// whose header says anything, lengths below 4 included) that lies inside the
// buffer, as every nest handed to AttrTable / ForEachNested does; and the
// same bytes as the attributes of a message after each family-header size.
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

namespace netagent::fuzz {
namespace {

size_t Walk(const nlattr& a, int depth) {
  size_t seen = 1;
  (void)kernel::ScalarValue(a);
  kernel::AttrTable t(&a, kernel::AttrTable::kMaxType);
  for (uint16_t type = 0; type <= 4; ++type) {
    (void)t.u64(type);
    (void)t.be32(type);
    (void)t.str(type);
    // Inside the nest, after its header and the attribute's own.
    FUZZ_CHECK(t.bytes(type).empty() || t.bytes(type).size() + 2 * NLA_HDRLEN <= a.nla_len);
  }
  if (depth < 8) {
    kernel::ForEachNested(&a, [&](const nlattr& inner) {
      // A nested attribute lies inside its nest.
      const char* begin = reinterpret_cast<const char*>(&a);
      const char* p = reinterpret_cast<const char*>(&inner);
      FUZZ_CHECK(p >= begin + NLA_HDRLEN && p + inner.nla_len <= begin + a.nla_len);
      seen += Walk(inner, depth + 1);
    });
  }
  return seen;
}

}  // namespace
}  // namespace netagent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  if (size >= sizeof(nlattr)) {
    nlattr nest;
    std::memcpy(&nest, data, sizeof(nest));
    if (nest.nla_len <= size) fuzz::Walk(*reinterpret_cast<const nlattr*>(data), 0);
  }

  // The bytes after a message header that claims exactly them.
  // Exactly that many bytes, so a read past them is an ASan report.
  std::vector<char> msg(NLMSG_HDRLEN + size);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + size);
  std::memcpy(msg.data(), &h, sizeof(h));
  if (size > 0) std::memcpy(msg.data() + NLMSG_HDRLEN, data, size);
  const auto& m = *reinterpret_cast<const nlmsghdr*>(msg.data());
  for (size_t header : {size_t{0}, size_t{4}, size_t{16}}) {
    kernel::ForEachAttr(m, header, [&](const nlattr& a) {
      const char* p = reinterpret_cast<const char*>(&a);
      FUZZ_CHECK(p + a.nla_len <= reinterpret_cast<const char*>(&m) + m.nlmsg_len);
      fuzz::Walk(a, 0);
    });
  }
  return 0;
}
