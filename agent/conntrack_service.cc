#include "agent/conntrack_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/convert.h"
#include "agent/wire.h"
#include "kernel/errors.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

constexpr uint32_t kDefaultBatch = 1024;
constexpr uint32_t kMaxBatch = 8192;
// What one streamed message may hold, whatever batch_size says.
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr uint32_t kDefaultTop = 10;
constexpr uint32_t kMaxTop = 1000;

}  // namespace

std::optional<double> FillPercent(const std::optional<uint64_t>& count,
                                  const std::optional<uint64_t>& max) {
  if (!count || !max || *max == 0) return std::nullopt;
  return 100.0 * static_cast<double>(*count) / static_cast<double>(*max);
}

absl::StatusOr<collectors::ConntrackQuery> ConntrackQueryFromProto(const v1::ConntrackFilter& f) {
  collectors::ConntrackQuery q;
  switch (f.family()) {
    case v1::ADDRESS_FAMILY_UNSPECIFIED:
      break;
    case v1::ADDRESS_FAMILY_INET:
      q.family = AF_INET;
      break;
    case v1::ADDRESS_FAMILY_INET6:
      q.family = AF_INET6;
      break;
    default:
      return absl::InvalidArgumentError("filter.family: INET or INET6");
  }
  if (f.has_zone()) {
    if (f.zone() > 0xffff) return absl::InvalidArgumentError("filter.zone: 0-65535");
    q.zone = static_cast<uint16_t>(f.zone());
  }
  if (f.has_mark_mask() && !f.has_mark()) {
    return absl::InvalidArgumentError("filter.mark_mask: needs filter.mark");
  }
  if (f.has_mark()) {
    q.mark = f.mark() & (f.has_mark_mask() ? f.mark_mask() : 0xffffffff);
    if (f.has_mark_mask()) q.mark_mask = f.mark_mask();
  }
  if (!f.protocol().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.protocol,
                              collectors::ParseProtocol(f.protocol(), "filter.protocol"));
  }
  for (const std::string& s : f.tcp_states()) {
    NETAGENT_ASSIGN_OR_RETURN(uint8_t state,
                              collectors::ParseConntrackTcpState(s, "filter.tcp_states"));
    q.tcp_states.insert(state);
  }
  if (!q.tcp_states.empty()) {
    if (q.protocol && *q.protocol != IPPROTO_TCP) {
      return absl::InvalidArgumentError("filter.tcp_states: only TCP entries have TCP states");
    }
    q.protocol = IPPROTO_TCP;
  }
  if (!f.source().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.source, collectors::ParsePrefix(f.source(), "filter.source"));
  }
  if (!f.destination().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.destination,
                              collectors::ParsePrefix(f.destination(), "filter.destination"));
  }
  for (const auto* p : {&q.source, &q.destination}) {
    if (!p->has_value()) continue;
    if (q.family != AF_UNSPEC && q.family != (*p)->address.family) {
      return absl::InvalidArgumentError(
          "filter.family: differs from the family of the source or destination address");
    }
    q.family = (*p)->address.family;
  }
  if (!f.source_port().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.source_port,
                              collectors::ParsePortRange(f.source_port(), "filter.source_port"));
  }
  if (!f.destination_port().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(
        q.destination_port,
        collectors::ParsePortRange(f.destination_port(), "filter.destination_port"));
  }
  return q;
}

void EncodeConntrackEntry(const collectors::ConntrackEntry& e, std::string& out) {
  // v1::ConntrackEntry's fields in field-number order (see wire.h).
  wire::Uint(out, 1, e.family == AF_INET6 ? v1::ADDRESS_FAMILY_INET6 : v1::ADDRESS_FAMILY_INET);
  // A name or at most three digits: short enough to need no allocation.
  wire::Bytes(out, 2, collectors::ConntrackProtocolLabel(e.original.protocol));
  wire::Uint(out, 3, e.original.protocol);
  wire::Uint(out, 4, e.timeout);
  if (e.tcp_state) wire::Bytes(out, 5, collectors::ConntrackTcpStateName(*e.tcp_state));
  collectors::AddressText text;
  const std::pair<uint32_t, const collectors::ConntrackTuple*> tuples[] = {{6, &e.original},
                                                                           {7, &e.reply}};
  for (const auto& tuple : tuples) {
    // Not a structured binding: clang 14 cannot capture one in a lambda.
    const collectors::ConntrackTuple* t = tuple.second;
    wire::Message(out, tuple.first, [&](std::string& o) {
      wire::Bytes(o, 1, collectors::FormatAddress(t->src, text));
      wire::Bytes(o, 2, collectors::FormatAddress(t->dst, text));
      wire::Uint(o, 3, t->src_port);
      wire::Uint(o, 4, t->dst_port);
      wire::Uint(o, 5, t->icmp_type);
      wire::Uint(o, 6, t->icmp_code);
      wire::Uint(o, 7, t->icmp_id);
    });
  }
  collectors::ForEachStatusFlag(e.status,
                                [&](absl::string_view f) { wire::PresentBytes(out, 8, f); });
  wire::Uint(out, 9, e.status);
  wire::Uint(out, 10, e.mark);
  wire::Uint(out, 11, e.zone);
  wire::Uint(out, 12, e.use);
  wire::Uint(out, 13, e.id);
  if (e.orig_packets) wire::PresentUint(out, 14, *e.orig_packets);
  if (e.orig_bytes) wire::PresentUint(out, 15, *e.orig_bytes);
  if (e.reply_packets) wire::PresentUint(out, 16, *e.reply_packets);
  if (e.reply_bytes) wire::PresentUint(out, 17, *e.reply_bytes);
  if (e.start_ns) wire::PresentUint(out, 18, *e.start_ns);
}

grpc::Status ConntrackService::GetConntrackStats(grpc::ServerContext* context,
                                                 const v1::GetConntrackStatsRequest* request,
                                                 v1::GetConntrackStatsResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto stats = collectors::ReadConntrackStats();
  if (!stats.ok()) return ToGrpc(stats.status());
  if (stats->count) response->set_count(*stats->count);
  if (stats->max) response->set_max(*stats->max);
  if (auto fill = FillPercent(stats->count, stats->max)) response->set_fill_percent(*fill);
  for (const auto& c : stats->cpus) {
    auto* o = response->add_cpus();
    o->set_cpu(c.cpu);
    ToProto(c.values, o->mutable_values());
  }
  ToProto(stats->total, response->mutable_total());
  response->set_source(stats->source);
  return grpc::Status::OK;
}

HandlerOverrides ConntrackService::Handlers() {
  // ListConntrack writes its batches already encoded (EncodeConntrackEntry):
  // the bytes of v1::ListConntrackResponse messages, without building
  // hundreds of thousands of messages to serialize and drop. Its handler is
  // the generated one's but for the type it writes.
  HandlerOverrides handlers;
  handlers["ListConntrack"] = std::make_unique<grpc::internal::ServerStreamingHandler<
      ConntrackService, v1::ListConntrackRequest, grpc::ByteBuffer>>(
      &ConntrackService::ListConntrackEncoded, this);
  return handlers;
}

grpc::Status ConntrackService::ListConntrackEncoded(grpc::ServerContext* context,
                                                    const v1::ListConntrackRequest* request,
                                                    grpc::ServerWriter<grpc::ByteBuffer>* writer) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto query = ConntrackQueryFromProto(request->filter());
  if (!query.ok()) return ToGrpc(query.status());
  const uint32_t batch = request->batch_size() == 0 ? kDefaultBatch : request->batch_size();
  if (batch > kMaxBatch) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("batch_size: at most ", kMaxBatch));
  }
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  CpuShares::Hold cpu(&ctx_.walks);
  // One v1::ListConntrackResponse: its entries (field 1), and on the last
  // message the report's fields (appended in field order after them).
  std::string encoded;
  encoded.reserve(kMaxBatchBytes + 4096);
  uint32_t in_batch = 0;
  auto write = [&] {
    grpc::Slice slice(encoded.data(), encoded.size());
    grpc::ByteBuffer message(&slice, 1);
    encoded.clear();
    in_batch = 0;
    return cpu.Without([&] { return writer->Write(message); });
  };
  auto report = collectors::DumpConntrack(
      *query,
      [&](const collectors::ConntrackEntry& e) {
        wire::Message(encoded, 1, [&](std::string& out) { EncodeConntrackEntry(e, out); });
        if (++in_batch >= batch || encoded.size() >= kMaxBatchBytes) {
          if (!write()) return absl::CancelledError("caller went away");
        }
        return absl::OkStatus();
      },
      [&] {
        cpu.Yield();
        return CallStillWanted(ctx_, context);
      });
  if (!report.ok()) return ToGrpc(report.status());
  v1::ListConntrackResponse last;
  last.set_examined(report->examined);
  last.set_kernel_tuple_filter(report->kernel_tuple_filter);
  for (const auto& w : report->warnings) last.add_warnings(w);
  last.AppendToString(&encoded);
  if (!write()) return grpc::Status(grpc::StatusCode::CANCELLED, "caller went away");
  return grpc::Status::OK;
}

grpc::Status ConntrackService::GetConntrackSummary(grpc::ServerContext* context,
                                                   const v1::GetConntrackSummaryRequest* request,
                                                   v1::GetConntrackSummaryResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto query = ConntrackQueryFromProto(request->filter());
  if (!query.ok()) return ToGrpc(query.status());
  const uint32_t top = request->top() == 0 ? kDefaultTop : request->top();
  if (top > kMaxTop) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("top: at most ", kMaxTop));
  }
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  CpuShares::Hold cpu(&ctx_.walks);
  collectors::ConntrackSummarizer summary;
  auto report = collectors::DumpConntrack(
      *query,
      [&](const collectors::ConntrackEntry& e) {
        summary.Add(e);
        return absl::OkStatus();
      },
      [&] {
        cpu.Yield();
        return CallStillWanted(ctx_, context);
      });
  if (!report.ok()) return ToGrpc(report.status());
  response->set_matched(summary.matched());
  if (auto stats = collectors::ReadConntrackStats(); stats.ok()) {
    if (stats->count) response->set_count(*stats->count);
    if (stats->max) response->set_max(*stats->max);
    if (auto fill = FillPercent(stats->count, stats->max)) response->set_fill_percent(*fill);
  }
  for (const auto& c : summary.Counts()) {
    auto* o = response->add_counts();
    o->set_protocol(c.protocol);
    o->set_state(c.state);
    o->set_count(c.count);
  }
  for (const auto& [addr, n] : summary.TopSources(top)) {
    auto* o = response->add_top_sources();
    o->set_address(collectors::FormatAddress(addr));
    o->set_count(n);
  }
  for (const auto& w : report->warnings) response->add_warnings(w);
  return grpc::Status::OK;
}

}  // namespace netagent::agent
