// netagent.v1.NicService: links and their counters, and the ethtool view of
// one device.
#pragma once

#include "agent/context.h"
#include "collectors/links.h"
#include "netagent/v1/nic.grpc.pb.h"

namespace netagent::agent {

void ToProto(const collectors::LinkRecord& l, netagent::v1::Link* out);

class NicService final : public netagent::v1::NicService::Service {
 public:
  explicit NicService(AgentContext& ctx) : ctx_(ctx) {}

  grpc::Status ListNics(grpc::ServerContext* context, const netagent::v1::ListNicsRequest* request,
                        netagent::v1::ListNicsResponse* response) override;
  grpc::Status GetNic(grpc::ServerContext* context, const netagent::v1::GetNicRequest* request,
                      netagent::v1::GetNicResponse* response) override;

 private:
  AgentContext& ctx_;
};

}  // namespace netagent::agent
