#include "kernel/sysctl.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::kernel {

namespace {

// The trees found under the proc root: "sys/net" -> "/host/proc/sys/net".
std::vector<std::pair<std::string, std::string>>& RootedTrees() {
  static auto* trees = new std::vector<std::pair<std::string, std::string>>();
  return *trees;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

const std::vector<std::string>& ProcRootTrees() {
  static const std::vector<std::string> trees = {"sys/net", "sys/kernel", "sys/vm", "irq"};
  return trees;
}

absl::Status SetProcRoot(const std::string& root) {
  if (root.empty() || root == "/proc") {
    RootedTrees().clear();
    return absl::OkStatus();
  }
  if (root.front() != '/' || root.find("/..") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("proc_root ", Quote(root), ": not an absolute path"));
  }
  if (!IsDirectory(root)) {
    return absl::InvalidArgumentError(
        absl::StrCat("proc_root ", Quote(root), ": no such directory"));
  }
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  // Only what is procfs counts: an empty directory where a mount failed
  // would make every sysctl look absent.
  std::vector<std::pair<std::string, std::string>> found;
  for (const std::string& tree : ProcRootTrees()) {
    std::string dir = absl::StrCat(base, "/", tree);
    struct statfs fs {};
    if (IsDirectory(dir) && ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC) {
      found.emplace_back(tree, std::move(dir));
    }
  }
  if (found.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "proc_root ", Quote(root),
        ": holds no procfs at sys/net, sys/kernel, sys/vm or irq (mount the host's /proc/sys/net "
        "there as sys/net, /proc/irq as irq)"));
  }
  RootedTrees() = std::move(found);
  return absl::OkStatus();
}

std::string ProcTree(absl::string_view tree) {
  for (const auto& [name, dir] : RootedTrees()) {
    if (name == tree) return dir;
  }
  return absl::StrCat("/proc/", tree);
}

absl::StatusOr<std::string> SysctlPath(absl::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("sysctl name ", Quote(name), ": bad length"));
  }
  // sysctl(8) accepts '/' so that components may contain dots (eth0.100).
  const char sep = name.find('/') != absl::string_view::npos ? '/' : '.';
  std::string path;
  for (absl::string_view part : absl::StrSplit(name, sep)) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("sysctl name ", Quote(name), ": empty or relative component"));
    }
    for (char c : part) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
            (sep == '/' && (c == '.' || c == '@' || c == ':')))) {
        return absl::InvalidArgumentError(absl::StrCat("sysctl name ", Quote(name), ": character ",
                                                       Quote(absl::string_view(&c, 1)),
                                                       " not allowed"));
      }
    }
    if (path.empty()) {
      path = ProcTree(absl::StrCat("sys/", part));  // the tree: net, kernel, vm
    } else {
      absl::StrAppend(&path, "/", part);
    }
  }
  return path;
}

absl::StatusOr<std::string> ReadSysctl(absl::string_view name) {
  NETAGENT_ASSIGN_OR_RETURN(std::string path, SysctlPath(name));
  NETAGENT_ASSIGN_OR_RETURN(std::string value, ReadFile(path));
  return std::string(absl::StripAsciiWhitespace(value));
}

absl::StatusOr<std::vector<std::string>> ReadSysctlWords(absl::string_view name) {
  NETAGENT_ASSIGN_OR_RETURN(std::string value, ReadSysctl(name));
  return std::vector<std::string>(
      absl::StrSplit(value, absl::ByAnyChar(" \t\n"), absl::SkipEmpty()));
}

absl::Status WriteSysctl(absl::string_view name, absl::string_view value) {
  NETAGENT_ASSIGN_OR_RETURN(std::string path, SysctlPath(name));
  return WriteFile(path, value);
}

absl::StatusOr<SysctlAccess> ProbeSysctl(absl::string_view name) {
  NETAGENT_ASSIGN_OR_RETURN(std::string path, SysctlPath(name));
  SysctlAccess a;
  a.exists = ::access(path.c_str(), F_OK) == 0;
  a.writable = a.exists && Writable(path);
  if (a.exists && !a.writable) {
    struct statvfs fs;
    a.read_only_mount = ::statvfs(path.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY) != 0;
  }
  return a;
}

}  // namespace netagent::kernel
