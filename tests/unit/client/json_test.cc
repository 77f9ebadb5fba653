// The reflection JSON writer against protobuf's own printer: random messages
// of every type in the API, both printed, both parsed back as JSON values and
// compared. Also a few fixed cases whose exact text matters.
#include "client/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "netagent/v1/conntrack.pb.h"
#include "netagent/v1/datapath.pb.h"
#include "netagent/v1/diagnosis.pb.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/nic.pb.h"
#include "netagent/v1/sockets.pb.h"
#include "netagent/v1/telemetry.pb.h"
#include "netagent/v1/tuning.pb.h"

namespace netagent::client {
namespace {

namespace pb = ::google::protobuf;
using FD = pb::FieldDescriptor;

class Filler {
 public:
  explicit Filler(uint32_t seed) : rng_(seed) {}

  void Fill(pb::Message* m, int depth) {
    const pb::Descriptor* d = m->GetDescriptor();
    const pb::Reflection* r = m->GetReflection();
    if (d->full_name() == "google.protobuf.Timestamp") {
      auto* t = static_cast<pb::Timestamp*>(m);
      t->set_seconds(Pick(0, 4102444800));  // 1970 .. 2100
      t->set_nanos(static_cast<int32_t>(Pick(0, 3)) * 1000 * Pick(0, 999999));
      t->set_nanos(t->nanos() % 1000000000);
      return;
    }
    if (d->full_name() == "google.protobuf.Duration") {
      auto* du = static_cast<pb::Duration*>(m);
      const int64_t s = Pick(0, 315576000000);
      const int32_t n = static_cast<int32_t>(Pick(0, 999999999));
      const bool neg = Pick(0, 1) == 1;
      du->set_seconds(neg ? -s : s);
      du->set_nanos(neg ? -n : n);
      return;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* fd = d->field(i);
      if (Pick(0, 2) == 0) continue;  // left unset (or empty)
      if (fd->cpp_type() == FD::CPPTYPE_MESSAGE && depth > 4) continue;
      if (fd->is_repeated()) {
        const int n = static_cast<int>(Pick(0, 3));
        for (int k = 0; k < n; ++k) {
          if (fd->cpp_type() == FD::CPPTYPE_MESSAGE) {
            Fill(r->AddMessage(m, fd), depth + 1);
          } else {
            AddScalar(m, fd);
          }
        }
      } else if (fd->cpp_type() == FD::CPPTYPE_MESSAGE) {
        Fill(r->MutableMessage(m, fd), depth + 1);
      } else {
        SetScalar(m, fd);
      }
    }
  }

 private:
  int64_t Pick(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  uint64_t AnyU64() {
    switch (Pick(0, 3)) {
      case 0:
        return 0;
      case 1:
        return static_cast<uint64_t>(Pick(0, 1000));
      case 2:
        return std::numeric_limits<uint64_t>::max();
      default:
        return rng_();
    }
  }

  double AnyDouble() {
    switch (Pick(0, 7)) {
      case 0:
        return 0;
      case 1:
        return std::numeric_limits<double>::quiet_NaN();
      case 2:
        return Pick(0, 1) ? std::numeric_limits<double>::infinity()
                          : -std::numeric_limits<double>::infinity();
      case 3:
        return 0.1;
      case 4:
        return 1e300 * (Pick(0, 1) ? 1 : -1);
      case 5:
        return 5e-324;
      case 6:
        return static_cast<double>(Pick(0, 1000000));
      default:
        return std::uniform_real_distribution<double>(-1e9, 1e9)(rng_);
    }
  }

  std::string AnyString(bool bytes) {
    static const std::vector<std::string> kPieces = {
        "a",    "10.0.0.1",         "\"", "\\", "\n", "\t", "\x01", "\x1f",        "\x7f", "é",
        "日本", "\xf0\x9f\x98\x80", "<",  "&",  "'",  "/",  " ",    "\xe2\x80\xa8"};
    std::string s;
    const int n = static_cast<int>(Pick(0, 6));
    for (int i = 0; i < n; ++i) s += kPieces[Pick(0, kPieces.size() - 1)];
    if (bytes && Pick(0, 1)) s += std::string(1, static_cast<char>(Pick(0, 255)));
    return s;
  }

  int AnyEnum(const FD* fd) {
    const pb::EnumDescriptor* e = fd->enum_type();
    if (Pick(0, 5) == 0) return static_cast<int>(Pick(100, 200));  // a newer agent's value
    return e->value(static_cast<int>(Pick(0, e->value_count() - 1)))->number();
  }

  void SetScalar(pb::Message* m, const FD* fd) {
    const pb::Reflection* r = m->GetReflection();
    switch (fd->cpp_type()) {
      case FD::CPPTYPE_INT32:
        r->SetInt32(m, fd, static_cast<int32_t>(AnyU64()));
        break;
      case FD::CPPTYPE_UINT32:
        r->SetUInt32(m, fd, static_cast<uint32_t>(AnyU64()));
        break;
      case FD::CPPTYPE_INT64:
        r->SetInt64(m, fd, static_cast<int64_t>(AnyU64()));
        break;
      case FD::CPPTYPE_UINT64:
        r->SetUInt64(m, fd, AnyU64());
        break;
      case FD::CPPTYPE_DOUBLE:
        r->SetDouble(m, fd, AnyDouble());
        break;
      case FD::CPPTYPE_FLOAT:
        r->SetFloat(m, fd, static_cast<float>(AnyDouble()));
        break;
      case FD::CPPTYPE_BOOL:
        r->SetBool(m, fd, Pick(0, 1) == 1);
        break;
      case FD::CPPTYPE_ENUM:
        r->SetEnumValue(m, fd, AnyEnum(fd));
        break;
      case FD::CPPTYPE_STRING:
        r->SetString(m, fd, AnyString(fd->type() == FD::TYPE_BYTES));
        break;
      case FD::CPPTYPE_MESSAGE:
        break;
    }
  }

  void AddScalar(pb::Message* m, const FD* fd) {
    const pb::Reflection* r = m->GetReflection();
    switch (fd->cpp_type()) {
      case FD::CPPTYPE_INT32:
        r->AddInt32(m, fd, static_cast<int32_t>(AnyU64()));
        break;
      case FD::CPPTYPE_UINT32:
        r->AddUInt32(m, fd, static_cast<uint32_t>(AnyU64()));
        break;
      case FD::CPPTYPE_INT64:
        r->AddInt64(m, fd, static_cast<int64_t>(AnyU64()));
        break;
      case FD::CPPTYPE_UINT64:
        r->AddUInt64(m, fd, AnyU64());
        break;
      case FD::CPPTYPE_DOUBLE:
        r->AddDouble(m, fd, AnyDouble());
        break;
      case FD::CPPTYPE_FLOAT:
        r->AddFloat(m, fd, static_cast<float>(AnyDouble()));
        break;
      case FD::CPPTYPE_BOOL:
        r->AddBool(m, fd, Pick(0, 1) == 1);
        break;
      case FD::CPPTYPE_ENUM:
        r->AddEnumValue(m, fd, AnyEnum(fd));
        break;
      case FD::CPPTYPE_STRING:
        r->AddString(m, fd, AnyString(fd->type() == FD::TYPE_BYTES));
        break;
      case FD::CPPTYPE_MESSAGE:
        break;
    }
  }

  std::mt19937_64 rng_;
};

// Every message type declared in the API's files.
std::vector<const pb::Descriptor*> ApiMessages() {
  const pb::FileDescriptor* files[] = {v1::ListSocketsResponse::descriptor()->file(),
                                       v1::GetNicResponse::descriptor()->file(),
                                       v1::ListConntrackResponse::descriptor()->file(),
                                       v1::GetHostInfoResponse::descriptor()->file(),
                                       v1::GetCountersResponse::descriptor()->file(),
                                       v1::PlanTuningResponse::descriptor()->file(),
                                       v1::UpdateRulesRequest::descriptor()->file(),
                                       v1::DiagnoseResponse::descriptor()->file()};
  std::vector<const pb::Descriptor*> out;
  std::function<void(const pb::Descriptor*)> add = [&](const pb::Descriptor* d) {
    if (d->options().map_entry()) return;
    out.push_back(d);
    for (int i = 0; i < d->nested_type_count(); ++i) add(d->nested_type(i));
  };
  for (const auto* f : files) {
    for (int i = 0; i < f->message_type_count(); ++i) add(f->message_type(i));
  }
  return out;
}

std::string Protobufs(const pb::Message& m) {
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  EXPECT_TRUE(pb::util::MessageToJsonString(m, &json, options).ok());
  return json;
}

pb::Value Parsed(const std::string& json) {
  pb::Value v;
  EXPECT_TRUE(pb::util::JsonStringToMessage(json, &v).ok()) << json;
  return v;
}

TEST(Json, MeansWhatProtobufsPrinterMeansOnRandomMessages) {
  const auto types = ApiMessages();
  ASSERT_GT(types.size(), 100u);
  int compared = 0;
  for (uint32_t seed = 0; seed < 40; ++seed) {
    Filler filler(seed);
    for (const pb::Descriptor* d : types) {
      std::unique_ptr<pb::Message> m(
          pb::MessageFactory::generated_factory()->GetPrototype(d)->New());
      filler.Fill(m.get(), 0);
      // As netctl receives it: through the wire format (a map keeps one entry
      // per key; a string that is not UTF-8 does not parse).
      std::unique_ptr<pb::Message> received(m->New());
      if (!received->ParseFromString(m->SerializeAsString())) continue;
      m = std::move(received);
      // Protobuf refuses strings that are not UTF-8; those are compared below.
      std::string reference;
      pb::util::JsonPrintOptions options;
      options.always_print_primitive_fields = true;
      if (!pb::util::MessageToJsonString(*m, &reference, options).ok()) continue;
      std::string ours;
      AppendJson(*m, &ours);
      ASSERT_TRUE(pb::util::MessageDifferencer::Equals(Parsed(reference), Parsed(ours)))
          << d->full_name() << " seed " << seed << "\nprotobuf: " << reference
          << "\nours:     " << ours;
      ++compared;
    }
  }
  EXPECT_GT(compared, 4000);
}

TEST(Json, EmptyMessagePrintsEveryPrimitiveAndNoUnsetMessage) {
  v1::Socket s;
  std::string ours;
  AppendJson(s, &ours);
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(Parsed(Protobufs(s)), Parsed(ours))) << ours;
  EXPECT_EQ(ours.find("tcpInfo"), std::string::npos) << ours;
  EXPECT_NE(ours.find("\"localPort\":0"), std::string::npos) << ours;
}

TEST(Json, StringsAreEscapedAndBadUtf8Replaced) {
  std::string out;
  AppendJsonString("a\"b\\c\n\x01\xff\xc3\xa9", &out);
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9\"");
  pb::Struct parsed;
  ASSERT_TRUE(pb::util::JsonStringToMessage(absl::StrCat("{\"s\":", out, "}"), &parsed).ok());
  EXPECT_EQ(parsed.fields().at("s").string_value(), "a\"b\\c\n\x01\xef\xbf\xbd\xc3\xa9");
}

TEST(Json, SixtyFourBitIntegersAreStringsAndSpecialsNamed) {
  v1::Socket s;
  s.set_inode(std::numeric_limits<uint64_t>::max());
  std::string out;
  AppendJson(s, &out);
  EXPECT_NE(out.find("\"inode\":\"18446744073709551615\""), std::string::npos) << out;
}

}  // namespace
}  // namespace netagent::client

namespace netagent::client {
namespace {

// Values outside Timestamp's and Duration's ranges (protobuf's printer
// refuses the whole message) are null, and the line stays valid JSON.
TEST(Json, OutOfRangeTimesAreNull) {
  v1::GetHostInfoResponse h;
  h.mutable_agent_started_at()->set_seconds(-62135596801LL);
  std::string out;
  AppendJson(h, &out);
  EXPECT_NE(out.find("\"agentStartedAt\":null"), std::string::npos) << out;
  pb::Struct parsed;
  EXPECT_TRUE(pb::util::JsonStringToMessage(out, &parsed).ok()) << out;
  v1::GetSoftnetRequest w;
  w.mutable_window()->set_seconds(1);
  w.mutable_window()->set_nanos(-500000000);
  out.clear();
  AppendJson(w, &out);
  EXPECT_NE(out.find("\"window\":null"), std::string::npos) << out;
}

}  // namespace
}  // namespace netagent::client
