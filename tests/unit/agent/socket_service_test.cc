#include "agent/socket_service.h"

#include <gtest/gtest.h>

#include <functional>

namespace netagent::agent {
namespace {

namespace v1 = ::netagent::v1;

TEST(SocketQueryFromProto, DefaultsToTcpBothFamiliesAllStates) {
  auto q = SocketQueryFromProto(v1::SocketFilter());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->protocols, std::vector<int>{IPPROTO_TCP});
  EXPECT_EQ(q->families, (std::vector<int>{AF_INET, AF_INET6}));
  EXPECT_EQ(q->states, collectors::kAllStates);
}

TEST(SocketQueryFromProto, AnIpv6AddressPicksItsFamilyAnIpv4OneKeepsBoth) {
  v1::SocketFilter f;
  f.set_destination("fd00::/64");
  auto q = SocketQueryFromProto(f);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->families, std::vector<int>{AF_INET6});
  f.add_families(v1::ADDRESS_FAMILY_INET);
  EXPECT_EQ(SocketQueryFromProto(f).status().message(),
            "filter.families: excludes the family of the source or destination address");
  // IPv4 also matches dual-stack IPv6 sockets (v4-mapped): both families.
  v1::SocketFilter v4;
  v4.set_destination("127.0.0.0/8");
  q = SocketQueryFromProto(v4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->families, (std::vector<int>{AF_INET, AF_INET6}));
  v4.set_source("127.0.0.1");
  q = SocketQueryFromProto(v4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->families, (std::vector<int>{AF_INET, AF_INET6}));
  v4.add_families(v1::ADDRESS_FAMILY_INET6);  // only the v4-mapped ones
  q = SocketQueryFromProto(v4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->families, std::vector<int>{AF_INET6});
  v1::SocketFilter mixed;
  mixed.set_source("10.0.0.0/8");
  mixed.set_destination("fd00::1");
  EXPECT_EQ(SocketQueryFromProto(mixed).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SocketQueryFromProto, BadFieldsAreNamed) {
  struct Case {
    std::function<void(v1::SocketFilter&)> set;
    std::string prefix;
  };
  for (const Case& c : std::vector<Case>{
           {[](v1::SocketFilter& f) { f.set_source("10.0.0.300"); }, "filter.source:"},
           {[](v1::SocketFilter& f) { f.set_destination("x"); }, "filter.destination:"},
           {[](v1::SocketFilter& f) { f.set_source_port("0-99999"); }, "filter.source_port:"},
           {[](v1::SocketFilter& f) { f.set_destination_port("9-1"); }, "filter.destination_port:"},
           {[](v1::SocketFilter& f) { f.add_states("open"); }, "filter.states:"},
           {[](v1::SocketFilter& f) { f.add_protocols(v1::SOCKET_PROTOCOL_UNSPECIFIED); },
            "filter.protocols:"},
       }) {
    v1::SocketFilter f;
    c.set(f);
    auto q = SocketQueryFromProto(f);
    ASSERT_FALSE(q.ok()) << c.prefix;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(q.status().message().rfind(c.prefix, 0), 0u) << q.status();
  }
}

TEST(PageToken, RoundTripsAndIsBoundToTheFilter) {
  v1::SocketFilter f;
  f.add_states("established");
  collectors::SocketCursor c{2, 137};
  const std::string token = EncodePageToken(c, f);
  auto back = DecodePageToken(token, f);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->pass, 2u);
  EXPECT_EQ(back->skip, 137u);
  v1::SocketFilter other;
  EXPECT_EQ(DecodePageToken(token, other).status().message(),
            "page_token: issued for a different filter");
  for (const char* bad : {"", "s1", "s2.1.2.3", "s1.x.2.3", "s1.1.2.zz", "s1.1.2"}) {
    EXPECT_EQ(DecodePageToken(bad, f).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SocketQueryFromProto, UnknownEnumValuesAreRefusedNamingTheField) {
  v1::SocketFilter f;
  f.add_protocols(static_cast<v1::SocketProtocol>(99));
  EXPECT_EQ(SocketQueryFromProto(f).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SocketQueryFromProto(f).status().message().rfind("filter.protocols", 0), 0u);
  v1::SocketFilter g;
  g.add_families(static_cast<v1::AddressFamily>(99));
  EXPECT_EQ(SocketQueryFromProto(g).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SocketQueryFromProto(g).status().message().rfind("filter.families", 0), 0u);
}

// A 1 MB filter came back as a 1 MB error: over the client's metadata limit,
// so it saw RESOURCE_EXHAUSTED instead of the reason.
TEST(SocketQueryFromProto, AHugeFilterValueIsNotEchoedWhole) {
  const std::string huge(1 << 20, 'x');
  for (auto set : std::vector<std::function<void(v1::SocketFilter&)>>{
           [&](v1::SocketFilter& f) { f.set_source(huge); },
           [&](v1::SocketFilter& f) { f.set_destination(huge); },
           [&](v1::SocketFilter& f) { f.set_source_port(huge); },
           [&](v1::SocketFilter& f) { f.set_destination_port(huge); },
           [&](v1::SocketFilter& f) { f.add_states(huge); }}) {
    v1::SocketFilter f;
    set(f);
    auto q = SocketQueryFromProto(f);
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_LT(q.status().message().size(), 300u) << q.status().message().substr(0, 80);
    EXPECT_NE(q.status().message().find("(1048576 bytes)"), std::string::npos)
        << q.status().message().substr(0, 80);
  }
}

}  // namespace
}  // namespace netagent::agent
