#include "tuners/journal.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kernel/errors.h"
#include "kernel/fd.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::tuners {
namespace {

constexpr int kVersion = 1;

struct StateName {
  ChangeState state;
  const char* name;
};
constexpr StateName kStates[] = {
    {ChangeState::kApplying, "applying"},
    {ChangeState::kPending, "pending_confirm"},
    {ChangeState::kConfirmed, "confirmed"},
    {ChangeState::kRolledBack, "rolled_back"},
    {ChangeState::kExpired, "expired"},
    {ChangeState::kFailed, "failed"},
    {ChangeState::kRollbackFailed, "rollback_failed"},
};

std::string Time(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

std::string Str(const YAML::Node& n) { return n ? n.as<std::string>() : std::string(); }

// A scalar quoted for an error message (the file may hold anything), or its
// kind.
std::string Shown(const YAML::Node& n) {
  if (!n) return "(missing)";
  if (!n.IsScalar()) return n.IsMap() ? "(a map)" : n.IsSequence() ? "(a list)" : "(empty)";
  return kernel::Quote(n.Scalar(), 40);
}

// Salvaged text is shown in logs, conditions and terminals, and the file it
// comes from is damaged: made printable, and bounded.
std::string Printable(absl::string_view raw) {
  constexpr size_t kMax = 256;
  std::string out = kernel::EscapeText(raw.substr(0, kMax));
  if (raw.size() > kMax) absl::StrAppend(&out, "... (", raw.size(), " bytes)");
  return out;
}

// Every key and value of a loaded journal must save back as it is: the
// YAML writer replaces what is not UTF-8 and the noncharacters (U+FFFE,
// U+FDD0, ..., which escapes can spell) with U+FFFD, so two names that
// differ could save as one. The agent never writes them.
absl::Status CheckScalars(const YAML::Node& n, const std::string& path) {
  if (n.IsScalar()) {
    const std::string& v = n.Scalar();
    if (const std::optional<size_t> at = kernel::FirstInvalidUtf8(v, /*noncharacters=*/true)) {
      return absl::DataLossError(
          absl::StrCat(path, ": ", Shown(n), " is not text the agent writes (at byte ", *at, ")"));
    }
  } else if (n.IsMap()) {
    for (const auto& kv : n) {
      NETAGENT_RETURN_IF_ERROR(CheckScalars(kv.first, path));
      NETAGENT_RETURN_IF_ERROR(CheckScalars(kv.second, path));
    }
  } else if (n.IsSequence()) {
    for (const auto& item : n) NETAGENT_RETURN_IF_ERROR(CheckScalars(item, path));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> ParseTime(const YAML::Node& n, const std::string& path,
                                     absl::string_view what) {
  absl::Time t;
  std::string err;
  if (!n || !n.IsScalar() || !absl::ParseTime(absl::RFC3339_full, n.Scalar(), &t, &err)) {
    return absl::DataLossError(absl::StrCat(path, ": bad time in ", what, ": ", Shown(n),
                                            err.empty() ? "" : " (", err, err.empty() ? "" : ")"));
  }
  return t;
}

std::optional<int64_t> Integer(const YAML::Node& n) {
  int64_t v;
  if (!n || !n.IsScalar() || !absl::SimpleAtoi(n.Scalar(), &v)) return std::nullopt;
  return v;
}

// A scalar as ToYaml writes it: plain, or double-quoted with backslash
// escapes; a quote cut off by the end of the file keeps what is there.
std::string Unquote(absl::string_view v) {
  if (v.empty() || (v.front() != '"' && v.front() != '\'')) return std::string(v);
  const char q = v.front();
  std::string out;
  for (size_t i = 1; i < v.size(); ++i) {
    const char c = v[i];
    if (c == q) {
      if (q == '\'' && i + 1 < v.size() && v[i + 1] == '\'') {
        out += '\'';
        ++i;
        continue;
      }
      break;
    }
    if (q == '"' && c == '\\' && i + 1 < v.size()) {
      const char e = v[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::optional<ChangeState> ChangeStateFromName(absl::string_view name) {
  for (const auto& e : kStates) {
    if (name == e.name) return e.state;
  }
  return std::nullopt;
}

absl::string_view ChangeStateName(ChangeState s) {
  for (const auto& e : kStates) {
    if (e.state == s) return e.name;
  }
  return "unknown";
}

bool IsActive(ChangeState s) {
  return s == ChangeState::kApplying || s == ChangeState::kPending ||
         s == ChangeState::kConfirmed || s == ChangeState::kRollbackFailed;
}

void ChangeRecord::Event(absl::Time at, std::string what) {
  constexpr size_t kHead = 20, kMax = 200;
  constexpr absl::string_view kMark = " (some later events dropped)";
  if (events.size() >= kMax) {
    events.erase(events.begin() + kHead, events.begin() + kHead + 1);
    if (!absl::EndsWith(events[kHead - 1].what, kMark))
      absl::StrAppend(&events[kHead - 1].what, kMark);
  }
  events.push_back({at, std::move(what)});
}

ChangeRecord* Journal::Find(absl::string_view id) {
  for (auto& r : records_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

void Journal::Prune(size_t keep) {
  size_t inactive = 0;
  for (const auto& r : records_) inactive += IsActive(r.state) ? 0 : 1;
  for (auto it = records_.begin(); it != records_.end() && inactive > keep;) {
    if (!IsActive(it->state)) {
      it = records_.erase(it);
      --inactive;
    } else {
      ++it;
    }
  }
}

namespace {

void EmitBaseline(YAML::Emitter& out, const std::map<std::string, BaselineValue>& baseline) {
  out << YAML::Key << "baseline" << YAML::Value << YAML::BeginMap;
  // Every string double-quoted: yaml-cpp writes some control characters
  // (a CR) into plain scalars, which then read back as something else.
  for (const auto& [name, b] : baseline) {
    out << YAML::Key << YAML::DoubleQuoted << name << YAML::Value << YAML::BeginMap << YAML::Key
        << "value" << YAML::Value << YAML::DoubleQuoted << b.value << YAML::Key << "seen"
        << YAML::Value << Time(b.seen) << YAML::EndMap;
  }
  out << YAML::EndMap;
}

void EmitEvents(YAML::Emitter& out, const std::vector<ChangeEvent>& events) {
  out << YAML::Key << "events" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : events) {
    out << YAML::BeginMap << YAML::Key << "at" << YAML::Value << Time(e.at) << YAML::Key << "what"
        << YAML::Value << YAML::DoubleQuoted << e.what << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void EmitRecord(YAML::Emitter& out, const ChangeRecord& r) {
  out << YAML::BeginMap;
  out << YAML::Key << "id" << YAML::Value << YAML::DoubleQuoted << r.id;
  out << YAML::Key << "created" << YAML::Value << Time(r.created);
  out << YAML::Key << "caller" << YAML::Value << YAML::DoubleQuoted << r.caller;
  out << YAML::Key << "intent" << YAML::Value << YAML::DoubleQuoted << r.intent;
  out << YAML::Key << "digest" << YAML::Value << YAML::DoubleQuoted << r.digest;
  // Written even when empty: a record without the key is an older agent's.
  if (!r.owner_unknown) {
    out << YAML::Key << "owner" << YAML::Value << YAML::DoubleQuoted << r.owner;
  }
  out << YAML::Key << "state" << YAML::Value << std::string(ChangeStateName(r.state));
  if (r.confirm_deadline) {
    out << YAML::Key << "confirm_deadline" << YAML::Value << Time(*r.confirm_deadline);
  }
  out << YAML::Key << "knobs" << YAML::Value << YAML::BeginSeq;
  for (const auto& k : r.knobs) {
    out << YAML::BeginMap << YAML::Key << "knob" << YAML::Value << YAML::DoubleQuoted << k.knob
        << YAML::Key << "old" << YAML::Value << YAML::DoubleQuoted << k.old_value << YAML::Key
        << "new" << YAML::Value << YAML::DoubleQuoted << k.new_value << YAML::Key << "reason"
        << YAML::Value << YAML::DoubleQuoted << k.reason << YAML::EndMap;
  }
  out << YAML::EndSeq;
  EmitEvents(out, r.events);
  out << YAML::Key << "drift" << YAML::Value << YAML::BeginSeq;
  for (const auto& d : r.drift) {
    out << YAML::BeginMap << YAML::Key << "knob" << YAML::Value << YAML::DoubleQuoted << d.knob
        << YAML::Key << "expected" << YAML::Value << YAML::DoubleQuoted << d.expected << YAML::Key
        << "observed" << YAML::Value << YAML::DoubleQuoted << d.observed << YAML::Key << "since"
        << YAML::Value << Time(d.since) << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
}

// A log entry: a header line with its kind, length and checksum, then a body
// shaped like a piece of the snapshot ("changes: [one record]", "baseline:
// {...}", "events: [...]"), so the same parsing and salvage read both.
constexpr absl::string_view kLogMagic = "netagent journal log 1 follows generation ";

uint64_t Fnv(absl::string_view bytes, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string Entry(absl::string_view kind, const YAML::Emitter& body) {
  const absl::string_view text(body.c_str(), body.size());
  return absl::StrCat("entry ", kind, " ", text.size() + 1, " ",
                      absl::Hex(Fnv(text), absl::kZeroPad16), "\n", text, "\n");
}

// Appends with write(), not fdatasync: what the journal records does not
// outlive a reboot either (sysctls, queue masks, IRQ affinity, ethtool
// settings all go back to their boot values), so a power cut that loses the
// log's last entries loses them together with their effects; what a crash of
// the agent needs is that an entry is in the file before the knob is
// written, and write() gives that. The snapshot is synced when it is
// replaced (compaction).
absl::Status AppendToLog(const std::string& path, absl::string_view bytes, size_t expected_size,
                         uint64_t expected_inode, absl::string_view expected_header) {
  // Opened for each append (without creating): a log that was removed or
  // replaced by something else is not written blindly.
  kernel::UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!fd.valid()) return kernel::LastErrnoStatus(absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_ino != expected_inode ||
      static_cast<size_t>(st.st_size) != expected_size) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not the log this agent wrote (",
                                                      st.st_size, " bytes, expected ",
                                                      expected_size, ")"));
  }
  std::string header(expected_header.size(), '\0');
  if (::pread(fd.get(), header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()) ||
      header != expected_header) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not the log of this journal's snapshot"));
  }
  absl::Status failed;
  for (size_t done = 0; done < bytes.size() && failed.ok();) {
    const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = kernel::LastErrnoStatus(absl::StrCat("append to ", path));
    } else {
      done += static_cast<size_t>(n);
    }
  }
  // Nothing after a partial entry: cut it off again.
  if (!failed.ok() && ::ftruncate(fd.get(), static_cast<off_t>(expected_size)) != 0) {
    return absl::Status(failed.code(), absl::StrCat(failed.message(), "; and cannot cut it back"));
  }
  return failed;
}

}  // namespace

std::string Journal::ToYaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << kVersion;
  // Said again by `end`, the last line: a file cut short lacks it.
  out << YAML::Key << "count" << YAML::Value << records_.size();
  // The log that follows this snapshot says this generation (none before
  // the first compaction).
  if (generation_ != 0) out << YAML::Key << "log_generation" << YAML::Value << generation_;
  EmitBaseline(out, baseline_);
  EmitEvents(out, events_);
  out << YAML::Key << "changes" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : records_) EmitRecord(out, r);
  out << YAML::EndSeq;
  out << YAML::Key << "end" << YAML::Value << records_.size();
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

Journal Journal::Empty(const std::string& path) {
  Journal j;
  j.path_ = path;
  return j;
}

namespace {

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": ", what));
}

absl::Status ParseBaseline(const YAML::Node& baseline, const std::string& path,
                           std::map<std::string, BaselineValue>& out) {
  if (baseline && !baseline.IsMap() && !baseline.IsNull())
    return Bad(path, "baseline is not a map");
  for (const auto& b : baseline) {
    const std::string name = Str(b.first);
    // The agent keeps baselines of sysctls: a name of another shape (one
    // over 1,024 bytes would not even save as a YAML key) is damage.
    const bool sysctl_shaped =
        !name.empty() && name.size() <= 255 && std::all_of(name.begin(), name.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                 c == '-' || c == '/';
        });
    if (!sysctl_shaped) {
      return Bad(path, absl::StrCat("baseline of ", kernel::Quote(name, 40),
                                    ", which is no sysctl name the agent keeps"));
    }
    NETAGENT_ASSIGN_OR_RETURN(absl::Time seen,
                              ParseTime(b.second["seen"], path, absl::StrCat("baseline ", name)));
    out[name] = {Str(b.second["value"]), seen};
  }
  return absl::OkStatus();
}

absl::Status ParseEvents(const YAML::Node& events, const std::string& path, absl::string_view what,
                         std::vector<ChangeEvent>& out) {
  if (events && !events.IsSequence() && !events.IsNull())
    return Bad(path, absl::StrCat("events of ", what, " are not a list"));
  for (const auto& e : events) {
    NETAGENT_ASSIGN_OR_RETURN(absl::Time at, ParseTime(e["at"], path, what));
    out.push_back({at, Str(e["what"])});
  }
  return absl::OkStatus();
}

absl::StatusOr<ChangeRecord> ParseRecord(const YAML::Node& n, const std::string& path,
                                         size_t index) {
  if (!n.IsMap()) return Bad(path, absl::StrCat("change ", index, " is not a map"));
  ChangeRecord r;
  r.id = Str(n["id"]);
  if (r.id.empty()) return Bad(path, absl::StrCat("change ", index, " has no id"));
  // Only ids the agent takes are written; another one (non-UTF-8 bytes
  // would all save as U+FFFD: two ids, one once saved) is damage.
  if (!ValidateChangeId(r.id).ok()) {
    return Bad(path, absl::StrCat("change ", index, " has the id ", kernel::Quote(r.id),
                                  ", which the agent never gives"));
  }
  const std::string what = absl::StrCat("change \"", r.id, "\"");
  NETAGENT_ASSIGN_OR_RETURN(r.created, ParseTime(n["created"], path, what));
  r.caller = Str(n["caller"]);
  r.intent = Str(n["intent"]);
  r.digest = Str(n["digest"]);
  r.owner = Str(n["owner"]);
  r.owner_unknown = !n["owner"];
  if (!ValidateOwner(r.owner, "owner").ok()) {
    return Bad(path, absl::StrCat("change ", kernel::Quote(r.id), " has the owner ",
                                  kernel::Quote(r.owner), ", which the agent never keeps"));
  }
  const std::string state = Str(n["state"]);
  const std::optional<ChangeState> known = ChangeStateFromName(state);
  if (!known) return Bad(path, absl::StrCat(what, " has state \"", state, "\""));
  r.state = *known;
  if (n["confirm_deadline"]) {
    NETAGENT_ASSIGN_OR_RETURN(r.confirm_deadline, ParseTime(n["confirm_deadline"], path, what));
  } else if (r.state == ChangeState::kPending) {
    // It could never expire.
    return Bad(path, absl::StrCat(what, " waits for a confirmation but has no deadline"));
  }
  for (const auto& k : n["knobs"]) {
    r.knobs.push_back({Str(k["knob"]), Str(k["old"]), Str(k["new"]), Str(k["reason"])});
    if (r.knobs.back().knob.empty())
      return Bad(path, absl::StrCat(what, " has a knob without a name"));
  }
  NETAGENT_RETURN_IF_ERROR(ParseEvents(n["events"], path, what, r.events));
  for (const auto& d : n["drift"]) {
    NETAGENT_ASSIGN_OR_RETURN(absl::Time since, ParseTime(d["since"], path, what));
    r.drift.push_back({Str(d["knob"]), Str(d["expected"]), Str(d["observed"]), since});
  }
  return r;
}

}  // namespace

absl::StatusOr<Journal> Journal::FromYaml(const std::string& text, const std::string& path) {
  auto bad = [&](auto&&... parts) {
    return absl::DataLossError(absl::StrCat(path, ": ", parts...));
  };
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return bad("empty (", text.size(), " bytes), and the agent never writes an empty journal");
  }
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    return bad("binary data (a NUL byte at offset ", nul, ")");
  }
  // The agent writes UTF-8 only (its YAML writer would save other bytes as
  // U+FFFD: names, values and ids that differ could save as one).
  if (const std::optional<size_t> at = kernel::FirstInvalidUtf8(text)) {
    return bad("not UTF-8 at byte ", *at, ", and the agent writes UTF-8 only");
  }
  Journal j = Empty(path);
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return bad("not a journal (no map with a version at the top)");
    NETAGENT_RETURN_IF_ERROR(CheckScalars(root, path));
    const YAML::Node version = root["version"];
    if (!version) return bad("not a journal (no version)");
    if (Integer(version) != kVersion) {
      return bad("version ", Shown(version), ", and this agent reads version ", kVersion,
                 " (a newer agent's journal?)");
    }
    // Journals written before `count`/`end` existed have neither, and end
    // with `changes` (a file cut before it is no journal of any age).
    std::optional<int64_t> count;
    if (!root["count"] && !root["changes"]) return bad("cut short: no changes and no count");
    if (const YAML::Node c = root["count"]) {
      count = Integer(c);
      if (!count || *count < 0) return bad("count ", Shown(c), " is not a number");
      const YAML::Node end = root["end"];
      if (!end) return bad("cut short: no end line (it begins saying ", *count, " changes)");
      if (Integer(end) != count) {
        return bad("cut short or damaged: it begins saying ", *count, " changes and ends with ",
                   Shown(end));
      }
    }
    if (const YAML::Node g = root["log_generation"]) {
      const std::optional<int64_t> gen = Integer(g);
      if (!gen || *gen < 0) return bad("log_generation ", Shown(g), " is not a number");
      j.generation_ = static_cast<uint64_t>(*gen);
    }
    NETAGENT_RETURN_IF_ERROR(ParseBaseline(root["baseline"], path, j.baseline_));
    NETAGENT_RETURN_IF_ERROR(ParseEvents(root["events"], path, "the journal", j.events_));
    const YAML::Node changes = root["changes"];
    if (changes && !changes.IsSequence() && !changes.IsNull()) return bad("changes is not a list");
    std::set<std::string> ids;
    for (const auto& n : changes) {
      NETAGENT_ASSIGN_OR_RETURN(ChangeRecord r, ParseRecord(n, path, j.records_.size() + 1));
      if (!ids.insert(r.id).second) return bad("change \"", r.id, "\" appears twice");
      j.records_.push_back(std::move(r));
    }
    if (count && static_cast<size_t>(*count) != j.records_.size()) {
      return bad("it says ", *count, " changes and holds ", j.records_.size());
    }
  } catch (const YAML::Exception& e) {
    return bad(e.what());
  } catch (const std::exception& e) {
    return bad(e.what());
  }
  return j;
}

std::string Journal::LogPath(uint64_t generation) const {
  return absl::StrCat(path_, ".log.", generation);
}

absl::Status Journal::ReplayOneLog(uint64_t generation, bool last, std::string* log_text,
                                   bool* torn_at_end) {
  const std::string path = LogPath(generation);
  auto text = kernel::ReadFile(path);
  if (!text.ok()) return text.status();
  if (log_text) absl::StrAppend(log_text, *text, "\n");
  const std::string& t = *text;
  const size_t eol = t.find('\n');
  uint64_t gen = 0;
  if (eol == std::string::npos || !absl::StartsWith(t, kLogMagic) ||
      !absl::SimpleAtoi(absl::string_view(t).substr(kLogMagic.size(), eol - kLogMagic.size()),
                        &gen) ||
      gen != generation) {
    return Bad(path, "not this journal's log (its first line is damaged)");
  }
  size_t pos = eol + 1, entries = 0;
  bool torn = false;
  while (pos < t.size()) {
    const size_t line_end = t.find('\n', pos);
    if (line_end == std::string::npos) {
      torn = true;  // a header cut short: the last append
      break;
    }
    std::vector<absl::string_view> h =
        absl::StrSplit(absl::string_view(t).substr(pos, line_end - pos), ' ');
    size_t len = 0;
    uint64_t sum = 0;
    if (h.size() != 4 || h[0] != "entry" || !absl::SimpleAtoi(h[2], &len) ||
        !absl::SimpleHexAtoi(h[3], &sum)) {
      return Bad(path, absl::StrCat("damaged entry header at byte ", pos));
    }
    const size_t body = line_end + 1;
    if (len == 0 || body + len > t.size()) {
      torn = true;
      break;
    }
    const absl::string_view text_body = absl::string_view(t).substr(body, len - 1);
    if (Fnv(text_body) != sum || t[body + len - 1] != '\n') {
      if (body + len == t.size()) {
        torn = true;  // the last append, written in part
        break;
      }
      return Bad(path, absl::StrCat("entry at byte ", pos, " does not match its checksum"));
    }
    if (const std::optional<size_t> at = kernel::FirstInvalidUtf8(text_body)) {
      return Bad(path, absl::StrCat("entry at byte ", pos, " is not UTF-8 at byte ", body + *at,
                                    ", and the agent writes UTF-8 only"));
    }
    try {
      const YAML::Node n = YAML::Load(std::string(text_body));
      NETAGENT_RETURN_IF_ERROR(CheckScalars(n, path));
      if (h[1] == "change") {
        NETAGENT_ASSIGN_OR_RETURN(ChangeRecord r, ParseRecord(n["changes"][0], path, entries + 1));
        if (ChangeRecord* old = Find(r.id)) {
          *old = std::move(r);
        } else {
          records_.push_back(std::move(r));
        }
      } else if (h[1] == "baseline") {
        baseline_.clear();
        NETAGENT_RETURN_IF_ERROR(ParseBaseline(n["baseline"], path, baseline_));
      } else if (h[1] == "events") {
        events_.clear();
        NETAGENT_RETURN_IF_ERROR(ParseEvents(n["events"], path, "the journal", events_));
      } else {
        return Bad(path, absl::StrCat("entry at byte ", pos, " of unknown kind ",
                                      kernel::Quote(h[1], 20)));
      }
    } catch (const YAML::Exception& e) {
      return Bad(path, absl::StrCat("entry at byte ", pos, ": ", e.what()));
    }
    pos = body + len;
    ++entries;
  }
  if (torn && !last) {
    // Appends go to the newest log only: an older one never ends in the
    // middle of an entry.
    return Bad(path, absl::StrCat("cut short at byte ", pos, ", and a newer log follows it"));
  }
  *torn_at_end = torn;
  log_entries_ = entries;
  log_bytes_ = pos;
  return absl::OkStatus();
}

absl::Status Journal::ReplayLog(std::string* log_text) {
  // The snapshot says which log follows it; a compaction that had started
  // the next log but not yet written its snapshot leaves two (or more), each
  // following the one before.
  const uint64_t first = generation_;
  log_ready_ = false;
  if (first == 0) {
    // A snapshot that names no log was written without one (by an agent
    // that kept no log, say before an upgrade, or a downgrade and back):
    // it is newer than any log left beside it.
    RemoveLogsBefore(UINT64_MAX);
    return absl::OkStatus();
  }
  uint64_t last = first;
  while (::access(LogPath(last + 1).c_str(), F_OK) == 0) ++last;
  if (::access(LogPath(first).c_str(), F_OK) != 0) {
    if (last != first)
      return Bad(path_, absl::StrCat("log ", first, " is missing, ", last, " is there"));
    return absl::OkStatus();  // none yet: the next save writes a snapshot and a log
  }
  bool torn = false;
  for (uint64_t g = first; g <= last; ++g) {
    NETAGENT_RETURN_IF_ERROR(ReplayOneLog(g, g == last, log_text, &torn));
  }
  generation_ = last;
  const std::string path = LogPath(last);
  if (torn && ::truncate(path.c_str(), static_cast<off_t>(log_bytes_)) != 0)
    return absl::OkStatus();
  struct stat st;
  log_ready_ = ::stat(path.c_str(), &st) == 0;
  log_inode_ = log_ready_ ? st.st_ino : 0;
  RemoveLogsBefore(first);
  MarkWritten();
  return absl::OkStatus();
}

void Journal::RemoveLogsBefore(uint64_t generation) const {
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash ? slash : 1);
  const std::string prefix =
      absl::StrCat(slash == std::string::npos ? path_ : path_.substr(slash + 1), ".log.");
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    uint64_t g = 0;
    if (absl::StartsWith(name, prefix) &&
        absl::SimpleAtoi(absl::string_view(name).substr(prefix.size()), &g) && g < generation) {
      std::filesystem::remove(e.path(), ec);
    }
  }
}

absl::StatusOr<Journal> Journal::Load(const std::string& path) {
  auto text = kernel::ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return Empty(path);
    return text.status();
  }
  NETAGENT_ASSIGN_OR_RETURN(Journal j, FromYaml(*text, path));
  NETAGENT_RETURN_IF_ERROR(j.ReplayLog(nullptr));
  return j;
}

uint64_t Journal::Fingerprint(const ChangeRecord& r) {
  // Every field, each followed by a separator, without allocating.
  uint64_t h = Fnv(r.id);
  auto add = [&](absl::string_view v) { h = Fnv("\x1f", Fnv(v, h)); };
  auto time = [&](absl::Time t) {
    const int64_t ns = absl::ToUnixNanos(t);
    add(absl::string_view(reinterpret_cast<const char*>(&ns), sizeof(ns)));
  };
  time(r.created);
  add(r.caller);
  add(r.intent);
  add(r.digest);
  add(r.owner);
  add(r.owner_unknown ? "?" : "");
  add(ChangeStateName(r.state));
  if (r.confirm_deadline) time(*r.confirm_deadline);
  for (const auto& k : r.knobs) {
    add(k.knob);
    add(k.old_value);
    add(k.new_value);
    add(k.reason);
  }
  // Events are appended (past 200 the oldest after the first 20 go): their
  // count and both ends change with every event.
  const uint64_t n = r.events.size();
  add(absl::string_view(reinterpret_cast<const char*>(&n), sizeof(n)));
  if (!r.events.empty()) {
    for (const ChangeEvent* e : {&r.events.front(), &r.events.back()}) {
      time(e->at);
      add(e->what);
    }
  }
  for (const auto& d : r.drift) {
    add(d.knob);
    add(d.expected);
    add(d.observed);
    time(d.since);
  }
  return h;
}

uint64_t Journal::BaselineFingerprint() const {
  uint64_t h = Fnv("baseline");
  for (const auto& [name, b] : baseline_)
    h = Fnv(absl::StrCat(name, "=", b.value, "@", absl::ToUnixNanos(b.seen), ";"), h);
  return h;
}

uint64_t Journal::EventsFingerprint() const {
  uint64_t h = Fnv(absl::StrCat("events ", events_.size()));
  for (const auto& e : events_) h = Fnv(absl::StrCat(absl::ToUnixNanos(e.at), e.what, ";"), h);
  return h;
}

void Journal::MarkWritten() {
  written_.clear();
  for (const auto& r : records_) written_[r.id] = Fingerprint(r);
  written_baseline_ = BaselineFingerprint();
  written_events_ = EventsFingerprint();
}

absl::Status Journal::StartLog(uint64_t generation) {
  const std::string header = absl::StrCat(kLogMagic, generation, "\n");
  const std::string path = LogPath(generation);
  kernel::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return kernel::LastErrnoStatus(absl::StrCat("create ", path));
  struct stat st;
  if (::write(fd.get(), header.data(), header.size()) != static_cast<ssize_t>(header.size()) ||
      ::fstat(fd.get(), &st) != 0) {
    return kernel::LastErrnoStatus(absl::StrCat("write ", path));
  }
  generation_ = generation;
  log_ready_ = true;
  log_inode_ = st.st_ino;
  log_entries_ = 0;
  log_bytes_ = header.size();
  return absl::OkStatus();
}

absl::Status Journal::Compact() {
  if (compacting_) {
    // Two writers of one snapshot could leave the older one in place, or a
    // mix of both: this save waits for the background one.
    return absl::UnavailableError("a compaction of the journal is being written");
  }
  // The next log first: while the snapshot is being replaced, the logs chain
  // from the one the old snapshot names. A snapshot that cannot be written
  // leaves things as they were: the new log would follow no snapshot.
  const uint64_t before = generation_;
  if (absl::Status started = StartLog(before + 1); !started.ok()) {
    log_ready_ = false;
    return started;
  }
  if (absl::Status written = kernel::ReplaceFileAtomically(path_, ToYaml(), 0600); !written.ok()) {
    ::unlink(LogPath(before + 1).c_str());
    generation_ = before;
    log_ready_ = false;
    return written;
  }
  RemoveLogsBefore(generation_);
  MarkWritten();
  return absl::OkStatus();
}

std::optional<Journal::PendingSnapshot> Journal::StartCompaction() {
  if (!log_ready_ || (log_entries_ < kCompactAfterEntries && log_bytes_ < kCompactAfterBytes)) {
    return std::nullopt;
  }
  // Appends move to the next log at once; the snapshot of everything so far
  // is written by the caller outside its lock.
  if (compacting_ || !StartLog(generation_ + 1).ok()) return std::nullopt;  // tried again later
  compacting_ = true;
  return PendingSnapshot{path_, ToYaml(), generation_};
}

absl::Status Journal::PendingSnapshot::Write() const {
  return kernel::ReplaceFileAtomically(path, text, 0600);
}

void Journal::FinishCompaction(const PendingSnapshot& done, const absl::Status& written) {
  // Not written: the old snapshot and every log since still chain.
  compacting_ = false;
  if (written.ok()) RemoveLogsBefore(done.generation);
}

absl::Status Journal::Save() {
  if (!log_ready_) return Compact();
  std::string entries;
  size_t n = 0;
  for (const auto& r : records_) {
    auto it = written_.find(r.id);
    if (it != written_.end() && it->second == Fingerprint(r)) continue;
    YAML::Emitter body;
    body << YAML::BeginMap << YAML::Key << "changes" << YAML::Value << YAML::BeginSeq;
    EmitRecord(body, r);
    body << YAML::EndSeq << YAML::EndMap;
    entries += Entry("change", body);
    ++n;
  }
  if (BaselineFingerprint() != written_baseline_) {
    YAML::Emitter body;
    body << YAML::BeginMap;
    EmitBaseline(body, baseline_);
    body << YAML::EndMap;
    entries += Entry("baseline", body);
    ++n;
  }
  if (EventsFingerprint() != written_events_) {
    YAML::Emitter body;
    body << YAML::BeginMap;
    EmitEvents(body, events_);
    body << YAML::EndMap;
    entries += Entry("events", body);
    ++n;
  }
  if (n == 0) return absl::OkStatus();
  absl::Status appended = AppendToLog(LogPath(generation_), entries, log_bytes_, log_inode_,
                                      absl::StrCat(kLogMagic, generation_, "\n"));
  if (!appended.ok()) {
    // Whatever is wrong with the log, a fresh snapshot and log may do.
    absl::Status compacted = Compact();
    if (compacted.ok()) return compacted;
    log_ready_ = false;
    return absl::Status(compacted.code(),
                        absl::StrCat(appended.message(), "; rewriting: ", compacted.message()));
  }
  log_entries_ += n;
  log_bytes_ += entries.size();
  for (const auto& r : records_) written_[r.id] = Fingerprint(r);
  written_baseline_ = BaselineFingerprint();
  written_events_ = EventsFingerprint();
  return absl::OkStatus();
}

namespace {
absl::Status ValidateToken(absl::string_view id, absl::string_view field) {
  const bool valid =
      !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": letters, digits, '.', '_' and '-', 1 to 64 characters"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateChangeId(absl::string_view id) { return ValidateToken(id, "change_id"); }

absl::Status ValidateOwner(absl::string_view owner, absl::string_view field) {
  return owner.empty() ? absl::OkStatus() : ValidateToken(owner, field);
}

}  // namespace netagent::tuners

namespace netagent::tuners {

Salvage SalvageJournal(absl::string_view text) {
  std::vector<SalvagedChange> all;
  bool in_changes = false;
  enum { kFields, kKnobs, kSkipped } section = kFields;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const size_t indent = line.find_first_not_of(' ');
    if (indent == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(indent);
    const bool item = absl::ConsumePrefix(&rest, "- ");
    const size_t colon = rest.find(':');
    if (colon == absl::string_view::npos) continue;
    const absl::string_view key = rest.substr(0, colon);
    const std::string value =
        Printable(Unquote(absl::StripAsciiWhitespace(rest.substr(colon + 1))));
    if (indent == 0 && !item) {
      in_changes = key == "changes";
      continue;
    }
    if (!in_changes) continue;
    if (item && key == "id") {
      all.push_back({});
      all.back().id = value;
      section = kFields;
      continue;
    }
    if (all.empty()) continue;
    SalvagedChange& c = all.back();
    if (key == "knobs") {
      section = kKnobs;
    } else if (key == "events" || key == "drift") {
      section = kSkipped;
    } else if (section == kKnobs) {
      if (item && key == "knob") {
        c.knobs.push_back({value, "", "", ""});
      } else if (!c.knobs.empty() && key == "old") {
        c.knobs.back().old_value = value;
      } else if (!c.knobs.empty() && key == "new") {
        c.knobs.back().new_value = value;
      }
    } else if (section == kFields && key == "state") {
      c.state = ChangeStateFromName(value);
    } else if (section == kFields && key == "confirm_deadline") {
      absl::Time t;
      std::string err;
      if (absl::ParseTime(absl::RFC3339_full, value, &t, &err)) c.confirm_deadline = t;
    }
  }
  // The log repeats a change each time it changed: its last version counts.
  std::vector<SalvagedChange> last;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (std::none_of(last.begin(), last.end(),
                     [&](const SalvagedChange& c) { return c.id == it->id; }))
      last.push_back(std::move(*it));
  }
  std::reverse(last.begin(), last.end());
  Salvage out;
  out.changes_read = last.size();
  for (auto& c : last) {
    if (!c.state || IsActive(*c.state)) out.possibly_in_effect.push_back(std::move(c));
  }
  return out;
}

std::string DescribeSalvage(const Salvage& s) {
  constexpr size_t kShown = 8;
  if (s.changes_read == 0) return "nothing could be read from it: check the knobs by hand";
  if (s.possibly_in_effect.empty()) {
    return absl::StrCat("it names ", s.changes_read, " change(s), none of them in effect");
  }
  std::vector<std::string> parts;
  for (const auto& c : s.possibly_in_effect) {
    if (parts.size() == kShown) break;
    std::string p = absl::StrCat("change ", c.id, " (",
                                 c.state ? ChangeStateName(*c.state) : "state unreadable");
    if (c.state == ChangeState::kPending && c.confirm_deadline) {
      absl::StrAppend(&p, ", was to roll back at ", Time(*c.confirm_deadline));
    }
    absl::StrAppend(&p, "): ");
    if (c.knobs.empty()) absl::StrAppend(&p, "no knob readable");
    std::vector<std::string> knobs;
    for (const auto& k : c.knobs) {
      knobs.push_back(absl::StrCat(k.knob, " \"", k.old_value, "\" -> \"", k.new_value, "\""));
    }
    absl::StrAppend(&p, absl::StrJoin(knobs, ", "));
    parts.push_back(std::move(p));
  }
  std::string out = absl::StrCat("possibly in effect: ", absl::StrJoin(parts, "; "));
  if (s.possibly_in_effect.size() > kShown) {
    absl::StrAppend(&out, "; and ", s.possibly_in_effect.size() - kShown, " more");
  }
  return out;
}

absl::StatusOr<std::string> QuarantineJournalFile(const std::string& path, absl::Time now) {
  const std::string base =
      absl::StrCat(path, ".corrupt-", absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone()));
  for (int i = 1; i <= 100; ++i) {
    const std::string to = i == 1 ? base : absl::StrCat(base, "-", i);
    int rc = ::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      // A filesystem without RENAME_NOREPLACE: only this agent renames here.
      if (::access(to.c_str(), F_OK) == 0) continue;
      rc = ::rename(path.c_str(), to.c_str());
    }
    if (rc != 0 && errno == EEXIST) continue;
    if (rc != 0) return kernel::LastErrnoStatus(absl::StrCat("rename ", path, " to ", to));
    // Its logs go with it (the evidence is all of them); a fresh journal
    // starts without one.
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash ? slash : 1);
    const std::string file = slash == std::string::npos ? path : path.substr(slash + 1);
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (!absl::StartsWith(name, file + ".log.")) continue;
      const std::string moved = absl::StrCat(to, name.substr(file.size()));
      if (::rename(e.path().c_str(), moved.c_str()) != 0) (void)::unlink(e.path().c_str());
    }
    // The rename is done; a failed directory sync only makes it less durable.
    (void)kernel::FsyncDir(slash == std::string::npos ? "." : path.substr(0, slash ? slash : 1));
    return to;
  }
  return absl::AlreadyExistsError(
      absl::StrCat("rename ", path, ": 100 quarantined copies at ", base));
}

}  // namespace netagent::tuners
