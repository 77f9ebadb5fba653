#include "agent/health_service.h"

#include <chrono>

namespace netagent::agent {
namespace {

using grpc::health::v1::HealthCheckResponse;

bool Known(const std::string& service) { return service.empty() || service == "netagent"; }

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
                                      const grpc::health::v1::HealthCheckRequest* request,
                                      HealthCheckResponse* response) {
  if (!Known(request->service())) return grpc::Status(grpc::StatusCode::NOT_FOUND, "");
  std::lock_guard<std::mutex> lock(mu_);
  *response = Response(serving_);
  return grpc::Status::OK;
}

grpc::Status HealthOnlyService::Watch(grpc::ServerContext* context,
                                      const grpc::health::v1::HealthCheckRequest* request,
                                      grpc::ServerWriter<HealthCheckResponse>* writer) {
  if (!Known(request->service())) return grpc::Status(grpc::StatusCode::NOT_FOUND, "");
  std::unique_lock<std::mutex> lock(mu_);
  if (watches_ >= kMaxWatches) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "at most 4 health watches at a time: use Check");
  }
  ++watches_;
  struct Count {
    int& n;
    ~Count() { --n; }  // under mu_: destroyed before `lock`, which every return holds
  } count{watches_};
  for (;;) {
    const bool serving = serving_;
    lock.unlock();
    const bool written = writer->Write(Response(serving));
    lock.lock();
    if (!written || context->IsCancelled()) return grpc::Status::OK;
    // A caller that went away is noticed within a second.
    while (serving_ == serving && !stopped_ && !context->IsCancelled())
      changed_.wait_for(lock, std::chrono::seconds(1));
    if (context->IsCancelled()) return grpc::Status::OK;
    // A change is written before the stream ends, even when the stop came
    // right behind it: a watcher must see NOT_SERVING, not only the end.
    if (serving_ != serving) continue;
    if (stopped_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the agent is stopping");
  }
}

}  // namespace netagent::agent
