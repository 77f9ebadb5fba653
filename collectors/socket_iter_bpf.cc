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

constexpr int kMaxAgainInARow = 1000;
// What the kernel gives a read at most: its seq_file buffer (8 pages).
constexpr size_t kReadSize = 8 * 4096;
// Between the two walks that measure HZ: 25 jiffies at HZ=100, +-1.
constexpr absl::Duration kCalibration = absl::Milliseconds(250);

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
  std::unique_ptr<TcpSocketIterator> it(new TcpSocketIterator(skel));
  if (int err = netagent_sockets__load(skel)) {
    return kernel::LoadError(err, "load the socket iterator", log, kernel::kTracingProgramNeeds);
  }
  if (int err = netagent_sockets__attach(skel)) {
    return kernel::LoadError(err, "attach the socket iterator", log, kernel::kTracingProgramNeeds);
  }
  // HZ: jiffies against the monotonic clock over two footer-only walks.
  skel->bss->footer_only = 1;
  auto first = it->Footer();
  if (!first.ok()) return first.status();
  absl::SleepFor(kCalibration);
  auto second = it->Footer();
  if (!second.ok()) return second.status();
  skel->bss->footer_only = 0;
  NETAGENT_ASSIGN_OR_RETURN(it->hz_, HzFromFooters(*first, *second));
  return it;
}

TcpSocketIterator::~TcpSocketIterator() { netagent_sockets__destroy(skel_); }

absl::Status TcpSocketIterator::Read(
    bool summary, absl::FunctionRef<absl::Status(absl::string_view record)> on_record) const {
  kernel::UniqueFd fd(bpf_iter_create(
      bpf_link__fd(summary ? skel_->links.netagent_socket_states : skel_->links.netagent_sockets)));
  if (!fd.valid()) return kernel::ErrnoStatus(errno, "create a socket iterator");
  std::vector<char> buf(kReadSize);
  IterRecordStream stream;
  for (int again = 0;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // The kernel gives up a read after a million objects without output
      // (never with this program: every socket writes a record); the next
      // read goes on.
      if (errno == EAGAIN && ++again < kMaxAgainInARow) continue;
      return kernel::ErrnoStatus(errno, "read the socket iterator");
    }
    again = 0;
    if (n == 0) break;
    NETAGENT_RETURN_IF_ERROR(
        stream.Feed(absl::string_view(buf.data(), static_cast<size_t>(n)), on_record));
  }
  return stream.Finish();
}

absl::StatusOr<IterFooter> TcpSocketIterator::Footer() const {
  IterFooter footer;
  bool seen = false;
  SocketRecord unused;
  NETAGENT_RETURN_IF_ERROR(Read(false, [&](absl::string_view record) -> absl::Status {
    NETAGENT_ASSIGN_OR_RETURN(const bool socket, ParseIterRecord(record, 0, unused, footer));
    seen |= !socket;
    return absl::OkStatus();
  }));
  if (!seen) return absl::DataLossError("the socket iterator's walk had no footer");
  return footer;
}

absl::StatusOr<uint64_t> TcpSocketIterator::Walk(
    const SocketQuery& q, absl::FunctionRef<absl::Status(const SocketRecord&)> on_socket,
    absl::FunctionRef<absl::Status()> keep_going, IterDetail detail) const {
  if (!CanWalk(q)) {
    return absl::InvalidArgumentError(
        "the socket iterator walks TCP without address filters, not listeners alone");
  }
  SocketRecord s;
  IterFooter footer;
  uint64_t records = 0, given = 0;
  NETAGENT_RETURN_IF_ERROR(Read(detail == IterDetail::kSummary && !q.tcp_info && !q.memory,
                                [&](absl::string_view record) -> absl::Status {
                                  NETAGENT_ASSIGN_OR_RETURN(
                                      const bool socket, ParseIterRecord(record, hz_, s, footer));
                                  if (++records % kSocketCheckEvery == 0)
                                    NETAGENT_RETURN_IF_ERROR(keep_going());
                                  if (!socket || !Wanted(q, s)) return absl::OkStatus();
                                  ++given;
                                  return on_socket(s);
                                }));
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
      // The first line for `netctl host`; the whole (libbpf's log) to the log.
      const std::string why(loaded.status().message());
      capability_ = {false, why.substr(0, why.find('\n')), ""};
      spdlog::warn("socket summaries walk with sock_diag: {}", why);
      return;
    }
    iter_ = std::move(*loaded);
    capability_ = {true, "", ""};
    ready_.store(iter_.get(), std::memory_order_release);
    malloc_trim(0);  // the kernel's BTF, parsed for the load
    spdlog::info("socket iterator loaded in {} (HZ {})", absl::FormatDuration(absl::Now() - t0),
                 iter_->hz());
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
