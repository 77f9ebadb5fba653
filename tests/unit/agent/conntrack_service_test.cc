#include "agent/conntrack_service.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/server.h"
#include "agent/wire.h"
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

// The reference: the same entry as a message built field by field, which
// protobuf serializes. EncodeConntrackEntry must give exactly its bytes.
v1::ConntrackEntry Reference(const collectors::ConntrackEntry& e) {
  v1::ConntrackEntry o;
  o.set_family(e.family == AF_INET6 ? v1::ADDRESS_FAMILY_INET6 : v1::ADDRESS_FAMILY_INET);
  o.set_protocol(collectors::ConntrackProtocolLabel(e.original.protocol));
  o.set_protocol_number(e.original.protocol);
  o.set_timeout(e.timeout);
  if (e.tcp_state) o.set_tcp_state(std::string(collectors::ConntrackTcpStateName(*e.tcp_state)));
  for (auto [t, out] :
       {std::pair{&e.original, o.mutable_original()}, {&e.reply, o.mutable_reply()}}) {
    out->set_source(collectors::FormatAddress(t->src));
    out->set_destination(collectors::FormatAddress(t->dst));
    out->set_source_port(t->src_port);
    out->set_destination_port(t->dst_port);
    out->set_icmp_type(t->icmp_type);
    out->set_icmp_code(t->icmp_code);
    out->set_icmp_id(t->icmp_id);
  }
  collectors::ForEachStatusFlag(e.status,
                                [&](absl::string_view f) { o.add_flags(std::string(f)); });
  o.set_status(e.status);
  o.set_mark(e.mark);
  o.set_zone(e.zone);
  o.set_use(e.use);
  o.set_id(e.id);
  if (e.orig_packets) o.set_original_packets(*e.orig_packets);
  if (e.orig_bytes) o.set_original_bytes(*e.orig_bytes);
  if (e.reply_packets) o.set_reply_packets(*e.reply_packets);
  if (e.reply_bytes) o.set_reply_bytes(*e.reply_bytes);
  if (e.start_ns) o.set_start_ns(*e.start_ns);
  return o;
}

// Values drawn to reach every branch of the encoding: zero and absent fields,
// one- to ten-byte varints, both families, named and unnamed protocols,
// lengths of 128 bytes and more (an IPv6 entry with many flags).
collectors::ConntrackEntry RandomEntry(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<uint64_t> values) {
    return *(values.begin() + rng() % values.size());
  };
  auto scalar = [&]() -> uint64_t {
    switch (rng() % 4) {
      case 0:
        return 0;
      case 1:
        return rng() % 128;
      case 2:
        return rng() >> (rng() % 64);
      default:
        return pick({127, 128, 16383, 16384, 0xffffffffull, ~0ull});
    }
  };
  auto maybe = [&]() -> std::optional<uint64_t> {
    if (rng() % 3 == 0) return std::nullopt;
    return scalar();
  };
  collectors::ConntrackEntry e;
  e.family = rng() % 2 ? AF_INET : AF_INET6;
  for (auto* t : {&e.original, &e.reply}) {
    for (auto* a : {&t->src, &t->dst}) {
      a->family = e.family;
      for (size_t i = 0; i < a->size(); ++i)
        a->bytes[i] = static_cast<uint8_t>(rng() % 4 ? rng() : 0);
    }
    t->protocol = static_cast<uint8_t>(pick({6, 17, 1, 58, 132, 33, 136, 47, 0, 200}));
    t->src_port = static_cast<uint16_t>(scalar());
    t->dst_port = static_cast<uint16_t>(scalar());
    t->icmp_id = static_cast<uint16_t>(scalar());
    t->icmp_type = static_cast<uint8_t>(scalar());
    t->icmp_code = static_cast<uint8_t>(scalar());
  }
  e.status = static_cast<uint32_t>(scalar());
  e.timeout = static_cast<uint32_t>(scalar());
  e.mark = static_cast<uint32_t>(scalar());
  e.use = static_cast<uint32_t>(scalar());
  e.id = static_cast<uint32_t>(scalar());
  e.zone = static_cast<uint16_t>(scalar());
  if (rng() % 2) e.tcp_state = static_cast<uint8_t>(rng() % 12);
  e.orig_packets = maybe();
  e.orig_bytes = maybe();
  e.reply_packets = maybe();
  e.reply_bytes = maybe();
  e.start_ns = maybe();
  return e;
}

TEST(EncodeConntrackEntry, GivesProtobufsOwnBytesForEveryKindOfEntry) {
  std::mt19937_64 rng(20261206);
  size_t long_ones = 0;
  for (int i = 0; i < 20000; ++i) {
    const collectors::ConntrackEntry e = RandomEntry(rng);
    std::string ours;
    EncodeConntrackEntry(e, ours);
    const std::string theirs = Reference(e).SerializeAsString();
    ASSERT_EQ(ours, theirs) << i << ": " << Reference(e).ShortDebugString();
    long_ones += ours.size() >= 128;
  }
  EXPECT_GT(long_ones, 1000u);  // the widened length prefix was exercised

  // The reference sets every field of the messages (so a field added to the
  // API must be added to it, and then to the encoder, for this to pass).
  collectors::ConntrackEntry full;
  full.family = AF_INET6;
  for (auto* t : {&full.original, &full.reply}) {
    t->src.family = t->dst.family = AF_INET6;
    t->src.bytes[15] = t->dst.bytes[14] = 1;
    t->protocol = 1;
    t->src_port = t->dst_port = t->icmp_id = 2;
    t->icmp_type = t->icmp_code = 3;
  }
  full.status = IPS_ASSURED | IPS_SEEN_REPLY;
  full.timeout = full.mark = full.use = full.id = full.zone = 4;
  full.tcp_state = 3;
  full.orig_packets = full.orig_bytes = full.reply_packets = full.reply_bytes = full.start_ns = 5;
  const v1::ConntrackEntry ref = Reference(full);
  std::vector<const google::protobuf::FieldDescriptor*> set;
  ref.GetReflection()->ListFields(ref, &set);
  EXPECT_EQ(set.size(), static_cast<size_t>(v1::ConntrackEntry::descriptor()->field_count()));
  for (const v1::ConntrackTuple* t : {&ref.original(), &ref.reply()}) {
    t->GetReflection()->ListFields(*t, &set);
    EXPECT_EQ(set.size(), static_cast<size_t>(v1::ConntrackTuple::descriptor()->field_count()));
  }

  // As the listing sends them: entries in a batch, then the report's fields.
  v1::ListConntrackResponse reference;
  std::string batch;
  for (int i = 0; i < 50; ++i) {
    const collectors::ConntrackEntry e = RandomEntry(rng);
    *reference.add_entries() = Reference(e);
    wire::Message(batch, 1, [&](std::string& out) { EncodeConntrackEntry(e, out); });
  }
  v1::ListConntrackResponse report;
  report.set_examined(123456);
  report.set_kernel_tuple_filter(true);
  report.add_warnings("a warning");
  report.AppendToString(&batch);
  reference.MergeFrom(report);
  EXPECT_EQ(batch, reference.SerializeAsString());
}

// Runs `body` against an agent serving a network namespace of its own (the
// server's threads are started from this thread and share it) holding
// `entries` UDP conntrack entries. Sets *skip when the kernel has no
// ctnetlink.
void WithAgentOverATable(
    uint32_t entries, std::string* skip,
    const std::function<void(AgentContext&, v1::ConntrackService::Stub&)>& body) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("netagent-ct-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::thread([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    absl::Status table = netagent::testing::MakeUdpTable(entries);
    if (absl::IsNotFound(table) || absl::IsUnimplemented(table)) {
      *skip = absl::StrCat("no ctnetlink: ", table.message());
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
    body(ctx, *stub);
    (*server)->Shutdown();
  }).join();
  std::filesystem::remove_all(dir);
}

grpc::Status List(v1::ConntrackService::Stub& stub, const v1::ListConntrackRequest& req,
                  std::vector<v1::ListConntrackResponse>& got) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub.ListConntrack(&c, req);
  v1::ListConntrackResponse m;
  while (reader->Read(&m)) got.push_back(m);
  return reader->Finish();
}

// The encoded stream as a client reads it: batches of batch_size entries,
// the report (examined) only on the last message, which follows the last
// full batch on its own; every entry whole.
TEST(ConntrackService, TheTableStreamsInBatchesWithTheReportLast) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  constexpr uint32_t kTableSize = 2500;
  std::string skip;
  WithAgentOverATable(kTableSize, &skip, [&](AgentContext&, v1::ConntrackService::Stub& stub) {
    for (uint32_t batch : {1000u, 2500u}) {
      v1::ListConntrackRequest req;
      req.set_batch_size(batch);
      std::vector<v1::ListConntrackResponse> got;
      grpc::Status st = List(stub, req, got);
      ASSERT_TRUE(st.ok()) << st.error_message();
      const size_t messages = kTableSize / batch + 1;  // full batches, then the rest or the report
      ASSERT_EQ(got.size(), messages) << batch;
      uint32_t total = 0;
      std::set<std::string> sources;
      for (size_t i = 0; i < got.size(); ++i) {
        const bool last = i + 1 == got.size();
        EXPECT_EQ(got[i].entries_size(), last ? kTableSize % batch : batch) << i;
        EXPECT_EQ(got[i].examined(), last ? kTableSize : 0) << i;
        for (const auto& e : got[i].entries()) {
          ++total;
          sources.insert(e.original().source());
          EXPECT_EQ(e.protocol(), "udp");
          EXPECT_EQ(e.family(), v1::ADDRESS_FAMILY_INET);
          EXPECT_EQ(e.original().destination(), "10.2.0.1");
          EXPECT_EQ(e.original().source_port(), 1000u);
          EXPECT_EQ(e.original().destination_port(), 53u);
          EXPECT_EQ(e.reply().source(), "10.2.0.1");
          EXPECT_EQ(e.reply().destination(), e.original().source());
          EXPECT_EQ(e.reply().source_port(), 53u);
          EXPECT_EQ(e.reply().destination_port(), 1000u);
          EXPECT_GT(e.timeout(), 0u);
        }
      }
      EXPECT_EQ(total, kTableSize);
      std::set<std::string> made;  // MakeUdpTable's entry i comes from 10.1.x.y, x.y = i
      for (uint32_t i = 1; i <= kTableSize; ++i)
        made.insert(absl::StrCat("10.1.", i >> 8, ".", i & 255));
      EXPECT_EQ(sources, made);  // each entry once
    }
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// Asked for a source none of the entries has: a filter only the agent
// applies, so the callback runs for no entry. While the agent runs, the walk
// reads the whole table and says how much it read; once the agent is
// stopping, the same walk ends at its first check with UNAVAILABLE instead.
TEST(ConntrackService, AWalkThatMatchesNothingStillEndsWhenTheAgentStops) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  constexpr uint32_t kTableSize = 3000;
  std::string skip;
  WithAgentOverATable(kTableSize, &skip, [&](AgentContext& ctx, v1::ConntrackService::Stub& stub) {
    v1::ListConntrackRequest req;
    req.mutable_filter()->set_source("192.0.2.0/24");
    std::vector<v1::ListConntrackResponse> all;
    grpc::Status st = List(stub, req, all);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].entries_size(), 0);
    EXPECT_EQ(all[0].examined(), kTableSize);

    ctx.lifecycle.BeginShutdown(absl::Seconds(2));
    std::vector<v1::ListConntrackResponse> stopped;
    st = List(stub, req, stopped);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_EQ(st.error_message(), "agent is shutting down");
    EXPECT_TRUE(stopped.empty());  // no final message: the walk did not reach the end
    v1::GetConntrackSummaryRequest sreq;
    *sreq.mutable_filter() = req.filter();
    v1::GetConntrackSummaryResponse sum;
    grpc::ClientContext c;
    st = stub.GetConntrackSummary(&c, sreq, &sum);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// The service registered without its request guard (and the guard's
// override) answers ListConntrack as the generated service does, with
// UNIMPLEMENTED: the encoded handler is never registered mis-shaped.
TEST(ConntrackService, RegisteredWithoutTheGuardListingIsUnimplementedNotACrash) {
  AgentContext ctx;
  ctx.auth = std::make_shared<AuthState>(AuthPolicy{});
  ConntrackService service(ctx);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::ConntrackService::NewStub(server->InProcessChannel({}));
  std::vector<v1::ListConntrackResponse> got;
  grpc::Status st = List(*stub, v1::ListConntrackRequest(), got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED) << st.error_message();
  server->Shutdown();
}

}  // namespace
}  // namespace netagent::agent
