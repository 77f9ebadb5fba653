#include "agent/unix_listener.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace netagent::agent {
namespace {

// A socket directory the agent cannot even look at (here a symlink loop) is
// an error status from Bind, not a filesystem_error thrown out of it.
TEST(UnixListener, AnUnreadableSocketDirectoryIsAStatusNotAThrow) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("netagent-unix-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(dir / "loop", dir / "loop");
  absl::StatusOr<std::unique_ptr<UnixListener>> l =
      UnixListener::Bind((dir / "loop" / "sub" / "agent.sock").string(), 0660, std::nullopt);
  EXPECT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("socket: mkdir"), absl::string_view::npos) << l.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace netagent::agent
