// /proc/net/sockstat and sockstat6: sockets in use per protocol in this
// namespace, TCP orphans and TIME_WAIT, and the memory TCP and UDP hold (in
// pages, counted across the whole host).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::collectors {

// "TCP" -> {"inuse": 5, "orphan": 0, "tw": 2, "alloc": 7, "mem": 3}, ...
using Sockstat = std::map<std::string, std::map<std::string, int64_t>>;

// Lines of "PROTO: name value name value ..."; DATA_LOSS for a line that is
// not (an odd count of words, a value that is not a number).
absl::StatusOr<Sockstat> ParseSockstat(absl::string_view text);

// Both files of `proc_net` (sockstat6 only when IPv6 is there), merged.
absl::StatusOr<Sockstat> ReadSockstat(const std::string& proc_net = "/proc/net");

}  // namespace netagent::collectors
