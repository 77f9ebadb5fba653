// The agent run the way deploy/daemonset.yaml runs it, without a cluster:
// /proc/sys and /proc/irq read-only (as a container runtime mounts them), the
// host's trees mounted writable where the manifest mounts them, the
// capability bounding set cut to exactly the manifest's list (setpriv), and
// the manifest's --proc-root. Collectors, a tune apply and rollback, a
// datapath attach + rule + detach, /metrics and the health port must all
// work; without one capability the failure names it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
      }
      for (const YAML::Node& vm : c["volumeMounts"]) {
        auto it = volumes.find(vm["name"].as<std::string>());
        if (it != volumes.end()) m.host_mounts[it->second] = vm["mountPath"].as<std::string>();
      }
    }
  }
  return m;
}

// setpriv keeping only `caps` (minus `without`) in the bounding set: root in
// a container with that capability list.
std::vector<std::string> Bounded(const std::vector<std::string>& caps,
                                 const std::string& without = "") {
  std::string set = "-all";
  for (const std::string& c : caps) {
    if (c != without) absl::StrAppend(&set, ",+", absl::AsciiStrToLower(c));
  }
  // Inheritable emptied too: a root whose inheritable set is not empty would
  // keep those capabilities across exec whatever the bounding set.
  return {"setpriv", "--inh-caps", "-all", "--bounding-set", set, "--"};
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

bool Bind(const std::string& from, const std::string& to, bool read_only) {
  std::filesystem::create_directories(to);
  if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) != 0) return false;
  if (read_only &&
      ::mount(nullptr, to.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
    const int err = errno;
    ::umount2(to.c_str(), MNT_DETACH);
    errno = err;
    return false;
  }
  return true;
}

// /proc as a container sees it, in this test's private mount namespace (the
// agent, its child, shares it): the host's /proc/sys/net and /proc/irq bound
// writable under `root` + the manifest's mount paths first, then /proc/sys
// and /proc/irq made read-only. Undone in the destructor.
class ContainerProc {
 public:
  ContainerProc(const Manifest& m, const std::string& root) {
    for (const char* host : {"/proc/sys/net", "/proc/irq"}) {
      auto it = m.host_mounts.find(host);
      if (it == m.host_mounts.end()) {
        error_ = absl::StrCat("the manifest mounts no ", host);
        return;
      }
      const std::string to = root + it->second;
      if (!Bind(host, to, false)) {
        error_ = absl::StrCat("bind ", host, " to ", to, ": ", strerror(errno));
        return;
      }
      mounted_.push_back(to);
    }
    for (const char* dir : {"/proc/sys", "/proc/irq"}) {
      if (!Bind(dir, dir, true)) {
        error_ = absl::StrCat("read-only ", dir, ": ", strerror(errno));
        return;
      }
      mounted_.push_back(dir);
    }
  }
  ~ContainerProc() {
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it)
      ::umount2(it->c_str(), MNT_DETACH);
  }
  const std::string& error() const { return error_; }

 private:
  std::vector<std::string> mounted_;
  std::string error_;
};

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifest_ = ReadManifest();
    ASSERT_FALSE(manifest_.capabilities.empty()) << "no capability list in the manifest";
    ASSERT_FALSE(manifest_.proc_root.empty()) << "the manifest passes no --proc-root";
  }
  Manifest manifest_;
  TempDir root_;
};

TEST_F(DeployTest, WithTheManifestsCapabilitiesAndMountsEverythingWorks) {
  REQUIRE_ROOT("and mounts");
  ContainerProc proc(manifest_, root_.path().string());
  ASSERT_EQ(proc.error(), "");
  // A read-only /proc/sys it is (asked, not tried: this is the host's namespace).
  EXPECT_NE(::access("/proc/sys/net/core/somaxconn", W_OK), 0);
  EXPECT_EQ(errno, EROFS);

  Netns ns;
  ASSERT_EQ(
      RunCommand(ns.Exec({"ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"}))
          .exit_code,
      0);
  ASSERT_EQ(RunCommand(ns.Exec({"ip", "link", "set", "veth0", "up"})).exit_code, 0);
  ASSERT_EQ(RunCommand(ns.Exec({"ip", "link", "set", "veth1", "up"})).exit_code, 0);
  Agent agent(ns,
              {"--proc-root", root_.path().string() + manifest_.proc_root, "--metrics-listen",
               "127.0.0.1:9471", "--health-listen", "127.0.0.1:9472"},
              "", Bounded(manifest_.capabilities));
  ASSERT_TRUE(agent.ok()) << agent.error();

  // Where it writes, and that it can.
  RunResult host = agent.Netctl({"host"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  const std::string under = root_.path().string() + manifest_.proc_root;
  EXPECT_THAT(Row(host.out, "writes net.ipv4"), StartsWith("yes, "));
  EXPECT_THAT(Row(host.out, "writes net.ipv4"), HasSubstr("(" + under + "/sys/net/ipv4)"));
  EXPECT_EQ(Row(host.out, "writes irq"), "yes (" + under + "/irq)");
  EXPECT_THAT(Row(host.out, "writes sysfs"), StartsWith("yes ("));
  EXPECT_THAT(host.out, Not(HasSubstr("read-only-mounts")));

  // Collectors.
  for (std::vector<std::string> args : {std::vector<std::string>{"sockets", "summary"},
                                        {"counters"},
                                        {"softnet"},
                                        {"nic"},
                                        {"nic", "veth0"},
                                        {"conntrack", "stats"},
                                        {"doctor"}}) {
    RunResult r = agent.Netctl(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.out << r.err;
  }

  // A tune apply through the writable tree, and its rollback.
  const std::string before = Sysctl(ns, "net.core.somaxconn");
  RunResult applied =
      agent.Netctl({"-o", "json", "tune", "apply", "limits", "--set", "somaxconn=8192"});
  ASSERT_EQ(applied.exit_code, 0) << applied.out << applied.err;
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "8192");
  const auto change = ResultOf<v1::ApplyTuningResponse>(Lines(applied.out).at(0));
  RunResult rolled = agent.Netctl({"tune", "rollback", change.change().id()});
  EXPECT_EQ(rolled.exit_code, 0) << rolled.out << rolled.err;
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), before);

  // The fast path: attach, a rule, detach.
  RunResult attach = agent.Netctl({"datapath", "attach", "veth0"});
  ASSERT_EQ(attach.exit_code, 0) << attach.out << attach.err;
  RunResult rule = agent.Netctl({"datapath", "rules", "add", "veth0", "--block", "192.0.2.0/24"});
  EXPECT_EQ(rule.exit_code, 0) << rule.out << rule.err;
  RunResult detach = agent.Netctl({"datapath", "detach", "veth0"});
  EXPECT_EQ(detach.exit_code, 0) << detach.out << detach.err;
  EXPECT_THAT(RunCommand(ns.Exec({"ip", "link", "show", "veth0"})).out, Not(HasSubstr("xdp")));

  // /metrics and the health port.
  RunResult scrape = RunCommand(ns.Exec({"python3", "-c",
                                         "import urllib.request;print(urllib.request.urlopen("
                                         "'http://127.0.0.1:9471/metrics',timeout=10).read()"
                                         ".decode())"}),
                                std::chrono::seconds(30));
  EXPECT_EQ(scrape.exit_code, 0) << scrape.err;
  EXPECT_THAT(scrape.out, HasSubstr("netagent_build_info{"));
  RunResult health =
      RunCommand(ns.Exec({NetctlPath(), "-t", "127.0.0.1:9472", "--timeout", "5s", "health"}));
  EXPECT_EQ(health.exit_code, 0) << health.out << health.err;
}

// Without --proc-root the agent says where it cannot write and why, in
// `host` and in the plan, instead of failing at apply time.
TEST_F(DeployTest, WithoutProcRootTheReadOnlyMountIsNamed) {
  REQUIRE_ROOT("and mounts");
  ContainerProc proc(manifest_, root_.path().string());
  ASSERT_EQ(proc.error(), "");
  Netns ns;
  Agent agent(ns, {}, "", Bounded(manifest_.capabilities));
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult host = agent.Netctl({"host"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  EXPECT_THAT(host.out, HasSubstr("warning read-only-mounts"));
  EXPECT_THAT(host.out, HasSubstr("--proc-root"));
  EXPECT_THAT(Row(host.out, "writes net.ipv4"), StartsWith("no, 0 of "));
  EXPECT_THAT(Row(host.out, "writes net.ipv4"),
              HasSubstr("(/proc/sys/net/ipv4): a read-only mount"));
  EXPECT_THAT(Row(host.out, "writes irq"), StartsWith("no (/proc/irq): a read-only mount"));
  RunResult plan = agent.Netctl({"tune", "plan", "limits", "--set", "somaxconn=8192"});
  EXPECT_THAT(plan.out + plan.err, HasSubstr("net.core.somaxconn is on a read-only mount"));
}

// One capability fewer than the manifest's: what needs it fails and says so.
// Serving another namespace, as these tests' agents do (--netns), takes
// setns: CAP_SYS_ADMIN. (Dropping CAP_BPF or CAP_NET_ADMIN alone changes
// nothing while CAP_SYS_ADMIN stays: the kernel lets it stand in for both in
// bpf() and for XDP links. A DaemonSet's agent serves its own namespace and
// calls no setns.)
TEST_F(DeployTest, WithoutCapSysAdminTheStartNamesIt) {
  REQUIRE_ROOT("and mounts");
  ContainerProc proc(manifest_, root_.path().string());
  ASSERT_EQ(proc.error(), "");
  Netns ns;
  Agent agent(ns, {"--proc-root", root_.path().string() + manifest_.proc_root}, "",
              Bounded(manifest_.capabilities, "SYS_ADMIN"));
  ASSERT_FALSE(agent.ok());
  EXPECT_THAT(agent.error(), HasSubstr("netagentd exited"));
  EXPECT_THAT(agent.error(), HasSubstr("CAP_SYS_ADMIN"));
}

}  // namespace
}  // namespace netagent::testing
