#include "agent/datapath_service.h"

#include "absl/strings/str_cat.h"
#include "agent/convert.h"
#include "collectors/links.h"
#include "kernel/errors.h"
#include "kernel/text.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

constexpr uint32_t kDefaultRulePage = 1000, kMaxRulePage = 10000;
constexpr size_t kSamplesPerMessage = 64;

// Comments are printed in rule listings: a control character in one could
// draw a fake row on an operator's terminal.
absl::Status CheckComment(const std::string& comment, const std::string& field) {
  if (comment.size() > datapath::RuleLimits().max_comment) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", datapath::RuleLimits().max_comment, " bytes"));
  }
  if (std::string why = kernel::FindUnprintable(comment); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  }
  return absl::OkStatus();
}

absl::Status CheckDevice(const std::string& dev) {
  if (dev.empty()) return absl::InvalidArgumentError("device: required");
  return collectors::ValidateInterfaceName(dev, "device");
}

v1::XdpMode ModeToProto(absl::string_view mode) {
  if (mode == "native") return v1::XDP_MODE_NATIVE;
  if (mode == "generic") return v1::XDP_MODE_GENERIC;
  if (mode == "tc") return v1::XDP_MODE_TC;
  return v1::XDP_MODE_UNSPECIFIED;
}

v1::XdpMode ModeToProto(datapath::AttachMode m) {
  switch (m) {
    case datapath::AttachMode::kNative:
      return v1::XDP_MODE_NATIVE;
    case datapath::AttachMode::kGeneric:
      return v1::XDP_MODE_GENERIC;
    case datapath::AttachMode::kTc:
      return v1::XDP_MODE_TC;
    default:
      return v1::XDP_MODE_UNSPECIFIED;
  }
}

void FeaturesToProto(const datapath::Features& f, v1::DatapathFeatures* out) {
  out->set_allowlist(f.allowlist);
  out->set_blocklist(f.blocklist);
  v1::SynGuardConfig* g = out->mutable_syn_guard();
  g->set_enabled(f.syn_guard);
  g->set_rate(f.syn_rate);
  g->set_burst(f.syn_burst);
  g->set_prefix4(f.syn_prefix4);
  g->set_prefix6(f.syn_prefix6);
  g->set_new_source_rate(f.new_source_rate);
  g->set_new_source_burst(f.new_source_burst);
  g->set_listed_ports_only(f.listed_ports_only);
  out->set_drop_malformed(f.drop_malformed);
  out->set_drop_fragments(f.drop_fragments);
  out->set_sample_every(f.sample_every);
  out->set_sample_max_per_second(f.sample_max_per_second);
  out->set_clamp_mss(f.clamp_mss);
  out->set_class_accounting(f.class_accounting);
}

void CountToProto(const datapath::DatapathManager::VerdictCount& c, v1::VerdictCount* out) {
  out->set_verdict(c.dropped ? "drop" : "pass");
  out->set_reason(std::string(datapath::ReasonName(c.reason)));
  out->set_packets(c.packets);
  out->set_bytes(c.bytes);
}

}  // namespace

absl::StatusOr<datapath::DatapathManager::AttachOptions> AttachFromProto(
    const v1::AttachRequest& in) {
  NETAGENT_RETURN_IF_ERROR(CheckDevice(in.device()));
  datapath::DatapathManager::AttachOptions a;
  a.device = in.device();
  a.force = in.force();
  switch (in.mode()) {
    case v1::XDP_MODE_UNSPECIFIED:
      a.mode = datapath::AttachMode::kAuto;
      break;
    case v1::XDP_MODE_NATIVE:
      a.mode = datapath::AttachMode::kNative;
      break;
    case v1::XDP_MODE_GENERIC:
      a.mode = datapath::AttachMode::kGeneric;
      break;
    case v1::XDP_MODE_TC:
      a.mode = datapath::AttachMode::kTc;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("mode: unknown value ", in.mode()));
  }
  if (in.has_features()) {
    const v1::DatapathFeatures& f = in.features();
    datapath::Features& o = a.features;
    o.allowlist = f.allowlist();
    o.blocklist = f.blocklist();
    const v1::SynGuardConfig& g = f.syn_guard();
    o.syn_guard = g.enabled();
    o.syn_rate = g.rate();
    o.syn_burst = g.burst();
    o.syn_prefix4 = g.prefix4() ? g.prefix4() : 32;
    o.syn_prefix6 = g.prefix6() ? g.prefix6() : 128;
    o.new_source_rate = g.new_source_rate();
    o.new_source_burst = g.new_source_burst();
    o.listed_ports_only = g.listed_ports_only();
    o.drop_malformed = f.drop_malformed();
    o.drop_fragments = f.drop_fragments();
    o.sample_every = f.sample_every();
    o.sample_max_per_second = f.sample_max_per_second();
    o.clamp_mss = f.clamp_mss();
    o.class_accounting = f.class_accounting();
  }
  NETAGENT_RETURN_IF_ERROR(datapath::ValidateFeatures(a.features, "features"));
  return a;
}

absl::StatusOr<std::vector<datapath::RuleEdit>> EditsFromProto(
    const google::protobuf::RepeatedPtrField<v1::RuleEdit>& in) {
  std::vector<datapath::RuleEdit> out;
  out.reserve(in.size());
  for (int i = 0; i < in.size(); ++i) {
    const std::string field = absl::StrCat("edits[", i, "]");
    const v1::RuleEdit& e = in[i];
    datapath::RuleEdit edit;
    if (e.edit_case() == v1::RuleEdit::kDeleteId) {
      edit.kind = datapath::RuleEdit::kDelete;
      edit.id = e.delete_id();
      out.push_back(std::move(edit));
      continue;
    }
    if (e.edit_case() != v1::RuleEdit::kAdd)
      return absl::InvalidArgumentError(absl::StrCat(field, ": add or delete_id"));
    const v1::DatapathRule& r = e.add();
    datapath::Rule& rule = edit.rule;
    NETAGENT_RETURN_IF_ERROR(CheckComment(r.comment(), absl::StrCat(field, ".add.comment")));
    rule.comment = r.comment();
    const bool has_prefix = !r.prefix().empty();
    if (has_prefix == r.has_port()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".add: a rule has either a prefix or a port"));
    }
    if (has_prefix) {
      auto p = datapath::ParsePrefix(r.prefix(), absl::StrCat(field, ".add.prefix"));
      if (!p.ok()) return p.status();
      rule.prefix = *p;
      if (r.action() == v1::RULE_ACTION_ALLOW) {
        rule.action = datapath::RuleAction::kAllow;
      } else if (r.action() == v1::RULE_ACTION_BLOCK) {
        rule.action = datapath::RuleAction::kBlock;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".add.action: allow or block (not ", r.action(), ")"));
      }
    } else {
      const v1::PortRule& p = r.port();
      if (p.port() == 0 || p.port() > 65535) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".add.port.port: ", p.port(), " is not a port (1..65535)"));
      }
      // Unset means block: a port rule's flags say what it does.
      if (r.action() == v1::RULE_ACTION_ALLOW) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".add.action: port rules block or guard"));
      }
      if (r.action() != v1::RULE_ACTION_UNSPECIFIED && r.action() != v1::RULE_ACTION_BLOCK) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".add.action: unknown value ", r.action()));
      }
      rule.action = datapath::RuleAction::kBlock;
      rule.port = datapath::PortRule{static_cast<uint16_t>(p.port()), p.block_tcp(), p.block_udp(),
                                     p.syn_guard()};
    }
    out.push_back(std::move(edit));
  }
  return out;
}

void ToProto(const datapath::Rule& r, v1::DatapathRule* out) {
  out->set_id(r.id);
  out->set_action(r.action == datapath::RuleAction::kAllow ? v1::RULE_ACTION_ALLOW
                                                           : v1::RULE_ACTION_BLOCK);
  if (r.prefix) out->set_prefix(datapath::FormatPrefix(*r.prefix));
  if (r.port) {
    v1::PortRule* p = out->mutable_port();
    p->set_port(r.port->port);
    p->set_block_tcp(r.port->tcp);
    p->set_block_udp(r.port->udp);
    p->set_syn_guard(r.port->syn_guard);
  }
  out->set_comment(r.comment);
}

void ToProto(const datapath::DatapathManager::DeviceStatus& s, v1::DeviceDatapath* out) {
  out->set_device(s.info.device);
  out->set_ifindex(s.info.ifindex);
  out->set_mode(ModeToProto(s.info.mode));
  out->set_requested_mode(ModeToProto(s.meta.requested_mode));
  out->set_note(s.note);
  // The guard is the XDP program, or in TC mode the TC guard; tc_prog_id is
  // otherwise the accounting/MSS-clamp program.
  if (s.info.mode == "tc") {
    out->set_tc_prog_id(s.info.prog_id);
  } else {
    out->set_xdp_prog_id(s.info.prog_id);
    out->set_tc_prog_id(s.info.tc_prog_id);
  }
  out->set_pin_path(s.info.pin_dir);
  FeaturesToProto(s.meta.features, out->mutable_features());
  out->set_rules_revision(s.meta.revision);
  out->set_rules(s.rules);
  ToProto(absl::FromUnixNanos(s.meta.attached_at_unix_ns), out->mutable_attached_at());
}

grpc::Status DatapathService::Begin(grpc::ServerContext* context) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  if (manager_ == nullptr) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, why_);
  return grpc::Status::OK;
}

grpc::Status DatapathService::Attach(grpc::ServerContext* context, const v1::AttachRequest* request,
                                     v1::AttachResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  auto a = AttachFromProto(*request);
  if (!a.ok()) return ToGrpc(a.status());
  auto st = manager_->Attach(*a);
  if (!st.ok()) return ToGrpc(st.status());
  ToProto(*st, response->mutable_datapath());
  return grpc::Status::OK;
}

grpc::Status DatapathService::Detach(grpc::ServerContext* context, const v1::DetachRequest* request,
                                     v1::DetachResponse*) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = CheckDevice(request->device()); !st.ok()) return ToGrpc(st);
  return ToGrpc(manager_->Detach(request->device()));
}

grpc::Status DatapathService::GetStatus(grpc::ServerContext* context,
                                        const v1::GetDatapathStatusRequest*,
                                        v1::GetDatapathStatusResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  for (const auto& d : manager_->Status()) ToProto(d, response->add_devices());
  return grpc::Status::OK;
}

grpc::Status DatapathService::UpdateRules(grpc::ServerContext* context,
                                          const v1::UpdateRulesRequest* request,
                                          v1::UpdateRulesResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = CheckDevice(request->device()); !st.ok()) return ToGrpc(st);
  auto edits = EditsFromProto(request->edits());
  if (!edits.ok()) return ToGrpc(edits.status());
  auto r = manager_->UpdateRules(request->device(), request->expected_revision(), *edits);
  if (!r.ok()) return ToGrpc(r.status());
  response->set_revision(r->revision);
  for (const auto& rule : r->added) ToProto(rule, response->add_added());
  return grpc::Status::OK;
}

grpc::Status DatapathService::ListRules(grpc::ServerContext* context,
                                        const v1::ListRulesRequest* request,
                                        v1::ListRulesResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = CheckDevice(request->device()); !st.ok()) return ToGrpc(st);
  if (request->limit() > kMaxRulePage) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("limit: at most ", kMaxRulePage)));
  }
  auto list = manager_->ListRules(request->device(), request->from_id(),
                                  request->limit() ? request->limit() : kDefaultRulePage);
  if (!list.ok()) return ToGrpc(list.status());
  response->set_revision(list->revision);
  response->set_next_id(list->next_id);
  for (const auto& h : list->rules) {
    v1::DatapathRule* r = response->add_rules();
    ToProto(h.rule, r);
    r->set_hit_packets(h.packets);
    r->set_hit_bytes(h.bytes);
  }
  return grpc::Status::OK;
}

grpc::Status DatapathService::GetStats(grpc::ServerContext* context,
                                       const v1::GetDatapathStatsRequest* request,
                                       v1::GetDatapathStatsResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = CheckDevice(request->device()); !st.ok()) return ToGrpc(st);
  auto stats = manager_->GetStats(request->device(), request->per_cpu());
  if (!stats.ok()) return ToGrpc(stats.status());
  for (const auto& c : stats->total) CountToProto(c, response->add_total());
  for (size_t cpu = 0; cpu < stats->per_cpu.size(); ++cpu) {
    v1::CpuVerdicts* out = response->add_cpus();
    out->set_cpu(static_cast<uint32_t>(cpu));
    for (const auto& c : stats->per_cpu[cpu]) CountToProto(c, out->add_counts());
  }
  for (const auto& k : stats->classes) {
    v1::ClassCount* c = response->add_classes();
    c->set_direction(k.egress ? "egress" : "ingress");
    c->set_protocol(std::string(datapath::TcProtoName(k.proto)));
    c->set_port_class(k.port_class);
    c->set_packets(k.packets);
    c->set_bytes(k.bytes);
  }
  for (const auto& [name, value] : stats->events) {
    v1::NamedValue* e = response->add_events();
    e->set_name(name);
    e->set_value(value);
  }
  return grpc::Status::OK;
}

grpc::Status DatapathService::StreamSamples(grpc::ServerContext* context,
                                            const v1::StreamSamplesRequest* request,
                                            grpc::ServerWriter<v1::StreamSamplesResponse>* writer) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = CheckDevice(request->device()); !st.ok()) return ToGrpc(st);
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  auto q = manager_->SubscribeSamples(request->device(), request->live_only());
  if (!q.ok()) return ToGrpc(q.status());
  struct Leave {
    datapath::DatapathManager* m;
    std::string dev;
    std::shared_ptr<datapath::SampleQueue> q;
    ~Leave() { m->Unsubscribe(dev, q); }
  } leave{manager_, request->device(), *q};
  // Headers now, so the caller knows the stream is open before any drop.
  writer->SendInitialMetadata();
  while (true) {
    if (absl::Status st = CallStillWanted(ctx_, context); !st.ok()) {
      // The caller left, or the agent stops: the stream ends normally.
      return absl::IsUnavailable(st) ? grpc::Status::OK : ToGrpc(st);
    }
    std::vector<datapath::DropSampleRecord> got =
        (*q)->Wait(absl::Milliseconds(250), kSamplesPerMessage);
    if (got.empty()) {
      if ((*q)->closed()) {
        return grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            absl::StrCat("device ", request->device(), ": the fast path was detached"));
      }
      continue;
    }
    v1::StreamSamplesResponse msg;
    for (const auto& s : got) {
      v1::DropSample* o = msg.add_samples();
      ToProto(s.at, o->mutable_at());
      o->set_reason(s.reason);
      o->set_rule_id(s.rule_id);
      o->set_packet_length(s.packet_length);
      o->set_data(s.data);
      o->set_rx_queue(s.rx_queue);
      o->set_summary(s.summary);
    }
    msg.set_overflowed((*q)->overflowed());
    if (!writer->Write(msg)) return grpc::Status::OK;
  }
}

grpc::Status DatapathService::TestPacket(grpc::ServerContext* context,
                                         const v1::TestPacketRequest* request,
                                         v1::TestPacketResponse* response) {
  if (grpc::Status s = Begin(context); !s.ok()) return s;
  if (auto st = CheckDevice(request->device()); !st.ok()) return ToGrpc(st);
  auto slot = AcquireSlot(ctx_, ctx_.packet_tests, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  auto r = manager_->TestPacket(request->device(), request->packet());
  if (!r.ok()) return ToGrpc(r.status());
  response->set_verdict(r->dropped ? "drop" : "pass");
  response->set_reason(std::string(datapath::ReasonName(r->reason)));
  response->set_summary(r->summary);
  if (r->rule) {
    response->set_rule_id(r->rule->id);
    ToProto(*r->rule, response->mutable_rule());
  }
  return grpc::Status::OK;
}

}  // namespace netagent::agent
