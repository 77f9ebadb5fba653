// netagent.v1.TelemetryService: softnet and SNMP counters, one sample or a
// window, and the Watch stream.
#pragma once

#include "agent/context.h"
#include "netagent/v1/telemetry.grpc.pb.h"

namespace netagent::agent {

class TelemetryService final : public netagent::v1::TelemetryService::Service {
 public:
  explicit TelemetryService(AgentContext& ctx) : ctx_(ctx) {}

  grpc::Status GetSoftnet(grpc::ServerContext* context,
                          const netagent::v1::GetSoftnetRequest* request,
                          netagent::v1::GetSoftnetResponse* response) override;
  grpc::Status GetCounters(grpc::ServerContext* context,
                           const netagent::v1::GetCountersRequest* request,
                           netagent::v1::GetCountersResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const netagent::v1::WatchRequest* request,
                     grpc::ServerWriter<netagent::v1::WatchResponse>* writer) override;

 private:
  AgentContext& ctx_;
};

}  // namespace netagent::agent
