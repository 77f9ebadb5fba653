#include "agent/context.h"

namespace netagent::agent {

absl::Status CallStillWanted(const AgentContext& ctx, const grpc::ServerContextBase* context) {
  if (ctx.lifecycle.stopping()) return absl::UnavailableError("agent is shutting down");
  if (context->IsCancelled()) return absl::CancelledError("caller went away");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LongCallLimiter::Slot>> AcquireLongCall(
    AgentContext& ctx, const grpc::ServerContextBase* context) {
  std::optional<CallAuth> call = ctx.auth->FindCall(context);
  return ctx.long_calls.Acquire(call ? CallerKey(call->caller) : std::string("unknown"));
}

}  // namespace netagent::agent
