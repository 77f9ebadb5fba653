#include "tuners/journal.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernel/errors.h"
#include "kernel/files.h"

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

absl::StatusOr<absl::Time> ParseTime(const YAML::Node& n, absl::string_view what) {
  absl::Time t;
  std::string err;
  if (!n || !absl::ParseTime(absl::RFC3339_full, n.as<std::string>(), &t, &err)) {
    return absl::DataLossError(absl::StrCat("journal: bad time in ", what, ": ", err));
  }
  return t;
}

std::string Str(const YAML::Node& n) { return n ? n.as<std::string>() : std::string(); }

}  // namespace

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
  out << YAML::Key << "baseline" << YAML::Value << YAML::BeginMap;
  // Every string double-quoted: yaml-cpp writes some control characters
  // (a CR) into plain scalars, which then read back as something else.
  for (const auto& [name, b] : baseline_) {
    out << YAML::Key << YAML::DoubleQuoted << name << YAML::Value << YAML::BeginMap << YAML::Key
        << "value" << YAML::Value << YAML::DoubleQuoted << b.value << YAML::Key << "seen"
        << YAML::Value << Time(b.seen) << YAML::EndMap;
  }
  out << YAML::EndMap;
  out << YAML::Key << "changes" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : records_) {
    out << YAML::BeginMap;
    out << YAML::Key << "id" << YAML::Value << YAML::DoubleQuoted << r.id;
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
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

absl::StatusOr<Journal> Journal::FromYaml(const std::string& text, const std::string& path) {
  Journal j;
  j.path_ = path;
  try {
    YAML::Node root = YAML::Load(text);
    if (!root || root.IsNull()) return j;
    if (!root.IsMap() || root["version"].as<int>(0) != kVersion) {
      return absl::DataLossError(absl::StrCat(path, ": not a version ", kVersion, " journal"));
    }
    for (const auto& b : root["baseline"]) {
      NETAGENT_ASSIGN_OR_RETURN(absl::Time seen, ParseTime(b.second["seen"], "baseline"));
      j.baseline_[b.first.as<std::string>()] = {Str(b.second["value"]), seen};
    }
    for (const auto& n : root["changes"]) {
      ChangeRecord r;
      r.id = Str(n["id"]);
      NETAGENT_ASSIGN_OR_RETURN(r.created, ParseTime(n["created"], r.id));
      r.caller = Str(n["caller"]);
      r.intent = Str(n["intent"]);
      r.digest = Str(n["digest"]);
      const std::string state = Str(n["state"]);
      bool known = false;
      for (const auto& e : kStates) {
        if (state == e.name) {
          r.state = e.state;
          known = true;
        }
      }
      if (!known || r.id.empty()) {
        return absl::DataLossError(
            absl::StrCat(path, ": change \"", r.id, "\" has state \"", state, "\""));
      }
      if (n["confirm_deadline"]) {
        NETAGENT_ASSIGN_OR_RETURN(r.confirm_deadline, ParseTime(n["confirm_deadline"], r.id));
      }
      for (const auto& k : n["knobs"]) {
        r.knobs.push_back({Str(k["knob"]), Str(k["old"]), Str(k["new"]), Str(k["reason"])});
      }
      for (const auto& e : n["events"]) {
        NETAGENT_ASSIGN_OR_RETURN(absl::Time at, ParseTime(e["at"], r.id));
        r.events.push_back({at, Str(e["what"])});
      }
      for (const auto& d : n["drift"]) {
        NETAGENT_ASSIGN_OR_RETURN(absl::Time since, ParseTime(d["since"], r.id));
        r.drift.push_back({Str(d["knob"]), Str(d["expected"]), Str(d["observed"]), since});
      }
      j.records_.push_back(std::move(r));
    }
  } catch (const YAML::Exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": ", e.what()));
  }
  return j;
}

absl::StatusOr<Journal> Journal::Load(const std::string& path) {
  auto text = kernel::ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      Journal j;
      j.path_ = path;
      return j;
    }
    return text.status();
  }
  return FromYaml(*text, path);
}

absl::Status Journal::Save() { return kernel::ReplaceFileAtomically(path_, ToYaml(), 0600); }

}  // namespace netagent::tuners
