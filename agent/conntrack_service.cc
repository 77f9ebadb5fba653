#include "agent/conntrack_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/convert.h"
#include "google/protobuf/arena.h"
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

// Room for the batch's messages: one block, allocated once per call and
// reused by every batch (a batch of 1,024 IPv4 entries takes about 400 KiB).
constexpr size_t kBatchArenaBytes = 1 << 20;

// At least what `e` takes on the wire, within a few bytes: its strings, and
// at most 160 bytes of tags, lengths and varints. Cheaper than ByteSizeLong,
// which serializing the batch computes again anyway.
size_t WireBound(const v1::ConntrackEntry& e) {
  size_t n = 160 + e.protocol().size() + e.tcp_state().size();
  for (const v1::ConntrackTuple* t : {&e.original(), &e.reply()})
    n += t->source().size() + t->destination().size();
  for (const std::string& f : e.flags()) n += 2 + f.size();
  return n;
}

void TupleToProto(const collectors::ConntrackTuple& t, v1::ConntrackTuple* o) {
  o->set_source(collectors::FormatAddress(t.src));
  o->set_destination(collectors::FormatAddress(t.dst));
  o->set_source_port(t.src_port);
  o->set_destination_port(t.dst_port);
  o->set_icmp_type(t.icmp_type);
  o->set_icmp_code(t.icmp_code);
  o->set_icmp_id(t.icmp_id);
}

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

void ToProto(const collectors::ConntrackEntry& e, v1::ConntrackEntry* o) {
  o->set_family(e.family == AF_INET6 ? v1::ADDRESS_FAMILY_INET6 : v1::ADDRESS_FAMILY_INET);
  o->set_protocol(collectors::ConntrackProtocolLabel(e.original.protocol));
  o->set_protocol_number(e.original.protocol);
  o->set_timeout(e.timeout);
  if (e.tcp_state) o->set_tcp_state(std::string(collectors::ConntrackTcpStateName(*e.tcp_state)));
  TupleToProto(e.original, o->mutable_original());
  TupleToProto(e.reply, o->mutable_reply());
  collectors::ForEachStatusFlag(e.status,
                                [o](absl::string_view f) { o->add_flags(std::string(f)); });
  o->set_status(e.status);
  o->set_mark(e.mark);
  o->set_zone(e.zone);
  o->set_use(e.use);
  o->set_id(e.id);
  if (e.orig_packets) o->set_original_packets(*e.orig_packets);
  if (e.orig_bytes) o->set_original_bytes(*e.orig_bytes);
  if (e.reply_packets) o->set_reply_packets(*e.reply_packets);
  if (e.reply_bytes) o->set_reply_bytes(*e.reply_bytes);
  if (e.start_ns) o->set_start_ns(*e.start_ns);
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

grpc::Status ConntrackService::ListConntrack(
    grpc::ServerContext* context, const v1::ListConntrackRequest* request,
    grpc::ServerWriter<v1::ListConntrackResponse>* writer) {
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
  // Each batch is built in an arena and dropped with it once written: no
  // allocation or free per entry and tuple.
  std::vector<char> block(kBatchArenaBytes);
  google::protobuf::ArenaOptions options;
  options.initial_block = block.data();
  options.initial_block_size = block.size();
  google::protobuf::Arena arena(options);
  auto* msg = google::protobuf::Arena::CreateMessage<v1::ListConntrackResponse>(&arena);
  size_t bytes = 0;
  auto report = collectors::DumpConntrack(
      *query,
      [&](const collectors::ConntrackEntry& e) {
        v1::ConntrackEntry* added = msg->add_entries();
        ToProto(e, added);
        bytes += WireBound(*added);
        if (static_cast<uint32_t>(msg->entries_size()) >= batch || bytes >= kMaxBatchBytes) {
          if (!cpu.Without([&] { return writer->Write(*msg); }))
            return absl::CancelledError("caller went away");
          arena.Reset();
          msg = google::protobuf::Arena::CreateMessage<v1::ListConntrackResponse>(&arena);
          bytes = 0;
        }
        return absl::OkStatus();
      },
      [&] {
        cpu.Yield();
        return CallStillWanted(ctx_, context);
      });
  if (!report.ok()) return ToGrpc(report.status());
  msg->set_examined(report->examined);
  msg->set_kernel_tuple_filter(report->kernel_tuple_filter);
  for (const auto& w : report->warnings) msg->add_warnings(w);
  if (!cpu.Without([&] { return writer->Write(*msg); }))
    return grpc::Status(grpc::StatusCode::CANCELLED, "caller went away");
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
