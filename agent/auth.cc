#include "agent/auth.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "netagent/v1/options.pb.h"

namespace netagent::agent {

absl::string_view RoleName(Role role) { return role == Role::kOperator ? "operator" : "viewer"; }

std::string DescribeCaller(const Caller& c) {
  switch (c.transport) {
    case Transport::kUnix:
      return absl::StrCat("unix uid=", c.uid.value_or(-1), " gid=", c.gid.value_or(-1),
                          " pid=", c.pid.value_or(-1));
    case Transport::kTls:
      return absl::StrCat("tls ", c.peer,
                          c.identities.empty()
                              ? " (no client certificate)"
                              : absl::StrCat(" identities=", absl::StrJoin(c.identities, ",")));
    case Transport::kTcp:
      return absl::StrCat("tcp ", c.peer);
  }
  return c.peer;
}

std::string CallerKey(const Caller& c) {
  if (c.transport == Transport::kUnix) {
    return c.uid ? absl::StrCat("uid:", *c.uid) : std::string("unix");
  }
  if (c.transport == Transport::kTls && !c.identities.empty()) {
    return absl::StrCat("tls:", c.identities.front());
  }
  const size_t colon = c.peer.rfind(':');
  return colon == std::string::npos ? c.peer : c.peer.substr(0, colon);
}

absl::Status ValidateIdentity(absl::string_view identity, absl::string_view field) {
  for (absl::string_view prefix : {"cn:", "dns:", "uri:", "email:", "ip:"}) {
    if (absl::StartsWith(identity, prefix) && identity.size() > prefix.size()) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", identity,
                   "\" needs a kind: cn:NAME, dns:NAME, uri:URI, email:ADDR or ip:ADDR"));
}

RoleDecision DecideRole(const Caller& c, const AuthPolicy& policy) {
  switch (c.transport) {
    case Transport::kUnix: {
      if (!c.uid.has_value()) return {Role::kViewer, "unix peer credentials unavailable"};
      if (*c.uid == 0) return {Role::kOperator, "uid 0 on the unix socket"};
      if (policy.operator_group) {
        const gid_t g = *policy.operator_group;
        if (c.gid == g || std::find(c.groups.begin(), c.groups.end(), g) != c.groups.end()) {
          return {Role::kOperator, absl::StrCat("member of operator group ", g)};
        }
        return {Role::kViewer,
                absl::StrCat("uid ", *c.uid, " is not root and not in operator group ", g)};
      }
      return {Role::kViewer, absl::StrCat("uid ", *c.uid, " is not root (no operator group set)")};
    }
    case Transport::kTls: {
      if (c.identities.empty()) return {Role::kViewer, "TLS without a client certificate"};
      for (const std::string& id : c.identities) {
        if (std::find(policy.operator_identities.begin(), policy.operator_identities.end(), id) !=
            policy.operator_identities.end()) {
          return {Role::kOperator, absl::StrCat("client certificate \"", id, "\" is allowlisted")};
        }
      }
      return {Role::kViewer, absl::StrCat("client certificate (", absl::StrJoin(c.identities, ", "),
                                          ") is not in the operator allowlist")};
    }
    case Transport::kTcp:
      return {Role::kViewer, "plaintext TCP is read-only: use the unix socket or mTLS"};
  }
  return {Role::kViewer, "unknown transport"};
}

Access RequiredAccess(absl::string_view full_method) {
  // "/package.Service/Method"
  if (absl::StartsWith(full_method, "/grpc.health.v1.Health/") ||
      absl::StartsWith(full_method, "/grpc.reflection.")) {
    return Access::kViewer;
  }
  std::string name(full_method);
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  std::replace(name.begin(), name.end(), '/', '.');
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  if (m == nullptr) return Access::kOperator;
  return m->options().GetExtension(netagent::v1::access) == netagent::v1::ACCESS_VIEWER
             ? Access::kViewer
             : Access::kOperator;
}

absl::Status Authorize(const RoleDecision& decision, Access required, absl::string_view method) {
  if (required == Access::kViewer || decision.role == Role::kOperator) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(method, " needs the operator role; caller is a ",
                                                  RoleName(decision.role), ": ", decision.reason));
}

}  // namespace netagent::agent
