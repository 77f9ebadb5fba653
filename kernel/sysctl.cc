#include "kernel/sysctl.h"

#include <unistd.h>

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::kernel {

absl::StatusOr<std::string> SysctlPath(absl::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("sysctl name ", Quote(name), ": bad length"));
  }
  // sysctl(8) accepts '/' so that components may contain dots (eth0.100).
  const char sep = name.find('/') != absl::string_view::npos ? '/' : '.';
  std::string path = "/proc/sys";
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
    absl::StrAppend(&path, "/", part);
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
  return a;
}

}  // namespace netagent::kernel
