// A playbook run's file: one event per line (JSON), under the user's state
// directory, held under an exclusive lock while a netctl works on the run.
// What the run file promises across a crash of netctl: every event appended
// and acknowledged is on disk (the data and the file's name), and a line is
// either whole or absent: a write cut short is cut off again.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "netagent/v1/playbook.pb.h"

namespace netagent::client {

// --state-dir, else $XDG_STATE_HOME/netagent/runs, else
// ~/.local/state/netagent/runs.
std::filesystem::path StateDir(const std::string& flag);

// Letters, digits, '.', '_', '-'; at most 64; not starting with '.'.
bool ValidRunId(const std::string& id);

class RunFile {
 public:
  // `create`: a new run (FAILED_PRECONDITION when its file is there
  // already); otherwise an existing one (NOT_FOUND when absent), whose last
  // line, if a crash cut it short, is cut off. FAILED_PRECONDITION when
  // another netctl holds the run.
  static absl::StatusOr<RunFile> Open(const std::filesystem::path& dir, const std::string& run,
                                      bool create);
  RunFile() = default;
  RunFile(RunFile&& o) noexcept;
  RunFile& operator=(RunFile&&) = delete;
  ~RunFile();

  const std::filesystem::path& path() const { return path_; }
  // Bytes of a cut-short last line removed on opening.
  size_t dropped() const { return dropped_; }

  // Appends one event as a line and syncs it. On an error nothing of the
  // line is left in the file (a part written is truncated away), so a later
  // append starts a line of its own.
  absl::Status Append(const netagent::v1::PlaybookEvent& e);

 private:
  absl::Status DropCutLine();

  std::filesystem::path path_;
  int fd_ = -1;
  size_t dropped_ = 0;
  bool broken_ = false;  // a fragment could not be cut off
};

// The events of a run file; see ParseRunEvents for `bad_lines`.
absl::StatusOr<std::vector<netagent::v1::PlaybookEvent>> ReadRunFile(
    const std::filesystem::path& path, size_t* bad_lines = nullptr);

}  // namespace netagent::client
