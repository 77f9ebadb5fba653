// Who is calling and what they may do.
//
// Two roles: viewers may call read RPCs, operators also the mutating ones. A
// method's required access is the (netagent.v1.access) option of its proto
// descriptor; a netagent method without the option requires operator, so a
// forgotten annotation fails closed. The decisions here are pure functions;
// the interceptor (interceptor.h) gathers the Caller and applies them.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace netagent::agent {

enum class Transport { kUnix, kTcp, kTls };
enum class Role { kViewer, kOperator };
enum class Access { kViewer, kOperator };

struct Caller {
  Transport transport = Transport::kTcp;
  // SO_PEERCRED and SO_PEERGROUPS of a unix-socket peer.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<pid_t> pid;
  std::vector<gid_t> groups;
  // Verified client-certificate identities over mTLS, typed: "cn:NAME",
  // "dns:NAME", "uri:spiffe://...", "email:ADDR", "ip:ADDR".
  std::vector<std::string> identities;
  std::string peer;
};

struct AuthPolicy {
  // Members of this group (primary or supplementary) are operators on the
  // unix socket, next to uid 0.
  std::optional<gid_t> operator_group;
  // Typed client-certificate identities (as in Caller::identities) that are
  // operators over mTLS; matched exactly.
  std::vector<std::string> operator_identities;
};

struct RoleDecision {
  Role role = Role::kViewer;
  std::string reason;
};

RoleDecision DecideRole(const Caller& caller, const AuthPolicy& policy);

// Access the full gRPC method name ("/netagent.v1.HostService/SetLogLevel")
// requires. grpc.health.v1 and server reflection are viewer methods; any
// other method the agent does not describe requires operator.
Access RequiredAccess(absl::string_view full_method);

// OK, or PERMISSION_DENIED naming the method, the role needed and why the
// caller does not have it.
absl::Status Authorize(const RoleDecision& decision, Access required, absl::string_view method);

absl::string_view RoleName(Role role);
std::string DescribeCaller(const Caller& caller);

// Who is calling, for per-caller limits: "uid:1000", "tls:<first identity>",
// or the peer address without its port ("ipv4:10.0.0.1").
std::string CallerKey(const Caller& caller);

// OK for "cn:", "dns:", "uri:", "email:" or "ip:" followed by a value;
// INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateIdentity(absl::string_view identity, absl::string_view field);

}  // namespace netagent::agent
