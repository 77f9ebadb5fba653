#include "client/fanout.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/security/credentials.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <semaphore>
#include <sstream>
#include <system_error>
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
  // (No reconnect backoff settings: Open retries on a fresh channel, and the
  // minimum reconnect backoff is also gRPC's connect timeout: 100 ms there
  // cut every slow handshake short.)
  if (target.unix_socket) {
    absl::string_view path = target.address;
    absl::ConsumePrefix(&path, "unix://");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
    // Non-blocking: an agent whose listen queue is full (it stopped
    // accepting) answers EAGAIN, tried again every 50 ms until the connect
    // timeout or Ctrl-C, instead of a connect() that blocks for ever.
    const absl::Time deadline = absl::Now() + options_.connect_timeout;
    for (;;) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", strerror(errno)));
      if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        return grpc::CreateCustomInsecureChannelFromFd(target.address, fd, args);
      }
      const int err = errno;
      ::close(fd);
      if (err != EAGAIN) {
        return absl::UnavailableError(absl::StrCat("connect ", path, ": ", strerror(err)));
      }
      if (CallsStopping()) return absl::CancelledError("interrupted");
      if (absl::Now() >= deadline) {
        return absl::UnavailableError(absl::StrCat("connect ", path,
                                                   ": the agent's queue stayed full for ",
                                                   absl::FormatDuration(options_.connect_timeout)));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
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

namespace {

std::mutex g_calls_mu;
std::vector<grpc::ClientContext*> g_calls;
std::atomic<bool> g_stopping{false};

// Brings a TCP target's channel up within `timeout`: READY, or a failed
// connection (refused, reset, TLS: kFailed, the call then fails fast with
// gRPC's own words for why), or neither within the timeout (a blackholed
// host: an error here).
enum class Connected { kReady, kFailed };
absl::StatusOr<Connected> Connect(grpc::Channel& channel, absl::Duration timeout) {
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (grpc_connectivity_state state = channel.GetState(true); state != GRPC_CHANNEL_READY;
       state = channel.GetState(true)) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return Connected::kFailed;
    }
    // Waited for in slices, so that Ctrl-C is noticed while connecting.
    while (!channel.WaitForStateChange(
        state, std::min(deadline, absl::ToChronoTime(absl::Now() + absl::Milliseconds(100))))) {
      if (CallsStopping()) return absl::CancelledError("interrupted");
      if (std::chrono::system_clock::now() >= deadline) {
        return absl::UnavailableError(
            absl::StrCat("not connected within ", absl::FormatDuration(timeout)));
      }
    }
  }
  return Connected::kReady;
}

// The channel of a target, connected; or why there is none. A TCP
// connection that fails is tried once more on a fresh channel 100 ms later
// (a transient refusal: an agent restarting); if that fails too, the channel
// is returned and the call fails with gRPC's reason.
absl::StatusOr<std::shared_ptr<grpc::Channel>> Open(const Target& t, const Dialer& dialer) {
  if (!t.error.empty()) return absl::UnavailableError(t.error);
  if (CallsStopping()) return absl::CancelledError("interrupted");
  for (int attempt = 0;; ++attempt) {
    auto channel = dialer.Dial(t);
    if (!channel.ok()) return WithHint(t, channel.status());
    if (t.unix_socket) return channel;  // connected by Dial already
    auto connected = Connect(**channel, dialer.options().connect_timeout);
    if (!connected.ok()) return connected.status();
    if (*connected == Connected::kReady || attempt == 1) return channel;
    absl::SleepFor(absl::Milliseconds(100));
    if (CallsStopping()) return absl::CancelledError("interrupted");
  }
}

}  // namespace

bool TrackCall(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(g_calls_mu);
  if (g_stopping) return false;
  g_calls.push_back(ctx);
  return true;
}

void UntrackCall(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(g_calls_mu);
  g_calls.erase(std::find(g_calls.begin(), g_calls.end(), ctx));
}

void StopCalls() {
  std::lock_guard<std::mutex> lock(g_calls_mu);
  g_stopping = true;
  for (grpc::ClientContext* ctx : g_calls) ctx->TryCancel();
}

bool CallsStopping() { return g_stopping; }

void ResumeCallsForTesting() {
  std::lock_guard<std::mutex> lock(g_calls_mu);
  g_stopping = false;
}

std::vector<Outcome> FanOut(const std::vector<Target>& targets, const Dialer& dialer,
                            const UnaryCall& call, absl::Duration extra_time,
                            const OnOutcome& on_outcome) {
  std::vector<Outcome> out(targets.size());
  // Windowed calls hold a connection while the agent measures: every target
  // gets its own thread and only connecting is limited, so all windows run at
  // once. Other calls are served by `concurrency` workers.
  const bool windowed = extra_time > absl::ZeroDuration();
  std::counting_semaphore<> connecting(dialer.options().concurrency);
  auto serve = [&](size_t i) {
    const Target& t = targets[i];
    Outcome o;
    if (CallsStopping()) {
      // Ctrl-C: the targets not started yet are not started.
      o.status = absl::CancelledError("interrupted");
      if (on_outcome) {
        on_outcome(i, std::move(o));
      } else {
        out[i] = std::move(o);
      }
      return;
    }
    if (windowed) connecting.acquire();
    auto channel = Open(t, dialer);
    if (windowed) connecting.release();
    if (!channel.ok()) {
      o.status = channel.status();
    } else if (CallsStopping()) {
      o.status = absl::CancelledError("interrupted");
    } else {
      o = call(t, **channel, absl::Now() + dialer.options().timeout + extra_time);
      o.status = WithHint(t, o.status);
    }
    if (on_outcome) {
      on_outcome(i, std::move(o));
    } else {
      out[i] = std::move(o);
    }
  };
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < targets.size(); i = next.fetch_add(1)) serve(i);
  };
  const size_t n =
      windowed ? targets.size() : std::min<size_t>(targets.size(), dialer.options().concurrency);
  std::vector<std::thread> threads;
  try {
    for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
  } catch (const std::system_error&) {
    // No more threads (a pids limit): the ones there are share the targets.
  }
  worker();
  for (auto& th : threads) th.join();
  return out;
}

std::vector<absl::Status> StreamAll(const std::vector<Target>& targets, const Dialer& dialer,
                                    const StreamCall& run, const OnFailure& on_failure) {
  std::vector<absl::Status> out(targets.size());
  std::vector<std::thread> threads;
  // Streams all run at once; --concurrency bounds the connection attempts in
  // flight and --connect-timeout each attempt.
  std::counting_semaphore<> connecting(dialer.options().concurrency);
  for (size_t i = 0; i < targets.size(); ++i) {
    try {
      threads.emplace_back([&, i] {
        const Target& t = targets[i];
        connecting.acquire();
        auto channel = Open(t, dialer);
        connecting.release();
        if (!channel.ok()) {
          out[i] = channel.status();
          if (on_failure) on_failure(i, out[i]);
          return;
        }
        out[i] = WithHint(t, run(t, **channel));
      });
    } catch (const std::system_error& e) {
      // No thread for this stream (a pids limit): said, not fatal.
      out[i] = absl::ResourceExhaustedError(absl::StrCat("no thread for this target: ", e.what()));
      if (on_failure) on_failure(i, out[i]);
    }
  }
  for (auto& th : threads) th.join();
  return out;
}

}  // namespace netagent::client
