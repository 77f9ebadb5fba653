#include "tuners/applier.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace netagent::tuners {
namespace {

// Writes `value` and reads it back.
absl::Status WriteVerified(KnobIo& io, const std::string& knob, const std::string& value) {
  if (absl::Status st = io.Write(knob, value); !st.ok()) return st;
  auto back = io.Read(knob);
  if (!back.ok()) return back.status();
  auto want = Normalize(knob, value);
  if (*back != (want.ok() ? *want : value)) {
    return absl::DataLossError(
        absl::StrCat(knob, ": wrote \"", value, "\" but the kernel holds \"", *back, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplySteps(KnobIo& io, const std::vector<Step>& steps, ApplyReport* report) {
  ApplyReport local;
  ApplyReport& r = report ? *report : local;
  r = ApplyReport{};
  absl::Status failure;
  for (const Step& s : steps) {
    auto cur = io.Read(s.knob);
    if (!cur.ok()) {
      failure = cur.status();
      break;
    }
    if (*cur != s.from) {
      failure = absl::AbortedError(absl::StrCat(s.knob, " is now \"", *cur, "\", not \"", s.from,
                                                "\" as planned: someone changed it; plan again"));
      break;
    }
    failure = WriteVerified(io, s.knob, s.to);
    if (!failure.ok()) {
      // The write may have taken effect before failing (or the kernel kept a
      // third value): put this knob back too.
      if (auto now = io.Read(s.knob); now.ok() && *now != s.from) {
        if (absl::Status st = WriteVerified(io, s.knob, s.from); !st.ok()) {
          r.restore_errors.push_back(std::string(st.message()));
        }
      }
      break;
    }
    ++r.written;
  }
  if (failure.ok()) return failure;
  for (size_t i = r.written; i-- > 0;) {
    if (absl::Status st = WriteVerified(io, steps[i].knob, steps[i].from); st.ok()) {
      ++r.restored;
    } else {
      r.restore_errors.push_back(std::string(st.message()));
    }
  }
  std::string outcome =
      r.restore_errors.empty()
          ? absl::StrCat("; nothing changed (", r.restored, " knob", r.restored == 1 ? "" : "s",
                         " written before it restored)")
          : absl::StrCat("; RESTORE FAILED, the host is mixed: ",
                         absl::StrJoin(r.restore_errors, "; "));
  return absl::Status(failure.code(), absl::StrCat(failure.message(), outcome));
}

std::vector<std::string> RestoreSteps(KnobIo& io, const std::vector<Step>& steps) {
  std::vector<std::string> failed;
  for (const Step& s : steps) {
    auto cur = io.Read(s.knob);
    if (!cur.ok()) {
      failed.push_back(std::string(cur.status().message()));
      continue;
    }
    if (*cur != s.from) {
      failed.push_back(absl::StrCat(s.knob, " is now \"", *cur, "\", not \"", s.from, "\""));
      continue;
    }
    if (absl::Status st = WriteVerified(io, s.knob, s.to); !st.ok()) {
      failed.push_back(std::string(st.message()));
    }
  }
  return failed;
}

}  // namespace netagent::tuners
