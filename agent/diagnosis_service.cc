#include "agent/diagnosis_service.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/convert.h"
#include "agent/tuning_service.h"
#include "datapath/rules.h"
#include "kernel/errors.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;

namespace {

constexpr absl::Duration kDefaultWindow = absl::Seconds(10);
constexpr absl::Duration kMaxDiagnoseWindow = absl::Minutes(5);

v1::Severity SeverityToProto(diagnosis::Severity s) {
  switch (s) {
    case diagnosis::Severity::kInfo:
      return v1::SEVERITY_INFO;
    case diagnosis::Severity::kWarning:
      return v1::SEVERITY_WARNING;
    case diagnosis::Severity::kCritical:
      return v1::SEVERITY_CRITICAL;
  }
  return v1::SEVERITY_UNSPECIFIED;
}

void SettingsToProto(const tuners::Settings& in,
                     google::protobuf::RepeatedPtrField<v1::Setting>* out) {
  for (const auto& [name, value] : in) {
    auto* s = out->Add();
    s->set_name(name);
    s->set_value(value);
  }
}

}  // namespace

diagnosis::KernelDrops KernelDropsFrom(const datapath::KernelDropSnapshot& snapshot,
                                       const datapath::DropReasonNames& names,
                                       absl::Time attached_at) {
  diagnosis::KernelDrops out;
  out.attached_at = attached_at;
  for (const auto& [key, count] : snapshot.counts)
    out.counts[{names.Name(key.reason), key.ifindex}] += count;
  out.devices = snapshot.devices;
  out.table_full = snapshot.events.table_full;
  return out;
}

std::vector<diagnosis::DropSource> DropSourcesFrom(
    const std::vector<datapath::KernelDropSample>& samples, const datapath::DropReasonNames& names,
    absl::Time since, size_t per_reason) {
  // Per reason: one prefix sending drops of two reasons is a source of each.
  std::map<uint32_t, std::vector<datapath::KernelDropSample>> by_reason;
  for (const datapath::KernelDropSample& s : samples)
    if (s.at >= since) by_reason[s.key.reason].push_back(s);
  std::vector<diagnosis::DropSource> out;
  for (const auto& [reason, of_reason] : by_reason) {
    for (const datapath::DropSourceRow& r :
         datapath::TopSourcePrefixes(of_reason, names, per_reason))
      out.push_back({r.prefix, r.samples, r.top_reason});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const diagnosis::DropSource& a, const diagnosis::DropSource& b) {
                     return a.samples > b.samples;
                   });
  return out;
}

void AddKernelDrops(datapath::DropCollectorOnDemand* drops, bool attach,
                    diagnosis::CollectOptions& collect) {
  if (drops == nullptr) return;
  collect.drops = [drops, attach]() -> absl::StatusOr<diagnosis::KernelDrops> {
    std::shared_ptr<datapath::DropCollector> c;
    if (attach) {
      NETAGENT_ASSIGN_OR_RETURN(c, drops->Get());
    } else {
      c = drops->Running();
      if (c == nullptr) return absl::FailedPreconditionError("the collector is not running");
    }
    NETAGENT_ASSIGN_OR_RETURN(datapath::KernelDropSnapshot snap, c->Snapshot());
    return KernelDropsFrom(snap, c->names(), c->attached_at());
  };
  collect.drop_sources = [drops](absl::Time since) {
    std::shared_ptr<datapath::DropCollector> c = drops->Running();
    if (c == nullptr) return std::vector<diagnosis::DropSource>{};
    return DropSourcesFrom(c->Samples(), c->names(), since);
  };
}

void AddFastPaths(datapath::DatapathManager* fast_path, diagnosis::CollectOptions& collect) {
  if (fast_path == nullptr) return;
  collect.fast_paths = [fast_path] {
    std::vector<diagnosis::FastPath> out;
    for (const auto& d : fast_path->Status()) {
      diagnosis::FastPath fp{d.info.device, d.meta.features.blocklist, {}, ""};
      // Allow rules matter only where a block could be proposed.
      if (fp.blocklist) {
        auto rules = fast_path->Rules(d.info.device);
        if (!rules.ok()) {
          fp.rules_unread = std::string(rules.status().message());
        } else if (*rules) {
          for (const auto& [id, r] : (*rules)->rules) {
            if (r.action == datapath::RuleAction::kAllow && r.prefix) {
              fp.allowed.push_back(datapath::FormatPrefix(*r.prefix));
            }
          }
        }
      }
      out.push_back(std::move(fp));
    }
    return out;
  };
}

void IntentToProto(const tuners::Intent& intent, v1::TuningIntent* out) {
  out->set_clamp(intent.clamp);
  if (const auto* l = std::get_if<tuners::LimitsIntent>(&intent.what)) {
    SettingsToProto(l->settings, out->mutable_limits()->mutable_settings());
  } else if (const auto* s = std::get_if<tuners::SysctlIntent>(&intent.what)) {
    SettingsToProto(s->settings, out->mutable_sysctl()->mutable_settings());
  } else if (const auto* c = std::get_if<tuners::CongestionIntent>(&intent.what)) {
    out->mutable_congestion()->set_algorithm(c->algorithm);
  } else if (const auto* q = std::get_if<tuners::IrqAffinityIntent>(&intent.what)) {
    out->mutable_irq_affinity()->set_device(q->device);
    out->mutable_irq_affinity()->set_cpus(q->cpus);
  } else if (const auto* b = std::get_if<tuners::BdpIntent>(&intent.what)) {
    out->mutable_bdp()->set_observed(b->observed);
  } else if (const auto* d = std::get_if<tuners::DatapathBlockIntent>(&intent.what)) {
    auto* o = out->mutable_datapath_block();
    o->set_device(d->device);
    for (const auto& p : d->prefixes) o->add_prefixes(p);
    o->set_remove(d->remove);
  } else if (const auto* r = std::get_if<tuners::RpsIntent>(&intent.what)) {
    out->mutable_rps()->set_device(r->device);
    out->mutable_rps()->set_cpus(r->cpus);
    out->mutable_rps()->set_disable(r->disable);
  }
}

void ToProto(const diagnosis::Finding& f, tuners::TuningManager* tuning, v1::Finding* out,
             bool plan) {
  out->set_rule(f.rule);
  out->set_title(f.title);
  out->set_severity(SeverityToProto(f.severity));
  out->set_summary(f.summary);
  for (const auto& e : f.evidence) {
    auto* o = out->add_evidence();
    o->set_name(e.name);
    o->set_value(e.value);
    o->set_unit(e.unit);
    if (e.delta) o->set_delta(*e.delta);
    o->set_note(e.note);
  }
  for (const auto& a : f.attribution) {
    auto* o = out->add_attribution();
    o->set_kind(a.kind);
    o->set_object(a.object);
    o->set_detail(a.detail);
  }
  out->set_explanation(f.explanation);
  auto* r = out->mutable_remediation();
  r->set_summary(f.remediation.summary);
  for (const auto& l : f.remediation.limits) r->add_limits(l);
  if (f.remediation.intent) {
    IntentToProto(*f.remediation.intent, r->mutable_intent());
    // Planned as an apply would meet it: a knob read-only in this namespace
    // or a value out of bounds shows here, not at apply time.
    if (!plan) {
      // Watches: the intent only (netctl tune plan gives its plan).
    } else if (tuning == nullptr) {
      r->set_plan_error("tuning is off on this agent: nothing can be planned or applied");
    } else if (auto p = tuning->PlanFor(*f.remediation.intent); p.ok()) {
      ToProto(*p, tuners::DescribeIntent(*f.remediation.intent), r->mutable_plan());
    } else {
      r->set_plan_error(std::string(p.status().message()));
    }
  }
  out->mutable_verification()->set_measurement(f.verification.measurement);
  out->mutable_verification()->set_condition(f.verification.condition);
}

grpc::Status DiagnosisService::Diagnose(grpc::ServerContext* context,
                                        const v1::DiagnoseRequest* request,
                                        v1::DiagnoseResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto window =
      DurationFromRequest(request->has_window(), request->window(), "window", kMaxDiagnoseWindow);
  if (!window.ok()) return ToGrpc(window.status());
  const absl::Duration length = window->value_or(kDefaultWindow);
  if (length < absl::Seconds(1)) {
    return ToGrpc(absl::InvalidArgumentError("window: at least 1s (counters need time to move)"));
  }
  diagnosis::DiagnoseOptions options;
  options.overrides = overrides_;
  if (request->rules_size() > 64) {
    return ToGrpc(absl::InvalidArgumentError("rules: at most 64"));
  }
  for (const auto& r : request->rules()) options.rules.push_back(r);
  switch (request->min_severity()) {
    case v1::SEVERITY_UNSPECIFIED:
    case v1::SEVERITY_INFO:
      options.min_severity = diagnosis::Severity::kInfo;
      break;
    case v1::SEVERITY_WARNING:
      options.min_severity = diagnosis::Severity::kWarning;
      break;
    case v1::SEVERITY_CRITICAL:
      options.min_severity = diagnosis::Severity::kCritical;
      break;
    default:
      return ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("min_severity: unknown value ", request->min_severity())));
  }
  if (absl::Status v = diagnosis::ValidateOptions(options); !v.ok()) return ToGrpc(v);

  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  CpuShares::Hold cpu(&ctx_.walks);
  diagnosis::CollectOptions collect;
  collect.window = length;
  collect.socket_iter = ctx_.socket_iter.get();
  collect.keep_going = [&] { return CallStillWanted(ctx_, context); };
  collect.yield = [&] { cpu.Yield(); };
  collect.sleep = [&](absl::Duration d) {
    cpu.Without([&] {
      absl::SleepFor(d);
      return 0;
    });
  };
  AddKernelDrops(drops_, true, collect);
  AddFastPaths(fast_path_, collect);
  auto pair = diagnosis::CollectPair(collect);
  if (!pair.ok()) return ToGrpc(pair.status());
  const std::vector<diagnosis::Finding> findings = diagnosis::Diagnose(*pair, options);
  const std::map<std::string, absl::Time> since =
      monitor_ ? monitor_->OpenSince() : std::map<std::string, absl::Time>{};
  for (const auto& f : findings) {
    v1::Finding* out = response->add_findings();
    ToProto(f, tuning_, out);
    if (auto it = since.find(f.rule); it != since.end()) ToProto(it->second, out->mutable_since());
  }
  ToProto(pair->window(), response->mutable_window());
  for (const auto& u : pair->unavailable) response->add_unavailable(u);
  response->set_rules_run(
      options.rules.empty()
          ? diagnosis::Catalog().size()
          : std::set<std::string>(options.rules.begin(), options.rules.end()).size());
  return grpc::Status::OK;
}

grpc::Status DiagnosisService::WatchFindings(grpc::ServerContext* context,
                                             const v1::WatchFindingsRequest* request,
                                             grpc::ServerWriter<v1::FindingEvent>* writer) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  diagnosis::DiagnoseOptions filter;
  if (request->rules_size() > 64) return ToGrpc(absl::InvalidArgumentError("rules: at most 64"));
  for (const auto& r : request->rules()) filter.rules.push_back(r);
  if (absl::Status v = diagnosis::ValidateOptions(filter); !v.ok()) return ToGrpc(v);
  const std::set<std::string> only(filter.rules.begin(), filter.rules.end());
  int min = request->min_severity();
  if (min == v1::SEVERITY_UNSPECIFIED) min = v1::SEVERITY_WARNING;
  if (!v1::Severity_IsValid(min)) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("min_severity: unknown value ", min)));
  }
  if (monitor_ == nullptr) {
    return ToGrpc(absl::FailedPreconditionError(
        "the agent does not evaluate by itself (diagnosis_interval 0): use Diagnose"));
  }
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  auto sub = monitor_->Subscribe();
  bool lost = false;
  // Rules this watcher was told are open: their later events (a drop below
  // its minimum, the clearing) are always sent, so it never keeps an open
  // finding that has ended.
  std::set<std::string> shown;
  for (;;) {
    if (absl::Status st = CallStillWanted(ctx_, context); !st.ok()) return ToGrpc(st);
    std::optional<diagnosis::FindingEvent> e = sub->Next(absl::Seconds(1));
    if (!e) continue;
    lost = sub->TakeLost() || lost;
    if (!only.empty() && !only.count(e->finding.rule)) continue;
    const bool was_shown = shown.count(e->finding.rule) > 0;
    int sev = SeverityToProto(e->finding.severity);
    if (e->previous) sev = std::max<int>(sev, SeverityToProto(*e->previous));
    if (sev < min && !was_shown) continue;
    if (e->kind == diagnosis::FindingEvent::Kind::kCleared) {
      shown.erase(e->finding.rule);
    } else {
      shown.insert(e->finding.rule);
    }
    v1::FindingEvent out;
    switch (e->kind) {
      case diagnosis::FindingEvent::Kind::kOpened:
        out.set_kind(v1::FindingEvent::KIND_OPENED);
        break;
      case diagnosis::FindingEvent::Kind::kChanged:
        out.set_kind(v1::FindingEvent::KIND_CHANGED);
        break;
      case diagnosis::FindingEvent::Kind::kCleared:
        out.set_kind(v1::FindingEvent::KIND_CLEARED);
        break;
    }
    ToProto(e->finding, tuning_, out.mutable_finding(), /*plan=*/false);
    ToProto(e->since, out.mutable_finding()->mutable_since());
    ToProto(e->at, out.mutable_at());
    if (e->previous) out.set_previous_severity(SeverityToProto(*e->previous));
    out.set_initial(e->initial);
    out.set_lost_before(lost);
    lost = false;
    if (!writer->Write(out)) return grpc::Status(grpc::StatusCode::CANCELLED, "caller went away");
  }
}

grpc::Status DiagnosisService::GetCatalog(grpc::ServerContext* context,
                                          const v1::GetCatalogRequest*,
                                          v1::GetCatalogResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  for (const diagnosis::RuleSpec& r : diagnosis::Catalog()) {
    auto* o = response->add_rules();
    o->set_id(r.id);
    o->set_title(r.title);
    o->set_measures(r.measures);
    o->set_explanation(r.explanation);
    o->set_sources(r.sources);
    auto over = overrides_.find(r.id);
    for (const diagnosis::Level& l : r.levels) {
      auto* lo = o->add_levels();
      lo->set_metric(l.metric);
      lo->set_unit(l.unit);
      lo->set_description(l.what);
      lo->set_warning(l.warning);
      lo->set_critical(l.critical);
      if (over != overrides_.end()) {
        if (auto m = over->second.find(l.metric); m != over->second.end()) {
          lo->set_warning(m->second.warning);
          lo->set_critical(m->second.critical);
        }
      }
    }
  }
  return grpc::Status::OK;
}

}  // namespace netagent::agent
