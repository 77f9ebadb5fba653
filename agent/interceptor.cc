#include "agent/interceptor.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/logging.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {
namespace {

class AuthInterceptor : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(std::shared_ptr<AuthState> state, grpc::experimental::ServerRpcInfo* info)
      : state_(std::move(state)), info_(info) {}

  ~AuthInterceptor() override {
    if (call_id_ != 0) state_->EraseCall(info_->server_context(), call_id_);
    if (reniced_ != 0) ::setpriority(PRIO_PROCESS, static_cast<id_t>(reniced_), 0);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      Decide();
    }
    methods->Proceed();
  }

 private:
  void Decide() {
    CallAuth auth;
    auth.call_id = call_id_ = state_->NextCallId();
    auth.method = info_->method();
    auth.caller = IdentifyCaller(*state_, *info_->server_context());
    auth.decision = DecideRole(auth.caller, state_->policy());
    auth.required = RequiredAccess(auth.method);
    auth.verdict = Authorize(auth.decision, auth.required, auth.method);
    if (!auth.verdict.ok()) {
      spdlog::warn("denied {} to {}: {}", auth.method, DescribeCaller(auth.caller),
                   auth.decision.reason);
    } else if (auth.required == Access::kOperator) {
      spdlog::info("operator call {} by {} ({})", auth.method, DescribeCaller(auth.caller),
                   auth.decision.reason);
    } else {
      spdlog::debug("call {} by {}", auth.method, DescribeCaller(auth.caller));
    }
    // Viewers' calls run at a lower CPU priority than operators', for as long
    // as they last: however many viewers there are, an operator's call gets
    // the CPU first.
    // An operator's call puts its thread back at 0 itself: the viewer's call
    // this thread served before may not have been torn down yet.
    if (ViewerNiceAvailable()) {
      const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
      if (auth.decision.role != Role::kOperator) {
        if (::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), kViewerNice) == 0) reniced_ = tid;
      } else {
        ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 0);
      }
    }
    state_->PutCall(info_->server_context(), std::move(auth));
  }

  std::shared_ptr<AuthState> state_;
  grpc::experimental::ServerRpcInfo* info_;
  uint64_t call_id_ = 0;
  pid_t reniced_ = 0;  // the thread whose priority this call lowered
};

}  // namespace

bool ViewerNiceAvailable() {
  // A thread's priority can be raised back only with CAP_SYS_NICE: without
  // it a lowered thread would stay low for the operators it serves next.
  static const bool available = [] {
    const id_t tid = static_cast<id_t>(::syscall(SYS_gettid));
    errno = 0;
    const int before = ::getpriority(PRIO_PROCESS, tid);
    if (errno != 0 || before != 0) return false;
    const bool ok = ::setpriority(PRIO_PROCESS, tid, 1) == 0 && ::setpriority(PRIO_PROCESS, tid, 0) == 0;
    if (!ok) ::setpriority(PRIO_PROCESS, tid, before);
    return ok;
  }();
  return available;
}

void AuthState::PutUnixPeer(int fd, UnixPeer peer) {
  absl::MutexLock lock(&mu_);
  unix_peers_[fd] = std::move(peer);
}

std::optional<UnixPeer> AuthState::FindUnixPeer(int fd) const {
  absl::MutexLock lock(&mu_);
  auto it = unix_peers_.find(fd);
  if (it == unix_peers_.end()) return std::nullopt;
  return it->second;
}

void AuthState::PutCall(const void* ctx, CallAuth auth) {
  absl::MutexLock lock(&mu_);
  calls_[ctx] = std::move(auth);
}

std::optional<CallAuth> AuthState::FindCall(const void* ctx) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(ctx);
  if (it == calls_.end()) return std::nullopt;
  return it->second;
}

void AuthState::EraseCall(const void* ctx, uint64_t call_id) {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(ctx);
  if (it != calls_.end() && it->second.call_id == call_id) calls_.erase(it);
}

Caller IdentifyCaller(const AuthState& state, const grpc::ServerContextBase& ctx) {
  Caller c;
  c.peer = ctx.peer();
  absl::string_view peer = c.peer;
  int fd;
  if (absl::ConsumePrefix(&peer, "fd:") && absl::SimpleAtoi(peer, &fd)) {
    c.transport = Transport::kUnix;
    if (auto p = state.FindUnixPeer(fd)) {
      c.uid = p->uid;
      c.gid = p->gid;
      c.pid = p->pid;
      c.groups = p->groups;
    }
    return c;
  }
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  bool secure = false;
  if (auth) {
    for (const auto& v : auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
      absl::string_view type(v.data(), v.size());
      if (type == "ssl" || type == "tls") secure = true;
    }
  }
  if (!secure) {
    c.transport = Transport::kTcp;
    return c;
  }
  c.transport = Transport::kTls;
  if (auth->IsPeerAuthenticated()) {
    // Typed, so an allowlisted name of one kind cannot be claimed through
    // another (a DNS SAN spelled like an operator's URI, say).
    static constexpr std::pair<const char*, const char*> kKinds[] = {
        {GRPC_X509_CN_PROPERTY_NAME, "cn:"},
        {GRPC_PEER_DNS_PROPERTY_NAME, "dns:"},
        {GRPC_PEER_URI_PROPERTY_NAME, "uri:"},
        {GRPC_PEER_EMAIL_PROPERTY_NAME, "email:"},
        {GRPC_PEER_IP_PROPERTY_NAME, "ip:"}};
    for (const auto& [prop, prefix] : kKinds) {
      for (const auto& v : auth->FindPropertyValues(prop)) {
        std::string id = absl::StrCat(prefix, absl::string_view(v.data(), v.size()));
        if (std::find(c.identities.begin(), c.identities.end(), id) == c.identities.end()) {
          c.identities.push_back(std::move(id));
        }
      }
    }
  }
  return c;
}

grpc::experimental::Interceptor* AuthInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new AuthInterceptor(state_, info);
}

grpc::Status Admit(const AuthState& state, const grpc::ServerContextBase* ctx) {
  std::optional<CallAuth> auth = state.FindCall(ctx);
  if (!auth) return grpc::Status(grpc::StatusCode::INTERNAL, "no authorization decision for call");
  if (auth->verdict.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(auth->verdict.code()),
                      std::string(auth->verdict.message()));
}

}  // namespace netagent::agent
