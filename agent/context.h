// What the services share: authorization state, the stop signal, and the facts
// gathered once at start.
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "agent/capabilities.h"
#include "agent/conditions.h"
#include "agent/interceptor.h"
#include "agent/lifecycle.h"
#include "agent/limits.h"
#include "collectors/socket_iter.h"
#include "kernel/netns.h"

namespace netagent::agent {

struct AgentContext {
  std::shared_ptr<AuthState> auth;
  Lifecycle lifecycle;
  // Watches and windowed calls: 32 in all, 8 per caller.
  LongCallLimiter long_calls{32, 8};
  // TestPacket runs one at a time per device (a few microseconds each): a
  // queue of callers waiting for it would hold threads, so it is short.
  LongCallLimiter packet_tests{8, 2, "packet tests"};
  // Table walks share all CPUs but one.
  CpuShares walks{CpuShares::ForThisHost()};
  Capabilities capabilities;
  Conditions conditions;
  kernel::NetnsIdentity netns;
  // Walks socket summaries and diagnoses once loaded (sock_diag until then,
  // and where it cannot load); null: never loaded.
  std::unique_ptr<collectors::BackgroundTcpSocketIterator> socket_iter;
  absl::Time started_at;
  std::string version;
};

// OK while the caller still waits and the agent runs; CANCELLED once the
// caller went away (cancelled, or past its deadline), UNAVAILABLE once the
// agent is stopping. Table walks ask it as they go, whether or not entries
// match their filter.
absl::Status CallStillWanted(const AgentContext& ctx, const grpc::ServerContextBase* context);

// A slot among the calls that hold a thread for long (see LongCallLimiter),
// counted against this call's caller.
absl::StatusOr<std::unique_ptr<LongCallLimiter::Slot>> AcquireLongCall(
    AgentContext& ctx, const grpc::ServerContextBase* context);
// The same against another limiter.
absl::StatusOr<std::unique_ptr<LongCallLimiter::Slot>> AcquireSlot(
    AgentContext& ctx, LongCallLimiter& limiter, const grpc::ServerContextBase* context);

}  // namespace netagent::agent
