// grpc.health.v1.Health for the health-only port (--health-listen): the
// agent's serving status and nothing else. A service of its own rather than
// gRPC's default one, because a server with no other service needs a
// synchronous one to be polled at all.
#pragma once

#include <condition_variable>
#include <mutex>

#include "grpc/health/v1/health.grpc.pb.h"

namespace netagent::agent {

class HealthOnlyService final : public grpc::health::v1::Health::Service {
 public:
  // Watches at once (each holds a thread); more are RESOURCE_EXHAUSTED.
  static constexpr int kMaxWatches = 4;

  // SERVING or NOT_SERVING for the server as a whole (service "") and for
  // "netagent"; any other service name is NOT_FOUND.
  void SetServing(bool serving);
  // Ends the watches (the server is shutting down).
  void Stop();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool serving_ = false;
  bool stopped_ = false;
  int watches_ = 0;
};

}  // namespace netagent::agent
