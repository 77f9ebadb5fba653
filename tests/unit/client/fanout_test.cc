// Connecting: a refused TCP target fails at once with gRPC's reason (tried
// twice), and a unix socket whose listener stopped accepting costs the
// connect timeout, not for ever.
#include "client/fanout.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "client/rpc.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace netagent::client {
namespace {

namespace health = ::grpc::health::v1;
using Clock = std::chrono::steady_clock;

Outcome Health(const Target&, grpc::Channel& ch, absl::Time d) {
  return Unary(ch, d, health::HealthCheckRequest(), &health::Health::Stub::Check);
}

TEST(FanOut, ARefusedTargetFailsAtOnceWithItsReason) {
  // A port nobody listens on: bound, never listening.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ConnectOptions o;
  o.connect_timeout = absl::Seconds(5);
  auto dialer = Dialer::Create(o);
  ASSERT_TRUE(dialer.ok());
  auto target = ParseTarget("127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  ASSERT_TRUE(target.ok());
  const auto start = Clock::now();
  auto outcomes = FanOut({*target}, *dialer, Health);
  const auto took = Clock::now() - start;
  close(fd);
  EXPECT_TRUE(absl::IsUnavailable(outcomes[0].status)) << outcomes[0].status;
  EXPECT_EQ(outcomes[0].status.message().find("not connected within"), absl::string_view::npos)
      << outcomes[0].status;
  EXPECT_LT(took, std::chrono::seconds(2)) << "waited for the connect timeout";
}

TEST(Dialer, AUnixListenerThatStoppedAcceptingCostsTheConnectTimeout) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("netctl-full-" + std::to_string(getpid())))
          .string();
  unlink(path.c_str());
  const int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 0), 0);
  // Fill the queue: connections nobody accepts.
  std::vector<int> queued;
  for (int i = 0; i < 8; ++i) {
    const int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(c);
      break;
    }
    queued.push_back(c);
  }
  ConnectOptions o;
  o.connect_timeout = absl::Milliseconds(500);
  auto dialer = Dialer::Create(o);
  ASSERT_TRUE(dialer.ok());
  auto target = ParseTarget("unix://" + path);
  ASSERT_TRUE(target.ok());
  const auto start = Clock::now();
  auto channel = dialer->Dial(*target);
  const auto took = Clock::now() - start;
  EXPECT_FALSE(channel.ok());
  EXPECT_NE(channel.status().message().find("queue stayed full"), absl::string_view::npos)
      << channel.status();
  EXPECT_GE(took, std::chrono::milliseconds(450));
  EXPECT_LT(took, std::chrono::seconds(2));
  for (int c : queued) close(c);
  close(listener);
  unlink(path.c_str());
}

}  // namespace
}  // namespace netagent::client
