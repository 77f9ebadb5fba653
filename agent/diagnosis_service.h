// netagent.v1.DiagnosisService: the rule catalog over a snapshot pair taken
// now, each finding's remediation planned on this host.
#pragma once

#include "agent/context.h"
#include "datapath/drop_collector.h"
#include "datapath/manager.h"
#include "diagnosis/monitor.h"
#include "diagnosis/rules.h"
#include "netagent/v1/diagnosis.grpc.pb.h"
#include "tuners/manager.h"

namespace netagent::agent {

class DiagnosisService final : public netagent::v1::DiagnosisService::Service {
 public:
  // `tuning` may be null (tuning off): remediations then come without plans.
  // `monitor` (the agent's continuous evaluation) may be null: no watches.
  // `drops` (the kernel-drop collector) may be null: findings without
  // drop reasons.
  DiagnosisService(AgentContext& ctx, tuners::TuningManager* tuning,
                   diagnosis::LevelOverrides overrides, diagnosis::Monitor* monitor = nullptr,
                   datapath::DropCollectorOnDemand* drops = nullptr,
                   datapath::DatapathManager* fast_path = nullptr)
      : ctx_(ctx),
        tuning_(tuning),
        overrides_(std::move(overrides)),
        monitor_(monitor),
        drops_(drops),
        fast_path_(fast_path) {}

  grpc::Status Diagnose(grpc::ServerContext* context, const netagent::v1::DiagnoseRequest* request,
                        netagent::v1::DiagnoseResponse* response) override;
  grpc::Status WatchFindings(grpc::ServerContext* context,
                             const netagent::v1::WatchFindingsRequest* request,
                             grpc::ServerWriter<netagent::v1::FindingEvent>* writer) override;
  grpc::Status GetCatalog(grpc::ServerContext* context,
                          const netagent::v1::GetCatalogRequest* request,
                          netagent::v1::GetCatalogResponse* response) override;

 private:
  AgentContext& ctx_;
  tuners::TuningManager* tuning_;
  const diagnosis::LevelOverrides overrides_;
  diagnosis::Monitor* monitor_;
  datapath::DropCollectorOnDemand* drops_;
  datapath::DatapathManager* fast_path_;
};

// Where the fast path runs, for remediations that block in it. Leaves
// `collect` as it is without `fast_path` (the fast path is off).
void AddFastPaths(datapath::DatapathManager* fast_path, diagnosis::CollectOptions& collect);

// Kernel drops by reason for a diagnosis, read from the agent's collector:
// with `attach` it is started when it does not run (Diagnose, asked for by a
// caller), else only a running one is read (the continuous evaluation never
// attaches a program by itself). Leaves `collect` as it is without `drops`.
void AddKernelDrops(datapath::DropCollectorOnDemand* drops, bool attach,
                    diagnosis::CollectOptions& collect);
// The diagnosis' view of a collector's snapshot (pure).
diagnosis::KernelDrops KernelDropsFrom(const datapath::KernelDropSnapshot& snapshot,
                                       const datapath::DropReasonNames& names,
                                       absl::Time attached_at);
// The source prefixes of the samples taken since `since`, at most
// `per_reason` for each reason, most samples first (pure).
std::vector<diagnosis::DropSource> DropSourcesFrom(
    const std::vector<datapath::KernelDropSample>& samples, const datapath::DropReasonNames& names,
    absl::Time since, size_t per_reason = 3);

// The proto of a finding; `tuning` plans its remediation when set (a plan
// may take a socket walk: only Diagnose asks for one).
void ToProto(const diagnosis::Finding& f, tuners::TuningManager* tuning, netagent::v1::Finding* out,
             bool plan = true);
// A tuning intent as the API takes it (the inverse of IntentFromProto for the
// intents the rules produce).
void IntentToProto(const tuners::Intent& intent, netagent::v1::TuningIntent* out);

}  // namespace netagent::agent
