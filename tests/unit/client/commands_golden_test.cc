// Every netctl command, whole, on replies recorded from a real agent
// (tests/fixtures/client/record.sh): a local server answers each method with
// its recording, the command runs through netctl's own registry, and what it
// prints (table and JSON) is compared with golden files under
// tests/fixtures/client/commands/ (NETAGENT_UPDATE_GOLDEN=1 rewrites them, to
// be read before committing).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"

namespace netagent::client {
namespace {

namespace pb = ::google::protobuf;

const std::string kDir = std::string(NETAGENT_FIXTURES) + "/client/";

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Answers every call with the recorded replies of its method
// ("/netagent.v1.TuningService/GetTunables" from
// replies/netagent.v1.TuningService.GetTunables.jsonl, a reply or streamed
// part per line), and remembers which methods were called.
class Recordings : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(this, ctx->method());
  }
  // Each call so far: "METHOD REQUEST-AS-JSON", in the order they came.
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }

 private:
  // The method's replies serialized; an error when there is no recording
  // (or a unary method's recording is not one reply).
  absl::StatusOr<std::vector<std::string>> Replies(const pb::MethodDescriptor& method) {
    const pb::MethodDescriptor* m = &method;
    const std::string path = absl::StrCat("/", m->service()->full_name(), "/", m->name());
    const std::string text = Read(absl::StrCat(kDir, "replies/", m->full_name(), ".jsonl"));
    if (text.empty()) return absl::UnimplementedError(absl::StrCat("no recording of ", path));
    std::vector<std::string> out;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::unique_ptr<pb::Message> reply(
          pb::MessageFactory::generated_factory()->GetPrototype(m->output_type())->New());
      auto st = pb::util::JsonStringToMessage(std::string(line), reply.get());
      if (!st.ok()) return absl::InternalError(absl::StrCat(path, ": ", st.ToString()));
      out.push_back(reply->SerializeAsString());
    }
    if (!m->server_streaming() && out.size() != 1)
      return absl::InternalError(absl::StrCat(path, " is unary: its recording needs one line"));
    return out;
  }

  // The method by its path ("/netagent.v1.HostService/GetHostInfo").
  static const pb::MethodDescriptor* Method(const std::string& path) {
    std::vector<std::string> parts =
        absl::StrSplit(path.substr(std::min<size_t>(1, path.size())), '/');
    if (parts.size() != 2) return nullptr;
    return pb::DescriptorPool::generated_pool()->FindMethodByName(parts[0] + "." + parts[1]);
  }

  // Notes the call: its method and request as JSON (the method alone when
  // the bytes do not parse).
  void Called(const pb::MethodDescriptor* m, const std::string& path, grpc::ByteBuffer& request) {
    std::string text = path;
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (request.Dump(&slices).ok())
      for (const auto& sl : slices)
        bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    if (m != nullptr) {
      std::unique_ptr<pb::Message> req(
          pb::MessageFactory::generated_factory()->GetPrototype(m->input_type())->New());
      std::string json;
      if (req->ParseFromString(bytes) && pb::util::MessageToJsonString(*req, &json).ok())
        absl::StrAppend(&text, " ", json);
    }
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(text);
  }

  class Reactor : public grpc::ServerGenericBidiReactor {
   public:
    Reactor(Recordings* owner, std::string path) : owner_(owner), path_(std::move(path)) {
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (started_) return;
      started_ = true;
      const pb::MethodDescriptor* m = Method(path_);
      if (ok) owner_->Called(m, path_, request_);
      replies_ = m == nullptr ? absl::UnimplementedError(absl::StrCat("no such method ", path_))
                              : owner_->Replies(*m);
      if (!replies_.ok()) {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            std::string(replies_.status().message())));
        return;
      }
      Next();
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::CANCELLED);
        return;
      }
      Next();
    }
    void OnDone() override { delete this; }

   private:
    void Next() {
      if (next_ == replies_->size()) {
        Finish(grpc::Status::OK);
        return;
      }
      grpc::Slice slice((*replies_)[next_++]);
      buffer_ = grpc::ByteBuffer(&slice, 1);
      StartWrite(&buffer_);
    }
    Recordings* owner_;
    std::string path_;
    absl::StatusOr<std::vector<std::string>> replies_ = std::vector<std::string>();
    grpc::ByteBuffer request_, buffer_;
    size_t next_ = 0;
    bool started_ = false;
  };

  std::mutex mu_;
  std::vector<std::string> calls_;
};

class CommandGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/netctl-golden-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/agent.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterCallbackGenericService(&recordings_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ConnectOptions options;
    auto dialer = Dialer::Create(options);
    ASSERT_TRUE(dialer.ok());
    dialer_.emplace(std::move(*dialer));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    std::remove(socket_.c_str());
    ::rmdir(dir_.c_str());
  }

  struct Run {
    int status = -1;
    std::string out, err;
  };
  // netctl ARGS against the recordings.
  Run Netctl(const std::vector<std::string>& args, Format format) {
    CLI::App app{"netctl"};
    app.require_subcommand(1);
    app.fallthrough();
    Commands commands(app);
    AddAllCommands(commands);
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
    std::ostringstream out, err;
    CommandContext c;
    // Shown as the default agent: the same text whatever this run's socket.
    Target target = *ParseTarget("unix://" + socket_);
    target.display = "unix:///run/netagent/netagent.sock";
    c.targets = {target};
    c.dialer = &*dialer_;
    c.format = format;
    c.aggregate = commands.aggregate();
    c.out = &out;
    c.err = &err;
    Run r;
    const Runner* run = commands.Given();
    if (run == nullptr) return r;
    r.status = (*run)(c);
    r.out = out.str();
    r.err = err.str();
    for (std::string* s : {&r.out, &r.err}) *s = absl::StrReplaceAll(*s, {{socket_, "SOCKET"}});
    return r;
  }

  // The command's table and JSON against their golden files; the methods it
  // called must all have recordings (no UNIMPLEMENTED).
  void Check(const std::string& name, const std::vector<std::string>& args, int status = 0) {
    SCOPED_TRACE(name);
    for (Format format : {Format::kTable, Format::kJson}) {
      recordings_.Clear();
      const Run r = Netctl(args, format);
      EXPECT_EQ(r.status, status) << r.err;
      EXPECT_EQ(r.err.find("UNIMPLEMENTED"), std::string::npos) << r.err;
      const std::string golden =
          absl::StrCat(kDir, "commands/", name, format == Format::kTable ? ".table" : ".jsonl");
      // What netctl asked (flags bound to the wrong field show here), then
      // what it printed.
      std::string text;
      for (const std::string& call : recordings_.calls())
        absl::StrAppend(&text, "--- call ", call, "\n");
      absl::StrAppend(&text, "--- stdout\n", r.out);
      if (!r.err.empty()) absl::StrAppend(&text, "--- stderr\n", r.err);
      if (std::getenv("NETAGENT_UPDATE_GOLDEN") != nullptr) {
        ::mkdir((kDir + "commands").c_str(), 0755);
        std::ofstream(golden) << text;
      }
      ASSERT_FALSE(Read(golden).empty()) << golden << " is missing";
      EXPECT_EQ(text, Read(golden)) << text;
    }
  }

  std::string dir_, socket_;
  Recordings recordings_;
  std::unique_ptr<grpc::Server> server_;
  std::optional<Dialer> dialer_;
};

TEST_F(CommandGolden, ReadCommands) {
  Check("health", {"health"});
  Check("host", {"host"});
  Check("softnet", {"softnet", "--window", "200ms"});
  Check("counters", {"counters", "--window", "200ms", "--nonzero"});
  Check("counters_top", {"counters", "--window", "200ms", "--top", "1", "--by", "DELTA"});
  Check("counters_sum", {"counters", "--window", "1s", "--sum", "--filter", "^Tcp"});
  // The recorded reply has a window this request did not ask for.
  Check("counters_sum_unwindowed", {"counters", "--sum"});
  Check("sockets", {"sockets", "-i", "-m", "--state", "all"});
  Check("sockets_count", {"sockets", "--count"});
  Check("sockets_summary", {"sockets", "summary"});
  Check("nic", {"nic"});
  Check("nic_veth0", {"nic", "veth0"});
  Check("conntrack_stats", {"conntrack", "stats"});
  Check("conntrack_list", {"conntrack", "list"});
  Check("conntrack_summary", {"conntrack", "summary"});
  Check("drops", {"drops"});
  Check("watch", {"watch", "--count", "2"});
  Check("doctor", {"doctor", "--window", "1s"});
  Check("doctor_rules", {"doctor", "--rules"});
  Check("doctor_explain", {"doctor", "--explain", "listen-overflow"});
  Check("doctor_watch", {"doctor", "--watch"});
}

TEST_F(CommandGolden, TuningCommands) {
  Check("log_level", {"log-level", "warn"});
  Check("tune_show", {"tune", "show"});
  Check("tune_plan", {"tune", "plan", "limits", "--set", "somaxconn=8192"});
  // Every intent's flags reach its request (the reply is the limits plan).
  Check("tune_plan_bdp", {"tune", "plan", "bdp", "--bandwidth", "1gbit", "--rtt", "200ms"});
  Check("tune_plan_cc", {"tune", "plan", "cc", "bbr", "--clamp"});
  Check("tune_plan_rps", {"tune", "plan", "rps", "--dev", "veth0", "--cpus", "0-1"});
  Check("tune_plan_xps", {"tune", "plan", "xps", "--dev", "veth0", "--off"});
  Check("tune_plan_irq", {"tune", "plan", "irq", "--dev", "veth0", "--cpus", "1"});
  Check("tune_plan_rfs", {"tune", "plan", "rfs", "--dev", "veth0", "--entries", "32768"});
  Check("tune_plan_channels", {"tune", "plan", "channels", "--dev", "veth0", "--combined", "2"});
  Check("tune_plan_rss", {"tune", "plan", "rss", "--dev", "veth0", "--weights", "1,2"});
  Check("tune_plan_coalesce",
        {"tune", "plan", "coalesce", "--dev", "veth0", "--set", "rx-usecs=50"});
  Check("tune_plan_sysctl", {"tune", "plan", "sysctl", "--set", "net.core.somaxconn=8192"});
  Check("tune_plan_block",
        {"tune", "plan", "block", "--dev", "veth0", "10.88.0.0/16", "2001:db8::/32"});
  Check("tune_apply", {"tune", "apply", "limits", "--set", "somaxconn=8192", "--id", "recorded"});
  Check("tune_confirm", {"tune", "confirm", "recorded-change"});
  Check("tune_rollback", {"tune", "rollback", "recorded-change"});
  Check("tune_history", {"tune", "history"});
  Check("tune_journal", {"tune", "journal"});
}

TEST_F(CommandGolden, DatapathCommands) {
  Check("datapath_attach", {"datapath", "attach", "veth0"});
  Check("datapath_attach_guard", {"datapath", "attach", "veth0", "--mode", "generic", "--syn-rate",
                                  "100", "--syn-prefix4", "24", "--drop-fragments"});
  Check("datapath_status", {"datapath", "status"});
  Check("datapath_rules_add", {"datapath", "rules", "add", "veth0", "--block", "10.88.0.0/16"});
  Check("datapath_rules_del", {"datapath", "rules", "del", "veth0", "1", "2", "--revision", "3"});
  Check("datapath_rules_list", {"datapath", "rules", "list", "veth0"});
  Check("datapath_stats", {"datapath", "stats", "veth0"});
  Check("datapath_test", {"datapath", "test", "veth0", "--src", "10.88.2.3", "--dst", "10.77.0.1"});
  Check("datapath_samples", {"datapath", "samples", "veth0", "--count", "3"});
  Check("datapath_detach", {"datapath", "detach", "veth0"});
}

// The recordings answer: a command whose method has none fails, and says so.
TEST_F(CommandGolden, AMethodWithoutARecordingFailsTheCommand) {
  const Run r = Netctl({"tune", "journal", "ack"}, Format::kTable);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("UNIMPLEMENTED"), std::string::npos) << r.err;
  const auto calls = recordings_.calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().substr(0, calls.back().find(' ')),
            "/netagent.v1.TuningService/AcknowledgeJournal");
}

// A usage error in a runner goes to the context's stderr, and nothing is called.
TEST_F(CommandGolden, AUsageErrorCallsNothing) {
  const Run r = Netctl({"counters", "--window", "soon"}, Format::kTable);
  EXPECT_EQ(r.status, kUsageError);
  EXPECT_EQ(r.err, "netctl: --window: \"soon\" is not a duration (like 500ms, 5s, 2m)\n");
  EXPECT_TRUE(recordings_.calls().empty());
}

}  // namespace
}  // namespace netagent::client
