#include "client/fanout.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/security/credentials.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <semaphore>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace netagent::client {
namespace {

absl::StatusOr<std::string> Slurp(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A unix socket nobody listens on most often means the agent is not running.
absl::Status WithHint(const Target& t, absl::Status st) {
  if (t.unix_socket && absl::IsUnavailable(st) &&
      (st.message().find("No such file") != absl::string_view::npos ||
       st.message().find("Connection refused") != absl::string_view::npos ||
       st.message().find("connect ") == 0 ||
       st.message().find("not connected within") != absl::string_view::npos)) {
    return absl::UnavailableError(absl::StrCat(st.message(), " (is netagentd running?)"));
  }
  return st;
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<Dialer> Dialer::Create(const ConnectOptions& options) {
  Dialer d;
  d.options_ = options;
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!options.tls_ca.empty()) {
    auto ca = Slurp(options.tls_ca, "--tls-ca");
    if (!ca.ok()) return ca.status();
    d.ca_ = *ca;
  }
  if (!options.tls_cert.empty()) {
    auto cert = Slurp(options.tls_cert, "--tls-cert");
    if (!cert.ok()) return cert.status();
    auto key = Slurp(options.tls_key, "--tls-key");
    if (!key.ok()) return key.status();
    d.cert_ = *cert;
    d.key_ = *key;
  }
  d.options_.tls = options.tls || !options.tls_ca.empty() || !options.tls_cert.empty();
  if (d.options_.concurrency < 1) {
    return absl::InvalidArgumentError("--concurrency: at least 1");
  }
  return d;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Dialer::Dial(const Target& target) const {
  grpc::ChannelArguments args;
  // Each target is one agent; keep connections of long watches alive.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Socket and conntrack tables stream tens of megabytes: a large receive
  // window keeps the agent from waiting on flow control.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  if (target.unix_socket) {
    absl::string_view path = target.address;
    absl::ConsumePrefix(&path, "unix://");
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
      const int err = errno;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("connect ", path, ": ", strerror(err)));
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return grpc::CreateCustomInsecureChannelFromFd(target.address, fd, args);
  }
  if (!options_.tls) {
    return grpc::CreateCustomChannel(target.address, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_;
  ssl.pem_cert_chain = cert_;
  ssl.pem_private_key = key_;
  const std::string name =
      !options_.tls_server_name.empty() ? options_.tls_server_name : target.tls_name;
  if (!name.empty()) args.SetSslTargetNameOverride(name);
  return grpc::CreateCustomChannel(target.address, grpc::SslCredentials(ssl), args);
}

std::vector<Outcome> FanOut(const std::vector<Target>& targets, const Dialer& dialer,
                            const UnaryCall& call, absl::Duration extra_time) {
  std::vector<Outcome> out(targets.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < targets.size(); i = next.fetch_add(1)) {
      const Target& t = targets[i];
      if (!t.error.empty()) {
        out[i].status = absl::UnavailableError(t.error);
        continue;
      }
      auto channel = dialer.Dial(t);
      if (!channel.ok()) {
        out[i].status = WithHint(t, channel.status());
        continue;
      }
      out[i] = call(t, **channel, absl::Now() + dialer.options().timeout + extra_time);
      out[i].status = WithHint(t, out[i].status);
    }
  };
  const size_t n = std::min<size_t>(targets.size(), dialer.options().concurrency);
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  worker();
  for (auto& th : threads) th.join();
  return out;
}

std::vector<absl::Status> StreamAll(const std::vector<Target>& targets, const Dialer& dialer,
                                    const StreamCall& run) {
  std::vector<absl::Status> out(targets.size());
  std::vector<std::thread> threads;
  // Streams all run at once; --concurrency bounds the connection attempts in
  // flight and --timeout each attempt.
  std::counting_semaphore<> connecting(dialer.options().concurrency);
  for (size_t i = 0; i < targets.size(); ++i) {
    threads.emplace_back([&, i] {
      const Target& t = targets[i];
      if (!t.error.empty()) {
        out[i] = absl::UnavailableError(t.error);
        return;
      }
      auto dialed = dialer.Dial(t);
      if (!dialed.ok()) {
        out[i] = WithHint(t, dialed.status());
        return;
      }
      std::shared_ptr<grpc::Channel> channel = *dialed;
      // A unix target is connected by Dial already (and its channel, made from
      // the fd, has no connectivity state to wait on).
      bool connected = true;
      if (!t.unix_socket) {
        connecting.acquire();
        connected =
            channel->WaitForConnected(absl::ToChronoTime(absl::Now() + dialer.options().timeout));
        connecting.release();
      }
      if (!connected) {
        out[i] = WithHint(
            t, absl::UnavailableError(absl::StrCat(
                   "not connected within ", absl::FormatDuration(dialer.options().timeout))));
        return;
      }
      out[i] = WithHint(t, run(t, *channel));
    });
  }
  for (auto& th : threads) th.join();
  return out;
}

}  // namespace netagent::client
