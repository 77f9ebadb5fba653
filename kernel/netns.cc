#include "kernel/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "kernel/caps.h"
#include "kernel/errors.h"
#include "kernel/fd.h"
#include "kernel/text.h"

#ifndef FSCONFIG_CMD_CREATE
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif

namespace netagent::kernel {
namespace {

std::string& SysfsRoot() {
  static std::string root = "/sys";
  return root;
}

std::string& EnteredPath() {
  static std::string path;
  return path;
}

// A sysfs instance created in the current network namespace, attached
// nowhere. The fd stays open for the life of the process.
absl::StatusOr<int> MountPrivateSysfs() {
  int fsfd = static_cast<int>(::syscall(SYS_fsopen, "sysfs", FSOPEN_CLOEXEC));
  if (fsfd < 0) return LastErrnoStatus("fsopen sysfs (kernel 5.2+ needed for --netns)");
  UniqueFd fs(fsfd);
  if (::syscall(SYS_fsconfig, fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    return LastErrnoStatus("fsconfig create sysfs");
  }
  int mnt = static_cast<int>(::syscall(SYS_fsmount, fs.get(), FSMOUNT_CLOEXEC, 0));
  if (mnt < 0) return LastErrnoStatus("fsmount sysfs");
  return mnt;
}

}  // namespace

absl::StatusOr<std::string> ResolveNetnsPath(absl::string_view name_or_path) {
  if (name_or_path.empty()) return absl::InvalidArgumentError("netns: empty name");
  if (name_or_path.find('/') != absl::string_view::npos) return std::string(name_or_path);
  if (name_or_path == "." || name_or_path == ".." || name_or_path.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat("netns: invalid name ", Quote(name_or_path)));
  }
  for (char c : name_or_path) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return absl::InvalidArgumentError(
          absl::StrCat("netns: invalid character in name ", Quote(name_or_path)));
    }
  }
  return absl::StrCat("/run/netns/", name_or_path);
}

absl::StatusOr<std::string> EnterNetns(absl::string_view name_or_path) {
  NETAGENT_ASSIGN_OR_RETURN(std::string path, ResolveNetnsPath(name_or_path));
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return LastErrnoStatus(absl::StrCat("netns: open ", path));
  if (::setns(fd.get(), CLONE_NEWNET) < 0) {
    return WithCapabilityHint(LastErrnoStatus(absl::StrCat("netns: setns ", path)),
                              {{CAP_SYS_ADMIN}});
  }
  NETAGENT_ASSIGN_OR_RETURN(int mnt, MountPrivateSysfs());
  SysfsRoot() = absl::StrCat("/proc/self/fd/", mnt);
  EnteredPath() = path;
  return path;
}

uint64_t NetnsCookie() {
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) cookie = 0;
  ::close(fd);
  return cookie;
}

bool IsInitialNetns(NsFileId self, std::optional<NsFileId> init) {
  if (self.inode == kInitialNetnsInode) return true;
  return init && init->inode == self.inode && init->dev == self.dev;
}

absl::StatusOr<NetnsIdentity> CurrentNetns() {
  NetnsIdentity id;
  struct stat self;
  if (::stat("/proc/self/ns/net", &self) < 0) return LastErrnoStatus("stat /proc/self/ns/net");
  id.inode = self.st_ino;
  id.cookie = NetnsCookie();
  id.path = EnteredPath();
  struct stat init;
  std::optional<NsFileId> pid1;
  if (::stat("/proc/1/ns/net", &init) == 0) pid1 = NsFileId{init.st_ino, init.st_dev};
  id.initial = IsInitialNetns({self.st_ino, self.st_dev}, pid1);
  if (DIR* d = ::opendir("/run/netns")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      struct stat st;
      std::string p = absl::StrCat("/run/netns/", e->d_name);
      if (::stat(p.c_str(), &st) == 0 && st.st_ino == self.st_ino && st.st_dev == self.st_dev) {
        id.name = e->d_name;
        break;
      }
    }
    ::closedir(d);
  }
  return id;
}

const std::string& NetSysfsRoot() { return SysfsRoot(); }

absl::Status UseSysfsAt(const std::string& dir) {
  struct statfs fs {};
  if (dir.empty() || dir.front() != '/' || ::statfs(dir.c_str(), &fs) != 0 ||
      fs.f_type != SYSFS_MAGIC || ::access((dir + "/class/net").c_str(), F_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sys_root ", Quote(dir), ": not a sysfs with class/net (mount the host's /sys there)"));
  }
  if (!EnteredPath().empty()) {
    return absl::InvalidArgumentError(
        "sys_root: serving another namespace (netns), the agent mounts that namespace's sysfs "
        "itself");
  }
  SysfsRoot() = dir;
  return absl::OkStatus();
}

}  // namespace netagent::kernel
