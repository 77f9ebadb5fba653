#include "agent/health_service.h"

#include <chrono>

namespace netagent::agent {
namespace {

using grpc::health::v1::HealthCheckResponse;

HealthCheckResponse Response(bool serving) {
  HealthCheckResponse r;
  r.set_status(serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  return r;
}

}  // namespace

void HealthOnlyService::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  serving_ = serving;
  changed_.notify_all();
}

void HealthOnlyService::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  changed_.notify_all();
}

grpc::Status HealthOnlyService::Check(grpc::ServerContext*,
                                      const grpc::health::v1::HealthCheckRequest*,
                                      HealthCheckResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  *response = Response(serving_);
  return grpc::Status::OK;
}

grpc::Status HealthOnlyService::Watch(grpc::ServerContext* context,
                                      const grpc::health::v1::HealthCheckRequest*,
                                      grpc::ServerWriter<HealthCheckResponse>* writer) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const bool serving = serving_;
    lock.unlock();
    if (!writer->Write(Response(serving))) return grpc::Status::OK;
    lock.lock();
    // A caller that went away is noticed within a second.
    while (serving_ == serving && !stopped_ && !context->IsCancelled())
      changed_.wait_for(lock, std::chrono::seconds(1));
    if (stopped_ || context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the agent is stopping");
    }
  }
}

}  // namespace netagent::agent
