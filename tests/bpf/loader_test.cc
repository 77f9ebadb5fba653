// The loader against the real kernel: the XDP program attached to a veth in a
// namespace this test creates, traffic from the peer namespace blocked by a
// rule written through the pinned map, the pins picked up again as a new agent
// would, and Detach removing the attachment and every pin.
#include "datapath/loader.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/bpf/xdp_harness.h"

namespace netagent::datapath {
namespace {

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = bpftest::BpfUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    const std::string id = std::to_string(getpid());
    a_ = "na-ld-a-" + id;
    b_ = "na-ld-b-" + id;
    pin_root_ = "/sys/fs/bpf/netagent-test-" + id;
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
