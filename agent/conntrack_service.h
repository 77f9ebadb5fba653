// netagent.v1.ConntrackService: statistics, the streamed table, a summary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/context.h"
#include "agent/request_guard.h"
#include "collectors/conntrack.h"
#include "netagent/v1/conntrack.grpc.pb.h"

namespace netagent::agent {

// INVALID_ARGUMENT names the field ("filter.source").
absl::StatusOr<collectors::ConntrackQuery> ConntrackQueryFromProto(
    const netagent::v1::ConntrackFilter& f);

// The bytes of a v1::ConntrackEntry with `e`'s values, appended to `out`:
// what the listing streams (a test compares them with protobuf's own).
void EncodeConntrackEntry(const collectors::ConntrackEntry& e, std::string& out);

// count / max in percent, or nullopt (fill_percent absent) when either is
// unknown or max is 0.
std::optional<double> FillPercent(const std::optional<uint64_t>& count,
                                  const std::optional<uint64_t>& max);

class ConntrackService final : public netagent::v1::ConntrackService::Service {
 public:
  explicit ConntrackService(AgentContext& ctx) : ctx_(ctx) {}

  // For the request guard (GuardRequests): ListConntrack's handler, which
  // streams its messages already encoded. Registered without them, the
  // service answers ListConntrack with UNIMPLEMENTED.
  HandlerOverrides Handlers();

  grpc::Status GetConntrackStats(grpc::ServerContext* context,
                                 const netagent::v1::GetConntrackStatsRequest* request,
                                 netagent::v1::GetConntrackStatsResponse* response) override;
  grpc::Status GetConntrackSummary(grpc::ServerContext* context,
                                   const netagent::v1::GetConntrackSummaryRequest* request,
                                   netagent::v1::GetConntrackSummaryResponse* response) override;

 private:
  // ListConntrack, its messages written as encoded bytes.
  grpc::Status ListConntrackEncoded(grpc::ServerContext* context,
                                    const netagent::v1::ListConntrackRequest* request,
                                    grpc::ServerWriter<grpc::ByteBuffer>* writer);

  AgentContext& ctx_;
};

}  // namespace netagent::agent
