// The socket view against ss in the same namespace: more than a thousand TCP
// sockets in seven states, compared socket by socket.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/sockets.pb.h"
#include "tests/common/ss_output.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

constexpr int kEstablishedPairs = 450, kTimeWait = 60, kCloseWait = 20, kUnaccepted = 10,
              kBacklog = 16, kSynRecv = 30, kUdp = 20;
// With IPv6: a dual-stack listener on [::]:5003 with IPv4 clients (its
// accepted sockets are IPv6 with v4-mapped addresses) and pairs over ::1:5004.
constexpr int kDualStack = 15, kIpv6Pairs = 12, kDualStackPort = 5003;

// A namespace full of sockets: sockfarm with a firewall rule that drops the
// last ACK of handshakes to port 5002, so its listener keeps SYN_RECV entries;
// `ipv6` adds the dual-stack and IPv6 sockets.
class SocketFarm {
 public:
  explicit SocketFarm(bool ipv6 = false) {
    RunResult fw = RunCommand(ns_.Exec({"iptables", "-I", "INPUT", "-p", "tcp", "--dport", "5002",
                                        "--tcp-flags", "SYN,ACK,FIN,RST", "ACK", "-j", "DROP"}));
    EXPECT_EQ(fw.exit_code, 0) << fw.err;
    std::vector<std::string> argv = {SOCKFARM_PATH};
    auto flag = [&](const char* name, int n) { argv.insert(argv.end(), {name, absl::StrCat(n)}); };
    flag("--established", kEstablishedPairs);
    flag("--time-wait", kTimeWait);
    flag("--close-wait", kCloseWait);
    flag("--unaccepted", kUnaccepted);
    flag("--backlog", kBacklog);
    flag("--syn-recv", kSynRecv);
    flag("--udp", kUdp);
    if (ipv6) {
      flag("--dual-stack", kDualStack);
      flag("--dual-stack-port", kDualStackPort);
      flag("--ipv6-pairs", kIpv6Pairs);
    }
    farm_ = std::make_unique<Process>(ns_.Exec(argv), dir_ / "farm.out");
    ready_ = Eventually(
                 [&] {
                   return ReadFile(dir_ / "farm.out").find("ready") != std::string::npos ||
                          !farm_->running();
                 },
                 std::chrono::seconds(30)) &&
             ReadFile(dir_ / "farm.out").find("ready") != std::string::npos;
  }
  ~SocketFarm() { farm_->Signal(SIGTERM); }

  const Netns& ns() const { return ns_; }
  bool ready() const { return ready_; }
  std::string log() const { return ReadFile(dir_ / "farm.out"); }

 private:
  Netns ns_;
  TempDir dir_;
  std::unique_ptr<Process> farm_;
  bool ready_ = false;
};

std::vector<v1::Socket> ListAll(const Agent& agent, std::vector<std::string> args) {
  args.insert(args.begin(), {"-o", "json", "sockets"});
  RunResult r = agent.Netctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<v1::Socket> out;
  for (const std::string& line : Lines(r.out)) {
    auto batch = ResultOf<v1::ListSocketsResponse>(line);
    out.insert(out.end(), batch.sockets().begin(), batch.sockets().end());
  }
  return out;
}

std::string Endpoint(const std::string& addr, uint32_t port, v1::AddressFamily f) {
  const std::string p = port == 0 ? "*" : absl::StrCat(port);
  return f == v1::ADDRESS_FAMILY_INET6 ? absl::StrCat("[", addr, "]:", p)
                                       : absl::StrCat(addr, ":", p);
}

// ss prints the any address of an IPv6 socket that also takes IPv4 (not
// v6only) as "*"; the farm's one such socket is its dual-stack listener.
std::string SsLocal(const v1::Socket& s) {
  if (s.local_address() == "::" && s.local_port() == kDualStackPort) {
    return absl::StrCat("*:", kDualStackPort);
  }
  return Endpoint(s.local_address(), s.local_port(), s.family());
}
std::string SsPeer(const v1::Socket& s) {
  if (s.local_address() == "::" && s.local_port() == kDualStackPort) return "*:*";
  return Endpoint(s.peer_address(), s.peer_port(), s.family());
}

// ss's label for our state name.
std::string Label(const std::string& state) {
  static const std::map<std::string, std::string> labels = {
      {"established", "ESTAB"},     {"syn-sent", "SYN-SENT"},     {"syn-recv", "SYN-RECV"},
      {"fin-wait-1", "FIN-WAIT-1"}, {"fin-wait-2", "FIN-WAIT-2"}, {"time-wait", "TIME-WAIT"},
      {"closed", "UNCONN"},         {"close-wait", "CLOSE-WAIT"}, {"last-ack", "LAST-ACK"},
      {"listening", "LISTEN"},      {"closing", "CLOSING"}};
  return labels.at(state);
}

std::string Ms(uint32_t us) { return absl::StrFormat("%g", us / 1000.0); }

TEST(SocketsIntegration, AThousandSocketsAgreeWithSsSocketBySocket) {
  REQUIRE_ROOT();
  SocketFarm farm(/*ipv6=*/true);
  ASSERT_TRUE(farm.ready()) << farm.log();
  Agent agent(farm.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();

  RunResult ss = RunCommand(farm.ns().Exec({"ss", "-tanimeH"}));
  ASSERT_EQ(ss.exit_code, 0) << ss.err;
  std::vector<v1::Socket> ours = ListAll(agent, {"-i", "-m", "--state", "all"});
  std::vector<SsSocket> ref = ParseSsOutput(ss.out);
  ASSERT_GE(ours.size(), 1000u);
  ASSERT_EQ(ours.size(), ref.size());

  std::map<std::string, int> our_states, ss_states;
  std::map<uint64_t, const SsSocket*> by_cookie;
  for (const auto& s : ref) {
    ++ss_states[s.state];
    by_cookie[s.cookie] = &s;
  }
  int compared_info = 0;
  for (const v1::Socket& s : ours) {
    ++our_states[Label(s.state())];
    auto it = by_cookie.find(s.cookie());
    ASSERT_NE(it, by_cookie.end()) << "ss does not list cookie " << s.cookie();
    const SsSocket& r = *it->second;
    const std::string where = absl::StrCat(s.state(), " ", s.local_port(), "->", s.peer_port());
    EXPECT_EQ(Label(s.state()), r.state) << where;
    EXPECT_EQ(SsLocal(s), r.local) << where;
    EXPECT_EQ(SsPeer(s), r.peer) << where;
    EXPECT_EQ(s.inode(), r.inode) << where;
    EXPECT_EQ(s.recv_q(), r.rq) << where;
    EXPECT_EQ(s.send_q(), r.sq) << where;
    // Mini sockets (time-wait, syn-recv, an orphaned fin-wait-2) carry no
    // tcp_info; ss then prints no cwnd either.
    EXPECT_EQ(s.has_tcp_info(), r.info.count("cwnd") == 1) << where;
    if (!s.has_tcp_info()) continue;
    const auto& t = s.tcp_info();
    EXPECT_EQ(absl::StrCat(t.snd_cwnd()), r.info.at("cwnd")) << where;
    EXPECT_TRUE(r.info.count(s.congestion_control())) << where << " " << s.congestion_control();
    if (s.state() == "listening") continue;
    EXPECT_EQ(absl::StrCat(t.snd_mss()), r.info.at("mss")) << where;
    EXPECT_EQ(Ms(t.rto_us()), r.info.at("rto")) << where;
    EXPECT_EQ(absl::StrCat(t.snd_wscale(), ",", t.rcv_wscale()), r.info.at("wscale")) << where;
    // Idle loopback connections keep their RTT; allow a little for the two reads.
    const double ss_rtt = std::stod(r.info.at("rtt"));
    EXPECT_NEAR(t.rtt_us() / 1000.0, ss_rtt, 0.5) << where;
    ++compared_info;
  }
  EXPECT_EQ(our_states, ss_states);
  // Both ends of each pair (IPv4, dual-stack, IPv6), both ends of each
  // unaccepted connection, and the clients of the stalled handshakes (they
  // sent their ACK).
  EXPECT_EQ(our_states["ESTAB"],
            2 * kEstablishedPairs + 2 * kUnaccepted + kSynRecv + 2 * kDualStack + 2 * kIpv6Pairs);
  EXPECT_EQ(our_states["CLOSE-WAIT"], kCloseWait);
  EXPECT_EQ(our_states["FIN-WAIT-2"], kCloseWait);
  EXPECT_EQ(our_states["TIME-WAIT"], kTimeWait);
  EXPECT_EQ(our_states["SYN-RECV"], kSynRecv);
  EXPECT_GE(compared_info, 2 * kEstablishedPairs);

  RunResult udp_ss = RunCommand(farm.ns().Exec({"ss", "-uanH"}));
  EXPECT_EQ(ListAll(agent, {"--udp"}).size(), Lines(udp_ss.out).size());
  EXPECT_EQ(ListAll(agent, {"--udp"}).size(), static_cast<size_t>(kUdp));
}

TEST(SocketsIntegration, KernelFiltersMatchSsFilters) {
  REQUIRE_ROOT();
  SocketFarm farm(/*ipv6=*/true);
  ASSERT_TRUE(farm.ready()) << farm.log();
  Agent agent(farm.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  struct Case {
    std::vector<std::string> ours;
    std::vector<std::string> ss;
  };
  for (const Case& c : std::vector<Case>{
           {{"--state", "established", "--dport", "5000"},
            {"ss", "-tanH", "state", "established", "dport", "=", ":5000"}},
           {{"--state", "established", "--sport", "5000"},
            {"ss", "-tanH", "state", "established", "sport", "=", ":5000"}},
           {{"--state", "time-wait"}, {"ss", "-tanH", "state", "time-wait"}},
           {{"--state", "listening,syn-recv"},
            {"ss", "-tanH", "state", "listening", "state", "syn-recv"}},
           {{"--dst", "127.0.0.0/8", "--dport", "5001-5002"},
            {"ss", "-tanH", "dst", "127.0.0.0/8", "and", "dport", ">=", ":5001", "and", "dport",
             "<=", ":5002"}},
           {{"--src", "10.0.0.0/8"}, {"ss", "-tanH", "src", "10.0.0.0/8"}},
           {{"-6"}, {"ss", "-tanH6"}},
       }) {
    RunResult ss = RunCommand(farm.ns().Exec(c.ss));
    ASSERT_EQ(ss.exit_code, 0) << ss.err;
    EXPECT_EQ(ListAll(agent, c.ours).size(), Lines(ss.out).size()) << absl::StrJoin(c.ours, " ");
  }

  // An IPv4 prefix also matches dual-stack IPv6 sockets by their v4-mapped
  // addresses: ss dumps both families and the kernel's bytecode compares an
  // IPv4 condition with ::ffff:a.b.c.d. An IPv6 prefix matches IPv6 sockets
  // only. Socket for socket (cookies), each case with sockets of the family
  // it is about.
  struct Mapped {
    std::vector<std::string> ours;
    std::vector<std::string> ss;
    bool ss_ipv6_only;  // ss refuses -6 with an IPv4 prefix: keep its IPv6 lines
    int ipv6;           // how many of the matches are IPv6 sockets
  };
  for (const Mapped& c : std::vector<Mapped>{
           {{"--dst", "127.0.0.0/8"}, {"dst", "127.0.0.0/8"}, false, kDualStack},
           {{"-6", "--dst", "127.0.0.0/8"}, {"dst", "127.0.0.0/8"}, true, kDualStack},
           {{"-4", "--dst", "127.0.0.0/8"}, {"-4", "dst", "127.0.0.0/8"}, false, 0},
           {{"--src", "127.0.0.1", "--sport", "5003"},
            {"src", "127.0.0.1", "sport", "=", ":5003"},
            false,
            kDualStack},
           {{"--dst", "::1"}, {"dst", "[::1]"}, false, 2 * kIpv6Pairs},
           {{"-6"}, {"-6"}, false, 2 + 2 * kIpv6Pairs + kDualStack},
       }) {
    const std::string what = absl::StrJoin(c.ours, " ");
    std::vector<std::string> argv = {"ss", "-tanimeH"};
    argv.insert(argv.end(), c.ss.begin(), c.ss.end());
    RunResult ss = RunCommand(farm.ns().Exec(argv));
    ASSERT_EQ(ss.exit_code, 0) << what << ": " << ss.err;
    std::set<uint64_t> theirs, ours;
    for (const SsSocket& r : ParseSsOutput(ss.out)) {
      if (!c.ss_ipv6_only || r.local[0] == '[') theirs.insert(r.cookie);
    }
    int ipv6 = 0;
    for (const v1::Socket& s : ListAll(agent, c.ours)) {
      ours.insert(s.cookie());
      ipv6 += s.family() == v1::ADDRESS_FAMILY_INET6 ? 1 : 0;
    }
    EXPECT_EQ(ours, theirs) << what;
    EXPECT_EQ(ipv6, c.ipv6) << what;
    EXPECT_GT(ours.size(), 0u) << what;
  }

  RunResult bad = agent.Netctl({"sockets", "--src", "10.0.0.1/8"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT: filter.source:"), std::string::npos) << bad.err;
  RunResult state = agent.Netctl({"sockets", "--state", "estab"});
  EXPECT_NE(state.err.find("filter.states: unknown state \"estab\""), std::string::npos);
}

// Nothing matches: still one JSON line for the target, ok, with a result
// (an empty list), not silence.
TEST(SocketsIntegration, AnEmptyResultIsStillAResult) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult r = agent.Netctl({"-o", "json", "sockets", "--dst", "192.0.2.0/24"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  google::protobuf::Struct line = ParseJson(lines[0]);
  EXPECT_TRUE(line.fields().at("ok").bool_value()) << lines[0];
  EXPECT_TRUE(line.fields().at("result").has_struct_value()) << lines[0];
  EXPECT_EQ(ResultOf<v1::ListSocketsResponse>(lines[0]).sockets_size(), 0);
  RunResult table = agent.Netctl({"sockets", "--dst", "192.0.2.0/24"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
}

TEST(SocketsIntegration, PagesCoverTheTableOnce) {
  REQUIRE_ROOT();
  SocketFarm farm;
  ASSERT_TRUE(farm.ready()) << farm.log();
  Agent agent(farm.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  std::set<uint64_t> all;
  for (const auto& s : ListAll(agent, {"--state", "connected"})) all.insert(s.cookie());
  std::set<uint64_t> paged;
  std::string token;
  int pages = 0;
  do {
    std::vector<std::string> args = {"-o",        "json",        "sockets", "--state",
                                     "connected", "--page-size", "137"};
    if (!token.empty()) args.insert(args.end(), {"--page-token", token});
    RunResult r = agent.Netctl(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    token.clear();
    size_t in_page = 0;
    for (const std::string& line : Lines(r.out)) {
      auto batch = ResultOf<v1::ListSocketsResponse>(line);
      for (const auto& s : batch.sockets()) {
        EXPECT_TRUE(paged.insert(s.cookie()).second) << "socket in two pages";
        ++in_page;
      }
      if (!batch.next_page_token().empty()) token = batch.next_page_token();
    }
    EXPECT_LE(in_page, 137u);
    ASSERT_LT(++pages, 50);
  } while (!token.empty());
  EXPECT_EQ(paged, all);
  EXPECT_GE(pages, static_cast<int>(all.size() / 137));
  RunResult stale = agent.Netctl({"sockets", "--page-token", "s1.0.5.deadbeef"});
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_NE(stale.err.find("page_token: issued for a different filter"), std::string::npos)
      << stale.err;
}

TEST(SocketsIntegration, SummaryCountsQueuesTimeWaitAndHandshakes) {
  REQUIRE_ROOT();
  SocketFarm farm;
  ASSERT_TRUE(farm.ready()) << farm.log();
  Agent agent(farm.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult r = agent.Netctl({"-o", "json", "sockets", "summary"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto sum = ResultOf<v1::GetSocketSummaryResponse>(r.out);
  std::map<uint32_t, v1::ListenerSummary> listeners;
  for (const auto& l : sum.listeners()) listeners[l.local_port()] = l;
  ASSERT_EQ(listeners.size(), 3u);
  EXPECT_EQ(listeners[5001].accept_queue(), static_cast<uint32_t>(kUnaccepted));
  EXPECT_EQ(listeners[5001].backlog(), static_cast<uint32_t>(kBacklog));
  EXPECT_DOUBLE_EQ(listeners[5001].accept_queue_fill_percent(), 100.0 * kUnaccepted / kBacklog);
  EXPECT_EQ(listeners[5002].syn_recv(), static_cast<uint64_t>(kSynRecv));
  EXPECT_EQ(listeners[5000].syn_recv(), 0u);
  EXPECT_EQ(sum.time_wait().count(), static_cast<uint64_t>(kTimeWait));
  EXPECT_EQ(sum.time_wait().busiest_peer(), "127.0.0.1:5000");
  EXPECT_EQ(sum.time_wait().busiest_peer_count(), static_cast<uint64_t>(kTimeWait));
  RunResult range = RunCommand(farm.ns().Exec({"sysctl", "-n", "net.ipv4.ip_local_port_range"}));
  uint32_t lo = 0, hi = 0;
  ASSERT_EQ(sscanf(range.out.c_str(), "%u %u", &lo, &hi), 2);
  EXPECT_EQ(sum.time_wait().ephemeral_ports(), hi - lo + 1);
  // Whichever walked, it says so: the BPF iterator once it has loaded.
  EXPECT_TRUE(sum.walked_by() == "sock_diag" || sum.walked_by() == "bpf_iter") << sum.walked_by();
  const bool loaded = Eventually([&] {
    return ResultOf<v1::GetHostInfoResponse>(agent.Netctl({"-o", "json", "host"}).out)
        .capabilities()
        .socket_iterator()
        .available();
  });
  if (loaded) {
    RunResult again = agent.Netctl({"sockets", "summary"});
    EXPECT_NE(again.out.find("walked by   bpf_iter"), std::string::npos) << again.out;
  }
  Agent diag(farm.ns(), {"--socket-walk", "sock_diag"});
  ASSERT_TRUE(diag.ok()) << diag.error();
  auto by_diag =
      ResultOf<v1::GetSocketSummaryResponse>(diag.Netctl({"-o", "json", "sockets", "summary"}).out);
  EXPECT_EQ(by_diag.walked_by(), "sock_diag");
  EXPECT_EQ(by_diag.time_wait().count(), sum.time_wait().count());
  uint64_t total = 0;
  for (const auto& s : sum.states()) total += s.count();
  EXPECT_EQ(total, sum.total());
  ASSERT_GE(sum.top_rtt_peers_size(), 1);
  EXPECT_EQ(sum.top_rtt_peers(0).address(), "127.0.0.1");

  RunResult table = agent.Netctl({"sockets", "summary"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("LISTENER"), std::string::npos) << table.out;
}

}  // namespace
}  // namespace netagent::testing
