// The change journal's log as the agent replays it at start, behind a fixed
// snapshot that names it. Input: the first byte chooses the shape; the rest
// is split at NUL bytes into entries. Framed, each piece becomes an entry
// with its right length and checksum (its first byte picks the kind), so the
// fuzzer reaches the YAML of the bodies and the replay, not only the
// checksum; raw, the bytes are the log as is. Either may end with unframed
// bytes: a crash in the middle of an append.
//
// Invariants: a log that loads loads again to the same journal (the torn
// tail is cut once); the journal it gives saves and loads back as it was,
// both as a snapshot and as a save appended to the replayed log; salvage
// reads the same bytes without crashing.
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/fuzz/fuzz_support.h"
#include "tuners/journal.h"

namespace {

using netagent::tuners::Journal;

uint64_t Fnv(absl::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A directory of its own, removed at exit (from a plain array: exit
// handlers run after the statics made later are gone). In memory where there
// is a tmpfs: the journal syncs every save, and a disk's fsync would be most
// of each run (1,100 runs a second on /tmp here).
char g_shm[] = "/dev/shm/netagent-fuzz-journal-log-XXXXXX";
char g_tmp[] = "/tmp/netagent-fuzz-journal-log-XXXXXX";
const char* g_dir = nullptr;

const std::string& Dir() {
  static const std::string dir = [] {
    g_dir = ::mkdtemp(g_shm);
    if (g_dir == nullptr) g_dir = ::mkdtemp(g_tmp);
    if (g_dir == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(g_dir, ec);
    });
    return std::string(g_dir);
  }();
  return dir;
}

void Write(const std::string& path, absl::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(),
                                                                 static_cast<long>(bytes.size()));
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The snapshot every input's log follows (one change, one first-seen
// value), as the agent writes it.
const std::string& Snapshot() {
  static const std::string text = [] {
    const std::string path = Dir() + "/journal.yaml";
    Journal j = Journal::Empty(path);
    netagent::tuners::ChangeRecord r;
    r.id = "c-1";
    r.created = absl::FromUnixSeconds(1796000000);
    r.caller = "uid:0";
    r.state = netagent::tuners::ChangeState::kConfirmed;
    r.knobs.push_back({"net.core.somaxconn", "4096", "8192", ""});
    j.records().push_back(r);
    j.baseline()["net.core.somaxconn"] = {"4096", absl::FromUnixSeconds(1796000000)};
    if (!j.Save().ok()) std::abort();
    return Read(path);
  }();
  return text;
}

std::string Frame(absl::string_view piece) {
  static constexpr absl::string_view kKinds[] = {"change", "baseline", "events", "other"};
  const absl::string_view kind = piece.empty() ? "change" : kKinds[static_cast<unsigned char>(piece[0]) % 4];
  const absl::string_view body = piece.empty() ? piece : piece.substr(1);
  return absl::StrCat("entry ", kind, " ", body.size() + 1, " ",
                      absl::Hex(Fnv(body), absl::kZeroPad16), "\n", body, "\n");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string path = Dir() + "/journal.yaml";
  const std::string log_path = path + ".log.1";
  for (int g = 2; g <= 3; ++g) ::unlink(absl::StrCat(path, ".log.", g).c_str());
  const uint8_t shape = data[0];
  const absl::string_view rest = netagent::fuzz::Text(data + 1, size - 1);
  std::string log;
  if (shape & 1) {
    log = "netagent journal log 1 follows generation 1\n";
    std::vector<absl::string_view> pieces = absl::StrSplit(rest, '\0');
    const bool torn = (shape & 2) && pieces.size() > 1;
    for (size_t i = 0; i + (torn ? 1 : 0) < pieces.size(); ++i) log += Frame(pieces[i]);
    if (torn) absl::StrAppend(&log, pieces.back());
  } else {
    log = std::string(rest);
  }
  Write(path, Snapshot());
  Write(log_path, log);

  (void)netagent::tuners::SalvageJournal(absl::StrCat(Snapshot(), "\n", log));
  auto loaded = Journal::Load(path);
  if (!loaded.ok()) return 0;
  const std::string yaml = loaded->ToYaml();
  // Loaded again: the same journal (a torn tail was cut, nothing else).
  auto again = Journal::Load(path);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->ToYaml() == yaml);
  // As a snapshot: loads back as it was.
  auto from_yaml = Journal::FromYaml(yaml, path);
  FUZZ_CHECK(from_yaml.ok());
  FUZZ_CHECK(from_yaml->ToYaml() == yaml);
  // A save appended to the replayed log: loads back with the change.
  loaded->events().push_back({absl::FromUnixSeconds(1796000001), "fuzz"});
  if (!loaded->Save().ok()) return 0;  // the disk, not the log
  auto saved = Journal::Load(path);
  FUZZ_CHECK(saved.ok());
  FUZZ_CHECK(saved->ToYaml() == loaded->ToYaml());
  return 0;
}
