// The fast path's rules as the operator edits them: allow and block entries
// by address or CIDR prefix (both families), destination-port rules, each
// with a stable id (which indexes its per-CPU hit counter in the program).
// Edits come in batches against an expected revision: a batch is validated
// whole and applied whole, or refused with nothing changed. Pure: the loader
// turns a rule set into map writes.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::datapath {

struct IpPrefix {
  int family = 0;                  // 4 or 6
  std::array<uint8_t, 16> addr{};  // network order, host bits zero
  uint8_t len = 0;

  bool exact() const { return len == (family == 4 ? 32 : 128); }
  bool operator==(const IpPrefix& o) const {
    return family == o.family && len == o.len && addr == o.addr;
  }
  bool operator<(const IpPrefix& o) const {
    if (family != o.family) return family < o.family;
    if (addr != o.addr) return addr < o.addr;
    return len < o.len;
  }
};

// "10.1.2.3", "10.0.0.0/8", "2001:db8::/32", "::1". A prefix with host bits
// set is refused (it is usually a typo for a different network).
absl::StatusOr<IpPrefix> ParsePrefix(absl::string_view text, absl::string_view field);
std::string FormatPrefix(const IpPrefix& p);

enum class RuleAction { kAllow, kBlock };
absl::string_view RuleActionName(RuleAction a);

// Exactly one of prefix and port is set. A port rule blocks TCP and/or UDP
// to the destination port, or marks the port as SYN-guarded.
struct PortRule {
  uint16_t port = 0;
  bool tcp = false;
  bool udp = false;
  bool syn_guard = false;
};

struct Rule {
  uint32_t id = 0;
  RuleAction action = RuleAction::kBlock;
  std::optional<IpPrefix> prefix;
  std::optional<PortRule> port;
  std::string comment;
};

struct RuleEdit {
  enum Kind { kAdd, kDelete } kind = kAdd;
  Rule rule;        // kAdd: id ignored
  uint32_t id = 0;  // kDelete
};

struct RuleLimits {
  size_t max_batch = 10000;
  size_t max_exact = 131072;  // per family and list
  size_t max_cidr = 65536;    // per family and list
  uint32_t max_rule_id = 131071;
  size_t max_comment = 128;
};

struct RuleSet {
  uint64_t revision = 0;
  std::map<uint32_t, Rule> rules;  // by id
};

// The new rule set, or: ABORTED for a stale revision; INVALID_ARGUMENT naming
// the edit ("edits[3].prefix: ..."; a duplicate of an existing rule; a batch
// over max_batch; a comment over max_comment or holding a control character
// or invalid UTF-8, see kernel::FindUnprintable); NOT_FOUND for a delete of an unknown id;
// RESOURCE_EXHAUSTED when a table would overflow. New rules get the lowest
// free ids, in batch order.
absl::StatusOr<RuleSet> ApplyEdits(const RuleSet& current, uint64_t expected_revision,
                                   const std::vector<RuleEdit>& edits, const RuleLimits& limits);

}  // namespace netagent::datapath
