#include "datapath/rules.h"

#include <arpa/inet.h>

#include <set>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernel/text.h"

namespace netagent::datapath {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// Which table a rule lands in: (action, family, exact?) or (action, port).
struct Table {
  RuleAction action;
  int family;  // 0 for ports
  bool exact;
  bool operator<(const Table& o) const {
    return std::tie(action, family, exact) < std::tie(o.action, o.family, o.exact);
  }
};

}  // namespace

absl::string_view RuleActionName(RuleAction a) {
  return a == RuleAction::kAllow ? "allow" : "block";
}

absl::StatusOr<IpPrefix> ParsePrefix(absl::string_view text, absl::string_view field) {
  if (text.empty() || text.size() > 64) return Bad(field, "an address or CIDR prefix is required");
  const size_t slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  IpPrefix p;
  if (inet_pton(AF_INET, addr.c_str(), p.addr.data()) == 1) {
    p.family = 4;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr.data()) == 1) {
    p.family = 6;
  } else {
    return Bad(field, absl::StrCat(kernel::Quote(text), " is not an IPv4 or IPv6 address"));
  }
  const uint32_t max = p.family == 4 ? 32 : 128;
  uint32_t len = max;
  if (slash != absl::string_view::npos) {
    absl::string_view l = text.substr(slash + 1);
    if (l.empty() || l.size() > 3 || !absl::SimpleAtoi(l, &len) || len > max) {
      return Bad(field,
                 absl::StrCat("prefix length in ", kernel::Quote(text), " must be 0..", max));
    }
  }
  p.len = static_cast<uint8_t>(len);
  const size_t bytes = max / 8;
  for (size_t i = 0; i < bytes; ++i) {
    const uint32_t bit = static_cast<uint32_t>(i * 8);
    uint8_t mask =
        bit >= len ? 0 : (len - bit >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - (len - bit))));
    if (p.addr[i] & ~mask) {
      IpPrefix net = p;
      for (size_t j = i; j < bytes; ++j) {
        const uint32_t b = static_cast<uint32_t>(j * 8);
        net.addr[j] &=
            b >= len ? 0 : (len - b >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - (len - b))));
      }
      return Bad(field, absl::StrCat(kernel::Quote(text), " has host bits set (the network is ",
                                     FormatPrefix(net), ")"));
    }
  }
  return p;
}

std::string FormatPrefix(const IpPrefix& p) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(p.family == 4 ? AF_INET : AF_INET6, p.addr.data(), buf, sizeof(buf));
  return p.exact() ? std::string(buf) : absl::StrCat(buf, "/", p.len);
}

absl::StatusOr<RuleSet> ApplyEdits(const RuleSet& current, uint64_t expected_revision,
                                   const std::vector<RuleEdit>& edits, const RuleLimits& limits) {
  if (expected_revision != current.revision) {
    return absl::AbortedError(absl::StrCat("expected_revision ", expected_revision,
                                           " is stale: the rules are at revision ",
                                           current.revision, "; list them and retry"));
  }
  if (edits.empty()) return Bad("edits", "empty batch");
  if (edits.size() > limits.max_batch) {
    return Bad("edits",
               absl::StrCat(edits.size(), " edits; at most ", limits.max_batch, " per batch"));
  }
  RuleSet next = current;
  next.revision = current.revision + 1;
  // Keys of existing rules, to refuse duplicates.
  auto key = [](const Rule& r) {
    return r.prefix ? absl::StrCat(RuleActionName(r.action), " ", FormatPrefix(*r.prefix))
                    : absl::StrCat("port ", r.port->port);
  };
  std::map<std::string, uint32_t> by_key;
  for (const auto& [id, r] : next.rules) by_key[key(r)] = id;
  uint32_t next_id = 1;
  for (size_t i = 0; i < edits.size(); ++i) {
    const std::string field = absl::StrCat("edits[", i, "]");
    const RuleEdit& e = edits[i];
    if (e.kind == RuleEdit::kDelete) {
      auto it = next.rules.find(e.id);
      if (it == next.rules.end()) {
        return absl::NotFoundError(absl::StrCat(field, ".id: no rule ", e.id));
      }
      by_key.erase(key(it->second));
      next.rules.erase(it);
      continue;
    }
    Rule r = e.rule;
    if (r.prefix.has_value() == r.port.has_value()) {
      return Bad(field, "a rule has either a prefix or a port");
    }
    if (r.port) {
      if (r.port->port == 0) return Bad(field + ".port", "1..65535");
      if (!r.port->tcp && !r.port->udp && !r.port->syn_guard) {
        return Bad(field + ".port", "block tcp, udp, or mark the port for the SYN guard");
      }
      if (r.action != RuleAction::kBlock)
        return Bad(field + ".port", "port rules block (or guard)");
    }
    if (r.comment.size() > limits.max_comment) {
      return Bad(field + ".comment", absl::StrCat("at most ", limits.max_comment, " bytes"));
    }
    if (std::string why = kernel::FindUnprintable(r.comment); !why.empty()) {
      return Bad(field + ".comment", why);
    }
    const std::string k = key(r);
    if (auto dup = by_key.find(k); dup != by_key.end()) {
      return Bad(field, absl::StrCat(k, " is already rule ", dup->second));
    }
    while (next.rules.count(next_id)) ++next_id;
    if (next_id > limits.max_rule_id) {
      return absl::ResourceExhaustedError(
          absl::StrCat(field, ": no free rule id (at most ", limits.max_rule_id, " rules)"));
    }
    r.id = next_id;
    by_key[k] = r.id;
    next.rules[r.id] = std::move(r);
  }
  std::map<Table, size_t> sizes;
  for (const auto& [id, r] : next.rules) {
    if (r.prefix) ++sizes[{r.action, r.prefix->family, r.prefix->exact()}];
  }
  for (const auto& [t, n] : sizes) {
    const size_t cap = t.exact ? limits.max_exact : limits.max_cidr;
    if (n > cap) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the ", RuleActionName(t.action), " list would hold ", n,
                       t.exact ? " exact" : " CIDR", " IPv", t.family, " entries; at most ", cap));
    }
  }
  return next;
}

}  // namespace netagent::datapath
