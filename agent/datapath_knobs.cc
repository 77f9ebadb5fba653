#include "agent/datapath_knobs.h"

#include "absl/strings/str_cat.h"
#include "collectors/links.h"
#include "kernel/errors.h"

namespace netagent::agent {
namespace {

// A revision moved under us (another UpdateRules): read again and retry.
constexpr int kAttempts = 5;

bool IsBlock(const datapath::Rule& r, const datapath::IpPrefix& p) {
  return r.action == datapath::RuleAction::kBlock && r.prefix && *r.prefix == p;
}

// A device this agent runs no fast path on blocks nothing, unless another
// XDP program is attached there (pins of an agent with another
// --bpf-pin-root): then what it drops is unknown.
absl::Status NothingAttached(const std::string& key, const std::string& device) {
  auto link = collectors::GetLink(device);
  if (!link.ok()) {
    if (absl::IsNotFound(link.status())) return absl::OkStatus();  // no device: nothing drops
    return absl::Status(link.status().code(), absl::StrCat(key, ": ", link.status().message()));
  }
  if (link->xdp.attached == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      key, ": ", device, " has an XDP program (id ", link->xdp.prog_id,
      ") this agent does not manage (pinned under another --bpf-pin-root?): whether it blocks is "
      "unknown"));
}

// Why blocks cannot be written on `device` (not attached, or attached
// without its blocklist); empty: they can.
std::string Unavailable(datapath::DatapathManager& dp, const std::string& device) {
  for (const auto& d : dp.Status()) {
    if (d.info.device != device) continue;
    if (d.meta.features.blocklist) return "";
    return absl::StrCat("the fast path on ", device,
                        " was attached without its blocklist (--no-blocklist): detach it and "
                        "attach it again with the blocklist");
  }
  return absl::StrCat("the fast path is not attached to ", device, ": netctl datapath attach ",
                      device, " first");
}

}  // namespace

DatapathKnobs::DatapathKnobs(std::unique_ptr<tuners::KnobIo> system,
                             std::shared_ptr<datapath::DatapathManager> dp, std::string off_reason,
                             std::set<std::string> failing)
    : system_(std::move(system)),
      dp_(std::move(dp)),
      off_reason_(std::move(off_reason)),
      failing_(std::move(failing)) {}

absl::StatusOr<std::string> DatapathKnobs::Read(const std::string& key) {
  NETAGENT_ASSIGN_OR_RETURN(tuners::KnobKey k, tuners::ParseKnobKey(key));
  if (k.type != tuners::KnobType::kDatapathBlock) return system_->Read(key);
  NETAGENT_ASSIGN_OR_RETURN(datapath::IpPrefix p, datapath::ParsePrefix(k.path, key));
  // Pins of an earlier agent may still drop traffic: unknown, not off.
  if (!dp_) return absl::FailedPreconditionError(absl::StrCat(key, ": ", off_reason_));
  auto rules = dp_->Rules(k.device);
  if (absl::IsNotFound(rules.status())) {
    NETAGENT_RETURN_IF_ERROR(NothingAttached(key, k.device));
    return std::string(tuners::kBlockOff);
  }
  if (!rules.ok()) return rules.status();
  bool operators = false;
  for (const auto& [id, r] : (*rules)->rules) {
    if (!IsBlock(r, p)) continue;
    if (r.comment == kTuningRuleComment) return std::string(tuners::kBlockOn);
    operators = true;
  }
  return std::string(operators ? tuners::kBlockOperator : tuners::kBlockOff);
}

absl::Status DatapathKnobs::Write(const std::string& key, const std::string& value) {
  NETAGENT_ASSIGN_OR_RETURN(tuners::KnobKey k, tuners::ParseKnobKey(key));
  if (k.type != tuners::KnobType::kDatapathBlock) return system_->Write(key, value);
  if (failing_.count(key)) {
    return absl::UnavailableError(absl::StrCat(key, ": write failed (injected fault)"));
  }
  if (value != tuners::kBlockOn && value != tuners::kBlockOff) {
    // "operator": someone else's rule, which the agent never writes.
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": ", value, " is not a value the agent writes (on or off)"));
  }
  NETAGENT_ASSIGN_OR_RETURN(datapath::IpPrefix p, datapath::ParsePrefix(k.path, key));
  const bool on = value == tuners::kBlockOn;
  if (!dp_) return absl::FailedPreconditionError(absl::StrCat(key, ": ", off_reason_));
  if (on) {
    if (std::string why = Unavailable(*dp_, k.device); !why.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(key, ": ", why));
    }
  }
  absl::Status last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto rules = dp_->Rules(k.device);
    if (!on && absl::IsNotFound(rules.status())) return NothingAttached(key, k.device);
    if (!rules.ok()) return rules.status();
    // Only the agent's own rule: an operator's block of the same prefix is
    // theirs (adding beside it is refused as a duplicate, and said).
    std::vector<datapath::RuleEdit> edits;
    for (const auto& [id, r] : (*rules)->rules) {
      if (!IsBlock(r, p) || r.comment != kTuningRuleComment) continue;
      if (on) return absl::OkStatus();
      datapath::RuleEdit e;
      e.kind = datapath::RuleEdit::kDelete;
      e.id = id;
      edits.push_back(e);
    }
    if (on) {
      datapath::RuleEdit e;
      e.rule.action = datapath::RuleAction::kBlock;
      e.rule.prefix = p;
      e.rule.comment = kTuningRuleComment;
      edits.push_back(std::move(e));
    }
    if (edits.empty()) return absl::OkStatus();
    auto done = dp_->UpdateRules(k.device, (*rules)->revision, edits);
    if (done.ok()) return absl::OkStatus();
    last = done.status();
    if (!absl::IsAborted(last)) break;
  }
  return absl::Status(last.code(), absl::StrCat(key, ": ", last.message()));
}

tuners::DatapathState DatapathStateOf(datapath::DatapathManager* dp, const std::string& off_reason,
                                      const std::string& device) {
  tuners::DatapathState st;
  st.device = device;
  if (dp == nullptr) {
    st.unavailable = off_reason;
    return st;
  }
  st.unavailable = Unavailable(*dp, device);
  auto rules = dp->Rules(device);
  if (!rules.ok()) {
    if (st.unavailable.empty()) st.unavailable = std::string(rules.status().message());
    return st;
  }
  for (const auto& [id, r] : (*rules)->rules) {
    if (!r.prefix) continue;
    const std::string prefix = datapath::FormatPrefix(*r.prefix);
    if (r.action == datapath::RuleAction::kAllow) {
      st.allowed.insert(prefix);
    } else if (r.comment == kTuningRuleComment) {
      st.blocked.insert(prefix);
    } else {
      st.operator_blocked[prefix] = id;
    }
  }
  return st;
}

}  // namespace netagent::agent
