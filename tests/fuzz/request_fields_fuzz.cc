// Fields callers send, through the parsers that validate them. One field a
// line, "<kind> <value>":
//   prefix 10.0.0.0/8   ports 1024-65535   states established   protocol tcp
//   ct-state SYN_RECV   filter ^TcpExt     interface eth0       rule 2001:db8::/32
//   sysctl net.core.somaxconn              ints 4096 131072 6291456
//   knob <key>|<value read from the kernel>|<value asked for>   (a tuning change)
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "collectors/conntrack.h"
#include "collectors/counters.h"
#include "collectors/inet.h"
#include "collectors/links.h"
#include "collectors/sockets.h"
#include "datapath/rules.h"
#include "kernel/sysctl.h"
#include "tests/fuzz/fuzz_support.h"
#include "tuners/knobs.h"

namespace netagent::fuzz {
namespace {

// As planned and applied: the key (or a sysctl name), the kernel's value
// normalized, the change checked against the registry's bounds.
void Knob(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '|');
  parts.resize(3);
  const absl::string_view key = parts[0], old_value = parts[1], new_value = parts[2];
  (void)tuners::ParseKnobKey(key);
  (void)tuners::Normalize(key, old_value);
  (void)tuners::Normalize(tuners::SysctlKey(key), old_value);
  if (const tuners::SysctlSpec* spec = tuners::FindSysctl(key)) {
    for (bool clamp : {false, true}) {
      std::string note;
      (void)tuners::CheckSysctlValue(*spec, old_value, new_value, clamp, &note);
    }
  }
}

void Field(absl::string_view kind, absl::string_view value) {
  if (kind == "prefix") {
    if (auto p = collectors::ParsePrefix(value, "f"); p.ok()) {
      FUZZ_CHECK(p->Contains(p->address));
      (void)collectors::FormatAddress(p->address);
    }
  } else if (kind == "ports") {
    if (auto r = collectors::ParsePortRange(value, "f"); r.ok()) FUZZ_CHECK(r->low <= r->high);
  } else if (kind == "states") {
    (void)collectors::ParseSocketStates(absl::StrSplit(value, ','), "f");
  } else if (kind == "protocol") {
    (void)collectors::ParseProtocol(value, "f");
  } else if (kind == "ct-state") {
    (void)collectors::ParseConntrackTcpState(value, "f");
  } else if (kind == "filter") {
    (void)collectors::CompileNameFilter(value, "f");
  } else if (kind == "interface") {
    (void)collectors::ValidateInterfaceName(value, "f");
  } else if (kind == "rule") {
    if (auto p = datapath::ParsePrefix(value, "f"); p.ok()) {
      auto again = datapath::ParsePrefix(datapath::FormatPrefix(*p), "f");
      FUZZ_CHECK(again.ok() && *again == *p);
    }
  } else if (kind == "sysctl") {
    (void)kernel::SysctlPath(value);
  } else if (kind == "ints") {
    (void)tuners::ParseInts(value, "f");
  } else if (kind == "knob") {
    Knob(value);
  }
}

}  // namespace
}  // namespace netagent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (absl::string_view line : absl::StrSplit(netagent::fuzz::Text(data, size), '\n')) {
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos) continue;
    netagent::fuzz::Field(line.substr(0, space), line.substr(space + 1));
  }
  return 0;
}
