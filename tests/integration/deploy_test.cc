// The agent run the way deploy/daemonset.yaml runs it, without a cluster: in
// the network namespace it serves (as a hostNetwork pod; no --netns), with
// /proc/sys, /proc/irq and /sys read-only (as a container runtime mounts
// them), the host's trees and a bpffs mounted where the manifest mounts them,
// the capability bounding set cut to exactly the manifest's list (setpriv),
// and the manifest's --proc-root and --sys-root. Collectors, tune applies
// and rollbacks through both roots, a datapath attach + rule + detach,
// /metrics and the health port must all work; without one capability the
// failure names it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "netagent/v1/tuning.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct Manifest {
  std::vector<std::string> capabilities;  // NET_ADMIN, ...
  std::string proc_root;                  // --proc-root's value
  std::string sys_root;                   // --sys-root's
  // hostPath -> mountPath of the container's hostPath volumes.
  std::map<std::string, std::string> host_mounts;
};

Manifest ReadManifest() {
  Manifest m;
  for (const YAML::Node& doc :
       YAML::LoadAllFromFile(std::string(NETAGENT_SOURCE_DIR) + "/deploy/daemonset.yaml")) {
    if (!doc.IsMap() || doc["kind"].as<std::string>("") != "DaemonSet") continue;
    const YAML::Node pod = doc["spec"]["template"]["spec"];
    std::map<std::string, std::string> volumes;  // volume name -> hostPath
    for (const YAML::Node& v : pod["volumes"]) {
      if (v["hostPath"])
        volumes[v["name"].as<std::string>()] = v["hostPath"]["path"].as<std::string>();
    }
    for (const YAML::Node& c : pod["containers"]) {
      if (c["name"].as<std::string>() != "netagentd") continue;
      for (const YAML::Node& cap : c["securityContext"]["capabilities"]["add"])
        m.capabilities.push_back(cap.as<std::string>());
      for (const YAML::Node& a : c["args"]) {
        const std::string arg = a.as<std::string>();
        absl::string_view value = arg;
        if (absl::ConsumePrefix(&value, "--proc-root=")) m.proc_root = std::string(value);
        if (absl::ConsumePrefix(&value, "--sys-root=")) m.sys_root = std::string(value);
      }
      for (const YAML::Node& vm : c["volumeMounts"]) {
        auto it = volumes.find(vm["name"].as<std::string>());
        if (it != volumes.end()) m.host_mounts[it->second] = vm["mountPath"].as<std::string>();
      }
    }
  }
  return m;
}

// The value of a `netctl host` row: "writes irq" -> "yes (/proc/irq)".
std::string Row(const std::string& table, const std::string& field) {
  for (absl::string_view line : absl::StrSplit(table, '\n')) {
    if (absl::ConsumePrefix(&line, field + " ")) {
      return std::string(absl::StripLeadingAsciiWhitespace(line));
    }
  }
  return "(no row " + field + ")";
}

// What runs the agent as a container would: inside `ns`, in a mount
// namespace of its own, the host's /proc/sys/net, /proc/irq and /sys bound
// writable under `root` + the manifest's mount paths, then /proc/sys,
// /proc/irq and /sys made read-only and a bpffs mounted at /sys/fs/bpf (the
// host's, in the manifest), then setpriv: no inheritable capabilities, the
// bounding set `caps` (a root whose inheritable set is not empty would
// otherwise keep more across exec).
std::vector<std::string> AsTheDaemonSet(const Netns& ns, const Manifest& m, const std::string& root,
                                        const std::vector<std::string>& caps,
                                        const std::string& without = "") {
  std::string script = "set -e\n";
  for (const char* host : {"/proc/sys/net", "/proc/irq", "/sys"}) {
    auto it = m.host_mounts.find(host);
    const std::string to = root + (it == m.host_mounts.end() ? "/missing" : it->second);
    absl::StrAppend(&script, "mkdir -p '", to, "'; mount --bind ", host, " '", to, "'\n");
  }
  for (const char* dir : {"/proc/sys", "/proc/irq", "/sys"}) {
    absl::StrAppend(&script, "mount --bind ", dir, " ", dir, "; mount -o remount,bind,ro ", dir,
                    "\n");
  }
  std::string set = "-all";
  for (const std::string& c : caps) {
    if (c != without) absl::StrAppend(&set, ",+", absl::AsciiStrToLower(c));
  }
  absl::StrAppend(&script, "mount -t bpf bpf /sys/fs/bpf\n",
                  "exec setpriv --inh-caps -all --bounding-set ", set, " -- \"$@\"\n");
  return ns.Exec({"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"});
}

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifest_ = ReadManifest();
    ASSERT_FALSE(manifest_.capabilities.empty()) << "no capability list in the manifest";
    ASSERT_FALSE(manifest_.proc_root.empty()) << "the manifest passes no --proc-root";
    ASSERT_FALSE(manifest_.sys_root.empty()) << "the manifest passes no --sys-root";
    ASSERT_EQ(RunCommand(
                  ns_.Exec({"ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"}))
                  .exit_code,
              0);
    ASSERT_EQ(RunCommand(ns_.Exec({"ip", "link", "set", "veth0", "up"})).exit_code, 0);
    ASSERT_EQ(RunCommand(ns_.Exec({"ip", "link", "set", "veth1", "up"})).exit_code, 0);
  }
  // The manifest's roots, under this test's directory.
  std::vector<std::string> Roots() const {
    return {"--proc-root", root_.path().string() + manifest_.proc_root, "--sys-root",
            root_.path().string() + manifest_.sys_root};
  }
  std::vector<std::string> Prefix(const std::string& without = "") const {
    return AsTheDaemonSet(ns_, manifest_, root_.path().string(), manifest_.capabilities, without);
  }
  Manifest manifest_;
  TempDir root_;
  Netns ns_;
};

TEST_F(DeployTest, WithTheManifestsCapabilitiesAndMountsEverythingWorks) {
  REQUIRE_ROOT("and mounts");
  std::vector<std::string> flags = Roots();
  flags.insert(flags.end(),
               {"--metrics-listen", "127.0.0.1:9471", "--health-listen", "127.0.0.1:9472"});
  Agent agent(ns_, flags, "", Prefix(), /*inside=*/true);
  ASSERT_TRUE(agent.ok()) << agent.error();
  // It runs with exactly the manifest's capabilities.
  const std::map<std::string, int> bit = {{"NET_ADMIN", 12}, {"NET_RAW", 13}, {"SYS_ADMIN", 21},
                                          {"SYS_NICE", 23},  {"PERFMON", 38}, {"BPF", 39}};
  uint64_t want = 0;
  for (const std::string& c : manifest_.capabilities) {
    ASSERT_TRUE(bit.count(c)) << "a capability this test does not know: " << c;
    want |= uint64_t{1} << bit.at(c);
  }
  std::string eff;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(absl::StrCat("/proc/", agent.process().pid(), "/status")), '\n')) {
    if (absl::ConsumePrefix(&line, "CapEff:")) eff = std::string(absl::StripAsciiWhitespace(line));
  }
  EXPECT_EQ(eff, absl::StrFormat("%016x", want));

  // Where it writes, and that it can.
  RunResult host = agent.Netctl({"host"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  const std::string under = root_.path().string() + manifest_.proc_root;
  EXPECT_THAT(Row(host.out, "writes net.ipv4"), StartsWith("yes, "));
  EXPECT_THAT(Row(host.out, "writes net.ipv4"), HasSubstr("(" + under + "/sys/net/ipv4)"));
  EXPECT_EQ(Row(host.out, "writes irq"), "yes (" + under + "/irq)");
  EXPECT_EQ(Row(host.out, "writes sysfs"),
            "yes (" + root_.path().string() + manifest_.sys_root + "/class/net)");
  EXPECT_THAT(host.out, Not(HasSubstr("read-only-mounts")));
  EXPECT_EQ(Row(host.out, "bpffs"), "yes");  // the one mounted for it, not its own

  // Collectors.
  for (std::vector<std::string> args : {std::vector<std::string>{"sockets", "summary"},
                                        {"counters"},
                                        {"softnet"},
                                        {"nic"},
                                        {"nic", "veth0"},
                                        {"conntrack", "stats"},
                                        {"doctor", "--window", "1s"}}) {
    RunResult r = agent.Netctl(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.out << r.err;
  }

  // Tune applies through both roots, and their rollbacks.
  struct Knob {
    std::vector<std::string> intent;
    std::function<std::string()> read;
  };
  const Knob knobs[] = {
      {{"limits", "--set", "somaxconn=8192"}, [&] { return Sysctl(ns_, "net.core.somaxconn"); }},
      {{"rps", "--dev", "veth0"},
       [&] {
         return RunCommand(ns_.Exec({"cat", "/sys/class/net/veth0/queues/rx-0/rps_cpus"})).out;
       }},
  };
  for (const Knob& k : knobs) {
    const std::string before = k.read();
    std::vector<std::string> argv = {"-o", "json", "tune", "apply"};
    argv.insert(argv.end(), k.intent.begin(), k.intent.end());
    RunResult applied = agent.Netctl(argv);
    ASSERT_EQ(applied.exit_code, 0) << applied.out << applied.err;
    EXPECT_NE(k.read(), before) << k.intent[0];
    const auto change = ResultOf<v1::ApplyTuningResponse>(Lines(applied.out).at(0));
    RunResult rolled = agent.Netctl({"tune", "rollback", change.change().id()});
    EXPECT_EQ(rolled.exit_code, 0) << rolled.out << rolled.err;
    EXPECT_EQ(k.read(), before) << k.intent[0];
  }

  // The fast path: attach, a rule, detach.
  RunResult attach = agent.Netctl({"datapath", "attach", "veth0"});
  ASSERT_EQ(attach.exit_code, 0) << attach.out << attach.err;
  RunResult rule = agent.Netctl({"datapath", "rules", "add", "veth0", "--block", "192.0.2.0/24"});
  EXPECT_EQ(rule.exit_code, 0) << rule.out << rule.err;
  RunResult detach = agent.Netctl({"datapath", "detach", "veth0"});
  EXPECT_EQ(detach.exit_code, 0) << detach.out << detach.err;
  EXPECT_THAT(RunCommand(ns_.Exec({"ip", "link", "show", "veth0"})).out, Not(HasSubstr("xdp")));

  // /metrics and the health port.
  RunResult scrape = RunCommand(ns_.Exec({"python3", "-c",
                                          "import urllib.request;print(urllib.request.urlopen("
                                          "'http://127.0.0.1:9471/metrics',timeout=10).read()"
                                          ".decode())"}),
                                std::chrono::seconds(30));
  EXPECT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_THAT(scrape.out, HasSubstr("netagent_build_info{"));
  RunResult health =
      RunCommand(ns_.Exec({NetctlPath(), "-t", "127.0.0.1:9472", "--timeout", "5s", "health"}));
  EXPECT_EQ(health.exit_code, 0) << health.out << health.err;
  EXPECT_THAT(agent.log(), Not(HasSubstr("\"level\":\"error\"")));
}

// Without the roots the agent says where it cannot write and why, in `host`
// and in the plans, instead of failing at apply time.
TEST_F(DeployTest, WithoutTheRootsTheReadOnlyMountsAreNamed) {
  REQUIRE_ROOT("and mounts");
  Agent agent(ns_, {}, "", Prefix(), /*inside=*/true);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult host = agent.Netctl({"host"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  EXPECT_THAT(host.out, HasSubstr("warning read-only-mounts"));
  EXPECT_THAT(Row(host.out, "writes net.ipv4"), StartsWith("no, 0 of "));
  EXPECT_THAT(Row(host.out, "writes net.ipv4"),
              HasSubstr("(/proc/sys/net/ipv4): a read-only mount"));
  EXPECT_THAT(Row(host.out, "writes irq"), StartsWith("no (/proc/irq): a read-only mount"));
  EXPECT_THAT(Row(host.out, "writes sysfs"), StartsWith("no (/sys/class/net): a read-only mount"));
  RunResult limits = agent.Netctl({"tune", "plan", "limits", "--set", "somaxconn=8192"});
  EXPECT_THAT(limits.out + limits.err, HasSubstr("net.core.somaxconn is on a read-only mount"));
  RunResult rps = agent.Netctl({"tune", "apply", "rps", "--dev", "veth0"});
  EXPECT_NE(rps.exit_code, 0);
  EXPECT_THAT(rps.err, HasSubstr("veth0:rx-0/rps_cpus is on a read-only mount"));
  EXPECT_THAT(rps.err, HasSubstr("--sys-root"));
}

// One capability fewer than the manifest's: what needs it fails and says so.
TEST_F(DeployTest, WithoutCapBpfTheAttachNamesIt) {
  REQUIRE_ROOT("and mounts");
  Agent agent(ns_, Roots(), "", Prefix("BPF"), /*inside=*/true);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult attach = agent.Netctl({"datapath", "attach", "veth0"});
  EXPECT_NE(attach.exit_code, 0);
  EXPECT_THAT(attach.err, HasSubstr("CAP_BPF")) << attach.out;
}

}  // namespace
}  // namespace netagent::testing
