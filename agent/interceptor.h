// Authorization on every call. The interceptor identifies the caller (unix peer
// credentials recorded at accept time, or the verified client certificate),
// decides its role, checks the method's required access and records the
// verdict for the call. Each handler starts with Admit(), which returns that
// verdict; a handler reached without a recorded verdict is refused, so a
// server built without the interceptor fails closed.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agent/auth.h"

namespace netagent::agent {

struct UnixPeer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups;
};

struct CallAuth {
  uint64_t call_id = 0;
  std::string method;
  Caller caller;
  RoleDecision decision;
  Access required = Access::kOperator;
  absl::Status verdict;
};

// Shared by the unix listener (records peers), the interceptor (records
// verdicts) and the services (read them).
class AuthState {
 public:
  explicit AuthState(AuthPolicy policy) : policy_(std::move(policy)) {}

  const AuthPolicy& policy() const { return policy_; }

  // Connections handed to gRPC by the unix listener appear as peer "fd:<n>".
  // Entries are replaced, never erased: gRPC keeps a connection's fd open
  // until its last call ends, so a reused fd number is recorded anew (at
  // accept) before any call on the new connection is identified.
  void PutUnixPeer(int fd, UnixPeer peer);
  std::optional<UnixPeer> FindUnixPeer(int fd) const;

  void PutCall(const void* ctx, CallAuth auth);
  std::optional<CallAuth> FindCall(const void* ctx) const;
  void EraseCall(const void* ctx, uint64_t call_id);

  uint64_t NextCallId() { return next_call_id_.fetch_add(1) + 1; }

 private:
  AuthPolicy policy_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int, UnixPeer> unix_peers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<const void*, CallAuth> calls_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_call_id_{0};
};

// Builds the Caller of a call from its peer string and auth context.
Caller IdentifyCaller(const AuthState& state, const grpc::ServerContextBase& ctx);

class AuthInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(std::shared_ptr<AuthState> state) : state_(std::move(state)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  std::shared_ptr<AuthState> state_;
};

// The nice value of a thread while it serves a viewer (operators: 0).
inline constexpr int kViewerNice = 10;
// Whether the agent may lower and raise back its threads' priority
// (CAP_SYS_NICE); probed once. Without it every call runs at one priority.
bool ViewerNiceAvailable();

// The verdict recorded for this call: OK, or PERMISSION_DENIED with the reason.
grpc::Status Admit(const AuthState& state, const grpc::ServerContextBase* ctx);

}  // namespace netagent::agent
