// Rule edits as an operator sends them, one per line, batches separated by
// blank lines:
//   allow 10.0.0.0/8 [comment]     block 2001:db8::1      port 443 tcp udp syn
//   delete 3                       revision 7 (the batch's expected revision)
// Prefixes go through ParsePrefix, batches through ApplyEdits with small
// limits, and every accepted batch's map writes (BatchWrites: the spare
// rule_meta copy, the tables, dp_meta last) must leave the tables equal to a
// fresh render of the new rule set and the rule_meta copy dp_meta names
// holding it. The writes cut short (at a point the batch's length picks: an
// agent killed there) must leave dp_meta naming a copy that holds the old
// rule set or the new one, whole.
// IPv4 prefixes shorter than /12 are skipped: each costs up to 65,536
// directory slots per render, which would hold the fuzzer to a few runs a
// second (the unit tests render every length, /0 included). Only the first
// 16 batches count: every batch renders the whole rule set again, and the
// limits keep the set small, so later batches add time, not states.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "datapath/render.h"
#include "tests/fuzz/fuzz_support.h"

namespace netagent::fuzz {
namespace {

using Store = std::map<std::string, std::map<std::string, std::string>>;

bool IsArray(const std::string& map) {
  for (const datapath::TableInfo& t : datapath::RuleTables()) {
    if (t.name == map) return t.array;
  }
  return false;
}

// The maps after `writes`: ARRAY entries of zeros count as absent.
void Apply(Store& store, const std::vector<datapath::MapWrite>& writes) {
  for (const datapath::MapWrite& w : writes) {
    const bool zero = w.op == datapath::MapWrite::kPut && IsArray(w.map) &&
                      w.value.find_first_not_of('\0') == std::string::npos;
    if (w.op == datapath::MapWrite::kPut && !zero) {
      store[w.map][w.key] = w.value;
    } else {
      store[w.map].erase(w.key);
    }
  }
}

// The rule set the rule_meta copy dp_meta names holds, as an agent picking
// the device up reads it; the revision from dp_meta.
datapath::RuleSet Committed(const Store& store) {
  datapath::RuleSet out;
  auto meta_map = store.find(datapath::kDpMetaMap);
  if (meta_map == store.end()) return out;  // nothing committed yet
  auto meta = datapath::DecodeDpMeta(meta_map->second.at(datapath::U32Key(0)));
  FUZZ_CHECK(meta.ok());
  out.revision = meta->revision;
  auto records = store.find(datapath::kRuleMetaMaps[meta->rules_slot]);
  if (records == store.end()) return out;
  for (const auto& [key, value] : records->second) {
    uint32_t id = 0;
    std::memcpy(&id, key.data(), sizeof(id));
    auto rule = datapath::DecodeRuleMeta(id, value);
    FUZZ_CHECK(rule.ok());
    out.rules[id] = *rule;
  }
  return out;
}

bool SameRules(const datapath::RuleSet& a, const datapath::RuleSet& b) {
  if (a.revision != b.revision || a.rules.size() != b.rules.size()) return false;
  for (const auto& [id, r] : a.rules) {
    auto it = b.rules.find(id);
    if (it == b.rules.end() || it->second.prefix != r.prefix || it->second.comment != r.comment ||
        it->second.action != r.action || it->second.port.has_value() != r.port.has_value()) {
      return false;
    }
  }
  return true;
}

void Check(const Store& store, const datapath::RuleSet& rules) {
  const auto want = datapath::RenderTables(rules);
  for (const datapath::TableInfo& t : datapath::RuleTables()) {
    auto it = store.find(t.name);
    const std::map<std::string, std::string> empty;
    FUZZ_CHECK((it == store.end() ? empty : it->second) == want.at(t.name));
  }
  FUZZ_CHECK(SameRules(Committed(store), rules));
}

// One line into `edits`; false when it is not an edit.
bool ParseEdit(absl::string_view line, std::vector<datapath::RuleEdit>& edits, uint64_t& expected) {
  std::vector<absl::string_view> w = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (w.size() < 2) return false;
  datapath::RuleEdit e;
  if (w[0] == "revision") return absl::SimpleAtoi(w[1], &expected);
  if (w[0] == "delete") {
    e.kind = datapath::RuleEdit::kDelete;
    if (!absl::SimpleAtoi(w[1], &e.id)) return false;
  } else if (w[0] == "port") {
    datapath::PortRule p;
    uint32_t port;
    if (!absl::SimpleAtoi(w[1], &port) || port > 65535) return false;
    p.port = static_cast<uint16_t>(port);
    for (size_t i = 2; i < w.size(); ++i) {
      p.tcp |= w[i] == "tcp";
      p.udp |= w[i] == "udp";
      p.syn_guard |= w[i] == "syn";
    }
    e.rule.port = p;
  } else if (w[0] == "allow" || w[0] == "block") {
    auto prefix = datapath::ParsePrefix(w[1], "prefix");
    if (!prefix.ok() || (prefix->family == 4 && prefix->len < 12)) return false;
    e.rule.action = w[0] == "allow" ? datapath::RuleAction::kAllow : datapath::RuleAction::kBlock;
    e.rule.prefix = *prefix;
    if (w.size() > 2) e.rule.comment = std::string(w[2]);
  } else {
    return false;
  }
  edits.push_back(std::move(e));
  return true;
}

}  // namespace
}  // namespace netagent::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  datapath::RuleLimits limits;
  limits.max_batch = 8;
  limits.max_exact = 6;
  limits.max_cidr = 6;
  limits.max_rule_id = 24;
  limits.max_comment = 16;
  datapath::RuleSet rules, spare;  // the committed set; the other rule_meta copy's
  datapath::DpMeta meta;
  datapath::Cidr4Index index;
  fuzz::Store store;
  int batches = 0;
  for (absl::string_view batch : absl::StrSplit(fuzz::Text(data, size), "\n\n")) {
    if (++batches > 16) break;
    std::vector<datapath::RuleEdit> edits;
    uint64_t expected = rules.revision;
    for (absl::string_view line : absl::StrSplit(batch, '\n')) {
      fuzz::ParseEdit(line, edits, expected);
    }
    auto next = datapath::ApplyEdits(rules, expected, edits, limits);
    if (!next.ok()) continue;  // refused whole: nothing changes
    FUZZ_CHECK(next->revision == rules.revision + 1);
    datapath::Cidr4Index advanced = index;
    const std::vector<datapath::MapWrite> writes =
        datapath::BatchWrites(rules, spare, *next, meta, advanced);
    // Killed after `cut` writes: the old rule set or the new one, whole.
    const size_t cut = batch.size() % (writes.size() + 1);
    fuzz::Store killed = store;
    fuzz::Apply(killed, std::vector<datapath::MapWrite>(writes.begin(), writes.begin() + cut));
    const datapath::RuleSet found = fuzz::Committed(killed);
    FUZZ_CHECK(cut == writes.size() ? fuzz::SameRules(found, *next)
                                    : fuzz::SameRules(found, rules));
    fuzz::Apply(store, writes);
    index = std::move(advanced);
    meta.rules_slot = 1 - meta.rules_slot;
    meta.revision = next->revision;
    spare = std::move(rules);
    rules = *std::move(next);
    fuzz::Check(store, rules);
  }
  return 0;
}
