#include "datapath/render.h"

#include <arpa/inet.h>

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"

namespace netagent::datapath {
namespace {

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}

absl::Status Bad(absl::string_view field, absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ".", name, ": ", what));
}

// Fixed records, versioned so a later agent can tell an older layout.
constexpr uint8_t kRuleMetaVersion = 1;
constexpr uint32_t kDpMetaVersion = 2;  // 1: no slot or cookie, a 128-byte note
constexpr uint8_t kKindPrefix = 1, kKindPort = 2;

struct RuleMetaRecord {
  uint8_t version;
  uint8_t kind;
  uint8_t action;
  uint8_t family;
  uint8_t plen;
  uint8_t port_flags;
  uint8_t comment_len;
  uint8_t pad0;
  uint16_t port;
  uint16_t pad1;
  uint32_t pad2;
  uint8_t addr[16];
  char comment[128];
};
static_assert(sizeof(RuleMetaRecord) == 160);

constexpr uint32_t kFAllow = 1u << 0, kFBlock = 1u << 1, kFSyn = 1u << 2, kFListedOnly = 1u << 3,
                   kFMalformed = 1u << 4, kFFragments = 1u << 5, kFAccounting = 1u << 6;

struct DpMetaRecord {
  uint32_t version;
  uint32_t requested_mode;
  uint64_t revision;
  int64_t attached_at_unix_ns;
  uint32_t flags;
  uint32_t syn_prefix4;
  uint32_t syn_prefix6;
  uint32_t sample_every;
  uint32_t sample_max;
  uint32_t clamp_mss;
  uint64_t syn_rate;
  uint64_t syn_burst;
  uint64_t new_rate;
  uint64_t new_burst;
  uint64_t netns_cookie;  // version 2 on
  uint32_t rules_slot;    // version 2 on
  uint32_t pad;
  char note[112];
};
static_assert(sizeof(DpMetaRecord) == 208);  // the size of every version: the map's value size
static_assert(sizeof(DpMetaRecord::note) == kDpMetaNoteMax + 1);

uint32_t PortFlags(const PortRule& p) {
  return (p.tcp ? NA_PORT_BLOCK_TCP : 0) | (p.udp ? NA_PORT_BLOCK_UDP : 0) |
         (p.syn_guard ? NA_PORT_SYN_GUARD : 0);
}

uint32_t HostAddr4(const IpPrefix& p) {
  uint32_t a;
  std::memcpy(&a, p.addr.data(), 4);
  return ntohl(a);
}

std::string ExactKey(const IpPrefix& p) {
  return std::string(reinterpret_cast<const char*>(p.addr.data()), p.family == 4 ? 4 : 16);
}

std::string Lpm6Key(const IpPrefix& p) {
  na_lpm6_key k{p.len, {}};
  std::memcpy(k.addr, p.addr.data(), 16);
  return Bytes(k);
}

// Exact addresses of a rule set: the rule the table should hold (allow wins).
struct ExactChoice {
  uint32_t allow = 0, block = 0;
  std::optional<na_rule> Value() const {
    if (allow) return na_rule{allow, NA_ACT_ALLOW};
    if (block) return na_rule{block, NA_ACT_BLOCK};
    return std::nullopt;
  }
};

std::map<IpPrefix, ExactChoice> ExactIndex(const RuleSet& rules) {
  std::map<IpPrefix, ExactChoice> out;
  for (const auto& [id, r] : rules.rules) {
    if (!r.prefix || !r.prefix->exact()) continue;
    (r.action == RuleAction::kAllow ? out[*r.prefix].allow : out[*r.prefix].block) = id;
  }
  return out;
}

const char* ExactMap(const IpPrefix& p) { return p.family == 4 ? "exact4" : "exact6"; }
const char* Lpm6Map(RuleAction a) { return a == RuleAction::kAllow ? "allow6_lpm" : "block6_lpm"; }
int List(RuleAction a) { return a == RuleAction::kAllow ? NA_LIST_ALLOW : NA_LIST_BLOCK; }

bool SameRule(const Rule& a, const Rule& b) {
  return a.action == b.action && a.prefix == b.prefix && a.comment == b.comment &&
         a.port.has_value() == b.port.has_value() &&
         (!a.port || (a.port->port == b.port->port && PortFlags(*a.port) == PortFlags(*b.port)));
}

// The CIDR index's deltas folded into final values: a long entry removed and
// added again in one batch must end up present.
struct Cidr4Writes {
  std::map<std::string, std::optional<std::string>> longs;
  std::map<uint32_t, na_dir4> dir;
  void Add(const Cidr4Index::Delta& d) {
    if (d.long_put) longs[Bytes(d.long_put->first)] = Bytes(d.long_put->second);
    for (const auto& [slot, v] : d.dir) dir[slot] = v;
    if (d.long_del) longs[Bytes(*d.long_del)] = std::nullopt;
  }
  // Long entries in place before the directory points at them; gone after.
  void Emit(std::vector<MapWrite>& out) const {
    for (const auto& [k, v] : longs)
      if (v) out.push_back({MapWrite::kPut, "cidr4_long", k, *v});
    for (const auto& [slot, v] : dir)
      out.push_back({MapWrite::kPut, "cidr4_dir", U32Key(slot), Bytes(v)});
    for (const auto& [k, v] : longs)
      if (!v) out.push_back({MapWrite::kDelete, "cidr4_long", k, ""});
  }
};

}  // namespace

absl::Status ValidateFeatures(const Features& f, absl::string_view field) {
  const std::string syn = absl::StrCat(field, ".syn_guard");
  if (f.syn_guard) {
    if (f.syn_rate == 0 || f.syn_rate >= (1ull << 32))
      return Bad(syn, "rate", "SYNs per second per source, 1..4294967295");
    if (f.syn_burst == 0 || f.syn_burst > 1000000000ull)
      return Bad(syn, "burst", "1..1000000000 SYNs");
  }
  if (f.syn_prefix4 < 1 || f.syn_prefix4 > 32) return Bad(syn, "prefix4", "1..32");
  if (f.syn_prefix6 < 1 || f.syn_prefix6 > 128) return Bad(syn, "prefix6", "1..128");
  if (f.new_source_rate >= (1ull << 32))
    return Bad(syn, "new_source_rate", "new sources per second, below 4294967296");
  if (f.new_source_burst > 1000000000ull) return Bad(syn, "new_source_burst", "0..1000000000");
  if ((f.new_source_rate == 0) != (f.new_source_burst == 0))
    return Bad(syn, "new_source_rate", "set with new_source_burst (both 0: no global guard)");
  if (f.sample_max_per_second > 1000000)
    return Bad(field, "sample_max_per_second", "0..1000000 per CPU");
  if (f.clamp_mss != 0 && (f.clamp_mss < 536 || f.clamp_mss > 65495))
    return Bad(field, "clamp_mss", "0 (off) or 536..65495 bytes (the IPv4 MSS; IPv6 gets 20 less)");
  return absl::OkStatus();
}

XdpSwitches SwitchesFor(const Features& f) {
  XdpSwitches s;
  s.allow_exact = s.allow_cidr = f.allowlist;
  s.block_exact = s.block_cidr = f.blocklist;
  s.ports = f.blocklist;
  s.syn_guard = f.syn_guard;
  s.global_guard = f.syn_guard && f.new_source_rate != 0;
  s.syn_ports_only = f.syn_guard && f.listed_ports_only;
  s.rule_hits = true;
  s.samples = true;
  return s;
}

na_config ConfigFor(const Features& f) {
  na_config c{};
  c.malformed_drop = f.drop_malformed;
  c.frag_drop = f.drop_fragments;
  if (f.syn_guard) {
    c.syn_rate = f.syn_rate;
    c.syn_burst = f.syn_burst;
    c.global_rate = f.new_source_rate;
    c.global_burst = f.new_source_burst;
  }
  c.syn_prefix4 = f.syn_prefix4;
  c.syn_prefix6 = f.syn_prefix6;
  c.sample_every = f.sample_every;
  c.sample_max_per_sec = f.sample_max_per_second;
  return c;
}

std::vector<MapWrite> RuleChanges(const RuleSet& from, const RuleSet& to, Cidr4Index& index) {
  std::vector<const Rule*> removed, added;
  for (const auto& [id, r] : from.rules) {
    auto it = to.rules.find(id);
    if (it == to.rules.end() || !SameRule(r, it->second)) removed.push_back(&r);
  }
  for (const auto& [id, r] : to.rules) {
    auto it = from.rules.find(id);
    if (it == from.rules.end() || !SameRule(r, it->second)) added.push_back(&r);
  }
  std::vector<MapWrite> out, data;
  Cidr4Writes cidr4;
  for (const Rule* r : added) out.push_back({MapWrite::kZero, "rule_hits", U32Key(r->id), ""});

  std::set<IpPrefix> exact_touched;
  std::set<uint16_t> ports_touched;
  auto table_change = [&](const Rule& r, bool add) {
    if (r.port) {
      ports_touched.insert(r.port->port);
      return;
    }
    const IpPrefix& p = *r.prefix;
    if (p.exact()) {
      exact_touched.insert(p);
    } else if (p.family == 6) {
      if (add) {
        data.push_back({MapWrite::kPut, Lpm6Map(r.action), Lpm6Key(p), Bytes(na_rule{r.id, 0})});
      } else {
        data.push_back({MapWrite::kDelete, Lpm6Map(r.action), Lpm6Key(p), ""});
      }
    } else {
      cidr4.Add(add ? index.Add(List(r.action), HostAddr4(p), p.len, r.id)
                    : index.Remove(List(r.action), HostAddr4(p), p.len));
    }
  };
  for (const Rule* r : removed) table_change(*r, false);
  for (const Rule* r : added) table_change(*r, true);

  if (!exact_touched.empty()) {
    const auto choice = ExactIndex(to);
    for (const IpPrefix& p : exact_touched) {
      auto it = choice.find(p);
      std::optional<na_rule> v = it == choice.end() ? std::nullopt : it->second.Value();
      if (v) {
        data.push_back({MapWrite::kPut, ExactMap(p), ExactKey(p), Bytes(*v)});
      } else {
        data.push_back({MapWrite::kDelete, ExactMap(p), ExactKey(p), ""});
      }
    }
  }
  if (!ports_touched.empty()) {
    std::map<uint16_t, na_port_rule> want;
    for (const auto& [id, r] : to.rules)
      if (r.port && ports_touched.count(r.port->port))
        want[r.port->port] = na_port_rule{id, PortFlags(*r.port)};
    for (uint16_t port : ports_touched) {
      auto it = want.find(port);
      if (it == want.end()) {
        data.push_back({MapWrite::kDelete, "ports", U32Key(port), ""});
      } else {
        data.push_back({MapWrite::kPut, "ports", U32Key(port), Bytes(it->second)});
      }
    }
  }
  cidr4.Emit(out);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<MapWrite> RuleMetaWrites(const RuleSet& from, const RuleSet& to,
                                     const std::string& map) {
  std::vector<MapWrite> out;
  for (const auto& [id, r] : from.rules) {
    auto it = to.rules.find(id);
    if (it == to.rules.end()) out.push_back({MapWrite::kDelete, map, U32Key(id), ""});
  }
  for (const auto& [id, r] : to.rules) {
    auto it = from.rules.find(id);
    if (it == from.rules.end() || !SameRule(r, it->second))
      out.push_back({MapWrite::kPut, map, U32Key(id), EncodeRuleMeta(r)});
  }
  return out;
}

std::vector<MapWrite> BatchWrites(const RuleSet& committed, const RuleSet& spare,
                                  const RuleSet& next, const DpMeta& meta, Cidr4Index& index) {
  DpMeta after = meta;
  after.revision = next.revision;
  after.rules_slot = 1 - (meta.rules_slot & 1);
  std::vector<MapWrite> out = RuleMetaWrites(spare, next, kRuleMetaMaps[after.rules_slot]);
  std::vector<MapWrite> tables = RuleChanges(committed, next, index);
  out.insert(out.end(), std::make_move_iterator(tables.begin()),
             std::make_move_iterator(tables.end()));
  out.push_back({MapWrite::kPut, kDpMetaMap, U32Key(0), EncodeDpMeta(after)});
  return out;
}

const std::vector<TableInfo>& RuleTables() {
  static const std::vector<TableInfo> t = {
      {"exact4", false},     {"exact6", false},   {"allow6_lpm", false}, {"block6_lpm", false},
      {"cidr4_long", false}, {"cidr4_dir", true}, {"ports", true}};
  return t;
}

std::map<std::string, std::map<std::string, std::string>> RenderTables(const RuleSet& rules) {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const TableInfo& t : RuleTables()) out[t.name];
  for (const auto& [p, c] : ExactIndex(rules)) {
    if (auto v = c.Value()) out[ExactMap(p)][ExactKey(p)] = Bytes(*v);  // none: a rule id 0
  }
  Cidr4Index index;
  std::set<uint32_t> slots;
  for (const auto& [id, r] : rules.rules) {
    if (r.port) {
      out["ports"][U32Key(r.port->port)] = Bytes(na_port_rule{id, PortFlags(*r.port)});
      continue;
    }
    const IpPrefix& p = *r.prefix;
    if (p.exact()) continue;
    if (p.family == 6) {
      out[Lpm6Map(r.action)][Lpm6Key(p)] = Bytes(na_rule{id, 0});
      continue;
    }
    Cidr4Index::Delta d = index.Add(List(r.action), HostAddr4(p), p.len, id);
    if (d.long_put) out["cidr4_long"][Bytes(d.long_put->first)] = Bytes(d.long_put->second);
    for (const auto& [slot, v] : d.dir) slots.insert(slot);
  }
  for (uint32_t slot : slots) out["cidr4_dir"][U32Key(slot)] = Bytes(index.Dir(slot));
  return out;
}

size_t RuleMetaSize() { return sizeof(RuleMetaRecord); }
size_t DpMetaSize() { return sizeof(DpMetaRecord); }

std::string EncodeRuleMeta(const Rule& r) {
  RuleMetaRecord m{};
  m.version = kRuleMetaVersion;
  m.action = r.action == RuleAction::kAllow ? NA_ACT_ALLOW : NA_ACT_BLOCK;
  if (r.prefix) {
    m.kind = kKindPrefix;
    m.family = static_cast<uint8_t>(r.prefix->family);
    m.plen = r.prefix->len;
    std::memcpy(m.addr, r.prefix->addr.data(), 16);
  } else if (r.port) {
    m.kind = kKindPort;
    m.port = r.port->port;
    m.port_flags = static_cast<uint8_t>(PortFlags(*r.port));
  }
  m.comment_len = static_cast<uint8_t>(std::min(r.comment.size(), sizeof(m.comment)));
  std::memcpy(m.comment, r.comment.data(), m.comment_len);
  return Bytes(m);
}

absl::StatusOr<Rule> DecodeRuleMeta(uint32_t id, const std::string& value) {
  RuleMetaRecord m;
  if (value.size() != sizeof(m))
    return absl::DataLossError(absl::StrCat("rule_meta ", id, ": ", value.size(), " bytes"));
  std::memcpy(&m, value.data(), sizeof(m));
  if (m.version != kRuleMetaVersion)
    return absl::DataLossError(absl::StrCat("rule_meta ", id, ": record version ", m.version));
  if (id == 0) return absl::DataLossError("rule_meta 0: rule ids start at 1");
  Rule r;
  r.id = id;
  r.action = m.action == NA_ACT_ALLOW ? RuleAction::kAllow : RuleAction::kBlock;
  if (m.kind == kKindPrefix && (m.family == 4 || m.family == 6) &&
      m.plen <= (m.family == 4 ? 32 : 128)) {
    IpPrefix p;
    p.family = m.family;
    p.len = m.plen;
    std::memcpy(p.addr.data(), m.addr, 16);
    r.prefix = p;
  } else if (m.kind == kKindPort && m.port != 0) {
    r.port =
        PortRule{m.port, (m.port_flags & NA_PORT_BLOCK_TCP) != 0,
                 (m.port_flags & NA_PORT_BLOCK_UDP) != 0, (m.port_flags & NA_PORT_SYN_GUARD) != 0};
  } else {
    return absl::DataLossError(absl::StrCat("rule_meta ", id, ": neither a prefix nor a port"));
  }
  r.comment.assign(m.comment, std::min<size_t>(m.comment_len, sizeof(m.comment)));
  return r;
}

std::string EncodeDpMeta(const DpMeta& d) {
  DpMetaRecord m{};
  const Features& f = d.features;
  m.version = kDpMetaVersion;
  m.requested_mode = static_cast<uint32_t>(d.requested_mode);
  m.revision = d.revision;
  m.attached_at_unix_ns = d.attached_at_unix_ns;
  m.flags = (f.allowlist ? kFAllow : 0) | (f.blocklist ? kFBlock : 0) | (f.syn_guard ? kFSyn : 0) |
            (f.listed_ports_only ? kFListedOnly : 0) | (f.drop_malformed ? kFMalformed : 0) |
            (f.drop_fragments ? kFFragments : 0) | (f.class_accounting ? kFAccounting : 0);
  m.syn_prefix4 = f.syn_prefix4;
  m.syn_prefix6 = f.syn_prefix6;
  m.sample_every = f.sample_every;
  m.sample_max = f.sample_max_per_second;
  m.clamp_mss = f.clamp_mss;
  m.syn_rate = f.syn_rate;
  m.syn_burst = f.syn_burst;
  m.new_rate = f.new_source_rate;
  m.new_burst = f.new_source_burst;
  m.netns_cookie = d.netns_cookie;
  m.rules_slot = d.rules_slot & 1;
  std::memcpy(m.note, d.note.data(), std::min(d.note.size(), kDpMetaNoteMax));
  return Bytes(m);
}

absl::StatusOr<DpMeta> DecodeDpMeta(const std::string& value) {
  DpMetaRecord m;
  if (value.size() != sizeof(m))
    return absl::DataLossError(absl::StrCat("dp_meta: ", value.size(), " bytes"));
  std::memcpy(&m, value.data(), sizeof(m));
  if (m.version != kDpMetaVersion && m.version != 1)
    return absl::DataLossError(absl::StrCat("dp_meta: record version ", m.version));
  DpMeta d;
  if (m.version == 1) {
    // One rule_meta copy, no cookie; the note ran over the new fields.
    const char* note = reinterpret_cast<const char*>(&m.netns_cookie);
    d.note.assign(note, strnlen(note, 127));
  } else {
    if (m.rules_slot > 1)
      return absl::DataLossError(absl::StrCat("dp_meta: rules slot ", m.rules_slot));
    d.rules_slot = m.rules_slot;
    d.netns_cookie = m.netns_cookie;
    // At most what EncodeDpMeta writes: a record without its NUL must not
    // decode to a note that re-encodes to something else.
    d.note.assign(m.note, strnlen(m.note, kDpMetaNoteMax));
  }
  Features& f = d.features;
  d.revision = m.revision;
  d.attached_at_unix_ns = m.attached_at_unix_ns;
  d.requested_mode = static_cast<AttachMode>(m.requested_mode);
  f.allowlist = m.flags & kFAllow;
  f.blocklist = m.flags & kFBlock;
  f.syn_guard = m.flags & kFSyn;
  f.listed_ports_only = m.flags & kFListedOnly;
  f.drop_malformed = m.flags & kFMalformed;
  f.drop_fragments = m.flags & kFFragments;
  f.class_accounting = m.flags & kFAccounting;
  f.syn_prefix4 = m.syn_prefix4;
  f.syn_prefix6 = m.syn_prefix6;
  f.sample_every = m.sample_every;
  f.sample_max_per_second = m.sample_max;
  f.clamp_mss = m.clamp_mss;
  f.syn_rate = m.syn_rate;
  f.syn_burst = m.syn_burst;
  f.new_source_rate = m.new_rate;
  f.new_source_burst = m.new_burst;
  return d;
}

}  // namespace netagent::datapath
