#include "agent/context.h"

namespace netagent::agent {

absl::Status CallStillWanted(const AgentContext& ctx, const grpc::ServerContextBase* context) {
  if (ctx.lifecycle.stopping()) return absl::UnavailableError("agent is shutting down");
  if (context->IsCancelled()) return absl::CancelledError("caller went away");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LongCallLimiter::Slot>> AcquireSlot(
    AgentContext& ctx, LongCallLimiter& limiter, const grpc::ServerContextBase* context) {
  std::optional<CallAuth> call = ctx.auth->FindCall(context);
  return limiter.Acquire(call ? CallerKey(call->caller) : std::string("unknown"));
}

absl::StatusOr<std::unique_ptr<LongCallLimiter::Slot>> AcquireLongCall(
    AgentContext& ctx, const grpc::ServerContextBase* context) {
  return AcquireSlot(ctx, ctx.long_calls, context);
}

}  // namespace netagent::agent
