// Network namespaces: entering the one the agent serves, naming the current
// one, and a sysfs view that matches it.
//
// setns() moves only the calling thread, so EnterNetns must run before any
// thread exists; every thread created afterwards inherits the namespace.
// /sys/class/net shows the devices of the namespace that mounted sysfs, not of
// the reader, so after entering a namespace the agent mounts a private sysfs
// instance (detached, reached through /proc/self/fd) and NetSysfsRoot() points
// at it. Code that reads /sys/class/net goes through NetSysfsRoot().
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::kernel {

// "blue" -> /run/netns/blue; anything containing '/' is taken as a path.
// INVALID_ARGUMENT for a name with characters ip-netns would not create.
absl::StatusOr<std::string> ResolveNetnsPath(absl::string_view name_or_path);

// Enters the namespace and mounts its sysfs. Returns the resolved path.
absl::StatusOr<std::string> EnterNetns(absl::string_view name_or_path);

struct NetnsIdentity {
  uint64_t inode = 0;  // reused by the kernel once the namespace is gone
  // SO_NETNS_COOKIE (kernel 5.14+): never reused while the system runs, so
  // what is keyed by it cannot be mistaken for another namespace's. 0: the
  // kernel does not tell.
  uint64_t cookie = 0;
  std::string name;      // from /run/netns when an entry refers to it
  std::string path;      // what EnterNetns was given, resolved
  bool initial = false;  // the host's own (init_net): see IsInitialNetns
};

absl::StatusOr<NetnsIdentity> CurrentNetns();

// Since 6.18 the kernel gives the initial namespace a fixed inode
// (NET_NS_INIT_INO); every other namespace, on any kernel, gets one from
// 0xF0000000 up.
inline constexpr uint64_t kInitialNetnsInode = 0xEFFFFFF9;

// A namespace file's identity (stat of /proc/PID/ns/net).
struct NsFileId {
  uint64_t inode = 0;
  uint64_t dev = 0;
};

// Whether namespace `self` is the initial one: its fixed inode says so, or
// it is PID 1's (`init`; unset when /proc/1/ns/net cannot be read: a PID
// namespace or ptrace rules that hide PID 1 from the agent).
bool IsInitialNetns(NsFileId self, std::optional<NsFileId> init);

// The calling thread's namespace's SO_NETNS_COOKIE; 0 before kernel 5.14.
uint64_t NetnsCookie();

// "/sys" in the agent's own namespace; the private sysfs after EnterNetns;
// the host's sysfs mounted writable elsewhere after UseSysfsAt.
const std::string& NetSysfsRoot();

// Serving its own namespace from a container, whose /sys the runtime mounts
// read-only: the agent reads and writes the devices' queue files (RPS, XPS)
// through the host's sysfs mounted writable at `dir` (--sys-root). The host
// mounted that sysfs in its own network namespace, the one a hostNetwork pod
// serves. INVALID_ARGUMENT unless `dir` is a sysfs with class/net; call
// before any thread exists, and not with EnterNetns (which mounts its own).
absl::Status UseSysfsAt(const std::string& dir);

}  // namespace netagent::kernel
