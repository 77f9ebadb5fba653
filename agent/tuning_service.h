// netagent.v1.TuningService: proto <-> tuners conversions around the
// TuningManager, which owns every decision and the journal.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "agent/conditions.h"
#include "agent/context.h"
#include "netagent/v1/tuning.grpc.pb.h"
#include "tuners/manager.h"

namespace netagent::agent {

// INVALID_ARGUMENT naming the field ("intent.bdp.rtt").
absl::StatusOr<tuners::Intent> IntentFromProto(const netagent::v1::TuningIntent& in);
void ToProto(const tuners::Plan& plan, const std::string& intent, netagent::v1::TuningPlan* out);
void ToProto(const tuners::ChangeRecord& r, netagent::v1::ChangeRecord* out);
void ToProto(const tuners::JournalHealth& h, netagent::v1::JournalStatus* out);
void ToProto(const std::string& path, const tuners::JournalHealth::Quarantine& q,
             netagent::v1::JournalQuarantine* out);

// The agent's conditions for the journal's health: a quarantine (critical:
// values may be left changed and applying is refused until an operator
// acknowledges) and failing writes (warning: the file is behind).
std::vector<Condition> JournalConditions(const tuners::JournalHealth& h);

class TuningService final : public netagent::v1::TuningService::Service {
 public:
  // `manager` may be null (no state directory, or it could not start): every
  // call then answers FAILED_PRECONDITION with `off_reason`.
  TuningService(AgentContext& ctx, tuners::TuningManager* manager,
                std::string off_reason =
                    "tuning is off: the agent has no state directory for its "
                    "journal")
      : ctx_(ctx), manager_(manager), off_reason_(std::move(off_reason)) {}

  grpc::Status GetTunables(grpc::ServerContext* context,
                           const netagent::v1::GetTunablesRequest* request,
                           netagent::v1::GetTunablesResponse* response) override;
  grpc::Status PlanTuning(grpc::ServerContext* context,
                          const netagent::v1::PlanTuningRequest* request,
                          netagent::v1::PlanTuningResponse* response) override;
  grpc::Status ApplyTuning(grpc::ServerContext* context,
                           const netagent::v1::ApplyTuningRequest* request,
                           netagent::v1::ApplyTuningResponse* response) override;
  grpc::Status ConfirmChange(grpc::ServerContext* context,
                             const netagent::v1::ConfirmChangeRequest* request,
                             netagent::v1::ConfirmChangeResponse* response) override;
  grpc::Status RollbackChange(grpc::ServerContext* context,
                              const netagent::v1::RollbackChangeRequest* request,
                              netagent::v1::RollbackChangeResponse* response) override;
  grpc::Status ListChanges(grpc::ServerContext* context,
                           const netagent::v1::ListChangesRequest* request,
                           netagent::v1::ListChangesResponse* response) override;
  grpc::Status GetJournalStatus(grpc::ServerContext* context,
                                const netagent::v1::GetJournalStatusRequest* request,
                                netagent::v1::GetJournalStatusResponse* response) override;
  grpc::Status AcknowledgeJournal(grpc::ServerContext* context,
                                  const netagent::v1::AcknowledgeJournalRequest* request,
                                  netagent::v1::AcknowledgeJournalResponse* response) override;

 private:
  grpc::Status Begin(grpc::ServerContext* context);
  std::string CallerOf(grpc::ServerContext* context) const;

  AgentContext& ctx_;
  tuners::TuningManager* manager_;
  std::string off_reason_;
};

}  // namespace netagent::agent
