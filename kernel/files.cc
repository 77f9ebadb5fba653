#include "kernel/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "kernel/errors.h"
#include "kernel/fd.h"

namespace netagent::kernel {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return LastErrnoStatus(absl::StrCat("open ", path));
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus(absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

absl::StatusOr<std::string> ReadLine(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  absl::string_view v = *text;
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  return std::string(v);
}

absl::Status WriteFile(const std::string& path, absl::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return LastErrnoStatus(absl::StrCat("open ", path));
  for (;;) {
    ssize_t n = ::write(fd.get(), value.data(), value.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrnoStatus(absl::StrCat("write ", path));
    if (static_cast<size_t>(n) != value.size()) {
      return absl::DataLossError(absl::StrCat("write ", path, ": short write"));
    }
    return absl::OkStatus();
  }
}

bool Writable(const std::string& path) { return ::access(path.c_str(), W_OK) == 0; }

absl::Status WriteFileSynced(const std::string& path, absl::string_view contents, uint32_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return LastErrnoStatus(absl::StrCat("create ", path));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd.get(), contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrnoStatus(absl::StrCat("write ", path));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return LastErrnoStatus(absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) return LastErrnoStatus(absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

absl::Status ReplaceFileAtomically(const std::string& path, absl::string_view contents,
                                   uint32_t mode) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  ::unlink(tmp.c_str());  // a leftover of a crash mid-write
  NETAGENT_RETURN_IF_ERROR(WriteFileSynced(tmp, contents, mode));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return LastErrnoStatus(absl::StrCat("rename ", tmp, " to ", path));
  }
  const size_t slash = path.rfind('/');
  return FsyncDir(slash == std::string::npos ? "." : path.substr(0, slash ? slash : 1));
}

}  // namespace netagent::kernel
