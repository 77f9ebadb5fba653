#include "datapath/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "datapath/decode.h"

namespace netagent::datapath {
namespace {

using ::testing::HasSubstr;

// The maps as RuleChanges leaves them: ARRAY entries of zeros count as absent.
using Store = std::map<std::string, std::map<std::string, std::string>>;

bool IsArray(const std::string& map) {
  for (const TableInfo& t : RuleTables())
    if (t.name == map) return t.array;
  return false;
}

void Apply(Store& s, const std::vector<MapWrite>& writes) {
  for (const MapWrite& w : writes) {
    const bool zero = w.op == MapWrite::kPut && IsArray(w.map) &&
                      w.value.find_first_not_of('\0') == std::string::npos;
    if (w.op == MapWrite::kPut && !zero) {
      s[w.map][w.key] = w.value;
    } else {
      s[w.map].erase(w.key);
    }
  }
}

Rule PrefixRule(RuleAction a, const std::string& p) {
  Rule r;
  r.action = a;
  r.prefix = *ParsePrefix(p, "p");
  return r;
}

RuleEdit Add(Rule r) {
  RuleEdit e;
  e.rule = std::move(r);
  return e;
}

RuleEdit Del(uint32_t id) {
  RuleEdit e;
  e.kind = RuleEdit::kDelete;
  e.id = id;
  return e;
}

// The rules a restarted agent would read: the rule_meta copy dp_meta names.
RuleSet RecordedRules(const Store& store) {
  RuleSet out;
  auto dp = store.find(kDpMetaMap);
  if (dp == store.end() || dp->second.empty()) return out;
  auto meta = DecodeDpMeta(dp->second.at(U32Key(0)));
  EXPECT_TRUE(meta.ok()) << meta.status();
  out.revision = meta->revision;
  auto copy = store.find(kRuleMetaMaps[meta->rules_slot]);
  if (copy == store.end()) return out;
  for (const auto& [key, value] : copy->second) {
    uint32_t id;
    std::memcpy(&id, key.data(), 4);
    auto r = DecodeRuleMeta(id, value);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) out.rules[id] = *r;
  }
  return out;
}

bool SameRules(const RuleSet& a, const RuleSet& b) {
  if (a.revision != b.revision || a.rules.size() != b.rules.size()) return false;
  for (const auto& [id, r] : a.rules) {
    auto it = b.rules.find(id);
    if (it == b.rules.end() || it->second.prefix != r.prefix || it->second.comment != r.comment ||
        it->second.action != r.action || it->second.port.has_value() != r.port.has_value())
      return false;
  }
  return true;
}

// The maps of one device as the manager keeps them: the rules in force, the
// spare rule_meta copy one batch behind, dp_meta and the CIDR index.
struct Device {
  Store store;
  RuleSet rules, spare;
  DpMeta meta;
  Cidr4Index index;

  Device() { Apply(store, {{MapWrite::kPut, kDpMetaMap, U32Key(0), EncodeDpMeta(meta)}}); }
  void Batch(const RuleSet& next) {
    Apply(store, BatchWrites(rules, spare, next, meta, index));
    spare = std::move(rules);
    rules = next;
    meta.revision = next.revision;
    meta.rules_slot ^= 1;
  }
};

// After every batch, the tables equal a fresh render of the rule set and the
// rule_meta copy in force holds exactly the rules.
void Check(const Store& store, const RuleSet& rules, const std::string& when) {
  const auto want = RenderTables(rules);
  for (const TableInfo& t : RuleTables()) {
    auto it = store.find(t.name);
    const std::map<std::string, std::string> empty;
    EXPECT_EQ(it == store.end() ? empty : it->second, want.at(t.name)) << t.name << " " << when;
  }
  EXPECT_TRUE(SameRules(RecordedRules(store), rules)) << when;
}

TEST(RuleChanges, AllowBeatsBlockOnTheSameAddressAndDeletionRestoresTheBlock) {
  Device dev;
  Store& store = dev.store;
  const RuleSet& rules = dev.rules;
  auto step = [&](std::vector<RuleEdit> edits) {
    auto next = ApplyEdits(rules, rules.revision, edits, RuleLimits{});
    ASSERT_TRUE(next.ok()) << next.status();
    dev.Batch(*next);
  };
  step({Add(PrefixRule(RuleAction::kBlock, "192.0.2.7"))});
  step({Add(PrefixRule(RuleAction::kAllow, "192.0.2.7"))});
  const std::string key("\xc0\x00\x02\x07", 4);
  na_rule v;
  std::memcpy(&v, store["exact4"].at(key).data(), sizeof(v));
  EXPECT_EQ(v.action, static_cast<uint32_t>(NA_ACT_ALLOW));
  EXPECT_EQ(v.rule_id, 2u);
  step({Del(2)});
  std::memcpy(&v, store["exact4"].at(key).data(), sizeof(v));
  EXPECT_EQ(v.action, static_cast<uint32_t>(NA_ACT_BLOCK));
  EXPECT_EQ(v.rule_id, 1u);
  step({Del(1)});
  EXPECT_TRUE(store["exact4"].empty());
  Check(store, rules, "end");
}

TEST(RuleChanges, DeletingAndAddingTheSamePrefixInOneBatchLeavesItInPlace) {
  Device dev;
  const RuleSet& rules = dev.rules;
  for (const char* p : {"10.1.2.0/24", "2001:db8::/48", "10.0.0.0/8"}) {
    auto next = ApplyEdits(rules, rules.revision, {Add(PrefixRule(RuleAction::kBlock, p))}, {});
    ASSERT_TRUE(next.ok());
    dev.Batch(*next);
    auto again =
        ApplyEdits(rules, rules.revision,
                   {Del(next->rules.rbegin()->first), Add(PrefixRule(RuleAction::kBlock, p))}, {});
    ASSERT_TRUE(again.ok()) << again.status();
    dev.Batch(*again);
    Check(dev.store, rules, p);
  }
}

// An agent killed after any write of a batch: a new agent reads the rules in
// force from the copy dp_meta names, and they are the batch's whole before or
// whole after -- before until the last write (dp_meta), after it.
TEST(BatchWrites, CutShortAnywhereTheRecordsHoldTheOldOrTheNewRulesWhole) {
  Device dev;
  auto block = [](const char* p, const char* c) {
    Rule r = PrefixRule(RuleAction::kBlock, p);
    r.comment = c;
    return r;
  };
  auto first = ApplyEdits(dev.rules, 0,
                          {Add(block("10.250.0.2", "peer")), Add(block("10.9.0.0/16", "x")),
                           Add(block("2001:db8::1", "y"))},
                          {});
  ASSERT_TRUE(first.ok());
  dev.Batch(*first);
  // The reported case: the single address replaced by its /24, and more.
  auto next = ApplyEdits(
      dev.rules, dev.rules.revision,
      {Del(1), Add(block("10.250.0.0/24", "peer net")), Del(3), Add(block("10.9.8.0/24", "z"))},
      {});
  ASSERT_TRUE(next.ok());
  Cidr4Index index = dev.index;
  const std::vector<MapWrite> writes = BatchWrites(dev.rules, dev.spare, *next, dev.meta, index);
  ASSERT_GT(writes.size(), 4u);
  EXPECT_EQ(writes.back().map, kDpMetaMap);
  for (size_t cut = 0; cut <= writes.size(); ++cut) {
    Store store = dev.store;
    Apply(store, std::vector<MapWrite>(writes.begin(), writes.begin() + cut));
    const RuleSet& want = cut < writes.size() ? dev.rules : *next;
    EXPECT_TRUE(SameRules(RecordedRules(store), want)) << "cut after " << cut << " writes";
  }
}

// Random batches of adds and deletes over overlapping prefixes of both
// families, exact addresses in both lists, and port rules: the incremental
// writes always equal a render from scratch.
TEST(RuleChanges, IncrementalWritesEqualAFreshRenderOverRandomBatches) {
  std::mt19937 rng(7);
  RuleSet rules;
  auto random_rule = [&] {
    Rule r;
    r.action = rng() % 3 == 0 ? RuleAction::kAllow : RuleAction::kBlock;
    r.comment = absl::StrCat("c", rng() % 5);
    switch (rng() % 4) {
      case 0: {  // IPv4 in a small space so prefixes overlap
        const uint32_t len = rng() % 33;
        uint32_t a = 0x0a000000u | (rng() & 0x0003ffffu);
        a &= len == 0 ? 0 : ~0u << (32 - len);
        IpPrefix p;
        p.family = 4;
        p.len = static_cast<uint8_t>(len);
        const uint32_t be = htonl(a);
        std::memcpy(p.addr.data(), &be, 4);
        r.prefix = p;
        break;
      }
      case 1:
        r.prefix = *ParsePrefix(absl::StrCat("10.0.0.", rng() % 8), "p");
        break;
      case 2:
        r.prefix =
            *ParsePrefix(absl::StrCat("2001:db8:", rng() % 4, "::", rng() % 2 ? "/64" : "1"), "p");
        break;
      default:
        r.action = RuleAction::kBlock;
        r.port = PortRule{static_cast<uint16_t>(1 + rng() % 6), rng() % 2 == 0, true, false};
    }
    return r;
  };
  Device dev;
  for (int batch = 0; batch < 300; ++batch) {
    std::vector<RuleEdit> edits;
    std::vector<uint32_t> ids;
    for (const auto& [id, r] : rules.rules) ids.push_back(id);
    const int n = 1 + rng() % 6;
    for (int i = 0; i < n; ++i) {
      if (!ids.empty() && rng() % 3 == 0) {
        const size_t k = rng() % ids.size();
        edits.push_back(Del(ids[k]));
        ids.erase(ids.begin() + k);
      } else {
        edits.push_back(Add(random_rule()));
      }
    }
    auto next = ApplyEdits(rules, rules.revision, edits, RuleLimits{});
    if (!next.ok()) continue;  // a duplicate in the batch: refused whole
    dev.Batch(*next);
    rules = *next;
    Check(dev.store, rules, absl::StrCat("batch ", batch));
    if (HasFailure()) return;
  }
  EXPECT_GT(rules.rules.size(), 10u);
}

TEST(Records, RuleAndAttachRecordsRoundTrip) {
  Rule r = PrefixRule(RuleAction::kAllow, "2001:db8::/32");
  r.id = 9;
  r.comment = std::string(128, 'x');
  auto back = DecodeRuleMeta(9, EncodeRuleMeta(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->action, RuleAction::kAllow);
  EXPECT_EQ(back->prefix, r.prefix);
  EXPECT_EQ(back->comment, r.comment);
  Rule port;
  port.port = PortRule{443, true, false, true};
  back = DecodeRuleMeta(3, EncodeRuleMeta(port));
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->port.has_value());
  EXPECT_EQ(back->port->port, 443);
  EXPECT_TRUE(back->port->tcp);
  EXPECT_FALSE(back->port->udp);
  EXPECT_TRUE(back->port->syn_guard);
  EXPECT_EQ(DecodeRuleMeta(1, "short").status().code(), absl::StatusCode::kDataLoss);

  DpMeta m;
  m.revision = 42;
  m.attached_at_unix_ns = 1234567890123;
  m.requested_mode = AttachMode::kGeneric;
  m.features.syn_guard = true;
  m.features.syn_rate = 100;
  m.features.syn_burst = 200;
  m.features.syn_prefix4 = 24;
  m.features.new_source_rate = 5;
  m.features.new_source_burst = 10;
  m.features.drop_fragments = true;
  m.features.sample_every = 100;
  m.note = "native XDP refused";
  m.rules_slot = 1;
  m.netns_cookie = 0x1234567890;
  auto d = DecodeDpMeta(EncodeDpMeta(m));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->revision, 42u);
  EXPECT_EQ(d->attached_at_unix_ns, 1234567890123);
  EXPECT_EQ(d->requested_mode, AttachMode::kGeneric);
  EXPECT_TRUE(d->features.syn_guard);
  EXPECT_EQ(d->features.syn_prefix4, 24u);
  EXPECT_EQ(d->features.new_source_burst, 10u);
  EXPECT_TRUE(d->features.drop_fragments);
  EXPECT_FALSE(d->features.drop_malformed);
  EXPECT_EQ(d->note, "native XDP refused");
  EXPECT_EQ(d->rules_slot, 1u);
  EXPECT_EQ(d->netns_cookie, 0x1234567890u);
  // A record an older agent wrote (version 1: no slot or cookie; the note ran
  // on where they are now) reads as slot 0, cookie unknown.
  std::string v1 = EncodeDpMeta(m);
  const uint32_t one = 1;
  std::memcpy(v1.data(), &one, 4);
  const std::string note = "written by version 1";
  std::memset(v1.data() + 80, 0, 128);
  std::memcpy(v1.data() + 80, note.data(), note.size());
  auto old = DecodeDpMeta(v1);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->rules_slot, 0u);
  EXPECT_EQ(old->netns_cookie, 0u);
  EXPECT_EQ(old->note, note);
  EXPECT_EQ(old->revision, 42u);
}

TEST(Records, AnAttachRecordWithoutItsNulKeepsTheNoteEncodingCanHold) {
  DpMeta m;
  m.note = "x";
  std::string record = EncodeDpMeta(m);
  const size_t note = record.size() - (kDpMetaNoteMax + 1);
  record.replace(note, kDpMetaNoteMax + 1, std::string(kDpMetaNoteMax + 1, 'n'));  // no NUL
  auto d = DecodeDpMeta(record);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->note, std::string(kDpMetaNoteMax, 'n'));
  auto again = DecodeDpMeta(EncodeDpMeta(*d));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->note, d->note);
  // A version 1 record (a 128-byte note, over what are now the slot and the
  // cookie) without its NUL: 127 bytes read, the first 111 written back.
  uint32_t v1 = 1;
  record.replace(0, 4, reinterpret_cast<const char*>(&v1), 4);
  record.replace(record.size() - 128, 128, std::string(128, 'o'));
  auto old = DecodeDpMeta(record);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->note, std::string(127, 'o'));
  EXPECT_EQ(DecodeDpMeta(EncodeDpMeta(*old))->note, std::string(kDpMetaNoteMax, 'o'));
}

// Rule ids start at 1: 0 is "none" in the exact tables. A record under key 0
// (a damaged rule_meta map) is refused like any unreadable record, and a rule
// set holding one renders no table entry from an empty choice.
TEST(Records, RuleIdZeroIsRefusedAndRendersNothing) {
  Rule r = PrefixRule(RuleAction::kBlock, "192.0.2.7");
  EXPECT_EQ(DecodeRuleMeta(0, EncodeRuleMeta(r)).status().code(), absl::StatusCode::kDataLoss);
  RuleSet rules;
  rules.rules[0] = r;
  const auto tables = RenderTables(rules);
  EXPECT_TRUE(tables.at("exact4").empty());
}

TEST(Features, BadValuesAreRefusedNamingTheField) {
  auto err = [](Features f) { return std::string(ValidateFeatures(f, "features").message()); };
  Features ok;
  EXPECT_TRUE(ValidateFeatures(ok, "features").ok());
  Features f;
  f.syn_guard = true;
  EXPECT_THAT(err(f), HasSubstr("features.syn_guard.rate"));
  f.syn_rate = 10;
  EXPECT_THAT(err(f), HasSubstr("features.syn_guard.burst"));
  f.syn_burst = 10;
  EXPECT_TRUE(ValidateFeatures(f, "features").ok());
  f.syn_prefix4 = 33;
  EXPECT_THAT(err(f), HasSubstr("features.syn_guard.prefix4"));
  f.syn_prefix4 = 24;
  f.new_source_rate = 5;
  EXPECT_THAT(err(f), HasSubstr("features.syn_guard.new_source_rate"));
  f.new_source_burst = 5;
  f.clamp_mss = 40;
  EXPECT_THAT(err(f), HasSubstr("features.clamp_mss"));
  f.clamp_mss = 1400;
  EXPECT_TRUE(ValidateFeatures(f, "features").ok());

  const na_config c = ConfigFor(f);
  EXPECT_EQ(c.syn_rate, 10u);
  EXPECT_EQ(c.global_rate, 5u);
  EXPECT_EQ(c.syn_prefix4, 24u);
  const XdpSwitches s = SwitchesFor(f);
  EXPECT_TRUE(s.syn_guard);
  EXPECT_TRUE(s.global_guard);
  f.allowlist = false;
  EXPECT_FALSE(SwitchesFor(f).allow_exact);
  EXPECT_FALSE(SwitchesFor(f).allow_cidr);
}

std::string Frame(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

TEST(Decode, SummariesOfEveryLayerAndOfBytesCutShort) {
  const std::string eth = Frame({2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2});
  // IPv4 TCP SYN 192.0.2.7:40000 > 10.0.0.1:443 behind one VLAN tag.
  std::string v4 =
      eth + Frame({0x81, 0x00, 0x00, 0x64, 0x08, 0x00}) +
      Frame({0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 7, 10, 0, 0, 1}) +
      Frame({0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0});
  auto d = DecodePacket(reinterpret_cast<const uint8_t*>(v4.data()), v4.size());
  EXPECT_EQ(d.summary, "vlan 100 TCP 192.0.2.7:40000 > 10.0.0.1:443 SYN");
  EXPECT_EQ(FormatPrefix(*d.src), "192.0.2.7");
  EXPECT_EQ(d.dport, 443);
  // Cut inside the TCP header: still says what it can.
  d = DecodePacket(reinterpret_cast<const uint8_t*>(v4.data()), 18 + 20 + 4);
  EXPECT_EQ(d.summary, "vlan 100 TCP 192.0.2.7:40000 > 10.0.0.1:443");
  d = DecodePacket(reinterpret_cast<const uint8_t*>(v4.data()), 18 + 10);
  EXPECT_EQ(d.summary, "vlan 100 malformed IPv4 header");
  EXPECT_FALSE(d.src.has_value());

  // IPv6 UDP behind a hop-by-hop header.
  std::string v6 = eth + Frame({0x86, 0xdd}) +
                   Frame({0x60, 0, 0, 0, 0, 16, 0, 64, 0x20, 0x01, 0x0d, 0xb8, 0,    0,
                          0,    0, 0, 0, 0, 0,  0, 0,  0,    1,    0x20, 0x01, 0x0d, 0xb8,
                          0,    0, 0, 0, 0, 0,  0, 0,  0,    0,    0,    2}) +
                   Frame({17, 0, 1, 4, 0, 0, 0, 0}) + Frame({0, 53, 0, 53, 0, 8, 0, 0});
  d = DecodePacket(reinterpret_cast<const uint8_t*>(v6.data()), v6.size());
  EXPECT_EQ(d.summary, "UDP [2001:db8::1]:53 > [2001:db8::2]:53");

  std::string arp = eth + Frame({0x08, 0x06, 0, 1});
  EXPECT_EQ(DecodePacket(reinterpret_cast<const uint8_t*>(arp.data()), arp.size()).summary,
            "non-IP ethertype 0x0806 (ARP)");
  EXPECT_EQ(DecodePacket(reinterpret_cast<const uint8_t*>(arp.data()), 5).summary,
            "truncated Ethernet header (5 bytes)");
  // Any bytes at all: no crash, some words.
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (junk.size() > 13 && rng() % 2) {
      junk[12] = rng() % 2 ? '\x08' : '\x86';
      junk[13] = junk[12] == '\x08' ? '\x00' : '\xdd';
    }
    EXPECT_FALSE(
        DecodePacket(reinterpret_cast<const uint8_t*>(junk.data()), junk.size()).summary.empty());
  }
}

}  // namespace
}  // namespace netagent::datapath
