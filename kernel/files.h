// Whole-file reads of procfs and sysfs. These files are generated on read, so
// one read() loop into a string is the whole story; a missing file is NOT_FOUND.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace netagent::kernel {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// ReadFile without the trailing newline.
absl::StatusOr<std::string> ReadLine(const std::string& path);

}  // namespace netagent::kernel
