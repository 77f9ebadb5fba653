#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "collectors/socket_iter.h"
#include "kernel/errors.h"
#include "kernel/fd.h"
#include "kernel/libbpf_log.h"
#include "netagent_sockets.skel.h"
#include "spdlog/spdlog.h"

namespace netagent::collectors {
namespace {

// Reads in a row that the kernel answers EAGAIN (a million sockets skipped
// without output in one read, another namespace's); each one goes on.
constexpr int kMaxAgainInARow = 1000;
constexpr size_t kReadSize = 128 * kIterRecordSize * 8;  // 139,264 bytes

bool Wanted(const SocketQuery& q, const SocketRecord& s) {
  if (!(q.states & (1u << s.state))) return false;
  return std::find(q.families.begin(), q.families.end(), s.local.family) != q.families.end();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpSocketIterator>> TcpSocketIterator::Load() {
  kernel::InstallLibbpfLog();
  kernel::LibbpfLogCapture log;
  netagent_sockets* skel = netagent_sockets__open();
  if (skel == nullptr) {
    return kernel::LoadError(errno, "open the socket iterator", log, kernel::kTracingProgramNeeds);
  }
  std::unique_ptr<netagent_sockets, void (*)(netagent_sockets*)> guard(skel,
                                                                       netagent_sockets__destroy);
  if (int err = netagent_sockets__load(skel)) {
    return kernel::LoadError(err, "load the socket iterator", log, kernel::kTracingProgramNeeds);
  }
  if (int err = netagent_sockets__attach(skel)) {
    return kernel::LoadError(err, "attach the socket iterator", log, kernel::kTracingProgramNeeds);
  }
  return std::unique_ptr<TcpSocketIterator>(new TcpSocketIterator(guard.release()));
}

TcpSocketIterator::~TcpSocketIterator() { netagent_sockets__destroy(skel_); }

absl::StatusOr<uint64_t> TcpSocketIterator::Walk(
    const SocketQuery& q, absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
    absl::FunctionRef<absl::Status()> keep_going) const {
  if (!CanWalk(q)) {
    return absl::InvalidArgumentError(
        "the socket iterator walks TCP without address filters, not listeners alone");
  }
  kernel::UniqueFd fd(bpf_iter_create(bpf_link__fd(skel_->links.netagent_sockets)));
  if (!fd.valid()) return kernel::ErrnoStatus(errno, "create a socket iterator");
  std::vector<char> buf(kReadSize + kIterRecordSize);
  SocketRecord s;
  size_t have = 0;
  uint64_t read = 0, given = 0;
  int again = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data() + have, kReadSize);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN && ++again < kMaxAgainInARow) continue;
      return kernel::ErrnoStatus(errno, "read the socket iterator");
    }
    again = 0;
    if (n == 0) break;
    have += static_cast<size_t>(n);
    size_t off = 0;
    for (; off + kIterRecordSize <= have; off += kIterRecordSize) {
      NETAGENT_RETURN_IF_ERROR(
          ParseIterRecord(absl::string_view(buf.data() + off, kIterRecordSize), s));
      if (++read % kSocketCheckEvery == 0) NETAGENT_RETURN_IF_ERROR(keep_going());
      if (!Wanted(q, s)) continue;
      ++given;
      NETAGENT_RETURN_IF_ERROR(on_socket(s));
    }
    std::memmove(buf.data(), buf.data() + off, have - off);
    have -= off;
  }
  if (have != 0) {
    return absl::DataLossError(
        absl::StrCat("the socket iterator ended inside a record (", have, " bytes)"));
  }
  return given;
}

BackgroundTcpSocketIterator::BackgroundTcpSocketIterator(bool enabled) {
  if (!enabled) {
    capability_ = {false, "off (netagentd --socket-walk sock_diag)", ""};
    return;
  }
  capability_ = {false, "loading", ""};
  loader_ = std::thread([this] {
    const absl::Time t0 = absl::Now();
    auto loaded = TcpSocketIterator::Load();
    std::lock_guard<std::mutex> l(mu_);
    if (!loaded.ok()) {
      capability_ = {false, std::string(loaded.status().message()), ""};
      spdlog::warn("socket summaries walk with sock_diag: {}",
                   std::string(loaded.status().message()));
      return;
    }
    iter_ = std::move(*loaded);
    capability_ = {true, "", ""};
    ready_.store(iter_.get(), std::memory_order_release);
    malloc_trim(0);  // the kernel's BTF, parsed for the load
    spdlog::info("socket iterator loaded in {}", absl::FormatDuration(absl::Now() - t0));
  });
}

BackgroundTcpSocketIterator::~BackgroundTcpSocketIterator() {
  if (loader_.joinable()) loader_.join();
}

kernel::Capability BackgroundTcpSocketIterator::capability() const {
  std::lock_guard<std::mutex> l(mu_);
  return capability_;
}

}  // namespace netagent::collectors
