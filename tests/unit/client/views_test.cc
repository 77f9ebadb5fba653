// Commands' views on recorded replies: the table against a golden file, the
// same rows whether a reply comes whole or streamed in parts, and JSON lines
// that mean what protobuf's printer means.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "client/commands.h"
#include "client/output.h"
#include "netagent/v1/sockets.pb.h"

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

}  // namespace
}  // namespace netagent::client
