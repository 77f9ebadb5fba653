#include "tuners/journal.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kernel/errors.h"
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

std::string Journal::ToYaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << kVersion;
  // Said again by `end`, the last line: a file cut short lacks it.
  out << YAML::Key << "count" << YAML::Value << records_.size();
  out << YAML::Key << "baseline" << YAML::Value << YAML::BeginMap;
  for (const auto& [name, b] : baseline_) {
    out << YAML::Key << name << YAML::Value << YAML::BeginMap << YAML::Key << "value" << YAML::Value
        << YAML::DoubleQuoted << b.value << YAML::Key << "seen" << YAML::Value << Time(b.seen)
        << YAML::EndMap;
  }
  out << YAML::EndMap;
  out << YAML::Key << "events" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : events_) {
    out << YAML::BeginMap << YAML::Key << "at" << YAML::Value << Time(e.at) << YAML::Key << "what"
        << YAML::Value << YAML::DoubleQuoted << e.what << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "changes" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : records_) {
    out << YAML::BeginMap;
    out << YAML::Key << "id" << YAML::Value << r.id;
    out << YAML::Key << "created" << YAML::Value << Time(r.created);
    out << YAML::Key << "caller" << YAML::Value << YAML::DoubleQuoted << r.caller;
    out << YAML::Key << "intent" << YAML::Value << YAML::DoubleQuoted << r.intent;
    out << YAML::Key << "digest" << YAML::Value << YAML::DoubleQuoted << r.digest;
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
    out << YAML::Key << "events" << YAML::Value << YAML::BeginSeq;
    for (const auto& e : r.events) {
      out << YAML::BeginMap << YAML::Key << "at" << YAML::Value << Time(e.at) << YAML::Key << "what"
          << YAML::Value << YAML::DoubleQuoted << e.what << YAML::EndMap;
    }
    out << YAML::EndSeq;
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
  Journal j = Empty(path);
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return bad("not a journal (no map with a version at the top)");
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
    const YAML::Node baseline = root["baseline"];
    if (baseline && !baseline.IsMap() && !baseline.IsNull()) return bad("baseline is not a map");
    for (const auto& b : baseline) {
      const std::string name = Str(b.first);
      NETAGENT_ASSIGN_OR_RETURN(absl::Time seen,
                                ParseTime(b.second["seen"], path, absl::StrCat("baseline ", name)));
      j.baseline_[name] = {Str(b.second["value"]), seen};
    }
    const YAML::Node events = root["events"];
    if (events && !events.IsSequence() && !events.IsNull()) return bad("events is not a list");
    for (const auto& e : events) {
      NETAGENT_ASSIGN_OR_RETURN(absl::Time at, ParseTime(e["at"], path, "the journal's events"));
      j.events_.push_back({at, Str(e["what"])});
    }
    const YAML::Node changes = root["changes"];
    if (changes && !changes.IsSequence() && !changes.IsNull()) return bad("changes is not a list");
    std::set<std::string> ids;
    for (const auto& n : changes) {
      if (!n.IsMap()) return bad("change ", j.records_.size() + 1, " is not a map");
      ChangeRecord r;
      r.id = Str(n["id"]);
      if (r.id.empty()) return bad("change ", j.records_.size() + 1, " has no id");
      if (!ids.insert(r.id).second) return bad("change \"", r.id, "\" appears twice");
      const std::string what = absl::StrCat("change \"", r.id, "\"");
      NETAGENT_ASSIGN_OR_RETURN(r.created, ParseTime(n["created"], path, what));
      r.caller = Str(n["caller"]);
      r.intent = Str(n["intent"]);
      r.digest = Str(n["digest"]);
      const std::string state = Str(n["state"]);
      const std::optional<ChangeState> known = ChangeStateFromName(state);
      if (!known) return bad(what, " has state \"", state, "\"");
      r.state = *known;
      if (n["confirm_deadline"]) {
        NETAGENT_ASSIGN_OR_RETURN(r.confirm_deadline, ParseTime(n["confirm_deadline"], path, what));
      } else if (r.state == ChangeState::kPending) {
        // It could never expire.
        return bad(what, " waits for a confirmation but has no deadline");
      }
      for (const auto& k : n["knobs"]) {
        r.knobs.push_back({Str(k["knob"]), Str(k["old"]), Str(k["new"]), Str(k["reason"])});
        if (r.knobs.back().knob.empty()) return bad(what, " has a knob without a name");
      }
      for (const auto& e : n["events"]) {
        NETAGENT_ASSIGN_OR_RETURN(absl::Time at, ParseTime(e["at"], path, what));
        r.events.push_back({at, Str(e["what"])});
      }
      for (const auto& d : n["drift"]) {
        NETAGENT_ASSIGN_OR_RETURN(absl::Time since, ParseTime(d["since"], path, what));
        r.drift.push_back({Str(d["knob"]), Str(d["expected"]), Str(d["observed"]), since});
      }
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

absl::StatusOr<Journal> Journal::Load(const std::string& path) {
  auto text = kernel::ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return Empty(path);
    return text.status();
  }
  return FromYaml(*text, path);
}

absl::Status Journal::Save() { return kernel::ReplaceFileAtomically(path_, ToYaml(), 0600); }

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
  Salvage out;
  out.changes_read = all.size();
  for (auto& c : all) {
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
    const size_t slash = path.rfind('/');
    // The rename is done; a failed directory sync only makes it less durable.
    (void)kernel::FsyncDir(slash == std::string::npos ? "." : path.substr(0, slash ? slash : 1));
    return to;
  }
  return absl::AlreadyExistsError(
      absl::StrCat("rename ", path, ": 100 quarantined copies at ", base));
}

}  // namespace netagent::tuners
