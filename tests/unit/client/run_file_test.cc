// The run file across failures: a write the file system cuts short leaves
// no fragment behind, a crash's cut line is dropped on opening, one netctl
// at a time works on a run.
#include "client/run_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace netagent::client {
namespace {
namespace fs = std::filesystem;
namespace v1 = ::netagent::v1;

class RunFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/netagent-runfile-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static v1::PlaybookEvent Event(v1::PlaybookEvent::Kind kind, const std::string& detail) {
    v1::PlaybookEvent e;
    e.set_kind(kind);
    e.set_run("r1");
    e.set_detail(detail);
    return e;
  }
  fs::path path() const { return dir_ / "r1.jsonl"; }

  fs::path dir_;
};

TEST_F(RunFileTest, AWriteCutShortLeavesNoFragmentAndTheNextEventStartsItsOwnLine) {
  {
    auto f = RunFile::Open(dir_, "r1", true);
    ASSERT_TRUE(f.ok()) << f.status();
    v1::PlaybookEvent started = Event(v1::PlaybookEvent::KIND_RUN_STARTED, "");
    started.mutable_started()->set_change_id("r1");
    ASSERT_TRUE(f->Append(started).ok());
  }
  const auto before = fs::file_size(path());
  // A file size limit a few bytes past the end: the kernel writes those
  // bytes, then refuses the rest (EFBIG) — a real partial write.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    auto f = RunFile::Open(dir_, "r1", false);
    if (!f.ok()) ::_exit(2);
    rlimit lim{static_cast<rlim_t>(before + 10), RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(3);
    const absl::Status st =
        f->Append(Event(v1::PlaybookEvent::KIND_WAVE_STARTED, std::string(200, 'x')));
    ::_exit(st.ok() ? 4 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the append past the size limit did not fail";
  EXPECT_EQ(fs::file_size(path()), before) << "a fragment of the refused event is in the file";

  auto f = RunFile::Open(dir_, "r1", false);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->dropped(), 0u);
  ASSERT_TRUE(f->Append(Event(v1::PlaybookEvent::KIND_RUN_PAUSED, "after")).ok());
  auto events = ReadRunFile(path());
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].detail(), "after");
}

TEST_F(RunFileTest, ALineCutByACrashIsDroppedOnOpening) {
  {
    auto f = RunFile::Open(dir_, "r1", true);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(f->Append(Event(v1::PlaybookEvent::KIND_RUN_STARTED, "")).ok());
  }
  { std::ofstream(path(), std::ios::app) << R"({"kind":"KIND_WAVE_STA)"; }
  auto f = RunFile::Open(dir_, "r1", false);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->dropped(), 22u);
  ASSERT_TRUE(f->Append(Event(v1::PlaybookEvent::KIND_RUN_PAUSED, "next")).ok());
  auto events = ReadRunFile(path());
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->size(), 2u);
}

TEST_F(RunFileTest, OneNetctlAtATimeAndNoRunStartedTwice) {
  auto first = RunFile::Open(dir_, "r1", true);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = RunFile::Open(dir_, "r1", true);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();
  auto second = RunFile::Open(dir_, "r1", false);
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("another netctl"), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(RunFile::Open(dir_, "r2", false).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(RunFile::Open(dir_, "../r1", true).status()));
  // A state directory that does not exist yet is made (and synced, each
  // level in its parent).
  auto nested = RunFile::Open(dir_ / "state/netagent/runs", "r3", true);
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_TRUE(fs::exists(dir_ / "state/netagent/runs/r3.jsonl"));
}

}  // namespace
}  // namespace netagent::client
