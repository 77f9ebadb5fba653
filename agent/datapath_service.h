// netagent.v1.DatapathService: proto <-> datapath conversions around the
// DatapathManager, which owns the pins, the rules and every decision.
#pragma once

#include "absl/status/statusor.h"
#include "agent/context.h"
#include "datapath/manager.h"
#include "netagent/v1/datapath.grpc.pb.h"

namespace netagent::agent {

// INVALID_ARGUMENT naming the field ("features.syn_guard.rate").
absl::StatusOr<datapath::DatapathManager::AttachOptions> AttachFromProto(
    const netagent::v1::AttachRequest& in);
// INVALID_ARGUMENT naming the edit ("edits[2].add.prefix").
absl::StatusOr<std::vector<datapath::RuleEdit>> EditsFromProto(
    const google::protobuf::RepeatedPtrField<netagent::v1::RuleEdit>& in);
void ToProto(const datapath::Rule& r, netagent::v1::DatapathRule* out);
void ToProto(const datapath::DatapathManager::DeviceStatus& s, netagent::v1::DeviceDatapath* out);

class DatapathService final : public netagent::v1::DatapathService::Service {
 public:
  // `manager` may be null (no bpffs, or BPF not permitted): every call then
  // answers FAILED_PRECONDITION with `why`.
  DatapathService(AgentContext& ctx, datapath::DatapathManager* manager, std::string why)
      : ctx_(ctx), manager_(manager), why_(std::move(why)) {}

  grpc::Status Attach(grpc::ServerContext* context, const netagent::v1::AttachRequest* request,
                      netagent::v1::AttachResponse* response) override;
  grpc::Status Detach(grpc::ServerContext* context, const netagent::v1::DetachRequest* request,
                      netagent::v1::DetachResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context,
                         const netagent::v1::GetDatapathStatusRequest* request,
                         netagent::v1::GetDatapathStatusResponse* response) override;
  grpc::Status UpdateRules(grpc::ServerContext* context,
                           const netagent::v1::UpdateRulesRequest* request,
                           netagent::v1::UpdateRulesResponse* response) override;
  grpc::Status ListRules(grpc::ServerContext* context,
                         const netagent::v1::ListRulesRequest* request,
                         netagent::v1::ListRulesResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context,
                        const netagent::v1::GetDatapathStatsRequest* request,
                        netagent::v1::GetDatapathStatsResponse* response) override;
  grpc::Status StreamSamples(
      grpc::ServerContext* context, const netagent::v1::StreamSamplesRequest* request,
      grpc::ServerWriter<netagent::v1::StreamSamplesResponse>* writer) override;
  grpc::Status TestPacket(grpc::ServerContext* context,
                          const netagent::v1::TestPacketRequest* request,
                          netagent::v1::TestPacketResponse* response) override;

 private:
  // Authorization, then a manager to talk to.
  grpc::Status Begin(grpc::ServerContext* context);

  AgentContext& ctx_;
  datapath::DatapathManager* manager_;
  std::string why_;
};

}  // namespace netagent::agent
