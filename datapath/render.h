// What the fast path's maps should hold, as pure functions of the operator's
// choices: the features asked for at attach (-> const volatile switches and
// the na_config map), the rule set (-> the address, port and CIDR tables), and
// the two records the agent keeps beside the program's maps in bpffs so that
// a restarted agent knows what it attached and which rules (ids, comments,
// revision) stand behind the table entries: rule_meta and dp_meta.
//
// Map writes are bytes (key, value) per map name; datapath/bpf_map applies
// them with an undo log. Keeping this layer free of fds makes the mapping from
// rules to entries testable without a kernel.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "datapath/cidr4_index.h"
#include "datapath/loader.h"
#include "datapath/rules.h"

namespace netagent::datapath {

// What Attach asks for. Defaults: allow and block lists on, nothing else.
struct Features {
  bool allowlist = true;
  bool blocklist = true;
  bool syn_guard = false;
  uint64_t syn_rate = 0, syn_burst = 0;  // SYNs per second per source prefix; bucket size
  uint32_t syn_prefix4 = 32, syn_prefix6 = 128;
  uint64_t new_source_rate = 0, new_source_burst = 0;  // 0, 0: no global guard
  bool listed_ports_only = false;
  bool drop_malformed = false;
  bool drop_fragments = false;
  uint32_t sample_every = 0, sample_max_per_second = 0;
  uint32_t clamp_mss = 0;  // TC: 0 off
  bool class_accounting = false;
};

// INVALID_ARGUMENT naming the field under `field` ("features.syn_guard.rate").
absl::Status ValidateFeatures(const Features& f, absl::string_view field);
XdpSwitches SwitchesFor(const Features& f);
na_config ConfigFor(const Features& f);

// One write to a map. kDelete on an ARRAY map writes zeros; kZero writes
// zeros of the whole value (every CPU's for per-CPU maps).
struct MapWrite {
  enum Op { kPut, kDelete, kZero } op = kPut;
  std::string map;
  std::string key;
  std::string value;  // kPut only
};

// The data-table writes that turn the maps of `from` into those of `to`
// (rule_hits of new ids zeroed; rule_meta not included). `index` is the IPv4
// CIDR index of `from` and is advanced to `to`. Order: long CIDR entries
// before their directory slots, removals after.
std::vector<MapWrite> RuleChanges(const RuleSet& from, const RuleSet& to, Cidr4Index& index);

// The rule_meta writes that turn `map`, holding `from`, into `to`.
std::vector<MapWrite> RuleMetaWrites(const RuleSet& from, const RuleSet& to,
                                     const std::string& map);

// Everything the data tables should hold for `rules`, per map name, key ->
// value (ARRAY maps: only the non-zero entries). Used to repair the maps from
// rule_meta when an agent picks a device up.
std::map<std::string, std::map<std::string, std::string>> RenderTables(const RuleSet& rules);
// The maps RenderTables covers, with their kind.
struct TableInfo {
  const char* name;
  bool array;  // ARRAY: absent entries are zero
};
const std::vector<TableInfo>& RuleTables();

// rule_meta: key u32 rule id, value a fixed record of the rule. It is kept
// twice; dp_meta.rules_slot names the copy that holds the committed rule set,
// and the other (the spare) is where the next batch is written.
inline constexpr char kRuleMetaMap[] = "rule_meta";
inline constexpr const char* kRuleMetaMaps[2] = {kRuleMetaMap, "rule_meta_1"};
inline constexpr char kDpMetaMap[] = "dp_meta";
std::string EncodeRuleMeta(const Rule& r);
absl::StatusOr<Rule> DecodeRuleMeta(uint32_t id, const std::string& value);
size_t RuleMetaSize();

// dp_meta: one record (key u32 0) with the attach request, the revision and
// the rule_meta slot in force. Written in one map update, it is the commit
// point of a rule batch.
struct DpMeta {
  uint64_t revision = 0;
  int64_t attached_at_unix_ns = 0;
  AttachMode requested_mode = AttachMode::kAuto;
  Features features;
  uint32_t rules_slot = 0;    // 0 or 1: kRuleMetaMaps[rules_slot] is in force
  uint64_t netns_cookie = 0;  // of the namespace attached in; 0: unknown (older records)
  std::string note;           // at most kDpMetaNoteMax bytes kept
};
inline constexpr size_t kDpMetaNoteMax = 111;
std::string EncodeDpMeta(const DpMeta& m);
absl::StatusOr<DpMeta> DecodeDpMeta(const std::string& value);
size_t DpMetaSize();

// The writes of one rule batch, in the order they must be applied: the spare
// rule_meta copy (which holds `spare`) made to hold `next`; the data tables
// from `committed` to `next` (`index` advanced); then dp_meta with `meta`,
// next's revision and the slot switched to the spare. Killed before that last
// write, an agent leaves `committed` in force (the tables are repaired from
// it at pick-up); after it, `next`.
std::vector<MapWrite> BatchWrites(const RuleSet& committed, const RuleSet& spare,
                                  const RuleSet& next, const DpMeta& meta, Cidr4Index& index);

inline std::string U32Key(uint32_t v) { return std::string(reinterpret_cast<char*>(&v), 4); }

}  // namespace netagent::datapath
