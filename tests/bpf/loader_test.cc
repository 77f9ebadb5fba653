// The loader against the real kernel: the XDP program or the TC guard attached
// to a veth in a namespace this test creates, traffic from the peer namespace
// blocked by a rule written through the pinned map, the pins picked up again
// as a new agent would, Detach removing the attachment, our TC filters (as
// `tc filter show` sees them) and every pin; and the MSS clamp seen by the
// TCP stack that receives the SYN.
#include "datapath/loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernel/probe.h"
#include "netagent_tc.skel.h"
#include "tests/bpf/xdp_harness.h"

namespace netagent::datapath {
namespace {

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// A command's standard output.
std::string Out(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
    pclose(f);
  }
  return out;
}

uint64_t SumPerCpu(int map_fd, uint32_t key, bool counter) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<na_counter> c(ncpu);
  std::vector<uint64_t> v(ncpu);
  if (bpf_map_lookup_elem(map_fd, &key, counter ? static_cast<void*>(c.data()) : v.data()) != 0)
    return ~0ull;
  uint64_t s = 0;
  for (int i = 0; i < ncpu; i++) s += counter ? c[i].packets : v[i];
  return s;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = bpftest::BpfUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    const std::string id = std::to_string(getpid());
    a_ = "na-ld-a-" + id;
    b_ = "na-ld-b-" + id;
    pin_root_ = "/sys/fs/bpf/netagent-test-" + id;
    // The test main left no bpffs here: mounted the way the agent does it.
    const kernel::Capability bpffs = kernel::EnsureBpffs();
    ASSERT_TRUE(bpffs.available) << bpffs.reason;
    ASSERT_EQ(Sh("ip netns add " + a_), 0);
    ASSERT_EQ(Sh("ip netns add " + b_), 0);
    ASSERT_EQ(Sh("ip -n " + a_ + " link add veth0 type veth peer name veth1 netns " + b_), 0);
    ASSERT_EQ(Sh("ip -n " + a_ + " addr add 10.77.1.1/24 dev veth0"), 0);
    ASSERT_EQ(Sh("ip -n " + b_ + " addr add 10.77.1.2/24 dev veth1"), 0);
    ASSERT_EQ(Sh("ip -n " + a_ + " link set veth0 up"), 0);
    ASSERT_EQ(Sh("ip -n " + b_ + " link set veth1 up"), 0);
    // This thread serves namespace A from here on, as the agent does.
    home_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int ns = open(("/run/netns/" + a_).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(ns, 0);
    ASSERT_EQ(setns(ns, CLONE_NEWNET), 0);
    close(ns);
  }
  void TearDown() override {
    if (home_ >= 0) {
      setns(home_, CLONE_NEWNET);
      close(home_);
    }
    Sh("rm -rf " + pin_root_);
    if (!a_.empty()) Sh("ip netns del " + a_);
    if (!b_.empty()) Sh("ip netns del " + b_);
  }
  // A UDP datagram from B to a socket of this thread (in A): does it arrive?
  bool PingFromB() {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(47001);
    inet_pton(AF_INET, "10.77.1.1", &addr.sin_addr);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool got = false;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      Sh("ip netns exec " + b_ + " bash -c 'echo hello > /dev/udp/10.77.1.1/47001'");
      char buf[16];
      got = recv(fd, buf, sizeof(buf), 0) > 0;
    }
    close(fd);
    return got;
  }
  // A TCP connection from B to a listener of this thread (in A): the MSS the
  // accepted socket uses (TCP_MAXSEG), 0 when nothing connected.
  int AcceptedMssFromB() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(47002);
    inet_pton(AF_INET, "10.77.1.1", &addr.sin_addr);
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int mss = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd, 1) == 0) {
      Sh("ip netns exec " + b_ +
         " timeout 5 bash -c 'exec 3<>/dev/tcp/10.77.1.1/47002; sleep 1' &");
      const int c = accept(fd, nullptr, nullptr);
      if (c >= 0) {
        socklen_t len = sizeof(mss);
        getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &mss, &len);
        close(c);
      }
    }
    close(fd);
    return mss;
  }
  std::string TcFilters(const std::string& dev, const char* dir) {
    return Out("ip netns exec " + a_ + " tc filter show dev " + dev + " " + dir);
  }
  uint32_t XdpProgOn(const std::string& dev) {
    uint32_t id = 0;
    bpf_xdp_query_id(static_cast<int>(if_nametoindex(dev.c_str())), 0, &id);
    return id;
  }

  std::string a_, b_, pin_root_;
  int home_ = -1;
};

TEST_F(LoaderTest, AttachBlockPickUpDetach) {
  ASSERT_TRUE(PingFromB());
  AttachSpec spec;
  spec.device = "veth0";
  auto xdp = AttachXdp(spec, pin_root_);
  ASSERT_TRUE(xdp.ok()) << xdp.status();
  EXPECT_EQ((*xdp)->info().mode, "native");  // veth has native XDP
  EXPECT_NE((*xdp)->info().prog_id, 0u);
  EXPECT_EQ(XdpProgOn("veth0"), (*xdp)->info().prog_id);
  EXPECT_TRUE(PingFromB()) << "no rule yet";

  // Block B's address through the pinned map.
  uint32_t key;
  inet_pton(AF_INET, "10.77.1.2", &key);
  na_rule rule{7, NA_ACT_BLOCK};
  ASSERT_EQ(bpf_map_update_elem((*xdp)->map_fd("exact4"), &key, &rule, BPF_ANY), 0);
  EXPECT_FALSE(PingFromB());

  // The agent goes away; the attachment and the rule stay.
  const uint32_t prog = (*xdp)->info().prog_id;
  xdp->reset();
  EXPECT_EQ(XdpProgOn("veth0"), prog);
  EXPECT_FALSE(PingFromB());

  // A new agent picks the pins up: same program, the rule's hits counted.
  auto again = OpenPinnedXdp("veth0", pin_root_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->info().prog_id, prog);
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<na_counter> hits(ncpu);
  ASSERT_EQ(bpf_map_lookup_elem((*again)->map_fd("rule_hits"), &rule.rule_id, hits.data()), 0);
  uint64_t packets = 0;
  for (const auto& h : hits) packets += h.packets;
  EXPECT_GE(packets, 2u);  // one ping before, one after the "restart"

  // A second attach is refused while ours is there.
  auto twice = AttachXdp(spec, pin_root_);
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(DetachXdp("veth0", pin_root_).ok());
  again->reset();
  EXPECT_EQ(XdpProgOn("veth0"), 0u);
  struct stat st;
  EXPECT_NE(stat((pin_root_ + "/veth0").c_str(), &st), 0);
  EXPECT_TRUE(PingFromB());
  EXPECT_EQ(DetachXdp("veth0", pin_root_).code(), absl::StatusCode::kNotFound);
}

// A forced attach that fails after the foreign program made room for it puts
// that program back: the device is never left with neither.
TEST_F(LoaderTest, AForcedAttachThatFailsPutsTheForeignProgramBack) {
  // veth refuses native XDP for a program without multi-buffer support when
  // the peer's MTU is above a page; generic mode does not care.
  ASSERT_EQ(Sh("ip -n " + b_ + " link set veth1 mtu 9000"), 0);
  ASSERT_EQ(Sh("ip -n " + a_ + " link set veth0 mtu 9000"), 0);
  bpftest::Xdp other;
  ASSERT_TRUE(other.ok()) << other.error();
  const int ifindex = static_cast<int>(if_nametoindex("veth0"));
  ASSERT_EQ(bpf_xdp_attach(ifindex, other.prog_fd(), XDP_FLAGS_SKB_MODE, nullptr), 0);
  const uint32_t foreign = XdpProgOn("veth0");
  ASSERT_NE(foreign, 0u);
  AttachSpec spec;
  spec.device = "veth0";
  spec.mode = AttachMode::kNative;
  spec.force = true;
  auto failed = AttachXdp(spec, pin_root_);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(std::string(failed.status().message()).find("put back"), std::string::npos)
      << failed.status();
  EXPECT_EQ(XdpProgOn("veth0"), foreign);
  struct stat st;
  EXPECT_NE(stat((pin_root_ + "/veth0").c_str(), &st), 0) << "pins left behind";
  bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, nullptr);
}

TEST_F(LoaderTest, AForeignProgramIsNotReplacedUnlessForced) {
  // Someone else's XDP program (xdp-tools would do the same through netlink).
  bpftest::Xdp other;
  ASSERT_TRUE(other.ok()) << other.error();
  const int ifindex = static_cast<int>(if_nametoindex("veth0"));
  ASSERT_EQ(bpf_xdp_attach(ifindex, other.prog_fd(), XDP_FLAGS_SKB_MODE, nullptr), 0);
  AttachSpec spec;
  spec.device = "veth0";
  auto refused = AttachXdp(spec, pin_root_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(refused.status().message()).find("not replaced unless forced"),
            std::string::npos);
  spec.force = true;
  spec.mode = AttachMode::kGeneric;
  auto forced = AttachXdp(spec, pin_root_);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ((*forced)->info().mode, "generic");
  ASSERT_TRUE(DetachXdp("veth0", pin_root_).ok());
}

TEST_F(LoaderTest, TcModeBlocksPicksUpAndDetaches) {
  ASSERT_TRUE(PingFromB());
  ASSERT_EQ(TcFilters("veth0", "ingress"), "");
  AttachSpec spec;
  spec.device = "veth0";
  spec.mode = AttachMode::kTc;
  auto tc = AttachXdp(spec, pin_root_);
  ASSERT_TRUE(tc.ok()) << tc.status();
  EXPECT_EQ((*tc)->info().mode, "tc");
  const uint32_t prog = (*tc)->info().prog_id;
  EXPECT_NE(prog, 0u);
  EXPECT_EQ((*tc)->info().tc_prog_id, 0u) << "no accounting asked for";
  EXPECT_EQ(XdpProgOn("veth0"), 0u) << "kTc attaches no XDP program";
  const std::string filters = TcFilters("veth0", "ingress");
  EXPECT_NE(filters.find("handle 0x4e41"), std::string::npos) << filters;
  EXPECT_NE(filters.find(absl::StrCat(" id ", prog, " ")), std::string::npos) << filters;
  EXPECT_TRUE(PingFromB()) << "no rule yet";

  // The rule is written exactly as for the XDP program.
  uint32_t key;
  inet_pton(AF_INET, "10.77.1.2", &key);
  na_rule rule{9, NA_ACT_BLOCK};
  ASSERT_EQ(bpf_map_update_elem((*tc)->map_fd("exact4"), &key, &rule, BPF_ANY), 0);
  EXPECT_FALSE(PingFromB());

  // A restart: the filter stays, a new agent finds it.
  tc->reset();
  EXPECT_FALSE(PingFromB());
  auto again = OpenPinnedXdp("veth0", pin_root_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->info().mode, "tc");
  EXPECT_EQ((*again)->info().prog_id, prog);
  EXPECT_GE(SumPerCpu((*again)->map_fd("rule_hits"), rule.rule_id, true), 2u);
  EXPECT_GE(SumPerCpu((*again)->map_fd("counters"), NA_CNT_IDX(NA_R_BLOCK, 1), true), 2u);
  EXPECT_LT((*again)->map_fd("tc_guard"), 0) << "programs are not maps";
  EXPECT_EQ(AttachXdp(spec, pin_root_).status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(DetachXdp("veth0", pin_root_).ok());
  again->reset();
  EXPECT_EQ(TcFilters("veth0", "ingress"), "");
  struct stat st;
  EXPECT_NE(stat((pin_root_ + "/veth0").c_str(), &st), 0);
  EXPECT_TRUE(PingFromB());
  EXPECT_EQ(OpenPinnedXdp("veth0", pin_root_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LoaderTest, ATakenTcSlotIsNotReplacedUnlessForced) {
  // Someone else's filter in the guard's slot.
  netagent_tc* other = netagent_tc__open_and_load();
  ASSERT_NE(other, nullptr);
  const int ifindex = static_cast<int>(if_nametoindex("veth0"));
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  ASSERT_EQ(bpf_tc_hook_create(&hook), 0);
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = bpf_program__fd(other->progs.netagent_tc_ingress),
              .handle = kTcHandle, .priority = kTcGuardPriority);
  ASSERT_EQ(bpf_tc_attach(&hook, &o), 0);
  const uint32_t other_id = o.prog_id;

  AttachSpec spec;
  spec.device = "veth0";
  spec.mode = AttachMode::kTc;
  auto refused = AttachXdp(spec, pin_root_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(refused.status().message()).find("not replaced unless forced"),
            std::string::npos)
      << refused.status();
  struct stat st;
  EXPECT_NE(stat((pin_root_ + "/veth0").c_str(), &st), 0) << "nothing pinned when refused";
  EXPECT_NE(TcFilters("veth0", "ingress").find(absl::StrCat(" id ", other_id, " ")),
            std::string::npos);

  spec.force = true;
  auto forced = AttachXdp(spec, pin_root_);
  ASSERT_TRUE(forced.ok()) << forced.status();
  LIBBPF_OPTS(bpf_tc_opts, q, .handle = kTcHandle, .priority = kTcGuardPriority);
  ASSERT_EQ(bpf_tc_query(&hook, &q), 0);
  EXPECT_EQ(q.prog_id, (*forced)->info().prog_id);
  ASSERT_TRUE(DetachXdp("veth0", pin_root_).ok());
  EXPECT_EQ(TcFilters("veth0", "ingress"), "");
  netagent_tc__destroy(other);
}

TEST_F(LoaderTest, AccountingAndMssClampBesideXdp) {
  const int before = AcceptedMssFromB();
  ASSERT_GT(before, 1000) << "the path's own MSS";
  AttachSpec spec;
  spec.device = "veth0";
  spec.tc.accounting = true;
  spec.tc.clamp_mss4 = 1000;
  auto xdp = AttachXdp(spec, pin_root_);
  ASSERT_TRUE(xdp.ok()) << xdp.status();
  EXPECT_EQ((*xdp)->info().mode, "native");
  EXPECT_NE((*xdp)->info().tc_prog_id, 0u);
  EXPECT_NE(TcFilters("veth0", "ingress").find(absl::StrCat(" id ", (*xdp)->info().tc_prog_id)),
            std::string::npos);
  EXPECT_NE(TcFilters("veth0", "egress").find("handle 0x4e41"), std::string::npos);

  // B's SYN (MSS 1460) is clamped on veth0's ingress before A's stack reads it.
  const int mss = AcceptedMssFromB();
  EXPECT_GT(mss, 0) << "no connection";
  EXPECT_LE(mss, 1000);
  xdp->reset();

  auto again = OpenPinnedXdp("veth0", pin_root_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE((*again)->info().tc_prog_id, 0u);
  // The SYN in, the SYN-ACK out.
  EXPECT_GE(SumPerCpu((*again)->map_fd("tc_events"), NA_TC_EV_MSS_CLAMPED, false), 2u);
  EXPECT_GE(SumPerCpu((*again)->map_fd("tc_counters"),
                      NA_TC_CNT_IDX(NA_TC_INGRESS, NA_TC_PROTO_TCP, 0), true),
            1u);
  ASSERT_TRUE(DetachXdp("veth0", pin_root_).ok());
  again->reset();
  EXPECT_EQ(TcFilters("veth0", "ingress"), "");
  EXPECT_EQ(TcFilters("veth0", "egress"), "");
  EXPECT_EQ(XdpProgOn("veth0"), 0u);
  EXPECT_GT(AcceptedMssFromB(), 1000) << "the clamp went with the detach";
}

TEST_F(LoaderTest, UnknownDeviceAndBadNames) {
  AttachSpec spec;
  spec.device = "nosuch0";
  EXPECT_EQ(AttachXdp(spec, pin_root_).status().code(), absl::StatusCode::kNotFound);
  spec.device = "../x";
  EXPECT_EQ(AttachXdp(spec, pin_root_).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DetachXdp("..", pin_root_).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenPinnedXdp("veth0", pin_root_).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace netagent::datapath
