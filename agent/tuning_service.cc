#include "agent/tuning_service.h"

#include <re2/re2.h>

#include "absl/strings/str_cat.h"
#include "agent/convert.h"
#include "collectors/counters.h"
#include "collectors/links.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

constexpr uint32_t kDefaultListLimit = 50, kMaxListLimit = 1000;
constexpr size_t kMaxSettings = 64;

absl::StatusOr<tuners::Settings> SettingsFromProto(
    const google::protobuf::RepeatedPtrField<v1::Setting>& in, absl::string_view field) {
  if (in.size() > static_cast<int>(kMaxSettings)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", kMaxSettings, " settings"));
  }
  tuners::Settings out;
  for (const auto& s : in) {
    if (s.name().empty() || s.name().size() > 128 || s.value().size() > 256) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": a name (and value) of sane length"));
    }
    out.emplace_back(s.name(), s.value());
  }
  return out;
}

absl::Status CheckCpus(const std::string& cpus, absl::string_view field) {
  if (cpus.size() > 1024) return absl::InvalidArgumentError(absl::StrCat(field, ": too long"));
  return absl::OkStatus();
}

absl::Status CheckDevice(const std::string& dev, absl::string_view field) {
  if (dev.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  return collectors::ValidateInterfaceName(dev, field);
}

v1::ChangeState StateToProto(tuners::ChangeState s) {
  using S = tuners::ChangeState;
  switch (s) {
    case S::kApplying:
      return v1::CHANGE_STATE_APPLYING;
    case S::kPending:
      return v1::CHANGE_STATE_PENDING_CONFIRM;
    case S::kConfirmed:
      return v1::CHANGE_STATE_CONFIRMED;
    case S::kRolledBack:
      return v1::CHANGE_STATE_ROLLED_BACK;
    case S::kExpired:
      return v1::CHANGE_STATE_EXPIRED;
    case S::kFailed:
      return v1::CHANGE_STATE_FAILED;
    case S::kRollbackFailed:
      return v1::CHANGE_STATE_ROLLBACK_FAILED;
  }
  return v1::CHANGE_STATE_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<tuners::Intent> IntentFromProto(const v1::TuningIntent& in) {
  tuners::Intent out;
  out.clamp = in.clamp();
  switch (in.intent_case()) {
    case v1::TuningIntent::kBdp: {
      tuners::BdpIntent b;
      b.observed = in.bdp().observed();
      b.bandwidth_bps = in.bdp().bandwidth_bps();
      auto rtt = DurationFromRequest(in.bdp().has_rtt(), in.bdp().rtt(), "intent.bdp.rtt",
                                     absl::Seconds(10));
      if (!rtt.ok()) return rtt.status();
      if (*rtt) b.rtt = **rtt;
      if (in.bdp().ceiling_bytes()) b.ceiling_bytes = in.bdp().ceiling_bytes();
      if (b.observed && (b.bandwidth_bps || *rtt)) {
        return absl::InvalidArgumentError(
            "intent.bdp: observed, or bandwidth_bps and rtt, not both");
      }
      out.what = b;
      break;
    }
    case v1::TuningIntent::kCongestion: {
      const std::string& a = in.congestion().algorithm();
      if (a.size() > 16 || !RE2::FullMatch(a, "[a-z0-9_]*")) {
        return absl::InvalidArgumentError("intent.congestion.algorithm: a kernel module name");
      }
      out.what = tuners::CongestionIntent{a};
      break;
    }
    case v1::TuningIntent::kRps:
      if (auto st = CheckDevice(in.rps().device(), "intent.rps.device"); !st.ok()) return st;
      if (auto st = CheckCpus(in.rps().cpus(), "intent.rps.cpus"); !st.ok()) return st;
      out.what = tuners::RpsIntent{in.rps().device(), in.rps().cpus(), in.rps().disable()};
      break;
    case v1::TuningIntent::kXps:
      if (auto st = CheckDevice(in.xps().device(), "intent.xps.device"); !st.ok()) return st;
      if (auto st = CheckCpus(in.xps().cpus(), "intent.xps.cpus"); !st.ok()) return st;
      out.what = tuners::XpsIntent{in.xps().device(), in.xps().cpus(), in.xps().disable()};
      break;
    case v1::TuningIntent::kRfs: {
      if (auto st = CheckDevice(in.rfs().device(), "intent.rfs.device"); !st.ok()) return st;
      tuners::RfsIntent r{in.rfs().device(), in.rfs().flow_entries(), in.rfs().disable()};
      if (r.flow_entries == 0) r.flow_entries = 32768;
      out.what = r;
      break;
    }
    case v1::TuningIntent::kChannels: {
      const auto& c = in.channels();
      if (auto st = CheckDevice(c.device(), "intent.channels.device"); !st.ok()) return st;
      tuners::ChannelsIntent ch;
      ch.device = c.device();
      if (c.has_combined()) ch.combined = c.combined();
      if (c.has_rx()) ch.rx = c.rx();
      if (c.has_tx()) ch.tx = c.tx();
      if (c.has_other()) ch.other = c.other();
      out.what = ch;
      break;
    }
    case v1::TuningIntent::kRss: {
      if (auto st = CheckDevice(in.rss().device(), "intent.rss.device"); !st.ok()) return st;
      if (in.rss().weights_size() > 1024)
        return absl::InvalidArgumentError("intent.rss.weights: too many");
      out.what = tuners::RssIntent{in.rss().device(),
                                   in.rss().queues(),
                                   {in.rss().weights().begin(), in.rss().weights().end()}};
      break;
    }
    case v1::TuningIntent::kIrqAffinity:
      if (auto st = CheckDevice(in.irq_affinity().device(), "intent.irq_affinity.device");
          !st.ok()) {
        return st;
      }
      if (auto st = CheckCpus(in.irq_affinity().cpus(), "intent.irq_affinity.cpus"); !st.ok()) {
        return st;
      }
      out.what = tuners::IrqAffinityIntent{in.irq_affinity().device(), in.irq_affinity().cpus()};
      break;
    case v1::TuningIntent::kCoalesce: {
      const auto& c = in.coalesce();
      if (auto st = CheckDevice(c.device(), "intent.coalesce.device"); !st.ok()) return st;
      if (c.values_size() > 64 || c.profile().size() > 32) {
        return absl::InvalidArgumentError("intent.coalesce: at most 64 values");
      }
      tuners::CoalesceIntent co;
      co.device = c.device();
      co.profile = c.profile();
      for (const auto& [name, v] : c.values()) {
        if (name.empty() || name.size() > 32) {
          return absl::InvalidArgumentError(
              "intent.coalesce.values: a parameter name (rx-usecs, ...)");
        }
      }
      std::map<std::string, uint64_t> sorted(c.values().begin(), c.values().end());
      co.values.assign(sorted.begin(), sorted.end());
      out.what = co;
      break;
    }
    case v1::TuningIntent::kLimits: {
      auto s = SettingsFromProto(in.limits().settings(), "intent.limits.settings");
      if (!s.ok()) return s.status();
      out.what = tuners::LimitsIntent{*s};
      break;
    }
    case v1::TuningIntent::kSysctl: {
      auto s = SettingsFromProto(in.sysctl().settings(), "intent.sysctl.settings");
      if (!s.ok()) return s.status();
      out.what = tuners::SysctlIntent{*s};
      break;
    }
    case v1::TuningIntent::kDatapathBlock: {
      const auto& b = in.datapath_block();
      if (auto st = CheckDevice(b.device(), "intent.datapath_block.device"); !st.ok()) return st;
      // The planner checks the prefixes: how many, each one's form.
      out.what = tuners::DatapathBlockIntent{
          b.device(), {b.prefixes().begin(), b.prefixes().end()}, b.remove()};
      break;
    }
    default:
      return absl::InvalidArgumentError("intent: required (bdp, congestion, rps, ...)");
  }
  return out;
}

void ToProto(const tuners::Plan& plan, const std::string& intent, v1::TuningPlan* out) {
  for (const auto& c : plan.changes) {
    auto* o = out->add_changes();
    o->set_knob(c.knob);
    o->set_old_value(c.old_value);
    o->set_new_value(c.new_value);
    o->set_reason(c.reason);
    o->set_risk(c.risk == tuners::Risk::kLow      ? v1::RISK_LOW
                : c.risk == tuners::Risk::kMedium ? v1::RISK_MEDIUM
                                                  : v1::RISK_HIGH);
    for (const auto& w : c.warnings) o->add_warnings(w);
  }
  for (const auto& w : plan.warnings) out->add_warnings(w);
  for (const auto& r : plan.refusals) out->add_refusals(r);
  out->set_digest(plan.Digest());
  out->set_intent(intent);
}

void ToProto(const tuners::ChangeRecord& r, v1::ChangeRecord* o) {
  o->set_id(r.id);
  ToProto(r.created, o->mutable_created());
  o->set_caller(r.caller);
  o->set_intent(r.intent);
  o->set_state(StateToProto(r.state));
  o->set_digest(r.digest);
  o->set_owner(r.owner);
  if (r.confirm_deadline) ToProto(*r.confirm_deadline, o->mutable_confirm_deadline());
  for (const auto& k : r.knobs) {
    auto* x = o->add_knobs();
    x->set_knob(k.knob);
    x->set_old_value(k.old_value);
    x->set_new_value(k.new_value);
    x->set_reason(k.reason);
  }
  for (const auto& e : r.events) {
    auto* x = o->add_events();
    ToProto(e.at, x->mutable_at());
    x->set_what(e.what);
  }
  for (const auto& d : r.drift) {
    auto* x = o->add_drift();
    x->set_knob(d.knob);
    x->set_expected(d.expected);
    x->set_observed(d.observed);
    ToProto(d.since, x->mutable_since());
  }
}

void ToProto(const std::string& path, const tuners::JournalHealth::Quarantine& q,
             v1::JournalQuarantine* out) {
  out->set_quarantined_path(q.moved_to);
  out->set_move_error(q.move_error);
  out->set_error(q.error);
  ToProto(q.since, out->mutable_since());
  out->set_changes_read(static_cast<uint32_t>(q.salvage.changes_read));
  for (const auto& c : q.salvage.possibly_in_effect) {
    v1::ChangeRecord* r = out->add_possibly_in_effect();
    r->set_id(c.id);
    r->set_state(c.state ? StateToProto(*c.state) : v1::CHANGE_STATE_UNSPECIFIED);
    if (c.confirm_deadline) ToProto(*c.confirm_deadline, r->mutable_confirm_deadline());
    for (const auto& k : c.knobs) {
      v1::KnobChange* x = r->add_knobs();
      x->set_knob(k.knob);
      x->set_old_value(k.old_value);
      x->set_new_value(k.new_value);
    }
  }
  out->set_summary(tuners::DescribeQuarantine(path, q));
}

void ToProto(const tuners::JournalHealth& h, v1::JournalStatus* out) {
  out->set_path(h.path);
  if (h.quarantine) ToProto(h.path, *h.quarantine, out->mutable_quarantine());
  out->set_save_error(h.save_error);
  if (!h.save_error.empty()) ToProto(h.save_failing_since, out->mutable_save_failing_since());
  for (const auto& e : h.events) {
    v1::ChangeEvent* x = out->add_events();
    ToProto(e.at, x->mutable_at());
    x->set_what(e.what);
  }
}

std::vector<Condition> JournalConditions(const tuners::JournalHealth& h) {
  std::vector<Condition> out;
  if (h.quarantine) {
    out.push_back({"tuning-journal-quarantined", ConditionSeverity::kCritical,
                   absl::StrCat(tuners::DescribeQuarantine(h.path, *h.quarantine),
                                "; applying tuning is refused until an operator acknowledges"),
                   "check those knobs (netctl tune journal shows what the file held, netctl tune "
                   "show their values now), restore any by hand, then: netctl tune journal ack",
                   h.quarantine->since});
  }
  if (!h.save_error.empty()) {
    const size_t slash = h.path.rfind('/');
    out.push_back(
        {"tuning-journal-not-saved", ConditionSeverity::kWarning,
         absl::StrCat("the change journal ", h.path, " cannot be written (", h.save_error,
                      "): the host is as the agent reports it but the file is behind (a restarted "
                      "agent would act on the older record), and applying tuning is refused"),
         absl::StrCat("make ", slash == std::string::npos ? h.path : h.path.substr(0, slash),
                      " writable again (read-only or full file system?); the agent retries by "
                      "itself"),
         h.save_failing_since});
  }
  return out;
}

grpc::Status TuningService::Begin(grpc::ServerContext* context) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  if (manager_ == nullptr) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, off_reason_);
  return grpc::Status::OK;
}

std::string TuningService::CallerOf(grpc::ServerContext* context) const {
  auto call = ctx_.auth->FindCall(context);
  return call ? DescribeCaller(call->caller) : std::string("unknown");
}

grpc::Status TuningService::GetTunables(grpc::ServerContext* context,
                                        const v1::GetTunablesRequest* request,
                                        v1::GetTunablesResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (!request->device().empty()) {
    if (auto st = collectors::ValidateInterfaceName(request->device(), "device"); !st.ok()) {
      return ToGrpc(st);
    }
  }
  auto filter = collectors::CompileNameFilter(request->filter(), "filter");
  if (!filter.ok()) return ToGrpc(filter.status());
  auto tunables = manager_->Tunables(request->device());
  if (!tunables.ok()) return ToGrpc(tunables.status());
  for (const auto& t : *tunables) {
    if (*filter && !RE2::PartialMatch(t.knob, **filter)) continue;
    auto* o = response->add_tunables();
    o->set_knob(t.knob);
    o->set_value(t.value);
    o->set_exists(t.exists);
    o->set_writable(t.writable);
    o->set_kernel_default(t.kernel_default);
    o->set_default_source(t.default_source);
    o->set_floor(t.floor);
    o->set_ceiling(t.ceiling);
    o->set_max_step(t.max_step);
    o->set_per_netns(t.per_netns);
    o->set_group(t.group);
    o->set_help(t.help);
    o->set_set_by(t.set_by);
    o->set_drifted(t.drifted);
  }
  return grpc::Status::OK;
}

grpc::Status TuningService::PlanTuning(grpc::ServerContext* context,
                                       const v1::PlanTuningRequest* request,
                                       v1::PlanTuningResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  auto intent = IntentFromProto(request->intent());
  if (!intent.ok()) return ToGrpc(intent.status());
  auto plan = manager_->PlanFor(*intent);
  if (!plan.ok()) return ToGrpc(plan.status());
  ToProto(*plan, tuners::DescribeIntent(*intent), response->mutable_plan());
  return grpc::Status::OK;
}

grpc::Status TuningService::ApplyTuning(grpc::ServerContext* context,
                                        const v1::ApplyTuningRequest* request,
                                        v1::ApplyTuningResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  auto intent = IntentFromProto(request->intent());
  if (!intent.ok()) return ToGrpc(intent.status());
  auto within = DurationFromRequest(request->has_confirm_within(), request->confirm_within(),
                                    "confirm_within", absl::Hours(24));
  if (!within.ok()) return ToGrpc(within.status());
  if (request->has_confirm_within() && !within->has_value()) {
    return ToGrpc(absl::InvalidArgumentError(
        "confirm_within: must be above 0 (leave it unset to confirm at once)"));
  }
  if (request->expected_digest().size() > 64) {
    return ToGrpc(absl::InvalidArgumentError("expected_digest: too long"));
  }
  if (auto st = tuners::ValidateOwner(request->owner(), "owner"); !st.ok()) return ToGrpc(st);
  auto result = manager_->Apply(*intent, CallerOf(context), *within, request->expected_digest(),
                                request->change_id(), request->owner());
  if (!result.ok()) return ToGrpc(result.status());
  ToProto(result->plan, tuners::DescribeIntent(*intent), response->mutable_plan());
  if (result->change) ToProto(*result->change, response->mutable_change());
  return grpc::Status::OK;
}

grpc::Status TuningService::ConfirmChange(grpc::ServerContext* context,
                                          const v1::ConfirmChangeRequest* request,
                                          v1::ConfirmChangeResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = tuners::ValidateChangeId(request->change_id()); !st.ok()) return ToGrpc(st);
  if (auto st = tuners::ValidateOwner(request->expected_owner(), "expected_owner"); !st.ok()) {
    return ToGrpc(st);
  }
  auto r = manager_->Confirm(request->change_id(), CallerOf(context), request->expected_owner());
  if (!r.ok()) return ToGrpc(r.status());
  ToProto(r->change, response->mutable_change());
  if (!r->journal.ok()) response->set_journal_error(std::string(r->journal.message()));
  return grpc::Status::OK;
}

grpc::Status TuningService::RollbackChange(grpc::ServerContext* context,
                                           const v1::RollbackChangeRequest* request,
                                           v1::RollbackChangeResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = tuners::ValidateChangeId(request->change_id()); !st.ok()) return ToGrpc(st);
  if (auto st = tuners::ValidateOwner(request->expected_owner(), "expected_owner"); !st.ok()) {
    return ToGrpc(st);
  }
  auto r = manager_->Rollback(request->change_id(), CallerOf(context), request->force(),
                              request->expected_owner());
  if (!r.ok()) return ToGrpc(r.status());
  ToProto(r->change, response->mutable_change());
  if (!r->journal.ok()) response->set_journal_error(std::string(r->journal.message()));
  return grpc::Status::OK;
}

grpc::Status TuningService::ListChanges(grpc::ServerContext* context,
                                        const v1::ListChangesRequest* request,
                                        v1::ListChangesResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (request->limit() > kMaxListLimit) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("limit: at most ", kMaxListLimit)));
  }
  const uint32_t limit = request->limit() ? request->limit() : kDefaultListLimit;
  for (const auto& r : manager_->List(limit, request->active_only())) {
    ToProto(r, response->add_changes());
  }
  return grpc::Status::OK;
}

grpc::Status TuningService::GetJournalStatus(grpc::ServerContext* context,
                                             const v1::GetJournalStatusRequest* request,
                                             v1::GetJournalStatusResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  ToProto(manager_->JournalStatus(), response->mutable_status());
  return grpc::Status::OK;
}

grpc::Status TuningService::AcknowledgeJournal(grpc::ServerContext* context,
                                               const v1::AcknowledgeJournalRequest* request,
                                               v1::AcknowledgeJournalResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (request->quarantined_path().size() > 4096) {
    return ToGrpc(absl::InvalidArgumentError("quarantined_path: too long"));
  }
  auto acked = manager_->AcknowledgeJournal(CallerOf(context), request->quarantined_path());
  if (!acked.ok()) return ToGrpc(acked.status());
  const tuners::JournalHealth h = manager_->JournalStatus();
  ToProto(h.path, *acked, response->mutable_acknowledged());
  ToProto(h, response->mutable_status());
  return grpc::Status::OK;
}

}  // namespace netagent::agent
