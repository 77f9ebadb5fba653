#include "agent/connections.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>

namespace netagent::agent {
namespace {

TEST(ConnectionTable, PerPeerAndTotalLimitsNameWhatWasReached) {
  ConnectionTable t({/*total=*/5, /*per_peer=*/2});
  EXPECT_TRUE(t.Admit(10, 100, "10.0.0.1", false).ok());
  EXPECT_TRUE(t.Admit(11, 101, "10.0.0.1", false).ok());
  absl::Status third = t.Admit(12, 102, "10.0.0.1", false);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("10.0.0.1 holds its limit of 2"), absl::string_view::npos);
  EXPECT_TRUE(t.Admit(12, 102, "10.0.0.2", false).ok());
  EXPECT_TRUE(t.Admit(13, 103, "10.0.0.3", false).ok());
  EXPECT_TRUE(t.Admit(14, 104, "10.0.0.4", false).ok());
  absl::Status full = t.Admit(15, 105, "10.0.0.5", false);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("limit of 5 connections"), absl::string_view::npos);
  // Operators on the unix socket: counted, never refused.
  EXPECT_TRUE(t.Admit(15, 105, "uid 0", true).ok());
  EXPECT_TRUE(t.Admit(16, 106, "uid 0", true).ok());
  EXPECT_EQ(t.size(), 7u);
  EXPECT_EQ(t.of("uid 0"), 2u);
}

TEST(ConnectionTable, AReusedDescriptorIsANewConnection) {
  ConnectionTable t({4, 1});
  ASSERT_TRUE(t.Admit(10, 100, "a", false).ok());
  // fd 10 now holds another socket: the first connection is gone.
  ASSERT_TRUE(t.Admit(10, 200, "a", false).ok());
  EXPECT_EQ(t.of("a"), 1u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ConnectionTable, SweepForgetsWhatIsClosedOrReplaced) {
  ConnectionTable t({8, 8});
  ASSERT_TRUE(t.Admit(10, 100, "a", false).ok());
  ASSERT_TRUE(t.Admit(11, 101, "a", false).ok());
  ASSERT_TRUE(t.Admit(12, 102, "b", false).ok());
  std::map<int, uint64_t> now = {{10, 100}, {11, 999}};  // 11 reused, 12 closed
  EXPECT_EQ(t.Sweep([&](int fd) { return now.count(fd) ? now[fd] : 0; }), 2u);
  EXPECT_EQ(t.of("a"), 1u);
  EXPECT_EQ(t.of("b"), 0u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(ConnectionTable, SocketInodeIsZeroOnceClosed) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_NE(SocketInode(sv[0]), 0u);
  EXPECT_NE(SocketInode(sv[0]), SocketInode(sv[1]));
  close(sv[0]);
  close(sv[1]);
  EXPECT_EQ(SocketInode(sv[0]), 0u);
}

}  // namespace
}  // namespace netagent::agent
