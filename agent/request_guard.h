// The API edge, before any handler: every request message of every netagent.v1
// method is checked here once, so a new method or field cannot forget it.
//
// - A request protobuf cannot parse (a proto3 string holding invalid UTF-8, or
//   bytes that are no protobuf at all) gets INVALID_ARGUMENT naming the field
//   ("edits[0].add.comment: not valid UTF-8") or saying the message is
//   malformed. gRPC's own answer is INTERNAL with an empty message.
// - An enum field holding a value the enum does not define (proto3 keeps it)
//   gets INVALID_ARGUMENT naming the field: a handler must not read 99 as some
//   default.
// - A string field holding control characters (C0 but tab, DEL, C1, bidi and
//   line-separator controls; ANSI escapes start with one) gets INVALID_ARGUMENT
//   naming the field: no caller's text that is stored, logged or echoed can
//   rewrite a terminal.
//
// Why a wrapper service: the generated sync code deserializes unary requests
// through SerializationTraits<MessageLite> (gRPC 1.51 passes MessageLite as the
// base type), so specializing the traits per request type would not be used
// there. GuardRequests wraps each method handler of a service instead; the
// server registers the wrapper in place of the service.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/impl/service_type.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::agent {

// Why `bytes` did not parse as a `type`: the first string field (depth first,
// in wire order) that is not valid UTF-8, by path ("edits[0].add.comment:
// not valid UTF-8"), else "request: not a valid netagent.v1.X (malformed
// protobuf)". Always INVALID_ARGUMENT.
absl::Status ExplainUnparsable(absl::string_view bytes, const google::protobuf::Descriptor& type);

// The first enum value the enum does not define, or string with a control
// character, in a parsed request; OK when there is none.
absl::Status CheckRequestFields(const google::protobuf::Message& request);

// Handlers to run in place of the inner service's generated ones, by method
// name: a server-streaming method that writes messages already encoded
// (grpc::ByteBuffer) has a handler of the method's shape but not its type.
// Only the guard registers them, so the service registered alone still
// answers with its generated method (UNIMPLEMENTED), never a mis-shaped one.
using HandlerOverrides = std::map<std::string, std::unique_ptr<grpc::internal::MethodHandler>>;

// A grpc::Service with the methods of `inner` (full name `service_name`, in
// the generated descriptor pool) whose handlers run the checks above before
// delegating to inner's, or to the override of that method. `inner` must
// outlive it; register this one instead.
class GuardedService : public grpc::Service {
 public:
  // A client-streaming method is refused: its handler reads its messages
  // itself, past this guard. So is an override for a method the service
  // does not have.
  static absl::StatusOr<std::unique_ptr<GuardedService>> Wrap(grpc::Service* inner,
                                                              absl::string_view service_name,
                                                              HandlerOverrides overrides = {});

 private:
  GuardedService() = default;
  std::deque<std::string> method_paths_;  // RpcServiceMethod keeps the pointers
  std::vector<std::unique_ptr<grpc::internal::MethodHandler>> overrides_;
};

// The name comes with the type, so the handlers and the descriptor agree:
// GuardRequests<v1::HostService>(host_service).
template <typename Generated>
absl::StatusOr<std::unique_ptr<GuardedService>> GuardRequests(typename Generated::Service* inner,
                                                              HandlerOverrides overrides = {}) {
  return GuardedService::Wrap(inner, Generated::service_full_name(), std::move(overrides));
}

}  // namespace netagent::agent
