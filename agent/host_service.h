// netagent.v1.HostService: host identity, CPUs, namespace, capabilities, and
// the agent's log level.
#pragma once

#include "agent/context.h"
#include "netagent/v1/host.grpc.pb.h"

namespace netagent::agent {

class HostService final : public netagent::v1::HostService::Service {
 public:
  explicit HostService(AgentContext& ctx) : ctx_(ctx) {}

  grpc::Status GetHostInfo(grpc::ServerContext* context,
                           const netagent::v1::GetHostInfoRequest* request,
                           netagent::v1::GetHostInfoResponse* response) override;
  grpc::Status SetLogLevel(grpc::ServerContext* context,
                           const netagent::v1::SetLogLevelRequest* request,
                           netagent::v1::SetLogLevelResponse* response) override;

 private:
  AgentContext& ctx_;
};

}  // namespace netagent::agent
