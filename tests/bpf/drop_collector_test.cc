// The kernel-drop collector against the running kernel: drops of known
// reasons made in a network namespace this test creates, counted per
// (reason, device, protocol) and compared with what was sent and with the
// iptables rule's own counter; drops in another namespace not counted; flow
// samples naming the flows; the sampling events adding up.
#include "datapath/drop_collector.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tests/common/test_support.h"

namespace netagent::datapath {
namespace {

using netagent::testing::Eventually;

int Sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

std::string Out(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
    pclose(f);
  }
  return out;
}

class DropCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT("and bpf");
    const kernel::Capability cap = ProbeDropReasons();
    if (!cap.available) GTEST_SKIP() << cap.reason;
    const std::string id = std::to_string(getpid());
    a_ = "na-drops-a-" + id;
    b_ = "na-drops-b-" + id;
    ASSERT_EQ(Sh("ip netns add " + a_), 0);
    ASSERT_EQ(Sh("ip netns add " + b_), 0);
    ASSERT_EQ(Sh("ip -n " + a_ + " link set lo up"), 0);
    ASSERT_EQ(Sh("ip -n " + b_ + " link set lo up"), 0);
    home_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    struct stat st {};
    ASSERT_EQ(stat(("/run/netns/" + a_).c_str(), &st), 0);
    inode_a_ = static_cast<uint32_t>(st.st_ino);
    Enter(a_);
  }
  void TearDown() override {
    if (home_ >= 0) {
      setns(home_, CLONE_NEWNET);
      close(home_);
    }
    if (!a_.empty()) Sh("ip netns del " + a_);
    if (!b_.empty()) Sh("ip netns del " + b_);
  }
  // This thread's network namespace from here on.
  void Enter(const std::string& ns) {
    const int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0);
    close(fd);
  }
  // `n` TCP connects to a closed port on loopback: each SYN is freed with
  // NO_SOCKET (and answered by a RST). Returns how many were refused.
  int ConnectClosed(int n, uint16_t port) {
    int refused = 0;
    for (int i = 0; i < n; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno == ECONNREFUSED)
        ++refused;
      close(fd);
    }
    return refused;
  }
  void SendUdp(int n, uint16_t port) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; ++i) {
      sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    }
    close(fd);
  }
  // `n` datagrams to loopback of IP protocol `proto`, IPv4 or IPv6, headers
  // built here (IPPROTO_RAW): with nothing handling the protocol, each is
  // freed as IP_NOPROTO with `proto` in its key. Returns how many went out.
  static int SendProtocol(bool v6, int proto, int n) {
    const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) return 0;
    uint8_t pkt[48] = {};
    size_t len;
    sockaddr_storage to{};
    if (v6) {
      len = 48;  // 40 of header, 8 of payload
      pkt[0] = 0x60;
      pkt[5] = 8;  // payload length
      pkt[6] = static_cast<uint8_t>(proto);
      pkt[7] = 64;
      pkt[23] = 1;  // ::1
      pkt[39] = 1;  // ::1
      auto* a = reinterpret_cast<sockaddr_in6*>(&to);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
    } else {
      len = 28;
      const uint8_t h[10] = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, static_cast<uint8_t>(proto)};
      std::memcpy(pkt, h, sizeof(h));
      const uint32_t lo = htonl(INADDR_LOOPBACK);
      std::memcpy(pkt + 12, &lo, 4);
      std::memcpy(pkt + 16, &lo, 4);
      auto* a = reinterpret_cast<sockaddr_in*>(&to);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = lo;
    }
    int sent = 0;
    for (int i = 0; i < n; ++i) {
      if (sendto(fd, pkt, len, 0, reinterpret_cast<sockaddr*>(&to),
                 v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)) == static_cast<ssize_t>(len))
        ++sent;
    }
    close(fd);
    return sent;
  }
  uint64_t Count(const KernelDropSnapshot& s, uint32_t reason, uint8_t proto) {
    uint64_t n = 0;
    for (const auto& [k, v] : s.counts) {
      if (k.reason == reason && k.ifindex == 1 && k.ethertype == 0x0800 && k.ip_protocol == proto)
        n += v;
    }
    return n;
  }

  std::string a_, b_;
  uint32_t inode_a_ = 0;
  int home_ = -1;
};

TEST_F(DropCollectorTest, SynsToAClosedPortAreNoSocketDropsOfThisNamespaceOnly) {
  DropCollectorOptions o;
  o.netns_inode = inode_a_;
  o.samples_per_second = 1000;
  auto c = DropCollector::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto no_socket = (*c)->names().Value("NO_SOCKET");
  ASSERT_TRUE(no_socket.has_value());
  EXPECT_EQ((*c)->names().Name(*no_socket), "NO_SOCKET");
  EXPECT_NE((*c)->prog_id(), 0u);

  auto before = (*c)->Snapshot();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(Count(*before, *no_socket, IPPROTO_TCP), 0u);

  constexpr int kSyns = 40;
  ASSERT_EQ(ConnectClosed(kSyns, 9), kSyns);
  // The same in namespace B: not ours, not counted.
  Enter(b_);
  ASSERT_EQ(ConnectClosed(25, 9), 25);
  Enter(a_);

  KernelDropSnapshot after;
  EXPECT_TRUE(Eventually([&] {
    auto s = (*c)->Snapshot();
    if (!s.ok()) return false;
    after = *s;
    return Count(after, *no_socket, IPPROTO_TCP) >= kSyns;
  }));
  EXPECT_EQ(Count(after, *no_socket, IPPROTO_TCP), static_cast<uint64_t>(kSyns));
  EXPECT_EQ(after.devices[1], "lo");

  // The report names the row and gives the window's delta.
  KernelDropQuery q;
  q.reasons = {*no_socket};
  const KernelDropReport r =
      BuildKernelDropReport(&*before, after, (*c)->Samples(), (*c)->names(), q);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].reason, "NO_SOCKET");
  EXPECT_EQ(r.rows[0].device, "lo");
  EXPECT_EQ(r.rows[0].protocol, "ipv4/tcp");
  EXPECT_EQ(r.rows[0].delta, static_cast<uint64_t>(kSyns));

  // Every SYN was sampled (40 is below one CPU's burst of 1000): each names
  // the flow.
  ASSERT_EQ(r.samples.size(), q.max_samples);
  for (const KernelDropSampleView& s : r.samples) {
    EXPECT_EQ(s.reason, "NO_SOCKET");
    EXPECT_EQ(s.source, "127.0.0.1");
    EXPECT_EQ(s.destination, "127.0.0.1");
    EXPECT_EQ(s.sample.destination_port, 9);
    EXPECT_TRUE(s.sample.source_port.has_value());
  }
  ASSERT_FALSE(r.top_sources.empty());
  EXPECT_EQ(r.top_sources[0].prefix, "127.0.0.0/24");
  EXPECT_EQ(r.top_sources[0].samples, static_cast<uint64_t>(kSyns));
  EXPECT_EQ(r.top_sources[0].top_reason, "NO_SOCKET");

  // Every drop counted went through the sampler: sampled, capped or lost.
  uint64_t counted = 0;
  for (const auto& [k, v] : after.counts) counted += v;
  const KernelDropEvents& e = after.events;
  EXPECT_EQ(e.sampled + e.sample_capped + e.sample_lost, counted + e.table_full);
  EXPECT_EQ(e.table_full, 0u);
}

// Kernels before 6.2 get the program that reads the IP protocol with a
// helper; both count the same (and this 6.x kernel loads the cast by default).
TEST_F(DropCollectorTest, TheHelperReadingProgramCountsTheSame) {
  for (bool compat : {false, true}) {
    SCOPED_TRACE(compat ? "compat" : "cast");
    DropCollectorOptions o;
    o.netns_inode = inode_a_;
    o.compat = compat;
    auto c = DropCollector::Start(o);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->uses_cast(), !compat);
    const uint32_t no_socket = *(*c)->names().Value("NO_SOCKET");
    ASSERT_EQ(ConnectClosed(10, 9), 10);
    SendUdp(7, 9);  // no socket either, and ipv4/udp
    auto s = (*c)->Snapshot();
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(Count(*s, no_socket, IPPROTO_TCP), 10u);
    EXPECT_EQ(Count(*s, no_socket, IPPROTO_UDP), 7u);
  }
}

// Many keys at once: one IPv4 datagram to loopback for each of 110 IP
// protocols nothing here handles, each freed as IP_NOPROTO with its own
// protocol in the key (SendProtocol). They all find a slot (with collisions, probing);
// with no slots tried they go to the overflow hash, and past its room
// they are counted as table_full, never dropped silently.
TEST_F(DropCollectorTest, ManyKeysFillTheTableThenTheHashThenAreCountedAsNoRoom) {
  auto send_protocols = [] {
    int sent = 0;
    for (int proto = 143; proto <= 252; ++proto)
      sent += SendProtocol(false, proto, 1);  // unassigned
    return sent;
  };
  auto noproto_keys = [](const KernelDropSnapshot& s, uint32_t reason) {
    std::map<uint8_t, uint64_t> out;
    for (const auto& [k, v] : s.counts)
      if (k.reason == reason && k.ip_protocol >= 143 && k.ip_protocol <= 252)
        out[k.ip_protocol] += v;
    return out;
  };

  DropCollectorOptions o;
  o.netns_inode = inode_a_;
  o.samples_per_second = 0;
  auto c = DropCollector::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const uint32_t noproto = *(*c)->names().Value("IP_NOPROTO");
  ASSERT_EQ(send_protocols(), 110);
  auto s = (*c)->Snapshot();
  ASSERT_TRUE(s.ok()) << s.status();
  const auto keys = noproto_keys(*s, noproto);
  EXPECT_EQ(keys.size(), 110u);
  for (const auto& [proto, n] : keys) EXPECT_EQ(n, 1u) << int(proto);
  EXPECT_EQ(s->events.table_full, 0u);

  o.table_probes = 0;
  o.max_keys = 16;
  c = DropCollector::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(send_protocols(), 110);
  s = (*c)->Snapshot();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_LE(s->counts.size(), 16u);
  uint64_t counted = 0;
  for (const auto& [proto, n] : noproto_keys(*s, noproto)) counted += n;
  EXPECT_GT(counted, 0u);
  // Every datagram is either in a key of the hash or counted as no room
  // (table_full may also hold other drops the kernel made meanwhile).
  EXPECT_GE(counted + s->events.table_full, 110u);
  EXPECT_GT(s->events.table_full, 0u);
}

// Holds this thread on the CPU it runs on (loopback traffic is then freed on
// that CPU too, into one per-CPU table) until destroyed.
class PinToThisCpu {
 public:
  PinToThisCpu() {
    ok_ = sched_getaffinity(0, sizeof(old_), &old_) == 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ok_ = ok_ && sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  ~PinToThisCpu() { sched_setaffinity(0, sizeof(old_), &old_); }
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

// The fd of the map called `name` that the program `prog_id` uses; -1: none.
int MapOfProgram(uint32_t prog_id, const std::string& name) {
  const int prog = bpf_prog_get_fd_by_id(prog_id);
  if (prog < 0) return -1;
  uint32_t ids[16] = {};
  bpf_prog_info info{};
  info.nr_map_ids = 16;
  info.map_ids = reinterpret_cast<uint64_t>(ids);
  uint32_t len = sizeof(info);
  const int err = bpf_obj_get_info_by_fd(prog, &info, &len);
  close(prog);
  if (err != 0) return -1;
  for (uint32_t i = 0; i < info.nr_map_ids && i < 16; ++i) {
    const int fd = bpf_map_get_fd_by_id(ids[i]);
    bpf_map_info m{};
    uint32_t mlen = sizeof(m);
    if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &m, &mlen) == 0 && name == m.name) return fd;
    if (fd >= 0) close(fd);
  }
  return -1;
}

// A key whose first slot holds another key (put there by hand on this CPU's
// table before any drop) counts in the next slot, every time, and the other
// key keeps its count; nothing goes to the overflow hash. With one slot
// tried per key it goes there instead. Both programs.
TEST_F(DropCollectorTest, AKeyWhoseFirstSlotIsTakenCountsInTheNext) {
  auto names = LoadDropReasonNames();
  ASSERT_TRUE(names.ok()) << names.status();
  const uint32_t noproto = *names->Value("IP_NOPROTO");
  const nd_key k6{noproto, 1, 0x86dd, 200, 0};
  const nd_key other{noproto, 7, 0x0800, 99, 0};  // no such device: only put there
  const nd_key k4{noproto, 1, 0x0800, 201, 0};
  const uint32_t home = nd_slot_home(&k6);
  ASSERT_NE(nd_slot_home(&k4), home);
  PinToThisCpu pin;
  ASSERT_TRUE(pin.ok());
  const int cpus = libbpf_num_possible_cpus();
  ASSERT_GT(cpus, 0);
  for (bool compat : {false, true}) {
    for (uint32_t probes : {4u, 1u}) {
      SCOPED_TRACE(std::string(compat ? "compat" : "cast") + ", probes " + std::to_string(probes));
      DropCollectorOptions o;
      o.netns_inode = inode_a_;
      o.samples_per_second = 0;
      o.compat = compat;
      o.table_probes = probes;
      auto c = DropCollector::Start(o);
      ASSERT_TRUE(c.ok()) << c.status();
      const int slots = MapOfProgram((*c)->prog_id(), "drop_slots");
      ASSERT_GE(slots, 0);
      std::vector<nd_slots> tables(cpus);
      std::memset(tables.data(), 0, tables.size() * sizeof(nd_slots));
      tables[sched_getcpu()].slot[home] = nd_slot{other, 0, 7};
      const uint32_t zero = 0;
      ASSERT_EQ(bpf_map_update_elem(slots, &zero, tables.data(), BPF_ANY), 0);
      close(slots);

      ASSERT_EQ(SendProtocol(true, 200, 5), 5);
      ASSERT_EQ(SendProtocol(false, 201, 3), 3);  // a key of its own slot
      auto s = (*c)->Snapshot();
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ((s->counts[KernelDropKey{noproto, 1, 0x86dd, 200}]), 5u);
      EXPECT_EQ((s->counts[KernelDropKey{noproto, 7, 0x0800, 99}]), 7u);
      EXPECT_EQ((s->counts[KernelDropKey{noproto, 1, 0x0800, 201}]), 3u);
      EXPECT_EQ(s->overflow_keys, probes == 1 ? 1u : 0u);
      EXPECT_EQ(s->events.table_full, 0u);
    }
  }
}

TEST_F(DropCollectorTest, NetfilterDropsEqualTheRuleCounter) {
  ASSERT_EQ(Sh("ip netns exec " + a_ + " iptables -A INPUT -p udp --dport 7 -j DROP"), 0);
  DropCollectorOptions o;
  o.netns_inode = inode_a_;
  o.samples_per_second = 5;  // a cap well below what is sent
  auto c = DropCollector::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto nf = (*c)->names().Value("netfilter_drop");  // any case
  ASSERT_TRUE(nf.has_value());

  constexpr int kDatagrams = 300;
  SendUdp(kDatagrams, 7);
  const std::string listing =
      Out("ip netns exec " + a_ + " iptables -L INPUT -v -x -n | awk '$3 == \"DROP\" {print $1}'");
  const uint64_t rule = std::strtoull(listing.c_str(), nullptr, 10);
  EXPECT_EQ(rule, static_cast<uint64_t>(kDatagrams)) << listing;

  KernelDropSnapshot s;
  EXPECT_TRUE(Eventually([&] {
    auto snap = (*c)->Snapshot();
    if (!snap.ok()) return false;
    s = *snap;
    return Count(s, *nf, IPPROTO_UDP) >= rule;
  }));
  EXPECT_EQ(Count(s, *nf, IPPROTO_UDP), rule);
  // Sampling is capped at 5 a second per CPU: the rest are counted as capped.
  const size_t cpus = static_cast<size_t>(libbpf_num_possible_cpus());
  EXPECT_LE(s.events.sampled, 5 * cpus * 2);
  EXPECT_GE(s.events.sample_capped, kDatagrams - 5 * cpus * 2);
  EXPECT_LE((*c)->Samples().size(), 5 * cpus * 2);
}

TEST_F(DropCollectorTest, ReasonsThatAreNotDropsAreNamedButNeverCounted) {
  auto names = LoadDropReasonNames();
  ASSERT_TRUE(names.ok()) << names.status();
  // This kernel (6.x) has both markers; they are no reasons.
  ASSERT_TRUE(names->not_dropped_yet().has_value());
  ASSERT_TRUE(names->consumed().has_value());
  EXPECT_FALSE(names->reasons().count(*names->consumed()));
  EXPECT_FALSE(names->Value("CONSUMED").has_value());

  DropCollectorOptions o;
  o.netns_inode = inode_a_;
  o.samples_per_second = 0;
  auto c = DropCollector::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  // Delivered datagrams are consumed, not dropped.
  const int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(5555);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  SendUdp(50, 5555);
  char buf[16];
  int got = 0;
  while (got < 50 && recv(rx, buf, sizeof(buf), MSG_DONTWAIT) > 0) ++got;
  close(rx);
  EXPECT_EQ(got, 50);
  auto s = (*c)->Snapshot();
  ASSERT_TRUE(s.ok()) << s.status();
  for (const auto& [k, v] : s->counts) {
    EXPECT_NE(k.reason, *names->consumed());
    EXPECT_NE(k.reason, *names->not_dropped_yet());
  }
  EXPECT_EQ(s->events.sampled, 0u);
  EXPECT_TRUE((*c)->Samples().empty());
}

TEST_F(DropCollectorTest, OptionsOutOfRangeAreRefusedBeforeAnythingLoads) {
  DropCollectorOptions o;
  o.samples_per_second = kMaxDropSamplesPerSecond + 1;
  EXPECT_EQ(DropCollector::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.samples_per_second = 0;
  o.max_keys = 1;
  EXPECT_EQ(DropCollector::Start(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DropCollectorTest, OnDemandStartsOnceAndAnUnavailableKernelIsToldWhy) {
  DropCollectorOptions o;
  o.netns_inode = inode_a_;
  DropCollectorOnDemand on(o, ProbeDropReasons());
  bool started = false;
  auto first = on.Get(&started);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(started);
  auto second = on.Get(&started);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(started);
  EXPECT_EQ(first->get(), second->get());

  DropCollectorOnDemand old(o, {false, "kernel 5.10: no enum skb_drop_reason", ""});
  auto refused = old.Get(&started);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.status().message(), "kernel 5.10: no enum skb_drop_reason");
  EXPECT_FALSE(started);
}

}  // namespace
}  // namespace netagent::datapath
