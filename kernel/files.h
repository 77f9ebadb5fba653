// Whole-file reads of procfs and sysfs. These files are generated on read, so
// one read() loop into a string is the whole story; a missing file is NOT_FOUND.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::kernel {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// ReadFile without the trailing newline.
absl::StatusOr<std::string> ReadLine(const std::string& path);

// One write() of `value` to an existing file (procfs, sysfs: the kernel takes
// the value in one call and answers its verdict as the write's errno).
absl::Status WriteFile(const std::string& path, absl::string_view value);

// The file exists and this process may write it (procfs honours the mode
// bits even for root: a sysctl that is read-only in a child namespace is 0444).
bool Writable(const std::string& path);

// Creates `path` (which must not exist), writes `contents` and fsyncs it.
absl::Status WriteFileSynced(const std::string& path, absl::string_view contents, uint32_t mode);

// fsync of a directory, so renames and creations in it are durable.
absl::Status FsyncDir(const std::string& dir);

// Crash-safe replacement of a regular file: write a temporary file beside it,
// fsync, rename over the target, fsync the directory.
absl::Status ReplaceFileAtomically(const std::string& path, absl::string_view contents,
                                   uint32_t mode = 0600);

}  // namespace netagent::kernel
