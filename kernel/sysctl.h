// Reading sysctls by name ("net.ipv4.tcp_rmem" or "net/ipv4/tcp_rmem") from
// /proc/sys of the agent's network namespace (or the writable copy of its tree
// under the proc root, see SetProcRoot). Names are validated first: no
// empty components, no "..", only the characters sysctl names use.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::kernel {

// Where the agent reads and writes the /proc trees it changes: "sys/net"
// (sysctls) and "irq" (IRQ affinity). Container runtimes mount /proc/sys and
// /proc/irq read-only; a DaemonSet mounts the host's trees writable under a
// root of its own (--proc-root=/host/proc, with /host/proc/sys/net and
// /host/proc/irq). A tree the root does not hold (as procfs) stays in /proc.
// An empty root is /proc itself. INVALID_ARGUMENT, with the root unchanged,
// when it is not an absolute directory holding at least one of the trees as
// procfs. Call before any thread exists.
absl::Status SetProcRoot(const std::string& root);
// The directory that stands for /proc/<tree> ("sys/net", "sys/kernel", "irq").
std::string ProcTree(absl::string_view tree);
// The trees a proc root may hold.
const std::vector<std::string>& ProcRootTrees();

// The path for a sysctl name (under /proc/sys, or its tree under the proc
// root), or INVALID_ARGUMENT.
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
  // Not writable because its file system is mounted read-only (a container's
  // /proc/sys), rather than by the kernel's choice for this namespace.
  bool read_only_mount = false;
};
// Whether the sysctl exists in this namespace and may be written here (global
// knobs are absent or read-only inside a child network namespace).
absl::StatusOr<SysctlAccess> ProbeSysctl(absl::string_view name);

}  // namespace netagent::kernel
