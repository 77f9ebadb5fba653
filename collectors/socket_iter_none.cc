// A build without BPF objects (the fuzz tree): the iterator never loads, and
// every walk is sock_diag's.
#include "collectors/socket_iter.h"

namespace netagent::collectors {

absl::StatusOr<std::unique_ptr<TcpSocketIterator>> TcpSocketIterator::Load() {
  return absl::UnimplementedError("built without the BPF socket iterator");
}

TcpSocketIterator::~TcpSocketIterator() = default;

absl::StatusOr<uint64_t> TcpSocketIterator::Walk(
    const SocketQuery&, absl::FunctionRef<absl::Status(const SocketRecord&)>,
    absl::FunctionRef<absl::Status()>, IterDetail) const {
  return absl::UnimplementedError("built without the BPF socket iterator");
}

BackgroundTcpSocketIterator::BackgroundTcpSocketIterator(bool) {
  capability_ = {false, "built without the BPF socket iterator", ""};
}

BackgroundTcpSocketIterator::~BackgroundTcpSocketIterator() = default;

kernel::Capability BackgroundTcpSocketIterator::capability() const {
  std::lock_guard<std::mutex> l(mu_);
  return capability_;
}

}  // namespace netagent::collectors
