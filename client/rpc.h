// Small helpers the command files share: one unary call with a deadline
// (registered, so Ctrl-C cancels it), and proto time types.
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "client/fanout.h"

namespace netagent::client {

inline void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

inline std::string Time(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

// A stub over a channel the caller keeps alive.
template <typename Stub>
Stub StubFor(grpc::Channel& channel) {
  return Stub(std::shared_ptr<grpc::ChannelInterface>(&channel, [](grpc::ChannelInterface*) {}));
}

// A call's context, registered while it lives so that Ctrl-C cancels the
// call. `started()` is false once netctl is stopping: do not start the call.
class CallContext {
 public:
  CallContext() : tracked_(TrackCall(&ctx)) {}
  explicit CallContext(absl::Time deadline) : CallContext() {
    ctx.set_deadline(absl::ToChronoTime(deadline));
  }
  ~CallContext() {
    if (tracked_) UntrackCall(&ctx);
  }
  CallContext(const CallContext&) = delete;
  CallContext& operator=(const CallContext&) = delete;
  bool started() const { return tracked_; }
  grpc::ClientContext ctx;

 private:
  bool tracked_;
};

template <typename Stub, typename Req, typename Resp>
Outcome Unary(grpc::Channel& channel, absl::Time deadline, const Req& req,
              grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*)) {
  Stub stub = StubFor<Stub>(channel);
  CallContext call(deadline);
  auto resp = std::make_unique<Resp>();
  Outcome o;
  if (!call.started()) {
    o.status = absl::CancelledError("interrupted");
    return o;
  }
  o.status = FromGrpc((stub.*method)(&call.ctx, req, resp.get()));
  if (o.status.ok()) o.result = std::move(resp);
  return o;
}

}  // namespace netagent::client
