#include "agent/telemetry_service.h"

#include "agent/convert.h"
#include "collectors/counters.h"
#include "collectors/softnet.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

std::function<bool()> CancelledFn(grpc::ServerContext* context) {
  return [context] { return context->IsCancelled(); };
}

// One sample, or two `window` apart; `build(before or nullptr, after)` fills
// the response.
template <typename Read, typename Build>
grpc::Status Sampled(AgentContext& ctx, grpc::ServerContext* context,
                     std::optional<absl::Duration> window, Read read, Build build) {
  std::unique_ptr<LongCallLimiter::Slot> slot;
  if (window) {
    auto acquired = AcquireLongCall(ctx, context);
    if (!acquired.ok()) return ToGrpc(acquired.status());
    slot = std::move(*acquired);
  }
  auto first = read();
  if (!first.ok()) return ToGrpc(first.status());
  if (!window) {
    build(nullptr, *first);
    return grpc::Status::OK;
  }
  absl::Status slept =
      ctx.lifecycle.Sleep(*window, CancelledFn(context), Lifecycle::OnShutdown::kFinishWithinGrace);
  if (!slept.ok()) return ToGrpc(slept);
  auto second = read();
  if (!second.ok()) return ToGrpc(second.status());
  build(&*first, *second);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status TelemetryService::GetSoftnet(grpc::ServerContext* context,
                                          const v1::GetSoftnetRequest* request,
                                          v1::GetSoftnetResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto window = DurationFromRequest(request->has_window(), request->window(), "window", kMaxWindow);
  if (!window.ok()) return ToGrpc(window.status());
  return Sampled(
      ctx_, context, *window, [] { return collectors::ReadSoftnet(); },
      [&](const collectors::SoftnetSample* before, const collectors::SoftnetSample& after) {
        ToProto(collectors::BuildSoftnetReport(before, after), response);
      });
}

grpc::Status TelemetryService::GetCounters(grpc::ServerContext* context,
                                           const v1::GetCountersRequest* request,
                                           v1::GetCountersResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto window = DurationFromRequest(request->has_window(), request->window(), "window", kMaxWindow);
  if (!window.ok()) return ToGrpc(window.status());
  auto filter = collectors::CompileNameFilter(request->filter(), "filter");
  if (!filter.ok()) return ToGrpc(filter.status());
  const collectors::CounterQuery query{*filter, request->nonzero()};
  return Sampled(
      ctx_, context, *window, [] { return collectors::ReadCounters(); },
      [&](const collectors::CounterSample* before, const collectors::CounterSample& after) {
        ToProto(collectors::BuildCounterReport(before, after, query), response);
      });
}

grpc::Status TelemetryService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                     grpc::ServerWriter<v1::WatchResponse>* writer) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto interval = WatchInterval(*request);
  if (!interval.ok()) return ToGrpc(interval.status());
  auto filter = collectors::CompileNameFilter(request->filter(), "filter");
  if (!filter.ok()) return ToGrpc(filter.status());
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());

  std::optional<collectors::SoftnetSample> prev_softnet;
  std::optional<collectors::CounterSample> prev_counters;
  // Samples on a fixed schedule: a slow read or a slow client does not make
  // every later sample late too.
  absl::Time next = absl::Now();
  for (uint64_t seq = 1;; ++seq) {
    auto softnet = collectors::ReadSoftnet();
    if (!softnet.ok()) return ToGrpc(softnet.status());
    auto counters = collectors::ReadCounters();
    if (!counters.ok()) return ToGrpc(counters.status());
    // The first sample has no deltas, so `nonzero` would hide everything
    // non-zero by value only: it applies from the second sample on.
    collectors::CounterQuery query{*filter, request->nonzero() && prev_counters.has_value()};
    v1::WatchResponse msg;
    msg.set_sequence(seq);
    ToProto(collectors::BuildSoftnetReport(prev_softnet ? &*prev_softnet : nullptr, *softnet),
            msg.mutable_softnet());
    ToProto(
        collectors::BuildCounterReport(prev_counters ? &*prev_counters : nullptr, *counters, query),
        msg.mutable_counters());
    if (!writer->Write(msg)) return grpc::Status(grpc::StatusCode::CANCELLED, "caller went away");
    if (request->count() != 0 && seq >= request->count()) return grpc::Status::OK;
    prev_softnet = std::move(*softnet);
    prev_counters = std::move(*counters);
    const absl::Time now = absl::Now();
    next = std::max(next + *interval, now);
    absl::Status slept =
        ctx_.lifecycle.Sleep(next - now, CancelledFn(context), Lifecycle::OnShutdown::kEndNow);
    if (!slept.ok()) return ToGrpc(slept);
  }
}

grpc::Status TelemetryService::GetDropReasons(grpc::ServerContext* context,
                                              const v1::GetDropReasonsRequest* request,
                                              v1::GetDropReasonsResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto window = DurationFromRequest(request->has_window(), request->window(), "window", kMaxWindow);
  if (!window.ok()) return ToGrpc(window.status());
  // Bad input never attaches the collector.
  if (absl::Status st = CheckDropReasonsRequest(*request); !st.ok()) return ToGrpc(st);
  if (drops_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this agent has no kernel-drop collector");
  }
  bool attached_now = false;
  auto collector = drops_->Get(&attached_now);
  if (!collector.ok()) return ToGrpc(collector.status());
  datapath::DropCollector& c = **collector;
  auto query = DropQueryFromRequest(*request, c.names());
  if (!query.ok()) return ToGrpc(query.status());
  return Sampled(
      ctx_, context, *window, [&] { return c.Snapshot(); },
      [&](const datapath::KernelDropSnapshot* before, const datapath::KernelDropSnapshot& after) {
        ToProto(datapath::BuildKernelDropReport(before, after, c.Samples(), c.names(), *query),
                c.Status(attached_now), response);
      });
}

}  // namespace netagent::agent
