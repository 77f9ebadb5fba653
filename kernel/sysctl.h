// Reading sysctls by name ("net.ipv4.tcp_rmem" or "net/ipv4/tcp_rmem") from
// /proc/sys of the agent's network namespace. Names are validated first: no
// empty components, no "..", only the characters sysctl names use.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::kernel {

// The /proc/sys path for a sysctl name, or INVALID_ARGUMENT.
absl::StatusOr<std::string> SysctlPath(absl::string_view name);

// The value with surrounding whitespace removed; tabs between fields (as in
// tcp_rmem) are kept.
absl::StatusOr<std::string> ReadSysctl(absl::string_view name);

// Whitespace-separated words of a sysctl value ("reno cubic bbr").
absl::StatusOr<std::vector<std::string>> ReadSysctlWords(absl::string_view name);

// Writes a sysctl of the agent's namespace. The kernel's refusal comes back
// as the write's errno (EINVAL for a value out of its own range).
absl::Status WriteSysctl(absl::string_view name, absl::string_view value);

struct SysctlAccess {
  bool exists = false;
  bool writable = false;
};
// Whether the sysctl exists in this namespace and may be written here (global
// knobs are absent or read-only inside a child network namespace).
absl::StatusOr<SysctlAccess> ProbeSysctl(absl::string_view name);

}  // namespace netagent::kernel
