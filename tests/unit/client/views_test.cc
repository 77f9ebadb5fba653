// Commands' views on recorded replies: the table against a golden file, the
// same rows whether a reply comes whole or streamed in parts, and JSON lines
// that mean what protobuf's printer means.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "client/commands.h"
#include "client/output.h"
#include "netagent/v1/conntrack.pb.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/sockets.pb.h"
#include "netagent/v1/telemetry.pb.h"

namespace netagent::client {
namespace {

namespace pb = ::google::protobuf;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kDir = std::string(NETAGENT_FIXTURES) + "/client/";

v1::ListSocketsResponse Sockets() {
  v1::ListSocketsResponse r;
  EXPECT_TRUE(pb::util::JsonStringToMessage(Read(kDir + "sockets.json"), &r).ok());
  EXPECT_EQ(r.sockets_size(), 5);
  return r;
}

// What a Printer writes for one target.
struct Printed {
  std::string out, err;
  int status;
};

template <typename Feed>
Printed Print(Format format, const View& view, Feed feed) {
  std::ostringstream out, err;
  CommandContext c;
  c.targets = {*ParseTarget("unix:///run/netagent/netagent.sock")};
  c.format = format;
  c.out = &out;
  c.err = &err;
  Printer p(c, view);
  feed(p);
  const int status = p.Finish();
  return {out.str(), err.str(), status};
}

TEST(SocketsView, TableMatchesTheGoldenFile) {
  SocketsArgs args;
  args.info = args.memory = true;
  const v1::ListSocketsResponse r = Sockets();
  Printed whole = Print(Format::kTable, SocketsView(args), [&](Printer& p) {
    p.Part(0, r);
    p.Done(0);
  });
  EXPECT_EQ(whole.status, 0);
  EXPECT_EQ(whole.err, "");
  EXPECT_EQ(whole.out, Read(kDir + "sockets.table")) << whole.out;
  // Streamed a socket at a time, or answered whole: the same rows.
  Printed parts = Print(Format::kTable, SocketsView(args), [&](Printer& p) {
    for (const auto& s : r.sockets()) {
      v1::ListSocketsResponse one;
      *one.add_sockets() = s;
      p.Part(0, one);
    }
    p.Done(0);
  });
  EXPECT_EQ(parts.out, whole.out);
  Printed unary = Print(Format::kTable, SocketsView(args), [&](Printer& p) { p.Answer(0, r); });
  EXPECT_EQ(unary.out, whole.out);
}

TEST(SocketsView, JsonLinesMeanWhatProtobufPrints) {
  SocketsArgs args;
  const v1::ListSocketsResponse r = Sockets();
  Printed json = Print(Format::kJson, SocketsView(args), [&](Printer& p) {
    p.Part(0, r);
    p.Done(0);
  });
  ASSERT_EQ(std::count(json.out.begin(), json.out.end(), '\n'), 1) << json.out;
  pb::Struct line;
  ASSERT_TRUE(pb::util::JsonStringToMessage(json.out, &line).ok()) << json.out;
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string reference;
  ASSERT_TRUE(pb::util::MessageToJsonString(r, &reference, options).ok());
  pb::Value expected;
  ASSERT_TRUE(pb::util::JsonStringToMessage(reference, &expected).ok());
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(line.fields().at("result"), expected));
  EXPECT_TRUE(line.fields().at("ok").bool_value());
}

// Every read command's view on a reply recorded from a real agent: the table
// against its golden file (NETAGENT_UPDATE_GOLDEN=1 rewrites them, to be read
// before committing), and the JSON line against protobuf's meaning.
template <typename M>
void CheckView(const std::string& name, const View& view) {
  SCOPED_TRACE(name);
  M reply;
  ASSERT_TRUE(pb::util::JsonStringToMessage(Read(kDir + name + ".json"), &reply).ok());
  Printed table = Print(Format::kTable, view, [&](Printer& p) { p.Answer(0, reply); });
  EXPECT_EQ(table.status, 0);
  EXPECT_EQ(table.err, "");
  const std::string golden = kDir + name + ".table";
  if (std::getenv("NETAGENT_UPDATE_GOLDEN") != nullptr) std::ofstream(golden) << table.out;
  EXPECT_EQ(table.out, Read(golden));
  Printed json = Print(Format::kJson, view, [&](Printer& p) { p.Answer(0, reply); });
  pb::Struct line;
  ASSERT_TRUE(pb::util::JsonStringToMessage(json.out, &line).ok()) << json.out;
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string reference;
  ASSERT_TRUE(pb::util::MessageToJsonString(reply, &reference, options).ok());
  pb::Value expected;
  ASSERT_TRUE(pb::util::JsonStringToMessage(reference, &expected).ok());
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(line.fields().at("result"), expected));
}

TEST(Views, RecordedRepliesMatchTheirGoldenTables) {
  CheckView<v1::GetHostInfoResponse>("host", HostView());
  CheckView<v1::GetSoftnetResponse>("softnet", SoftnetView(true));
  CheckView<v1::GetCountersResponse>("counters", CountersView(true));
  CheckView<v1::GetConntrackStatsResponse>("conntrack_stats", ConntrackStatsView());
}

}  // namespace
}  // namespace netagent::client
