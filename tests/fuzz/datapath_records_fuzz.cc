// The records the agent pins beside the fast path's maps and reads back after
// a restart: dp_meta (the first 208 bytes) and rule_meta records (160 bytes
// each, keyed by rule id), then the tables repaired from the rules, as
// DatapathManager's pick-up does. A record that decodes encodes to one that
// decodes to the same thing. IPv4 prefixes shorter than /12 are decoded but
// not rendered: each costs up to 65,536 directory slots, which would hold the
// fuzzer to a few runs a second (the unit tests render every length, /0 included).
#include <cstring>

#include "datapath/render.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  absl::string_view in = fuzz::Text(data, size);
  const size_t dp = std::min(in.size(), datapath::DpMetaSize());
  if (auto meta = datapath::DecodeDpMeta(std::string(in.substr(0, dp))); meta.ok()) {
    auto again = datapath::DecodeDpMeta(datapath::EncodeDpMeta(*meta));
    // (A version 1 record's note may be longer than a record holds now.)
    FUZZ_CHECK(again.ok() && again->note == meta->note.substr(0, datapath::kDpMetaNoteMax) &&
               again->revision == meta->revision && again->rules_slot == meta->rules_slot &&
               again->netns_cookie == meta->netns_cookie);
    (void)datapath::ValidateFeatures(meta->features, "features");
  }
  in.remove_prefix(dp);

  datapath::RuleSet rules;
  for (uint32_t id = 1; !in.empty() && id <= 64; ++id) {
    const size_t n = std::min(in.size(), datapath::RuleMetaSize());
    auto rule = datapath::DecodeRuleMeta(id, std::string(in.substr(0, n)));
    in.remove_prefix(n);
    if (!rule.ok()) continue;
    auto again = datapath::DecodeRuleMeta(id, datapath::EncodeRuleMeta(*rule));
    FUZZ_CHECK(again.ok() && again->prefix == rule->prefix && again->comment == rule->comment &&
               again->action == rule->action && again->port.has_value() == rule->port.has_value());
    if (rule->prefix && rule->prefix->family == 4 && rule->prefix->len < 12) continue;
    rules.rules[id] = *rule;
  }
  (void)datapath::RenderTables(rules);
  return 0;
}
