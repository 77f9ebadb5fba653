// One gRPC call with a request of raw bytes, through a generic stub: what a
// client that does not use our generated code (or a hostile one) can send.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace netagent::testing {

// Sends `request` to `method` ("/pkg.Service/Method") and returns the call's
// status; `response` gets the first message answered. With `cancel_after_first`
// (for streams, which would go on) the call is cancelled after that message,
// so a success may read as CANCELLED; without it the call runs to its end.
inline grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& method, const std::string& request = "",
                            std::string* response = nullptr, bool cancel_after_first = true,
                            std::chrono::seconds timeout = std::chrono::seconds(3)) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag;
  bool ok;
  auto step = [&](void* t) {
    cq.Next(&tag, &ok);
    EXPECT_EQ(tag, t);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  step(reinterpret_cast<void*>(1));
  grpc::Slice slice(request);
  grpc::ByteBuffer payload(&slice, 1);
  call->WriteLast(payload, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  step(reinterpret_cast<void*>(2));
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  if (step(reinterpret_cast<void*>(3))) {
    if (response != nullptr) {
      std::vector<grpc::Slice> slices;
      (void)reply.Dump(&slices);
      for (const auto& sl : slices)
        response->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    if (cancel_after_first) ctx.TryCancel();
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  step(reinterpret_cast<void*>(4));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

}  // namespace netagent::testing
