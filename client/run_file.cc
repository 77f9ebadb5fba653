#include "client/run_file.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/json.h"
#include "client/playbook_run.h"

namespace netagent::client {
namespace fs = std::filesystem;

namespace {

absl::Status Errno(const fs::path& path, absl::string_view what) {
  return absl::InternalError(absl::StrCat(path.string(), ": ", what, ": ", std::strerror(errno)));
}

// The directory's entry for a file just created, made durable: without it a
// crash can lose the whole file though its data was synced.
absl::Status SyncDir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(dir, "open");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return rc == 0 ? absl::OkStatus() : Errno(dir, "fsync");
}

}  // namespace

fs::path StateDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return fs::path(x) / "netagent/runs";
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    if (const passwd* pw = getpwuid(getuid())) home = pw->pw_dir;
  }
  return fs::path(home ? home : "/tmp") / ".local/state/netagent/runs";
}

bool ValidRunId(const std::string& id) {
  return !id.empty() && id.size() <= 64 &&
         id.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
             std::string::npos &&
         id[0] != '.';
}

absl::StatusOr<RunFile> RunFile::Open(const fs::path& dir, const std::string& run, bool create) {
  if (!ValidRunId(run)) {
    return absl::InvalidArgumentError(absl::StrCat("RUN: \"", run, "\" is not a run id"));
  }
  std::error_code ec;
  // Directories created for it are made durable too (each one's entry in
  // its parent), or a crash could lose the directory with the file.
  std::vector<fs::path> made;
  if (create) {
    for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      made.push_back(p);
      if (p == p.parent_path()) break;
    }
    fs::create_directories(dir, ec);
  }
  RunFile f;
  f.path_ = dir / (run + ".jsonl");
  f.fd_ = ::open(f.path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0),
                 0600);
  if (f.fd_ < 0) {
    if (errno == ENOENT && !create) {
      return absl::NotFoundError(absl::StrCat("no run ", run, " in ", dir.string(),
                                              " (netctl playbook history lists them)"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(f.path_.string(), ": ", std::strerror(errno)));
  }
  if (::flock(f.fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run, " is being worked on by another netctl (", f.path_.string(), " is locked)"));
  }
  if (create) {
    absl::Status st = SyncDir(dir);
    for (const fs::path& p : made) {
      if (st.ok()) st = SyncDir(p.parent_path());
    }
    if (!st.ok()) {
      // A run whose file may vanish in a crash does not start.
      ::unlink(f.path_.c_str());
      return absl::FailedPreconditionError(st.message());
    }
  } else if (absl::Status st = f.DropCutLine(); !st.ok()) {
    return st;
  }
  return f;
}

RunFile::RunFile(RunFile&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      dropped_(o.dropped_),
      broken_(o.broken_) {}

RunFile::~RunFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status RunFile::Append(const v1::PlaybookEvent& e) {
  if (broken_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_.string(),
                     ": ends in a part of a line that could not be cut off: nothing more is "
                     "appended (opening the run again cuts it off)"));
  }
  std::string line;
  AppendJson(e, &line);
  line.push_back('\n');
  // O_APPEND writes at the end; the end before this line is where a failed
  // write is cut back to.
  const off_t start = ::lseek(fd_, 0, SEEK_END);
  if (start < 0) return Errno(path_, "seek");
  const char* p = line.data();
  size_t left = line.size();
  absl::Status st;
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      st = Errno(path_, "write");
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (st.ok() && ::fdatasync(fd_) != 0) st = Errno(path_, "fdatasync");
  if (!st.ok() && left < line.size()) {
    // Part of the line is in the file: take it out, or the next event
    // would be glued to it and the file would not parse. If even that
    // fails, nothing more is appended, and opening the run later cuts off
    // the last line without its end.
    if (::ftruncate(fd_, start) == 0) {
      (void)::fdatasync(fd_);
    } else {
      broken_ = true;  // a next line would be glued to the fragment
    }
  }
  return st;
}

// A last line cut short (netctl killed while writing it) is cut off, so
// what is appended next starts on a line of its own.
absl::Status RunFile::DropCutLine() {
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  if (size <= 0) return absl::OkStatus();
  off_t keep = size;
  char buf[4096];
  while (keep > 0) {
    const off_t from = std::max<off_t>(0, keep - static_cast<off_t>(sizeof(buf)));
    const ssize_t n = ::pread(fd_, buf, static_cast<size_t>(keep - from), from);
    if (n <= 0) return Errno(path_, "read");
    const char* nl = static_cast<const char*>(::memrchr(buf, '\n', static_cast<size_t>(n)));
    if (nl) {
      keep = from + (nl - buf) + 1;
      break;
    }
    keep = from;
  }
  if (keep == size) return absl::OkStatus();
  if (::ftruncate(fd_, keep) != 0 || ::fdatasync(fd_) != 0) return Errno(path_, "truncate");
  dropped_ = static_cast<size_t>(size - keep);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::PlaybookEvent>> ReadRunFile(const fs::path& path,
                                                           size_t* bad_lines) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot read"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParseRunEvents(text, path.string(), bad_lines);
}

}  // namespace netagent::client
