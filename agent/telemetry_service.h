// netagent.v1.TelemetryService: softnet and SNMP counters, one sample or a
// window, the Watch stream, and kernel drops by reason (the collector is the
// server's, shared by its listeners).
#pragma once

#include "agent/context.h"
#include "datapath/drop_collector.h"
#include "netagent/v1/telemetry.grpc.pb.h"

namespace netagent::agent {

class TelemetryService final : public netagent::v1::TelemetryService::Service {
 public:
  // `drops` may be null (GetDropReasons then answers FAILED_PRECONDITION).
  TelemetryService(AgentContext& ctx, datapath::DropCollectorOnDemand* drops)
      : ctx_(ctx), drops_(drops) {}

  grpc::Status GetSoftnet(grpc::ServerContext* context,
                          const netagent::v1::GetSoftnetRequest* request,
                          netagent::v1::GetSoftnetResponse* response) override;
  grpc::Status GetCounters(grpc::ServerContext* context,
                           const netagent::v1::GetCountersRequest* request,
                           netagent::v1::GetCountersResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const netagent::v1::WatchRequest* request,
                     grpc::ServerWriter<netagent::v1::WatchResponse>* writer) override;
  grpc::Status GetDropReasons(grpc::ServerContext* context,
                              const netagent::v1::GetDropReasonsRequest* request,
                              netagent::v1::GetDropReasonsResponse* response) override;

 private:
  AgentContext& ctx_;
  datapath::DropCollectorOnDemand* drops_;
};

}  // namespace netagent::agent
