// Running one command against many agents: a channel per target (TLS for TCP
// targets when asked), connected within the connect timeout (a blackholed
// host costs that, not the call's deadline; a refused connection is tried
// once more), at most `concurrency` connections being made at once, a
// deadline per target, and each target's outcome handed on as it arrives. A
// failing target is one failed outcome among the others, never a reason to
// stop. Every call in flight is registered, so Ctrl-C can cancel them all.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/targets.h"

namespace netagent::client {

struct ConnectOptions {
  bool tls = false;      // TLS for TCP targets (unix sockets never use it)
  std::string tls_ca;    // PEM file with the CA that signed the agents' certificates
  std::string tls_cert;  // client certificate for mTLS
  std::string tls_key;
  std::string tls_server_name;  // override the name the server certificate is checked for
  absl::Duration timeout = absl::Seconds(10);         // per target, per call
  absl::Duration connect_timeout = absl::Seconds(3);  // per TCP target
  int concurrency = 32;
};

class Dialer {
 public:
  static absl::StatusOr<Dialer> Create(const ConnectOptions& options);
  // A unix socket is connected here, directly (no resolver, no connection
  // management: a few milliseconds less per netctl run); TCP targets get a
  // regular channel that connects on first use.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Dial(const Target& target) const;
  const ConnectOptions& options() const { return options_; }

 private:
  ConnectOptions options_;
  std::string ca_, cert_, key_;
};

struct Outcome {
  absl::Status status;
  std::unique_ptr<google::protobuf::Message> result;
};

// What a command does for one target within `deadline`.
using UnaryCall =
    std::function<Outcome(const Target& target, grpc::Channel& channel, absl::Time deadline)>;
// Called with each target's outcome as soon as it is known (from the worker
// that ran it: calls may come from several threads at once).
using OnOutcome = std::function<void(size_t index, Outcome outcome)>;

// Runs `call` for every target. Calls that take `extra_time` on the agent (a
// measurement window) all start at once, so every window runs together;
// otherwise at most `concurrency` targets are served at a time. Returns every
// outcome in target order (what `on_outcome` did not take).
std::vector<Outcome> FanOut(const std::vector<Target>& targets, const Dialer& dialer,
                            const UnaryCall& call, absl::Duration extra_time = absl::ZeroDuration(),
                            const OnOutcome& on_outcome = nullptr);

// Runs `run` for every target at once (streams); returns each target's final
// status in target order. `on_failure` hears at once of a target that got no
// stream (no connection, no thread).
using StreamCall = std::function<absl::Status(const Target& target, grpc::Channel& channel)>;
using OnFailure = std::function<void(size_t index, const absl::Status& status)>;
std::vector<absl::Status> StreamAll(const std::vector<Target>& targets, const Dialer& dialer,
                                    const StreamCall& run, const OnFailure& on_failure = nullptr);

// Calls in flight, so that Ctrl-C can cancel them: TrackCall registers a
// context (false once stopping: do not start the call), UntrackCall removes
// it, StopCalls cancels every one and refuses new ones.
bool TrackCall(grpc::ClientContext* ctx);
void UntrackCall(grpc::ClientContext* ctx);
void StopCalls();
bool CallsStopping();
// Undoes StopCalls (tests that stop and go on in one process).
void ResumeCallsForTesting();

absl::Status FromGrpc(const grpc::Status& status);

}  // namespace netagent::client
