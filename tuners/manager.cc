#include "tuners/manager.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "kernel/cpus.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/text.h"
#include "spdlog/spdlog.h"
#include "tuners/applier.h"
#include "tuners/knobs.h"
#include "tuners/planners.h"

namespace netagent::tuners {
namespace {

constexpr size_t kKeepInactive = 500;
constexpr int kExpiryAttempts = 5;

std::string NewId(absl::Time now) {
  static std::mt19937_64 rng{std::random_device{}()};
  return absl::StrCat(absl::FormatTime("%Y%m%d-%H%M%S", now, absl::UTCTimeZone()), "-",
                      absl::StrFormat("%04x", rng() & 0xffff));
}

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

bool Touches(const ChangeRecord& r, const std::string& knob) {
  return std::any_of(r.knobs.begin(), r.knobs.end(),
                     [&](const KnobChange& k) { return k.knob == knob; });
}

// The tail of a message whose host part stands but was not journaled.
std::string NotSaved(const absl::Status& saved) {
  if (saved.ok()) return "";
  return absl::StrCat("; the change journal could not record this: ", saved.message());
}

std::string Basename(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A write cut short before its rename: the journal it was to replace is
// still the one in force, and nothing was done on the strength of the
// unfinished one (every change waits for its record to be renamed in).
void RemoveLeftoverTemp(const std::string& path) {
  const std::string tmp = path + ".tmp";
  struct stat st;
  if (::lstat(tmp.c_str(), &st) != 0) return;
  if (::unlink(tmp.c_str()) == 0) {
    spdlog::warn(
        "tuning: removed {}, left by a journal write that never completed (the agent stopped "
        "between writing and renaming it); {} stays in force",
        tmp, path);
  } else {
    spdlog::error("tuning: cannot remove {}, left by an unfinished journal write: {}", tmp,
                  std::strerror(errno));
  }
}

// Moves a journal that did not load out of the way and keeps what an
// operator needs to judge the host.
JournalHealth::Quarantine SetAside(const std::string& path, const std::string& text,
                                   const absl::Status& why, absl::Time now) {
  JournalHealth::Quarantine q;
  absl::string_view error = why.message();
  absl::ConsumePrefix(&error, absl::StrCat(path, ": "));  // the path is said anyway
  // YAML errors quote the damaged bytes.
  q.error = kernel::EscapeText(error);
  q.since = now;
  q.salvage = SalvageJournal(text);
  auto moved = QuarantineJournalFile(path, now);
  if (moved.ok()) {
    q.moved_to = *moved;
  } else {
    q.move_error = std::string(moved.status().message());
  }
  return q;
}

bool Holds(ChangeState s) {
  return s == ChangeState::kPending || s == ChangeState::kConfirmed ||
         s == ChangeState::kRollbackFailed;
}

}  // namespace

std::string DescribeQuarantine(const std::string& path, const JournalHealth::Quarantine& q) {
  return absl::StrCat(
      "the change journal ", path, " could not be read (", q.error, ") and ",
      q.moved_to.empty() ? absl::StrCat("could not be set aside (", q.move_error, ")")
                         : absl::StrCat("was set aside as ", q.moved_to),
      "; the agent no longer knows the changes it recorded and can neither roll them back nor "
      "expire them, so values may be left changed: ",
      DescribeSalvage(q.salvage));
}

TuningManager::TuningManager(Options options, Journal journal, std::string journal_path)
    : options_(std::move(options)),
      journal_path_(std::move(journal_path)),
      journal_(std::move(journal)) {}

absl::StatusOr<std::unique_ptr<TuningManager>> TuningManager::Start(Options options) {
  const std::string dir = options.state_dir + "/tuning";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("state_dir: create ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  const std::string path = dir + "/journal.yaml";
  if (!options.io) options.io = std::make_unique<SystemKnobs>(options.paths);
  if (!options.clock) options.clock = [] { return absl::Now(); };
  RemoveLeftoverTemp(path);
  Journal journal = Journal::Empty(path);
  std::optional<JournalHealth::Quarantine> quarantine;
  auto text = kernel::ReadFile(path);
  if (!text.ok() && !absl::IsNotFound(text.status())) return text.status();
  if (text.ok()) {
    auto loaded = Journal::FromYaml(*text, path);
    std::string log_text;
    if (loaded.ok()) {
      if (absl::Status replayed = loaded->ReplayLog(&log_text); !replayed.ok()) loaded = replayed;
    }
    if (loaded.ok()) {
      journal = std::move(*loaded);
    } else if (absl::IsDataLoss(loaded.status())) {
      // The log's entries are shaped like the snapshot's: salvage reads both.
      quarantine =
          SetAside(path, absl::StrCat(*text, "\n", log_text), loaded.status(), options.clock());
      spdlog::error(
          "tuning: {}; applying is refused until an operator checks those knobs and runs: netctl "
          "tune journal ack",
          DescribeQuarantine(path, *quarantine));
    } else {
      return loaded.status();
    }
  }
  if (!options.snapshot) {
    options.snapshot = [paths = options.paths](const SnapshotRequest& req,
                                               const std::map<std::string, std::string>& baseline) {
      return TakeSnapshot(req, paths, baseline);
    };
  }
  std::unique_ptr<TuningManager> m(new TuningManager(std::move(options), std::move(journal), path));
  {
    std::lock_guard<std::mutex> lk(m->mu_);
    m->quarantine_ = std::move(quarantine);
    // While quarantined, values found now may be ones a lost change left:
    // first-seen values are taken when the operator acknowledges.
    if (!m->quarantine_) m->RecordFirstSeenLocked(m->Now());
    m->ReconcileLocked();
    m->journal_.Prune(kKeepInactive);
    // An unwritable journal does not stop the agent: it is reported, applies
    // are refused (nothing is changed unrecorded) and writes are retried.
    (void)m->SaveLocked();
  }
  m->thread_ = std::thread([p = m.get()] { p->Loop(); });
  return m;
}

TuningManager::~TuningManager() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TuningManager::RecordFirstSeenLocked(absl::Time now) {
  for (const auto& spec : SysctlRegistry()) {
    if (spec.kernel_default || journal_.baseline().count(spec.name) || OwnerLocked(spec.name)) {
      continue;
    }
    if (auto v = options_.io->Read(spec.name); v.ok()) journal_.baseline()[spec.name] = {*v, now};
  }
}

absl::Status TuningManager::QuarantineRefusalLocked() const {
  return absl::FailedPreconditionError(absl::StrCat(
      "tuning is refused: ", DescribeQuarantine(journal_path_, *quarantine_),
      ". Check those knobs (netctl tune journal shows what the file held), then acknowledge: "
      "netctl tune journal ack"));
}

absl::Status TuningManager::UnknownChangeLocked(const std::string& id) const {
  if (!quarantine_) {
    return absl::NotFoundError(absl::StrCat("change_id: no change ", kernel::Quote(id)));
  }
  std::string listed;
  for (const auto& c : quarantine_->salvage.possibly_in_effect) {
    if (c.id != id) continue;
    std::vector<std::string> knobs;
    for (const auto& k : c.knobs) {
      knobs.push_back(absl::StrCat(k.knob, " \"", k.old_value, "\" -> \"", k.new_value, "\""));
    }
    listed = absl::StrCat("; the file set aside lists it as ",
                          c.state ? ChangeStateName(*c.state) : "state unreadable", ": ",
                          knobs.empty() ? "no knob readable" : absl::StrJoin(knobs, ", "));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "change ", id, " is unknown to this agent: ", DescribeQuarantine(journal_path_, *quarantine_),
      listed,
      ". Restore its knobs by hand if needed (sysctl -w, ethtool), then: netctl tune journal ack"));
}

// Records are never erased here: callers hold references into the journal.
absl::Status TuningManager::SaveLocked() {
  if (quarantine_) {
    // The file set aside stays the evidence; a fresh one starts at the
    // acknowledgement, saying so.
    return absl::FailedPreconditionError(
        "the change journal is quarantined: nothing is written until it is acknowledged");
  }
  absl::Status st = journal_.Save();
  if (!st.ok()) {
    if (save_error_.empty()) {
      save_failing_since_ = Now();
      spdlog::error(
          "tuning: cannot write the change journal {}: {}; the host is as the agent reports it, "
          "the file is behind until a write succeeds (retried at every deadline and drift check)",
          journal_path_, std::string(st.message()));
    }
    save_error_ = std::string(st.message());
    return st;
  }
  if (!save_error_.empty()) {
    spdlog::info("tuning: the change journal {} is written again (writes failed since {})",
                 journal_path_, TimeText(save_failing_since_));
    save_error_.clear();
  }
  return absl::OkStatus();
}

JournalHealth TuningManager::JournalStatus() {
  std::lock_guard<std::mutex> lk(mu_);
  JournalHealth h;
  h.path = journal_path_;
  h.save_error = save_error_;
  h.save_failing_since = save_failing_since_;
  h.quarantine = quarantine_;
  h.events = journal_.events();
  return h;
}

absl::StatusOr<JournalHealth::Quarantine> TuningManager::AcknowledgeJournal(
    const std::string& caller, const std::string& quarantined_path) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!quarantine_) {
    return absl::FailedPreconditionError(absl::StrCat("nothing to acknowledge: the change journal ",
                                                      journal_path_, " is not quarantined"));
  }
  JournalHealth::Quarantine& q = *quarantine_;
  if (!quarantined_path.empty() && quarantined_path != q.moved_to &&
      quarantined_path != Basename(q.moved_to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("quarantined_path: the journal set aside here is ",
                     q.moved_to.empty() ? "still at " + journal_path_ : q.moved_to, ", not ",
                     kernel::Quote(quarantined_path)));
  }
  const absl::Time now = Now();
  if (q.moved_to.empty()) {
    // A fresh journal must not overwrite the one that is evidence.
    auto moved = QuarantineJournalFile(journal_path_, now);
    if (!moved.ok()) {
      q.move_error = std::string(moved.status().message());
      return absl::FailedPreconditionError(absl::StrCat(
          "not acknowledged: ", journal_path_, " cannot be set aside (", q.move_error,
          ") and a fresh journal would overwrite it; move it away by hand, then acknowledge"));
    }
    q.moved_to = *moved;
  }
  const JournalHealth::Quarantine acknowledged = q;
  Journal previous = std::move(journal_);
  journal_ = Journal::Empty(journal_path_);
  journal_.events().push_back(
      {now, absl::StrCat("fresh journal: ", caller, " acknowledged that the previous one",
                         " could not be read (", acknowledged.error, ") and was set aside as ",
                         acknowledged.moved_to, "; the changes it recorded are not tracked (",
                         DescribeSalvage(acknowledged.salvage), ")")});
  RecordFirstSeenLocked(now);
  quarantine_.reset();
  if (absl::Status st = SaveLocked(); !st.ok()) {
    journal_ = std::move(previous);
    quarantine_ = acknowledged;
    return absl::FailedPreconditionError(
        absl::StrCat("not acknowledged: the fresh journal cannot be written (", st.message(), ")"));
  }
  spdlog::warn(
      "tuning: {} acknowledged the quarantined journal {}; a fresh journal starts at {} and "
      "applying is allowed again",
      caller, acknowledged.moved_to, journal_path_);
  return acknowledged;
}

std::map<std::string, std::string> TuningManager::BaselineLocked() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, b] : const_cast<Journal&>(journal_).baseline()) out[name] = b.value;
  return out;
}

const ChangeRecord* TuningManager::OwnerLocked(const std::string& knob) const {
  const auto& recs = journal_.records();
  for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
    if (Holds(it->state) && Touches(*it, knob)) return &*it;
  }
  return nullptr;
}

absl::StatusOr<TuningManager::Restore> TuningManager::RestoreLocked(ChangeRecord& r, bool force,
                                                                    bool refuse_drift) {
  Restore out;
  std::vector<Step> steps;
  for (auto it = r.knobs.rbegin(); it != r.knobs.rend(); ++it) {
    auto cur = options_.io->Read(it->knob);
    if (!cur.ok()) {
      if (absl::IsNotFound(cur.status())) {
        out.gone.push_back(absl::StrCat(it->knob, " (gone: ", cur.status().message(), ")"));
      } else {
        out.failed.push_back(std::string(cur.status().message()));
      }
      continue;
    }
    if (*cur == it->old_value) continue;
    if (*cur == it->new_value || force) {
      steps.push_back({it->knob, *cur, it->old_value});
      continue;
    }
    out.drifted.push_back(
        absl::StrCat(it->knob, " (now \"", *cur, "\", this change set \"", it->new_value, "\")"));
  }
  if (!out.drifted.empty() && refuse_drift) {
    return absl::FailedPreconditionError(absl::StrCat(
        "changed since by someone else, not overwritten: ", absl::StrJoin(out.drifted, ", "),
        "; nothing was restored (roll back with force to restore anyway)"));
  }
  // Best effort: a knob that cannot be put back does not undo the others.
  for (auto& f : RestoreSteps(*options_.io, steps)) out.failed.push_back(std::move(f));
  return out;
}

std::string TuningManager::Restore::Describe() const {
  std::vector<std::string> parts;
  if (!failed.empty()) parts.push_back("NOT restored: " + absl::StrJoin(failed, "; "));
  if (!drifted.empty()) {
    parts.push_back("left alone, changed by someone else: " + absl::StrJoin(drifted, "; "));
  }
  if (!gone.empty()) parts.push_back("gone: " + absl::StrJoin(gone, "; "));
  return parts.empty() ? "" : absl::StrCat(" (", absl::StrJoin(parts, "; "), ")");
}

void TuningManager::ExpireLocked(ChangeRecord& r, absl::Time now, const std::string& why) {
  auto restore = RestoreLocked(r, false, false);
  const Restore& out = *restore;  // never refuses: drift is left alone
  if (!out.failed.empty()) {
    const int attempt = ++expiry_attempts_[r.id];
    if (attempt < kExpiryAttempts) {
      const absl::Duration wait = options_.expiry_retry * (1 << (attempt - 1));
      retry_at_[r.id] = now + wait;
      r.Event(now, absl::StrCat(why, "; rolling back (attempt ", attempt, " of ", kExpiryAttempts,
                                ") restored what it could", out.Describe(), "; retrying in ",
                                absl::FormatDuration(wait)));
    } else {
      r.state = ChangeState::kRollbackFailed;
      r.Event(now, absl::StrCat(why, "; gave up rolling back after ", attempt, " attempts",
                                out.Describe(), "; roll back by hand (tune rollback)"));
      retry_at_.erase(r.id);
      expiry_attempts_.erase(r.id);
    }
    spdlog::error("tuning: change {}: {}", r.id, r.events.back().what);
    return;
  }
  retry_at_.erase(r.id);
  expiry_attempts_.erase(r.id);
  r.state = ChangeState::kExpired;
  r.drift.clear();
  r.Event(now, absl::StrCat(why, "; rolled back", out.Describe()));
  spdlog::warn("tuning: change {} rolled back: {}", r.id, why);
}

void TuningManager::ReconcileLocked() {
  const absl::Time now = Now();
  for (auto& r : journal_.records()) {
    if (r.state == ChangeState::kApplying) {
      const Restore out = *RestoreLocked(r, false, false);  // never refuses: drift is left alone
      // A knob holding a third value (the write under way when the agent
      // stopped, kept rounded by the kernel) keeps the change rollbackable.
      r.state = out.failed.empty() && out.drifted.empty() ? ChangeState::kRolledBack
                                                          : ChangeState::kRollbackFailed;
      r.Event(now, absl::StrCat("the agent stopped during the apply; restored at start",
                                out.Describe()));
      spdlog::warn("tuning: change {} was interrupted mid-apply: {}", r.id, r.events.back().what);
    } else if (r.state == ChangeState::kPending && r.confirm_deadline &&
               *r.confirm_deadline <= now) {
      ExpireLocked(r, now, "the confirmation deadline passed while the agent was down");
    }
  }
  CheckDriftLocked(now);
}

bool TuningManager::CheckDriftLocked(absl::Time now) {
  bool changed = false;
  for (auto& r : journal_.records()) {
    if (r.state != ChangeState::kPending && r.state != ChangeState::kConfirmed) continue;
    if (retry_at_.count(r.id)) continue;  // being rolled back: partly restored on purpose
    std::vector<Drift> drift;
    for (const auto& k : r.knobs) {
      if (OwnerLocked(k.knob) != &r) continue;  // a newer change set owns it
      auto cur = options_.io->Read(k.knob);
      const std::string observed =
          cur.ok() ? *cur : absl::StrCat("(unreadable: ", cur.status().message(), ")");
      if (cur.ok() && *cur == k.new_value) continue;
      absl::Time since = now;
      for (const auto& d : r.drift) {
        if (d.knob == k.knob && d.observed == observed) since = d.since;
      }
      if (since == now) {
        changed = true;
        r.Event(now, absl::StrCat("drift: ", k.knob, " is \"", observed, "\", this change set \"",
                                  k.new_value, "\"; reported, not fought"));
        spdlog::warn("tuning: drift on {} (change {}): now \"{}\", set \"{}\"", k.knob, r.id,
                     observed, k.new_value);
      }
      drift.push_back({k.knob, k.new_value, observed, since});
    }
    for (const auto& d : r.drift) {
      const bool still =
          std::any_of(drift.begin(), drift.end(), [&](const Drift& x) { return x.knob == d.knob; });
      if (!still) {
        changed = true;
        r.Event(now, absl::StrCat("drift cleared: ", d.knob, " is back to \"", d.expected, "\""));
      }
    }
    r.drift = std::move(drift);
  }
  next_drift_check_ = now + options_.drift_interval;
  return changed;
}

absl::StatusOr<Plan> TuningManager::PlanFor(const Intent& intent) {
  std::map<std::string, std::string> baseline;
  bool quarantined;
  {
    std::lock_guard<std::mutex> lk(mu_);
    baseline = BaselineLocked();
    quarantined = quarantine_.has_value();
  }
  NETAGENT_ASSIGN_OR_RETURN(HostSnapshot snap, options_.snapshot(SnapshotFor(intent), baseline));
  NETAGENT_ASSIGN_OR_RETURN(Plan plan, PlanIntent(intent, snap));
  if (quarantined) {
    plan.warnings.push_back(
        "applying is refused until the quarantined change journal is acknowledged (netctl tune "
        "journal)");
  }
  return plan;
}

namespace {}  // namespace

namespace {
// A change with the id asked for but another owner is not the caller's: to
// it, there is no such change (a playbook run that reused another run's id
// must neither confirm nor undo that run's change).
absl::Status CheckOwner(const ChangeRecord& r, const std::string& expected_owner) {
  // A change an older agent journaled has no owner to compare: it is taken
  // as the caller's, as before owners (refusing it would make a run's own
  // change, applied before an upgrade, look absent to its rollback).
  if (expected_owner.empty() || r.owner_unknown || r.owner == expected_owner) {
    return absl::OkStatus();
  }
  return absl::NotFoundError(
      absl::StrCat("change_id: change ", kernel::Quote(r.id), " here has another owner (",
                   r.owner.empty() ? "none" : kernel::Quote(r.owner), "): it is not the caller's"));
}
}  // namespace

absl::StatusOr<TuningManager::ApplyResult> TuningManager::Apply(
    const Intent& intent, const std::string& caller, std::optional<absl::Duration> confirm_within,
    const std::string& expected_digest, const std::string& change_id, const std::string& owner) {
  if (!change_id.empty()) NETAGENT_RETURN_IF_ERROR(ValidateChangeId(change_id));
  NETAGENT_RETURN_IF_ERROR(ValidateOwner(owner, "owner"));
  if (confirm_within &&
      (*confirm_within <= absl::ZeroDuration() || *confirm_within > options_.max_confirm_window)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "confirm_within: above 0 and at most ", absl::FormatDuration(options_.max_confirm_window)));
  }
  // Planned outside the lock (a snapshot may dump every socket): confirms and
  // deadlines are not held up, and the applier re-checks each old value anyway.
  std::map<std::string, std::string> baseline;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (quarantine_) return QuarantineRefusalLocked();
    baseline = BaselineLocked();
  }
  // Where an apply's time goes, for the log (wall time, not the injected clock).
  const absl::Time t_start = absl::Now();
  NETAGENT_ASSIGN_OR_RETURN(HostSnapshot snap, options_.snapshot(SnapshotFor(intent), baseline));
  NETAGENT_ASSIGN_OR_RETURN(Plan plan, PlanIntent(intent, snap));
  if (!plan.refusals.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(absl::StrJoin(plan.refusals, "; "), "; nothing was changed"));
  }
  const absl::Time t_planned = absl::Now();
  std::lock_guard<std::mutex> lk(mu_);
  const absl::Time t_locked = absl::Now();
  ApplyResult result;
  if (const ChangeRecord* there = change_id.empty() ? nullptr : journal_.Find(change_id)) {
    // The same owner applying again (a resumed playbook run whose apply
    // landed before netctl died): its change, as it is. Anyone else: taken.
    if (!owner.empty() && there->owner == owner && !there->owner_unknown) {
      result.plan = std::move(plan);
      result.change = *there;
      return result;
    }
    return absl::AlreadyExistsError(
        absl::StrCat("change_id: ", kernel::Quote(change_id), " is already used"));
  }
  if (!expected_digest.empty() && expected_digest != plan.Digest()) {
    return absl::AbortedError(absl::StrCat("the plan changed since it was shown (digest ",
                                           expected_digest, ", now ", plan.Digest(),
                                           "): plan again"));
  }
  if (plan.changes.empty()) {
    result.plan = std::move(plan);
    return result;
  }
  const absl::Time now = Now();
  ChangeRecord rec;
  rec.id = change_id;
  while (rec.id.empty() || journal_.Find(rec.id) != nullptr) rec.id = NewId(now);
  rec.created = now;
  rec.caller = caller;
  rec.intent = DescribeIntent(intent);
  rec.digest = plan.Digest();
  rec.owner = owner;
  std::vector<Step> steps;
  for (auto& c : plan.changes) {
    auto norm = Normalize(c.knob, c.new_value);
    if (!norm.ok()) return norm.status();
    c.new_value = *norm;
    for (const auto& r : journal_.records()) {
      if ((r.state == ChangeState::kPending || r.state == ChangeState::kRollbackFailed) &&
          Touches(r, c.knob)) {
        return absl::FailedPreconditionError(absl::StrCat(c.knob, " is held by change ", r.id, " (",
                                                          ChangeStateName(r.state),
                                                          "): confirm or roll it back first"));
      }
    }
    rec.knobs.push_back({c.knob, c.old_value, c.new_value, c.reason});
    steps.push_back({c.knob, c.old_value, c.new_value});
  }
  // On disk before the first write: a crash from here on is undone at start.
  rec.Event(now, absl::StrCat("applying for ", caller));
  journal_.records().push_back(rec);
  if (absl::Status st = SaveLocked(); !st.ok()) {
    journal_.records().pop_back();
    return absl::FailedPreconditionError(
        absl::StrCat("nothing was changed: the change journal cannot be written (", st.message(),
                     "), and a change is journaled before its first write"));
  }
  ApplyReport report;
  absl::Status st = ApplySteps(*options_.io, steps, &report);
  ChangeRecord& r = *journal_.Find(rec.id);
  const absl::Time done = Now();
  if (!st.ok()) {
    r.state = report.restore_errors.empty() ? ChangeState::kFailed : ChangeState::kRollbackFailed;
    r.Event(done, std::string(st.message()));
    (void)SaveLocked();
    spdlog::warn("tuning: change {} ({}) by {} failed: {}", r.id, r.intent, caller,
                 std::string(st.message()));
    return absl::Status(st.code(), absl::StrCat("change ", r.id, ": ", st.message()));
  }
  if (confirm_within) {
    r.state = ChangeState::kPending;
    r.confirm_deadline = done + *confirm_within;
    r.Event(done, absl::StrCat("applied; rolls back at ", TimeText(*r.confirm_deadline),
                               " unless confirmed"));
  } else {
    r.state = ChangeState::kConfirmed;
    r.Event(done, "applied and confirmed");
  }
  if (absl::Status save = SaveLocked(); !save.ok()) {
    // The journal cannot say what was done: undo it rather than keep
    // changes nobody could roll back.
    std::vector<Step> undo;
    for (auto it = steps.rbegin(); it != steps.rend(); ++it)
      undo.push_back({it->knob, it->to, it->from});
    absl::Status back = ApplySteps(*options_.io, undo, nullptr);
    r.state = back.ok() ? ChangeState::kFailed : ChangeState::kRollbackFailed;
    r.Event(Now(), absl::StrCat("journal write failed (", save.message(),
                                "); undone: ", back.ok() ? "yes" : back.message()));
    if (back.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "nothing was changed: change ", r.id, " was written, then put back because the change ",
          "journal could not record it (", save.message(), ")"));
    }
    return absl::AbortedError(absl::StrCat(
        "change ", r.id, ": values may be left changed: the change journal could not record it (",
        save.message(), ") and putting it back failed: ", back.message(),
        "; it is rollback_failed (in memory only)"));
  }
  const absl::Time t_done = absl::Now();
  spdlog::info(
      "tuning: change {} ({}) applied by {}: {} knob(s){} in {} ms (plan {}, waiting {}, journal "
      "and knobs {})",
      r.id, r.intent, caller, r.knobs.size(),
      r.confirm_deadline ? absl::StrCat(", confirm by ", TimeText(*r.confirm_deadline)) : "",
      absl::ToInt64Milliseconds(t_done - t_start), absl::ToInt64Milliseconds(t_planned - t_start),
      absl::ToInt64Milliseconds(t_locked - t_planned),
      absl::ToInt64Milliseconds(t_done - t_locked));
  result.plan = std::move(plan);
  result.change = r;
  cv_.notify_all();
  return result;
}

absl::StatusOr<ChangeOutcome> TuningManager::Confirm(const std::string& id,
                                                     const std::string& caller,
                                                     const std::string& expected_owner) {
  // Stamped where the deadline pass can see it before this call gets the
  // lock (an apply or the pass itself may hold it).
  absl::Time arrived;
  std::multimap<std::string, absl::Time>::iterator arrival;
  {
    std::lock_guard<std::mutex> a(arrivals_mu_);
    arrived = Now();
    arrival = confirms_arrived_.emplace(id, arrived);
  }
  std::lock_guard<std::mutex> lk(mu_);
  absl::Cleanup done = [&] {
    {
      std::lock_guard<std::mutex> a(arrivals_mu_);
      confirms_arrived_.erase(arrival);
    }
    cv_.notify_all();  // a deadline it held back may be due
  };
  ChangeRecord* r = journal_.Find(id);
  if (r == nullptr) return UnknownChangeLocked(id);
  NETAGENT_RETURN_IF_ERROR(CheckOwner(*r, expected_owner));
  if (r->state == ChangeState::kConfirmed) return ChangeOutcome{*r, absl::OkStatus()};
  if (r->state != ChangeState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("change ", id, " is ", ChangeStateName(r->state), ": nothing to confirm"));
  }
  const absl::Time now = Now();
  if (r->confirm_deadline && *r->confirm_deadline <= arrived) {
    ExpireLocked(*r, now, "the confirmation came after the deadline");
    absl::Status saved = SaveLocked();
    return absl::FailedPreconditionError(absl::StrCat("change ", id,
                                                      ": the deadline passed; it is ",
                                                      ChangeStateName(r->state), NotSaved(saved)));
  }
  r->state = ChangeState::kConfirmed;
  r->Event(now, absl::StrCat("confirmed by ", caller));
  // Unsaved, the confirm still holds here: rolling back what the operator
  // just confirmed would be worse than a file that is behind.
  absl::Status saved = SaveLocked();
  spdlog::info("tuning: change {} confirmed by {}{}", id, caller, NotSaved(saved));
  return ChangeOutcome{*r, saved};
}

absl::StatusOr<ChangeOutcome> TuningManager::Rollback(const std::string& id,
                                                      const std::string& caller, bool force,
                                                      const std::string& expected_owner) {
  std::lock_guard<std::mutex> lk(mu_);
  ChangeRecord* r = journal_.Find(id);
  if (r == nullptr) return UnknownChangeLocked(id);
  NETAGENT_RETURN_IF_ERROR(CheckOwner(*r, expected_owner));
  if (!Holds(r->state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("change ", id, " is ", ChangeStateName(r->state), ": nothing to roll back"));
  }
  bool after = false;
  for (const auto& other : journal_.records()) {
    if (&other == r) {
      after = true;
      continue;
    }
    if (!after || !Holds(other.state)) continue;
    for (const auto& k : r->knobs) {
      if (Touches(other, k.knob)) {
        return absl::FailedPreconditionError(absl::StrCat(k.knob, " was changed again by change ",
                                                          other.id, ": roll that back first"));
      }
    }
  }
  const absl::Time now = Now();
  NETAGENT_ASSIGN_OR_RETURN(Restore out, RestoreLocked(*r, force, /*refuse_drift=*/true));
  retry_at_.erase(r->id);
  expiry_attempts_.erase(r->id);
  if (!out.failed.empty()) {
    r->state = ChangeState::kRollbackFailed;
    r->Event(now, absl::StrCat("rollback by ", caller, " incomplete", out.Describe()));
    absl::Status saved = SaveLocked();
    return absl::AbortedError(absl::StrCat("change ", id, ": rollback incomplete", out.Describe(),
                                           "; it is rollback_failed: retry when the cause is fixed",
                                           NotSaved(saved)));
  }
  r->state = ChangeState::kRolledBack;
  r->drift.clear();
  r->Event(now, absl::StrCat("rolled back by ", caller, force ? " (forced)" : "", out.Describe()));
  absl::Status saved = SaveLocked();
  spdlog::info("tuning: change {} rolled back by {}{}", id, caller, NotSaved(saved));
  return ChangeOutcome{*r, saved};
}

std::vector<ChangeRecord> TuningManager::List(size_t limit, bool active_only) {
  std::lock_guard<std::mutex> lk(mu_);
  // A few reads: callers see drift as of now.
  if (CheckDriftLocked(Now())) (void)SaveLocked();
  std::vector<ChangeRecord> out;
  const auto& recs = journal_.records();
  for (auto it = recs.rbegin(); it != recs.rend() && out.size() < limit; ++it) {
    if (active_only && !IsActive(it->state)) continue;
    out.push_back(*it);
  }
  return out;
}

absl::StatusOr<std::vector<Tunable>> TuningManager::Tunables(const std::string& device) {
  std::map<std::string, std::string> baseline;
  std::map<std::string, BaselineValue> seen;
  {
    std::lock_guard<std::mutex> lk(mu_);
    baseline = BaselineLocked();
    seen = journal_.baseline();
  }
  SnapshotRequest req;
  req.device = device;
  req.datapath_device = device;  // its fast-path blocks, where it has a fast path
  NETAGENT_ASSIGN_OR_RETURN(HostSnapshot snap, options_.snapshot(req, baseline));
  std::vector<Tunable> out;
  for (const auto& spec : SysctlRegistry()) {
    Tunable t;
    t.knob = spec.name;
    const SysctlState& st = snap.sysctls[spec.name];
    t.value = st.value;
    t.exists = st.exists;
    t.writable = st.writable;
    if (spec.kernel_default) {
      t.kernel_default = spec.kernel_default;
      t.default_source = "kernel";
    } else if (auto it = seen.find(spec.name); it != seen.end()) {
      t.kernel_default = it->second.value;
      t.default_source = absl::StrCat("first seen ", TimeText(it->second.seen));
    }
    if (spec.kind != ValueKind::kWord) {
      t.floor = absl::StrCat(spec.floor);
      t.ceiling = absl::StrCat(spec.ceiling);
    } else if (std::string(spec.name) == "net.ipv4.tcp_congestion_control") {
      t.ceiling = absl::StrJoin(snap.available_cc, " ");
    }
    t.max_step = spec.max_step;
    t.per_netns = spec.per_netns;
    t.group = spec.group;
    t.help = spec.help;
    out.push_back(std::move(t));
  }
  if (snap.device) {
    const DeviceState& d = *snap.device;
    const std::string all = kernel::FormatCpuMask(snap.online_cpus);
    auto add = [&](std::string knob, std::string value, std::string floor, std::string ceiling,
                   std::string help) {
      Tunable t;
      t.knob = std::move(knob);
      auto canonical = Normalize(t.knob, value);  // as reads and plans show it
      t.value = canonical.ok() ? *canonical : value;
      t.exists = t.writable = true;
      t.floor = std::move(floor);
      t.ceiling = std::move(ceiling);
      t.group = "device";
      t.help = std::move(help);
      out.push_back(std::move(t));
    };
    for (const auto& q : d.queues.rx) {
      add(QueueKey(d.name, absl::StrCat("rx-", q.id), "rps_cpus"), q.rps_cpus, "0", all,
          "CPUs that process this queue's packets (RPS)");
      if (q.rps_flow_cnt) {
        add(QueueKey(d.name, absl::StrCat("rx-", q.id), "rps_flow_cnt"),
            absl::StrCat(*q.rps_flow_cnt), "0", absl::StrCat(1 << 26),
            "RFS flow table of this queue");
      }
    }
    for (const auto& q : d.queues.tx) {
      if (q.xps_cpus.empty()) continue;
      add(QueueKey(d.name, absl::StrCat("tx-", q.id), "xps_cpus"), q.xps_cpus, "0", all,
          "CPUs that transmit on this queue (XPS)");
    }
    if (d.channels.ok()) {
      const auto& c = d.channels.value;
      add(DeviceKey(d.name, "channels", "counts"), ChannelCounts(c), "",
          absl::StrCat(c.combined_max.value_or(0), " ", c.rx_max.value_or(0), " ",
                       c.tx_max.value_or(0), " ", c.other_max.value_or(0)),
          "channels: combined rx tx other (ceiling: the device's maxima)");
    }
    if (d.coalesce.ok()) {
      for (const auto& [name, v] : d.coalesce.value) {
        add(DeviceKey(d.name, "coalesce", name), absl::StrCat(v), "0", "", "interrupt coalescing");
      }
    }
    if (d.rss.ok() && !d.rss.value.indirection.empty()) {
      add(DeviceKey(d.name, "rss", "indir"), absl::StrJoin(d.rss.value.indirection, " "), "", "",
          "RSS indirection table");
    }
    for (const auto& irq : d.irqs) {
      add(IrqKey(irq.irq), irq.affinity_list, "", kernel::FormatCpuList(snap.online_cpus),
          absl::StrCat("affinity of ", irq.name));
    }
  }
  // The prefixes its fast path blocks by the agent's own rules: knobs a
  // change holds. An operator's blocks are no knobs of the agent's (they may
  // be hundreds of thousands): `datapath rules list` shows them.
  if (snap.datapath && snap.datapath->unavailable.empty()) {
    for (const auto& prefix : snap.datapath->blocked) {
      Tunable t;
      t.knob = DatapathBlockKey(snap.datapath->device, prefix);
      t.value = kBlockOn;
      t.exists = t.writable = true;
      t.kernel_default = kBlockOff;
      t.group = "datapath";
      t.help = "dropped in the fast path by the agent's own rule";
      out.push_back(std::move(t));
    }
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (CheckDriftLocked(Now())) (void)SaveLocked();
  for (auto& t : out) {
    if (const ChangeRecord* owner = OwnerLocked(t.knob)) {
      t.set_by = owner->id;
      t.drifted = std::any_of(owner->drift.begin(), owner->drift.end(),
                              [&](const Drift& d) { return d.knob == t.knob; });
    }
  }
  return out;
}

void TuningManager::Tick() {
  std::lock_guard<std::mutex> lk(mu_);
  const absl::Time now = Now();
  bool changed = false;
  for (auto& r : journal_.records()) {
    if (r.state != ChangeState::kPending || !r.confirm_deadline || *r.confirm_deadline > now)
      continue;
    if (auto it = retry_at_.find(r.id); it != retry_at_.end() && it->second > now) continue;
    if (ConfirmArrivedBefore(r.id, *r.confirm_deadline)) continue;  // it decides
    ExpireLocked(r, now, "no confirmation before the deadline");
    changed = true;
  }
  if (now >= next_drift_check_) changed |= CheckDriftLocked(now);
  if (changed || !save_error_.empty()) {
    journal_.Prune(kKeepInactive);  // no reference into the journal outlives this call
    (void)SaveLocked();             // a failure is logged once and retried here
  }
}

bool TuningManager::ConfirmArrivedBefore(const std::string& id, absl::Time deadline) {
  std::lock_guard<std::mutex> a(arrivals_mu_);
  auto [begin, end] = confirms_arrived_.equal_range(id);
  return std::any_of(begin, end, [&](const auto& e) { return e.second < deadline; });
}

absl::Time TuningManager::NextWakeLocked() {
  absl::Time wake = next_drift_check_;
  for (const auto& r : journal_.records()) {
    if (r.state == ChangeState::kPending && r.confirm_deadline &&
        !ConfirmArrivedBefore(r.id, *r.confirm_deadline)) {
      absl::Time t = *r.confirm_deadline;
      if (auto it = retry_at_.find(r.id); it != retry_at_.end()) t = std::max(t, it->second);
      wake = std::min(wake, t);
    }
  }
  return wake;
}

void TuningManager::Loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    // The journal's snapshot is replaced here, off every caller's path: the
    // lock is let go while it is written and synced.
    if (!quarantine_) {
      if (std::optional<Journal::PendingSnapshot> snapshot = journal_.StartCompaction()) {
        lk.unlock();
        const absl::Status written = snapshot->Write();
        lk.lock();
        journal_.FinishCompaction(*snapshot, written);
        if (!written.ok())
          spdlog::warn("tuning: compacting the change journal: {}", std::string(written.message()));
        continue;
      }
    }
    const absl::Time now = Now();
    const absl::Time wake = NextWakeLocked();
    if (now < wake) {
      // Waits are relative and bounded: the clock may be a test's, or step.
      cv_.wait_for(lk, absl::ToChronoNanoseconds(std::min(wake - now, kMaxSleep)));
      continue;
    }
    lk.unlock();
    Tick();
    lk.lock();
  }
}

}  // namespace netagent::tuners
