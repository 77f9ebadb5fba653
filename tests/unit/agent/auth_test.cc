#include "agent/auth.h"

#include <gtest/gtest.h>

namespace netagent::agent {
namespace {

Caller Unix(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  Caller c;
  c.transport = Transport::kUnix;
  c.uid = uid;
  c.gid = gid;
  c.pid = 1234;
  c.groups = std::move(groups);
  return c;
}

Caller Tls(std::vector<std::string> ids) {
  Caller c;
  c.transport = Transport::kTls;
  c.identities = std::move(ids);
  c.peer = "ipv4:10.0.0.1:5555";
  return c;
}

TEST(DecideRole, RootOnTheUnixSocketIsOperator) {
  RoleDecision d = DecideRole(Unix(0, 0), {});
  EXPECT_EQ(d.role, Role::kOperator);
  EXPECT_EQ(d.reason, "uid 0 on the unix socket");
}

TEST(DecideRole, OperatorGroupByPrimaryOrSupplementaryGroup) {
  AuthPolicy p;
  p.operator_group = 990;
  EXPECT_EQ(DecideRole(Unix(1000, 990), p).role, Role::kOperator);
  EXPECT_EQ(DecideRole(Unix(1000, 100, {27, 990}), p).role, Role::kOperator);
  RoleDecision d = DecideRole(Unix(1000, 100, {27}), p);
  EXPECT_EQ(d.role, Role::kViewer);
  EXPECT_NE(d.reason.find("not in operator group 990"), std::string::npos) << d.reason;
}

TEST(DecideRole, NonRootWithoutAGroupIsViewer) {
  EXPECT_EQ(DecideRole(Unix(65534, 65534), {}).role, Role::kViewer);
}

TEST(DecideRole, UnixPeerWithoutCredentialsIsViewer) {
  Caller c;
  c.transport = Transport::kUnix;
  EXPECT_EQ(DecideRole(c, {}).role, Role::kViewer);
}

TEST(DecideRole, PlaintextTcpIsAlwaysViewer) {
  Caller c;
  c.transport = Transport::kTcp;
  c.identities = {"cn:admin"};  // cannot be trusted without TLS
  AuthPolicy p;
  p.operator_identities = {"cn:admin"};
  RoleDecision d = DecideRole(c, p);
  EXPECT_EQ(d.role, Role::kViewer);
  EXPECT_NE(d.reason.find("plaintext TCP"), std::string::npos);
}

TEST(DecideRole, MtlsIdentityAllowlist) {
  AuthPolicy p;
  p.operator_identities = {"fleet-operator", "spiffe://corp/ns/ops/sa/netctl"};
  EXPECT_EQ(DecideRole(Tls({"fleet-operator"}), p).role, Role::kOperator);
  EXPECT_EQ(DecideRole(Tls({"host-7", "spiffe://corp/ns/ops/sa/netctl"}), p).role, Role::kOperator);
  EXPECT_EQ(DecideRole(Tls({"fleet-viewer"}), p).role, Role::kViewer);
  EXPECT_EQ(DecideRole(Tls({}), p).role, Role::kViewer);
  // Matching is exact: no prefixes, no case folding.
  EXPECT_EQ(DecideRole(Tls({"Fleet-Operator"}), p).role, Role::kViewer);
  EXPECT_EQ(DecideRole(Tls({"fleet-operator-2"}), p).role, Role::kViewer);
}

TEST(RequiredAccess, FromTheProtoOption) {
  EXPECT_EQ(RequiredAccess("/netagent.v1.HostService/GetHostInfo"), Access::kViewer);
  EXPECT_EQ(RequiredAccess("/netagent.v1.TelemetryService/Watch"), Access::kViewer);
  EXPECT_EQ(RequiredAccess("/netagent.v1.HostService/SetLogLevel"), Access::kOperator);
}

TEST(RequiredAccess, HealthAndReflectionAreViewerAndUnknownFailsClosed) {
  EXPECT_EQ(RequiredAccess("/grpc.health.v1.Health/Check"), Access::kViewer);
  EXPECT_EQ(RequiredAccess("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Access::kViewer);
  EXPECT_EQ(RequiredAccess("/netagent.v1.HostService/NoSuchMethod"), Access::kOperator);
  EXPECT_EQ(RequiredAccess("/other.Service/Method"), Access::kOperator);
  EXPECT_EQ(RequiredAccess(""), Access::kOperator);
}

TEST(Authorize, ViewerIsRefusedOperatorMethodsWithTheReason) {
  RoleDecision viewer{Role::kViewer, "plaintext TCP is read-only: use the unix socket or mTLS"};
  absl::Status st = Authorize(viewer, Access::kOperator, "/netagent.v1.HostService/SetLogLevel");
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("SetLogLevel needs the operator role"), absl::string_view::npos);
  EXPECT_NE(st.message().find("plaintext TCP"), absl::string_view::npos);
  EXPECT_TRUE(Authorize(viewer, Access::kViewer, "/x").ok());
  EXPECT_TRUE(Authorize({Role::kOperator, "root"}, Access::kOperator, "/x").ok());
}

}  // namespace
}  // namespace netagent::agent
