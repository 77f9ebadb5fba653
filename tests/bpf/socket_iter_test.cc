// The BPF socket iterator against sock_diag in the same namespace: a farm of
// sockets in seven states over IPv4, IPv6 and a dual-stack listener, found by
// both walks with the same endpoints, state, queues and cookie and the same
// tcp_info figures (times within what passes between the two walks); the
// summaries built from either walk are the same; the host namespace's sockets
// are not in the walk.
#include "collectors/socket_iter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "collectors/socket_summary.h"
#include "kernel/fd.h"
#include "tests/common/test_support.h"

namespace netagent::collectors {
namespace {

using netagent::testing::Eventually;

int Sh(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string ReadAll(const std::string& path) {
  std::string out;
  if (FILE* f = fopen(path.c_str(), "r")) {
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
    fclose(f);
  }
  return out;
}

using Key =
    std::tuple<uint8_t, int, std::array<uint8_t, 16>, uint16_t, std::array<uint8_t, 16>, uint16_t>;
Key KeyOf(const SocketRecord& s) {
  return {s.state, s.local.family, s.local.bytes, s.local_port, s.peer.bytes, s.peer_port};
}
std::string Name(const SocketRecord& s) {
  return absl::StrCat("state ", s.state, " ", FormatEndpoint(s.local, s.local_port), " -> ",
                      FormatEndpoint(s.peer, s.peer_port));
}

uint16_t LocalPort(int fd) {
  sockaddr_in self{};
  socklen_t len = sizeof(self);
  getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len);
  return ntohs(self.sin_port);
}

// A listener on 127.0.0.1:`port` (0: any) and a connection to it, accepted.
void Connection(uint16_t port, kernel::UniqueFd& listener, kernel::UniqueFd& client,
                kernel::UniqueFd& server) {
  listener.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(listener.get(), 4), 0);
  a.sin_port = htons(LocalPort(listener.get()));
  client.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  server.reset(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server.valid());
}

tcp_info TcpInfo(int fd) {
  tcp_info t{};
  socklen_t len = sizeof(t);
  getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t, &len);
  return t;
}

class SocketIterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT("and bpf");
    auto loaded = TcpSocketIterator::Load();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    iter_ = std::move(*loaded);
    // A connection of the host namespace the walk must not see.
    Connection(0, host_listener_, host_client_, host_server_);
    host_port_ = LocalPort(host_listener_.get());

    ns_ = "na-sockiter-" + std::to_string(getpid());
    out_ = "/tmp/" + ns_ + ".out";
    ASSERT_EQ(Sh("ip netns add " + ns_), 0);
    ASSERT_EQ(Sh("ip -n " + ns_ + " link set lo up"), 0);
    // The last ACK of handshakes to 5002 is dropped: its listener keeps
    // SYN_RECV requests.
    ASSERT_EQ(Sh("ip netns exec " + ns_ +
                 " iptables -I INPUT -p tcp --dport 5002 --tcp-flags SYN,ACK,FIN,RST ACK -j DROP"),
              0);
    ASSERT_EQ(Sh("ip netns exec " + ns_ +
                 " " SOCKFARM_PATH
                 " --established 300 --time-wait 40 --close-wait 20 --unaccepted 10 --backlog 16"
                 " --syn-recv 20 --udp 5 --dual-stack 10 --dual-stack-port 5003 --ipv6-pairs 8 > " +
                 out_ + " 2>&1 & echo $! > " + out_ + ".pid"),
              0);
    ASSERT_TRUE(Eventually([&] { return ReadAll(out_).find("ready") != std::string::npos; },
                           std::chrono::seconds(30)))
        << ReadAll(out_);
    home_.reset(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    const int fd = open(("/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(setns(fd, CLONE_NEWNET), 0);
    close(fd);

    // A connection whose receiver does not read, filled until the sender's
    // buffer is full: queues, bytes sent and acknowledged, time limited by
    // the receive window (a third of a second of it before the walks).
    Connection(5999, stuffed_[0], stuffed_[1], stuffed_[2]);
    stuffed_port_ = LocalPort(stuffed_[1].get());
    fcntl(stuffed_[1].get(), F_SETFL, O_NONBLOCK);
    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 200; ++i) {
      if (send(stuffed_[1].get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) {
        if (errno != EAGAIN) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    // The same, then read to the end: the window-limited time is in the
    // socket's totals now (the figures above have it in the running timer).
    Connection(5997, drained_[0], drained_[1], drained_[2]);
    drained_port_ = LocalPort(drained_[1].get());
    fcntl(drained_[1].get(), F_SETFL, O_NONBLOCK);
    fcntl(drained_[2].get(), F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 200; ++i) {
      if (send(drained_[1].get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) {
        if (errno != EAGAIN) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    ASSERT_TRUE(Eventually(
        [&] {
          char buf[65536];
          while (recv(drained_[2].get(), buf, sizeof(buf), 0) > 0) {
          }
          int queued = -1;  // bytes not yet acknowledged, sent or not
          ioctl(drained_[1].get(), SIOCOUTQ, &queued);
          return queued == 0;
        },
        std::chrono::seconds(10)));
    // A connection whose data is dropped on the way: RTOs in a row with data
    // outstanding (the summary's stalled flows).
    Connection(5998, stalled_[0], stalled_[1], stalled_[2]);
    stalled_port_ = LocalPort(stalled_[1].get());
    ASSERT_EQ(Sh("ip netns exec " + ns_ + " iptables -I INPUT -p tcp --dport 5998 -j DROP"), 0);
    ASSERT_EQ(send(stalled_[1].get(), chunk.data(), 1000, MSG_NOSIGNAL), 1000);
    ASSERT_TRUE(Eventually([&] { return TcpInfo(stalled_[1].get()).tcpi_retransmits >= 2; },
                           std::chrono::seconds(10)));
  }
  void TearDown() override {
    if (home_.valid()) setns(home_.get(), CLONE_NEWNET);
    const std::string pid = ReadAll(out_ + ".pid");
    if (!pid.empty()) Sh("kill " + pid.substr(0, pid.find('\n')) + " 2>/dev/null");
    if (!ns_.empty()) Sh("ip netns del " + ns_);
    std::remove(out_.c_str());
    std::remove((out_ + ".pid").c_str());
  }

  std::map<Key, SocketRecord> ByDiag(const SocketQuery& q) {
    std::map<Key, SocketRecord> out;
    SocketQuery d = q;
    d.tcp_info = d.memory = true;
    auto r = DumpSockets(d, [&](const SocketRecord& s) {
      out[KeyOf(s)] = s;
      return absl::OkStatus();
    });
    EXPECT_TRUE(r.ok()) << r.status();
    return out;
  }
  std::map<Key, SocketRecord> ByIter(const SocketQuery& q) {
    std::map<Key, SocketRecord> out;
    auto r = iter_->Walk(
        q,
        [&](const SocketRecord& s) {
          out[KeyOf(s)] = s;
          return absl::OkStatus();
        },
        [] { return absl::OkStatus(); });
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_EQ(*r, out.size());
    }
    return out;
  }

  std::unique_ptr<TcpSocketIterator> iter_;
  kernel::UniqueFd host_listener_, host_client_, host_server_, home_;
  kernel::UniqueFd stuffed_[3], drained_[3], stalled_[3];  // listener, client, server
  uint16_t host_port_ = 0, stuffed_port_ = 0, drained_port_ = 0, stalled_port_ = 0;
  std::string ns_, out_;
};

// What a summary says of states, listeners and TIME_WAIT, compared.
void ExpectSameCounts(const SocketSummary& i, const SocketSummary& d) {
  EXPECT_EQ(i.states, d.states);
  ASSERT_EQ(i.listeners.size(), d.listeners.size());
  for (size_t n = 0; n < d.listeners.size(); ++n) {
    EXPECT_EQ(i.listeners[n].port, d.listeners[n].port);
    EXPECT_EQ(i.listeners[n].address, d.listeners[n].address);
    EXPECT_EQ(i.listeners[n].accept_queue, d.listeners[n].accept_queue);
    EXPECT_EQ(i.listeners[n].backlog, d.listeners[n].backlog);
    EXPECT_EQ(i.listeners[n].syn_recv, d.listeners[n].syn_recv);
  }
  EXPECT_EQ(i.time_wait.count, d.time_wait.count);
  EXPECT_EQ(i.time_wait.busiest_peer, d.time_wait.busiest_peer);
}

TEST_F(SocketIterTest, EverySocketAsSockDiagSaysIt) {
  const SocketQuery q;
  const auto t0 = std::chrono::steady_clock::now();
  const auto diag = ByDiag(q);
  const auto iter = ByIter(q);
  // What may pass between the two walks, and two jiffies (HZ 100) of rounding.
  const uint64_t between_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count() +
      20'000;
  ASSERT_GT(diag.size(), 700u);
  std::set<uint8_t> states;
  int with_rtt = 0, with_sndbuf = 0, stuffed_seen = 0, drained_seen = 0, stalled_seen = 0;
  for (const auto& [k, d] : diag) {
    states.insert(d.state);
    auto it = iter.find(k);
    if (it == iter.end()) {
      ADD_FAILURE() << "sock_diag only: " << Name(d);
      continue;
    }
    const SocketRecord& i = it->second;
    SCOPED_TRACE(Name(d));
    EXPECT_EQ(i.rqueue, d.rqueue);
    EXPECT_EQ(i.wqueue, d.wqueue);
    // sock_diag gives tcp_info for full sockets (listeners too), the
    // iterator for full sockets that are not listeners; the cookie of a
    // request or a TIME_WAIT only sock_diag gives.
    EXPECT_EQ(i.has_tcp_info(), d.has_tcp_info() && d.state != 10);
    if (i.has_tcp_info() || i.state == 10) {
      EXPECT_EQ(i.cookie, d.cookie);
    }
    if (!i.has_tcp_info()) continue;
    const KernelTcpInfo &a = i.tcp_info, &b = d.tcp_info;
    with_rtt += b.rtt > 0;
    with_sndbuf += d.memory.values[SK_MEMINFO_SNDBUF] > 0;
    if (d.local_port == stuffed_port_) {
      // The figures compared below are not zero here, and larger than what
      // passes between the walks.
      ++stuffed_seen;
      EXPECT_GT(d.wqueue, 0u);
      EXPECT_GT(b.bytes_acked, 1u);
      EXPECT_GT(b.bytes_sent, 0u);
      EXPECT_GT(b.busy_time, 2 * between_us);
      EXPECT_GT(b.rwnd_limited, 2 * between_us);
      EXPECT_GT(b.delivery_rate, 0u);
    }
    if (d.local_port == drained_port_) {
      ++drained_seen;
      EXPECT_GT(b.rwnd_limited, 2 * between_us);
      EXPECT_GE(b.busy_time, b.rwnd_limited);  // busy time counts the limited times
    }
    if (d.local_port == stalled_port_) {
      ++stalled_seen;
      EXPECT_GE(b.retransmits, 2);
      EXPECT_GE(b.total_retrans, 2u);
      EXPECT_GT(b.unacked, 0u);
    }
    // An RTO may fire between the walks.
    EXPECT_GE(a.retransmits, b.retransmits);
    EXPECT_LE(a.retransmits, b.retransmits + 1);
    EXPECT_GE(a.total_retrans, b.total_retrans);
    EXPECT_LE(a.total_retrans, b.total_retrans + 1);
    EXPECT_EQ(a.rtt, b.rtt);
    EXPECT_EQ(a.snd_mss, b.snd_mss);
    EXPECT_EQ(a.pmtu, b.pmtu);
    EXPECT_EQ(a.unacked, b.unacked);
    EXPECT_EQ(a.bytes_acked, b.bytes_acked);
    EXPECT_EQ(a.bytes_sent, b.bytes_sent);
    EXPECT_EQ(a.delivery_rate, b.delivery_rate);
    // Walked after sock_diag: the running chrono and the time since the
    // last ACK only grow, by what passed between the two walks.
    EXPECT_GE(a.busy_time, b.busy_time);
    EXPECT_LE(a.busy_time, b.busy_time + between_us);
    EXPECT_GE(a.rwnd_limited, b.rwnd_limited);
    EXPECT_LE(a.rwnd_limited, b.rwnd_limited + between_us);
    EXPECT_GE(a.sndbuf_limited, b.sndbuf_limited);
    EXPECT_LE(a.sndbuf_limited, b.sndbuf_limited + between_us);
    EXPECT_GE(a.last_ack_recv, b.last_ack_recv);
    EXPECT_LE(a.last_ack_recv, b.last_ack_recv + between_us / 1000);
    EXPECT_EQ(i.memory.values[SK_MEMINFO_SNDBUF], d.memory.values[SK_MEMINFO_SNDBUF]);
  }
  for (const auto& [k, i] : iter) {
    if (!diag.count(k)) ADD_FAILURE() << "iterator only: " << Name(i);
    EXPECT_NE(i.local_port, host_port_) << "a socket of the host namespace";
    EXPECT_NE(i.peer_port, host_port_) << "a socket of the host namespace";
  }
  EXPECT_EQ(stuffed_seen, 1);
  EXPECT_EQ(stalled_seen, 1);
  EXPECT_EQ(drained_seen, 1);
  EXPECT_GT(with_rtt, 500);
  EXPECT_GT(with_sndbuf, 500);
  // The farm's states are all there: the comparison covered each.
  for (uint8_t s : {1, 3, 6, 8, 10})
    EXPECT_TRUE(states.count(s)) << "no socket in state " << int(s);
}

// A summary without tcp_info (the metrics' walk) runs the lighter program:
// every socket's state and addresses and a listener's queues, nothing else
// read (no tcp_info, no cookie, no queues of a connection), and the same
// summary as sock_diag's.
TEST_F(SocketIterTest, ASummaryWithoutTcpInfoReadsOnlyWhatItNeeds) {
  const SocketQuery q;
  const auto diag = ByDiag(q);
  std::map<Key, SocketRecord> iter;
  auto walked = iter_->Walk(
      q,
      [&](const SocketRecord& s) {
        iter[KeyOf(s)] = s;
        return absl::OkStatus();
      },
      [] { return absl::OkStatus(); }, IterDetail::kSummary);
  ASSERT_TRUE(walked.ok()) << walked.status();
  ASSERT_GT(diag.size(), 700u);
  EXPECT_EQ(iter.size(), diag.size());
  int listeners = 0, with_queue = 0;
  for (const auto& [k, i] : iter) {
    SCOPED_TRACE(Name(i));
    EXPECT_FALSE(i.has_tcp_info());
    auto d = diag.find(k);
    if (d == diag.end()) {
      ADD_FAILURE() << "iterator only";
      continue;
    }
    EXPECT_EQ(i.state, d->second.state);
    if (i.state == 10) {
      ++listeners;
      EXPECT_EQ(i.cookie, d->second.cookie);
      EXPECT_EQ(i.rqueue, d->second.rqueue);
      EXPECT_EQ(i.wqueue, d->second.wqueue);
    } else {
      EXPECT_EQ(i.cookie, 0u);
      EXPECT_EQ(i.rqueue + i.wqueue, 0u);
      with_queue += d->second.wqueue > 0;
    }
  }
  EXPECT_GT(listeners, 0);
  EXPECT_GT(with_queue, 0);  // the stuffed flow: there was a queue to leave out
  const PortRange eph{32768, 60999};
  auto ok = [] { return absl::OkStatus(); };
  auto by_diag = SummarizeSockets(q, 10, eph, 1, ok);
  auto by_iter = SummarizeSockets(q, 10, eph, 1, ok, iter_.get());
  ASSERT_TRUE(by_diag.ok() && by_iter.ok());
  EXPECT_STREQ(by_iter->walked_by, "bpf_iter");
  ExpectSameCounts(by_iter->summary, by_diag->summary);
}

TEST_F(SocketIterTest, StatesAndFamiliesFilterAsSockDiag) {
  SocketQuery q;
  q.states = (1u << 1) | (1u << 6);
  q.families = {AF_INET6};
  const auto diag = ByDiag(q);
  const auto iter = ByIter(q);
  ASSERT_FALSE(diag.empty());
  std::set<Key> a, b;
  for (const auto& [k, v] : diag) a.insert(k);
  for (const auto& [k, v] : iter) b.insert(k);
  EXPECT_EQ(a, b);
}

TEST_F(SocketIterTest, TheSummaryIsTheSameEitherWay) {
  SocketQuery q;  // as a diagnosis asks
  q.tcp_info = q.memory = true;
  const PortRange eph{32768, 60999};
  auto ok = [] { return absl::OkStatus(); };
  auto diag = SummarizeSockets(q, 10, eph, 1, ok);
  auto iter = SummarizeSockets(q, 10, eph, 1, ok, iter_.get());
  ASSERT_TRUE(diag.ok() && iter.ok());
  EXPECT_STREQ(diag->walked_by, "sock_diag");
  EXPECT_STREQ(iter->walked_by, "bpf_iter");
  const SocketSummary &d = diag->summary, &i = iter->summary;
  EXPECT_EQ(i.total, d.total);
  ExpectSameCounts(i, d);
  EXPECT_EQ(i.top_syn_recv_sources, d.top_syn_recv_sources);
  // The flows the fixture made stall and fill: same lists either way.
  ASSERT_FALSE(d.stalled.empty());
  ASSERT_EQ(i.stalled.size(), d.stalled.size());
  for (size_t n = 0; n < d.stalled.size(); ++n) {
    EXPECT_EQ(i.stalled[n].local, d.stalled[n].local);
    EXPECT_EQ(i.stalled[n].peer, d.stalled[n].peer);
    EXPECT_EQ(i.stalled[n].unacked, d.stalled[n].unacked);
    EXPECT_EQ(i.stalled[n].snd_mss, d.stalled[n].snd_mss);
  }
  std::set<uint64_t> busy_d, busy_i;
  for (const auto& f : d.busiest_flows) busy_d.insert(f.cookie);
  for (const auto& f : i.busiest_flows) busy_i.insert(f.cookie);
  ASSERT_FALSE(busy_d.empty());
  EXPECT_EQ(busy_i, busy_d);
  ASSERT_FALSE(d.top_retransmitting.empty());
  ASSERT_EQ(i.top_retransmitting.size(), d.top_retransmitting.size());
  for (size_t n = 0; n < d.top_retransmitting.size(); ++n) {
    EXPECT_EQ(i.top_retransmitting[n].address, d.top_retransmitting[n].address);
    EXPECT_EQ(i.top_retransmitting[n].connections, d.top_retransmitting[n].connections);
  }
  ASSERT_FALSE(d.top_rtt.empty());
  ASSERT_EQ(i.top_rtt.size(), d.top_rtt.size());
  for (size_t n = 0; n < d.top_rtt.size(); ++n) {
    EXPECT_EQ(i.top_rtt[n].address, d.top_rtt[n].address);
    EXPECT_EQ(i.top_rtt[n].connections, d.top_rtt[n].connections);
  }
  // A listeners-only query stays with sock_diag (it reads the listening
  // table alone).
  SocketQuery l;
  l.states = 1u << 10;
  auto listeners = SummarizeSockets(l, 10, eph, 1, ok, iter_.get());
  ASSERT_TRUE(listeners.ok());
  EXPECT_STREQ(listeners->walked_by, "sock_diag");
}

TEST_F(SocketIterTest, AWalkStopsWhenAskedTo) {
  int asked = 0;
  auto r = iter_->Walk(
      SocketQuery{}, [](const SocketRecord&) { return absl::OkStatus(); },
      [&] { return ++asked == 2 ? absl::CancelledError("gone") : absl::OkStatus(); });
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
  EXPECT_EQ(asked, 2);
}

TEST(BackgroundTcpSocketIterator, LoadsOnItsOwnThreadOrSaysItIsOff) {
  REQUIRE_ROOT("and bpf");
  BackgroundTcpSocketIterator off(false);
  EXPECT_EQ(off.get(), nullptr);
  EXPECT_FALSE(off.capability().available);
  EXPECT_NE(off.capability().reason.find("off"), std::string::npos);
  BackgroundTcpSocketIterator on(true);
  ASSERT_TRUE(Eventually([&] { return on.get() != nullptr; }, std::chrono::seconds(10)))
      << on.capability().reason;
  EXPECT_TRUE(on.capability().available);
}

}  // namespace
}  // namespace netagent::collectors
