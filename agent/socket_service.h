// netagent.v1.SocketService: ListSockets streams sock_diag results in batches,
// GetSocketSummary aggregates a dump.
#pragma once

#include "absl/status/statusor.h"
#include "agent/context.h"
#include "collectors/sockets.h"
#include "netagent/v1/sockets.grpc.pb.h"

namespace netagent::agent {

// Request filter -> query; INVALID_ARGUMENT names the field ("filter.source").
absl::StatusOr<collectors::SocketQuery> SocketQueryFromProto(const netagent::v1::SocketFilter& f);

void ToProto(const collectors::SocketRecord& s, bool tcp_info, bool memory,
             netagent::v1::Socket* out);

// Page tokens: the dump cursor plus a fingerprint of the filter, so a token is
// not reused with another one.
std::string EncodePageToken(const collectors::SocketCursor& c, const netagent::v1::SocketFilter& f);
absl::StatusOr<collectors::SocketCursor> DecodePageToken(absl::string_view token,
                                                         const netagent::v1::SocketFilter& f);

class SocketService final : public netagent::v1::SocketService::Service {
 public:
  explicit SocketService(AgentContext& ctx) : ctx_(ctx) {}

  grpc::Status ListSockets(grpc::ServerContext* context,
                           const netagent::v1::ListSocketsRequest* request,
                           grpc::ServerWriter<netagent::v1::ListSocketsResponse>* writer) override;
  grpc::Status GetSocketSummary(grpc::ServerContext* context,
                                const netagent::v1::GetSocketSummaryRequest* request,
                                netagent::v1::GetSocketSummaryResponse* response) override;

 private:
  AgentContext& ctx_;
};

}  // namespace netagent::agent
