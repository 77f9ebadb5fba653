#include "agent/tcp_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernel/errors.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {
namespace {

// The connection's peer address (or, `local`, its own) as text: "10.0.0.1",
// "2001:db8::1" (v4-mapped addresses as IPv4). A peer's connections are
// counted against its address.
std::string SocketAddress(int fd, bool local = false) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if ((local ? ::getsockname(fd, sa, &len) : ::getpeername(fd, sa, &len)) != 0) return "unknown";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof(buf));
  } else if (ss.ss_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      inet_ntop(AF_INET, &a.s6_addr[12], buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, &a, buf, sizeof(buf));
    }
  }
  return buf;
}

// What connections from the host itself are counted against (see
// ConnectionLimits::local).
constexpr const char* kHostPeer = "the host";

}  // namespace

absl::StatusOr<std::unique_ptr<TcpListener>> TcpListener::Bind(const ListenAddress& address,
                                                               ConnectionLimits limits) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string port = std::to_string(address.port);
  // All addresses: the IPv6 wildcard, which takes IPv4 too (V6ONLY off).
  const std::string host = address.host.empty() ? "::" : address.host;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError(absl::StrCat("listen: no address for ", host));
  kernel::UniqueFd fd;
  for (addrinfo* ai = res; ai != nullptr && !fd.valid(); ai = ai->ai_next) {
    kernel::UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.valid()) {
      last = kernel::LastErrnoStatus("listen: socket");
      continue;
    }
    const int one = 1, zero = 0;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6 && address.host.empty())
      ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (::bind(s.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(s.get(), 128) != 0) {
      last = kernel::LastErrnoStatus(absl::StrCat("listen: cannot bind ", address.ToGrpc()));
      continue;
    }
    fd = std::move(s);
  }
  ::freeaddrinfo(res);
  if (!fd.valid()) return last;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  const int bound = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return std::unique_ptr<TcpListener>(new TcpListener(std::move(fd), bound, limits));
}

TcpListener::TcpListener(kernel::UniqueFd fd, int port, ConnectionLimits limits)
    : fd_(std::move(fd)), port_(port), table_(limits) {}

TcpListener::~TcpListener() { Stop(); }

void TcpListener::Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
  acceptor_ = std::move(acceptor);
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  thread_ = std::thread([this] {
    RunAcceptLoop(
        fd_.get(), wake_.get(), [this](int fd) { OnConnection(fd); },
        [this] {
          std::lock_guard<std::mutex> l(mu_);
          table_.Sweep(SocketInode);
        });
  });
}

void TcpListener::OnConnection(int fd) {
  std::string peer = SocketAddress(fd);
  const size_t local_budget = table_.limits().local;
  const bool local = local_budget > 0 && (peer == "::1" || absl::StartsWith(peer, "127.") ||
                                          peer == SocketAddress(fd, true));
  if (local) peer = kHostPeer;  // every local address in one budget
  absl::Status admitted;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Count what is really open before refusing anyone.
    if (table_.size() >= table_.limits().total || table_.of(peer) >= table_.limits().per_peer ||
        (local && table_.of(peer) >= local_budget))
      table_.Sweep(SocketInode);
    if (local && table_.of(peer) >= local_budget) {
      admitted = absl::ResourceExhaustedError(
          absl::StrCat("the host holds its limit of ", local_budget, " connections"));
    } else {
      admitted = table_.Admit(fd, SocketInode(fd), peer, /*exempt=*/local);
    }
  }
  if (!admitted.ok()) {
    ::close(fd);
    // A flood of refusals must not flood the log: one line per 10 s.
    const auto now = std::chrono::steady_clock::now();
    ++refused_;
    if (now - last_refusal_log_ > std::chrono::seconds(10)) {
      spdlog::warn("TCP connections refused: {} since the last report; latest from {}: {}",
                   refused_, peer, std::string(admitted.message()));
      refused_ = 0;
      last_refusal_log_ = now;
    }
    return;
  }
  grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
  p.listener_fd = fd_.get();
  p.fd = fd;
  acceptor_->HandleNewConnection(&p);
}

size_t TcpListener::open_connections() const {
  std::lock_guard<std::mutex> l(mu_);
  return table_.size();
}

void TcpListener::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)::write(wake_.get(), &one, sizeof(one));
    thread_.join();
  }
  fd_.reset();
}

}  // namespace netagent::agent
