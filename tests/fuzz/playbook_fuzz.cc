// Playbook files and run files, both written by people or left behind by a
// netctl that died: the YAML playbook parser (with its expressions), and the
// run file's events folded into a run. The same bytes go to both.
#include <set>

#include "client/playbook_run.h"
#include "playbook/playbook.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  const absl::string_view text = fuzz::Text(data, size);
  if (auto p = playbook::ParsePlaybook(text, "pb.yaml"); p.ok()) {
    FUZZ_CHECK(!p->name.empty());
    FUZZ_CHECK(!p->waves.empty());
    // kinds are the intent's own field names, and only with from_finding.
    FUZZ_CHECK(p->kinds.empty() || p->from_finding);
    for (const auto& k : p->kinds) FUZZ_CHECK(playbook::IntentKinds().count(k));
    for (size_t hosts : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}}) {
      size_t sum = 0;
      for (size_t w : playbook::WaveSizes(p->waves, hosts)) {
        FUZZ_CHECK(w > 0);
        sum += w;
      }
      FUZZ_CHECK(sum == hosts);
    }
    if (p->intent) {
      for (const auto& s : p->intent->has_limits() ? p->intent->limits().settings()
                                                   : p->intent->sysctl().settings()) {
        if (!playbook::IsExpression(s.value())) continue;
        std::string why;
        (void)playbook::ResolveSetting(s.value(), p->guards, {"100", "1", "1000000", 4}, &why);
      }
    }
  }
  (void)playbook::EvaluateExpression(text, 42);
  if (auto events = client::ParseRunEvents(text, "run.jsonl"); events.ok()) {
    if (auto r = client::FoldRun(*events); r.ok()) {
      const size_t n = static_cast<size_t>(r->started.targets_size());
      for (const auto& w : r->waves)
        for (size_t h : w) FUZZ_CHECK(h < n && r->intents.count(h));
      for (const auto& set : {r->applying, r->changed, r->failed, r->rolled_back})
        for (size_t h : set) FUZZ_CHECK(h < n);
    }
  }
  // As an abort reads a damaged file: bad lines and events left out.
  size_t bad = 0, skipped = 0;
  if (auto events = client::ParseRunEvents(text, "run.jsonl", &bad); events.ok()) {
    if (auto r = client::FoldRun(*events, &skipped); r.ok()) {
      // Nothing left out: the file is whole, as the strict fold sees it.
      // (`skipped` also counts wave hosts whose HOST_MATCHED line is lost,
      // so it may exceed the events.)
      if (skipped == 0) FUZZ_CHECK(client::FoldRun(*events).ok());
      const size_t n = static_cast<size_t>(r->started.targets_size());
      for (const auto& w : r->waves)
        for (size_t h : w) FUZZ_CHECK(h < n);
      for (const auto& set : {r->applying, r->changed, r->failed, r->rolled_back, r->confirmed})
        for (size_t h : set) FUZZ_CHECK(h < n);
    }
  }
  return 0;
}
