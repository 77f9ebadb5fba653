#include "agent/conntrack_service.h"

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/server.h"
#include "tests/common/conntrack_table.h"

namespace netagent::agent {
namespace {

namespace v1 = ::netagent::v1;

TEST(FillPercent, UnknownUnlessCountAndANonZeroMaxAreKnown) {
  EXPECT_EQ(FillPercent(5, 10), 50.0);
  EXPECT_EQ(FillPercent(0, 10), 0.0);
  EXPECT_EQ(FillPercent(5, std::nullopt), std::nullopt);
  EXPECT_EQ(FillPercent(std::nullopt, 10), std::nullopt);
  EXPECT_EQ(FillPercent(5, 0), std::nullopt);
}

TEST(ConntrackQueryFromProto, AnUnknownFamilyIsRefusedNamingTheField) {
  v1::ConntrackFilter f;
  f.set_family(static_cast<v1::AddressFamily>(99));
  auto q = ConntrackQueryFromProto(f);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(q.status().message().rfind("filter.family", 0), 0u) << q.status();
}

TEST(ConntrackQueryFromProto, AHugeFilterValueIsNotEchoedWhole) {
  const std::string huge(1 << 20, 'y');
  for (int field = 0; field < 6; ++field) {
    v1::ConntrackFilter f;
    if (field == 0) f.set_protocol(huge);
    if (field == 1) f.add_tcp_states(huge);
    if (field == 2) f.set_source(huge);
    if (field == 3) f.set_destination(huge);
    if (field == 4) f.set_source_port(huge);
    if (field == 5) f.set_destination_port(huge);
    auto q = ConntrackQueryFromProto(f);
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_LT(q.status().message().size(), 300u) << q.status().message().substr(0, 80);
  }
}

// The agent in a network namespace of this test thread's own (the server's
// threads are started from it and share it) with thousands of conntrack
// entries, asked for a source none of them has: a filter only the agent
// applies, so the callback runs for no entry. While the agent runs, the walk
// reads the whole table and says how much it read; once the agent is
// stopping, the same walk ends at its first check with UNAVAILABLE instead.
TEST(ConntrackService, AWalkThatMatchesNothingStillEndsWhenTheAgentStops) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  constexpr uint32_t kTableSize = 3000;
  const auto dir =
      std::filesystem::temp_directory_path() / ("netagent-ct-stop-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string skip;
  std::thread([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    absl::Status table = netagent::testing::MakeUdpTable(kTableSize);
    if (absl::IsNotFound(table) || absl::IsUnimplemented(table)) {
      skip = absl::StrCat("no ctnetlink: ", table.message());
      return;
    }
    ASSERT_TRUE(table.ok()) << table;
    AgentContext ctx;
    ctx.auth = std::make_shared<AuthState>(AuthPolicy{});
    ctx.started_at = absl::Now();
    ctx.version = "test";
    AgentServer::Options o;
    o.socket = (dir / "agent.sock").string();
    o.state_dir = (dir / "state").string();
    o.shutdown_grace = absl::Seconds(2);
    auto server = AgentServer::Start(o, ctx);
    ASSERT_TRUE(server.ok()) << server.status();
    auto stub = v1::ConntrackService::NewStub(
        grpc::CreateChannel("unix://" + o.socket, grpc::InsecureChannelCredentials()));
    v1::ListConntrackRequest req;
    req.mutable_filter()->set_source("192.0.2.0/24");
    auto list = [&](std::vector<v1::ListConntrackResponse>& got) {
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      auto reader = stub->ListConntrack(&c, req);
      v1::ListConntrackResponse m;
      while (reader->Read(&m)) got.push_back(m);
      return reader->Finish();
    };

    std::vector<v1::ListConntrackResponse> all;
    grpc::Status st = list(all);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].entries_size(), 0);
    EXPECT_EQ(all[0].examined(), kTableSize);

    ctx.lifecycle.BeginShutdown(absl::Seconds(2));
    std::vector<v1::ListConntrackResponse> stopped;
    st = list(stopped);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_EQ(st.error_message(), "agent is shutting down");
    EXPECT_TRUE(stopped.empty());  // no final message: the walk did not reach the end
    v1::GetConntrackSummaryRequest sreq;
    *sreq.mutable_filter() = req.filter();
    v1::GetConntrackSummaryResponse sum;
    grpc::ClientContext c;
    st = stub->GetConntrackSummary(&c, sreq, &sum);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    (*server)->Shutdown();
  }).join();
  std::filesystem::remove_all(dir);
  if (!skip.empty()) GTEST_SKIP() << skip;
}

}  // namespace
}  // namespace netagent::agent
