#include "agent/convert.h"

#include "absl/strings/str_cat.h"
#include "collectors/links.h"
#include "kernel/errors.h"
#include "kernel/text.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::StatusOr<std::optional<absl::Duration>> DurationFromRequest(
    bool has, const google::protobuf::Duration& d, absl::string_view field, absl::Duration max) {
  if (!has) return std::nullopt;
  if (d.nanos() <= -1000000000 || d.nanos() >= 1000000000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": malformed duration"));
  }
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be negative"));
  }
  if (d.seconds() > absl::ToInt64Seconds(max) + 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", absl::FormatDuration(max)));
  }
  absl::Duration v = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (v > max) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", absl::FormatDuration(max)));
  }
  if (v == absl::ZeroDuration()) return std::nullopt;
  return v;
}

absl::StatusOr<absl::Duration> WatchInterval(const v1::WatchRequest& req) {
  auto d = DurationFromRequest(req.has_interval(), req.interval(), "interval", kMaxWatchInterval);
  if (!d.ok()) return d.status();
  if (!d->has_value()) return absl::Seconds(1);
  if (**d < kMinWatchInterval) {
    return absl::InvalidArgumentError(
        absl::StrCat("interval: at least ", absl::FormatDuration(kMinWatchInterval)));
  }
  return **d;
}

absl::Status CheckDropReasonsRequest(const v1::GetDropReasonsRequest& req) {
  if (req.reasons_size() > kMaxDropFilters) {
    return absl::InvalidArgumentError(absl::StrCat("reasons: at most ", kMaxDropFilters));
  }
  if (req.devices_size() > kMaxDropFilters) {
    return absl::InvalidArgumentError(absl::StrCat("devices: at most ", kMaxDropFilters));
  }
  for (int i = 0; i < req.devices_size(); ++i) {
    NETAGENT_RETURN_IF_ERROR(
        collectors::ValidateInterfaceName(req.devices(i), absl::StrCat("devices[", i, "]")));
  }
  for (int i = 0; i < req.reasons_size(); ++i) {
    if (req.reasons(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("reasons[", i, "]: empty"));
    }
  }
  if (req.has_max_samples() && req.max_samples() > kMaxDropSamples) {
    return absl::InvalidArgumentError(absl::StrCat("max_samples: at most ", kMaxDropSamples));
  }
  return absl::OkStatus();
}

absl::StatusOr<datapath::KernelDropQuery> DropQueryFromRequest(
    const v1::GetDropReasonsRequest& req, const datapath::DropReasonNames& names) {
  NETAGENT_RETURN_IF_ERROR(CheckDropReasonsRequest(req));
  datapath::KernelDropQuery q;
  for (int i = 0; i < req.reasons_size(); ++i) {
    std::optional<uint32_t> v = names.Value(req.reasons(i));
    if (!v) {
      return absl::InvalidArgumentError(absl::StrCat("reasons[", i,
                                                     "]: ", kernel::Quote(req.reasons(i)),
                                                     " is not a drop reason of this kernel"));
    }
    q.reasons.insert(*v);
  }
  q.devices.insert(req.devices().begin(), req.devices().end());
  q.max_samples = req.has_max_samples() ? req.max_samples() : kDefaultDropSamples;
  return q;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

namespace {

void CountersToProto(const collectors::SoftnetCounters& c, v1::SoftnetCounters* out) {
  out->set_processed(c.processed);
  out->set_dropped(c.dropped);
  out->set_time_squeeze(c.time_squeeze);
  out->set_cpu_collision(c.cpu_collision);
  if (c.received_rps) out->set_received_rps(*c.received_rps);
  if (c.flow_limit_count) out->set_flow_limit_count(*c.flow_limit_count);
}

void RatesToProto(const collectors::SoftnetRates& r, v1::SoftnetRates* out) {
  out->set_processed(r.processed);
  out->set_dropped(r.dropped);
  out->set_time_squeeze(r.time_squeeze);
  out->set_cpu_collision(r.cpu_collision);
  if (r.received_rps) out->set_received_rps(*r.received_rps);
  if (r.flow_limit_count) out->set_flow_limit_count(*r.flow_limit_count);
}

void ReadingToProto(const collectors::SoftnetReading& r, std::optional<absl::Duration> window,
                    v1::SoftnetCpu* out) {
  out->set_cpu(r.row.cpu);
  CountersToProto(r.row.counters, out->mutable_counters());
  if (r.row.backlog_len) out->set_backlog_len(*r.row.backlog_len);
  if (r.row.input_queue_len) out->set_input_queue_len(*r.row.input_queue_len);
  if (r.row.process_queue_len) out->set_process_queue_len(*r.row.process_queue_len);
  if (r.delta && window) {
    CountersToProto(*r.delta, out->mutable_delta());
    RatesToProto(collectors::SoftnetRate(*r.delta, *window), out->mutable_rate());
  }
}

v1::CounterSource SourceToProto(collectors::CounterSource s) {
  switch (s) {
    case collectors::CounterSource::kSnmp:
      return v1::COUNTER_SOURCE_SNMP;
    case collectors::CounterSource::kNetstat:
      return v1::COUNTER_SOURCE_NETSTAT;
    case collectors::CounterSource::kSnmp6:
      return v1::COUNTER_SOURCE_SNMP6;
    case collectors::CounterSource::kSctp:
      return v1::COUNTER_SOURCE_SCTP;
  }
  return v1::COUNTER_SOURCE_UNSPECIFIED;
}

}  // namespace

void ToProto(const collectors::SoftnetReport& report, v1::GetSoftnetResponse* out) {
  for (const auto& r : report.cpus) ReadingToProto(r, report.window, out->add_cpus());
  ReadingToProto(report.total, report.window, out->mutable_total());
  out->set_columns(static_cast<uint32_t>(report.columns));
  switch (report.cpu_id_source) {
    case collectors::CpuIdSource::kColumn:
      out->set_cpu_id_source(v1::CPU_ID_SOURCE_COLUMN);
      break;
    case collectors::CpuIdSource::kOnlineOrder:
      out->set_cpu_id_source(v1::CPU_ID_SOURCE_ONLINE_ORDER);
      break;
    case collectors::CpuIdSource::kLineIndex:
      out->set_cpu_id_source(v1::CPU_ID_SOURCE_LINE_INDEX);
      break;
  }
  ToProto(report.taken, out->mutable_sampled_at());
  if (report.window) ToProto(*report.window, out->mutable_window());
}

void ToProto(const collectors::CounterReport& report, v1::GetCountersResponse* out) {
  out->mutable_counters()->Reserve(static_cast<int>(report.counters.size()));
  for (const auto& r : report.counters) {
    v1::Counter* c = out->add_counters();
    c->set_name(r.value.name());
    c->set_group(r.value.group);
    c->set_field(r.value.field);
    c->set_source(SourceToProto(r.value.source));
    c->set_kind(r.value.gauge ? v1::COUNTER_KIND_GAUGE : v1::COUNTER_KIND_COUNTER);
    c->set_value(r.value.value);
    if (r.delta) c->set_delta(*r.delta);
    if (r.rate) c->set_rate(*r.rate);
  }
  for (const auto& u : report.unavailable) {
    v1::UnavailableSource* s = out->add_unavailable();
    s->set_source(SourceToProto(u.source));
    s->set_reason(u.reason);
  }
  ToProto(report.taken, out->mutable_sampled_at());
  if (report.window) ToProto(*report.window, out->mutable_window());
}

void ToProto(const datapath::KernelDropReport& report, const datapath::DropCollectorStatus& status,
             v1::GetDropReasonsResponse* out) {
  out->mutable_rows()->Reserve(static_cast<int>(report.rows.size()));
  for (const datapath::KernelDropRow& r : report.rows) {
    v1::DropReasonCount* c = out->add_rows();
    c->set_reason(r.reason);
    c->set_reason_code(r.key.reason);
    c->set_device(r.device);
    c->set_ifindex(r.key.ifindex);
    c->set_protocol(r.protocol);
    c->set_ethertype(r.key.ethertype);
    c->set_ip_protocol(r.key.ip_protocol);
    c->set_count(r.count);
    if (r.delta) c->set_delta(*r.delta);
    if (r.rate) c->set_rate(*r.rate);
  }
  out->set_total(report.total);
  if (report.total_delta) out->set_total_delta(*report.total_delta);
  for (const datapath::KernelDropSampleView& v : report.samples) {
    v1::DropReasonSample* s = out->add_samples();
    ToProto(v.sample.at, s->mutable_time());
    s->set_reason(v.reason);
    s->set_reason_code(v.sample.key.reason);
    s->set_device(v.device);
    s->set_ifindex(v.sample.key.ifindex);
    s->set_protocol(v.protocol);
    s->set_source(v.source);
    s->set_destination(v.destination);
    if (v.sample.source_port) s->set_source_port(*v.sample.source_port);
    if (v.sample.destination_port) s->set_destination_port(*v.sample.destination_port);
    s->set_length(v.sample.length);
  }
  for (const datapath::DropSourceRow& t : report.top_sources) {
    v1::DropSourcePrefix* p = out->add_top_sources();
    p->set_prefix(t.prefix);
    p->set_samples(t.samples);
    p->set_top_reason(t.top_reason);
  }
  v1::DropCollectorInfo* c = out->mutable_collector();
  ToProto(status.attached_at, c->mutable_attached_at());
  c->set_attached_now(status.attached_now);
  c->set_samples_per_second(status.samples_per_second);
  c->set_samples_taken(report.events.sampled);
  c->set_samples_capped(report.events.sample_capped);
  c->set_samples_lost(report.events.sample_lost);
  c->set_no_room(report.events.table_full);
  c->set_unattributed(report.events.no_netns);
  c->set_reasons_known(static_cast<uint32_t>(status.reasons_known));
  c->set_compat(status.compat);
  c->set_prog_id(status.prog_id);
  ToProto(report.taken, out->mutable_sampled_at());
  if (report.window) ToProto(*report.window, out->mutable_window());
}

void ToProto(const Caller& caller, const RoleDecision& decision, v1::Caller* out) {
  switch (caller.transport) {
    case Transport::kUnix:
      out->set_transport(v1::TRANSPORT_UNIX);
      break;
    case Transport::kTcp:
      out->set_transport(v1::TRANSPORT_TCP);
      break;
    case Transport::kTls:
      out->set_transport(v1::TRANSPORT_TLS);
      break;
  }
  if (caller.uid) out->set_uid(*caller.uid);
  if (caller.gid) out->set_gid(*caller.gid);
  if (caller.pid) out->set_pid(*caller.pid);
  for (const auto& id : caller.identities) out->add_identities(id);
  out->set_peer(caller.peer);
  out->set_role(decision.role == Role::kOperator ? v1::ROLE_OPERATOR : v1::ROLE_VIEWER);
  out->set_role_reason(decision.reason);
}

void ToProto(const collectors::NamedValues& values,
             google::protobuf::RepeatedPtrField<v1::NamedValue>* out) {
  out->Reserve(out->size() + static_cast<int>(values.size()));
  for (const auto& [name, value] : values) {
    v1::NamedValue* v = out->Add();
    v->set_name(name);
    v->set_value(value);
  }
}

}  // namespace netagent::agent
