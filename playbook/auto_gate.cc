#include "playbook/auto_gate.h"

#include "absl/strings/str_cat.h"

namespace netagent::playbook {

std::optional<std::string> AutoGate::Refusal(absl::Time now) const {
  if (!stopped_.empty()) return absl::StrCat("stopped: ", stopped_);
  if (busy_) return "a change of this playbook is being verified";
  if (now < cooldown_until_) {
    return absl::StrCat("cooling down after a rollback until ",
                        absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", cooldown_until_,
                                         absl::UTCTimeZone()));
  }
  size_t recent = 0;
  for (absl::Time t : changes_)
    if (now - t < absl::Hours(1)) ++recent;
  if (recent >= max_per_hour_) {
    return absl::StrCat(recent, " change", recent == 1 ? "" : "s",
                        " in the last hour: at most ", max_per_hour_);
  }
  return std::nullopt;
}

void AutoGate::Started(absl::Time now) {
  busy_ = true;
  while (!changes_.empty() && now - changes_.front() >= absl::Hours(1)) changes_.pop_front();
  changes_.push_back(now);
}

void AutoGate::Kept() { busy_ = false; }

void AutoGate::RolledBack(absl::Time now) {
  busy_ = false;
  cooldown_until_ = now + cooldown_;
}

void AutoGate::Unchanged() {
  busy_ = false;
  if (!changes_.empty()) changes_.pop_back();  // nothing changed: it does not count
}

void AutoGate::Stop(const std::string& why) {
  busy_ = false;
  stopped_ = why;
}

}  // namespace netagent::playbook
