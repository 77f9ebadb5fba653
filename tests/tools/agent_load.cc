// Hostile viewers against one agent, and an operator timing its calls through
// them: the availability test and its benchmark. Run it inside the agent's
// network namespace (ip netns exec).
//
//   agent_load --tcp 127.0.0.1:9470 --unix /path/agent.sock --device vb
//              [--packet-floods 80] [--dump-floods 80] [--idle 1000]
//              [--operator-calls 200] [--flood-channels 4] [--settle-ms 2000]
//              [--idle-peers 4]
//
// Viewers (plaintext TCP): --packet-floods callers of TestPacket and
// --dump-floods callers of full socket dumps (every state, tcp_info and
// memory), each in a loop without pause, over --flood-channels connections;
// --idle TCP connections from --idle-peers addresses (127.0.1.x) that send
// the HTTP/2 preface and nothing else.
// The operator starts once the siege is real: at least --settle-ms, and until
// the floods have had answers (10 TestPackets, 1,000 streamed sockets) and a
// dump refused as RESOURCE_EXHAUSTED, at most 60 s (the floods run at nice
// 19, so a loaded machine starts them slowly; "settled_ms" says how long it
// took; "siege_ready" whether they got there). Then the operator (the unix socket) makes
// --operator-calls UpdateRules calls (add then delete a rule) and as many ApplyTuning calls
// (somaxconn back and forth), one at a time, and health checks over TCP and
// the socket. Prints one JSON object: latencies in ms (p50, p99, max), errors,
// health answers, and what the floods got.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "netagent/v1/datapath.grpc.pb.h"
#include "netagent/v1/sockets.grpc.pb.h"
#include "netagent/v1/tuning.grpc.pb.h"

namespace {

namespace v1 = ::netagent::v1;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string tcp, unix_path, device;
  int packet_floods = 80, dump_floods = 80, idle = 1000, operator_calls = 200;
  int flood_channels = 4, settle_ms = 2000, idle_peers = 4;
};

struct Tally {
  std::atomic<uint64_t> ok{0}, exhausted{0}, other{0};
  void Count(const grpc::Status& s) {
    if (s.ok()) {
      ++ok;
    } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
    } else {
      ++other;
    }
  }
};

std::shared_ptr<grpc::Channel> Channel(const std::string& target, int tag) {
  grpc::ChannelArguments args;
  args.SetInt("netagent.load.channel", tag);  // distinct args: distinct connections
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::string SynFrame() {
  // Ethernet + IPv4 (192.0.2.1 -> 192.0.2.2) + TCP SYN to port 80.
  std::string f(54, '\0');
  f[12] = 0x08;
  f[14] = 0x45;
  f[16] = 0;
  f[17] = 40;
  f[22] = 64;
  f[23] = 6;
  const uint8_t src[] = {192, 0, 2, 1}, dst[] = {192, 0, 2, 2};
  std::memcpy(&f[26], src, 4);
  std::memcpy(&f[30], dst, 4);
  f[34] = static_cast<char>(0x9c);
  f[35] = 0x40;
  f[37] = 80;
  f[46] = 0x50;
  f[47] = 0x02;
  return f;
}

// Connects from 127.0.1.<1 + n % peers> (loopback answers for all of
// 127/8) and sends only the HTTP/2 client preface. Returns the fd or -1.
int IdleConnection(const std::string& hostport, int n, int peers) {
  const size_t colon = hostport.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(hostport.c_str() + colon + 1)));
  inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &a.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7f000100u + 1 + static_cast<uint32_t>(n % peers));
  // A connect the listener never completes (its queue full under load) gives
  // up after 2 s instead of the kernel's two minutes of SYN retries.
  const timeval two_seconds{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two_seconds, sizeof(two_seconds));
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (write(fd, kPreface, sizeof(kPreface) - 1) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct Latencies {
  std::vector<double> ms;
  uint64_t errors = 0;
  std::string first_error;
  std::string Json() const {
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    auto q = [&](double p) {
      if (s.empty()) return -1.0;
      return s[std::min(s.size() - 1, static_cast<size_t>(p * static_cast<double>(s.size())))];
    };
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "{\"n\":%zu,\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f,\"errors\":%llu,"
                  "\"first_error\":\"%s\"}",
                  s.size(), q(0.5), q(0.99), s.empty() ? -1.0 : s.back(),
                  static_cast<unsigned long long>(errors), first_error.c_str());
    return buf;
  }
  void Add(Clock::time_point start, const grpc::Status& st) {
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!st.ok()) {
      if (errors++ == 0) {
        first_error = std::to_string(st.error_code()) + " " + st.error_message();
        for (char& c : first_error)
          if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
      }
    }
  }
};

int Run(const Args& a) {
  // Many connections: as many descriptors as the hard limit allows.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  std::atomic<bool> stop{false};
  std::vector<int> idle;
  // At most 20 s opening them, whatever the machine's load.
  const auto idle_until = Clock::now() + std::chrono::seconds(20);
  for (int i = 0; i < a.idle && Clock::now() < idle_until; ++i) {
    const int fd = IdleConnection(a.tcp, i, std::clamp(a.idle_peers, 1, 250));
    if (fd >= 0) idle.push_back(fd);
  }
  const size_t idle_connected = idle.size();

  // The floods run in a child process at the lowest priority: an attacker's
  // CPU is somebody else's, not the agent's. gRPC is started after the fork
  // on both sides.
  int report[2], ready[2];
  if (pipe(report) != 0 || pipe(ready) != 0) return 1;
  const pid_t flooder = fork();
  if (flooder == 0) {
    close(report[0]);
    close(ready[0]);
    // The parent's "stop" is SIGTERM, blocked from here on (the flood threads
    // inherit the mask) and taken by sigwait below: one that comes before
    // the wait is kept pending, not lost.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, nullptr);
    // A parent killed at its deadline takes the floods with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
    setpriority(PRIO_PROCESS, 0, 19);
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (int i = 0; i < std::max(1, a.flood_channels); ++i) channels.push_back(Channel(a.tcp, i));
    Tally packets, dumps;
    std::atomic<uint64_t> dumped_sockets{0};
    std::vector<std::thread> floods;
    const std::string frame = SynFrame();
    for (int i = 0; i < a.packet_floods; ++i) {
      floods.emplace_back([&, i] {
        auto stub = v1::DatapathService::NewStub(channels[i % channels.size()]);
        v1::TestPacketRequest req;
        req.set_device(a.device);
        req.set_packet(frame);
        while (!stop) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          v1::TestPacketResponse resp;
          packets.Count(stub->TestPacket(&ctx, req, &resp));
        }
      });
    }
    for (int i = 0; i < a.dump_floods; ++i) {
      floods.emplace_back([&, i] {
        auto stub = v1::SocketService::NewStub(channels[(i + 1) % channels.size()]);
        v1::ListSocketsRequest req;
        req.set_tcp_info(true);
        req.set_memory(true);
        req.mutable_filter()->add_states("all");
        while (!stop) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          auto reader = stub->ListSockets(&ctx, req);
          v1::ListSocketsResponse resp;
          while (!stop && reader->Read(&resp)) dumped_sockets += resp.sockets_size();
          if (stop) ctx.TryCancel();
          dumps.Count(reader->Finish());
        }
      });
    }
    // Says once when the siege is real (what the availability test expects
    // of the floods).
    std::thread([&] {
      const bool none = a.packet_floods == 0 && a.dump_floods == 0;
      while (!stop && !none &&
             !((a.packet_floods == 0 || packets.ok > 10) &&
               (a.dump_floods == 0 || (dumped_sockets > 1000 && dumps.exhausted > 0)))) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      (void)!write(ready[1], "r", 1);
    }).detach();
    for (int sig = 0; sigwait(&term, &sig) != 0 || sig != SIGTERM;) {
    }
    stop = true;
    for (auto& t : floods) t.join();
    char buf[512];
    const int n =
        std::snprintf(buf, sizeof(buf),
                      "\"test_packet\":{\"ok\":%llu,\"exhausted\":%llu,\"other\":%llu},"
                      "\"dumps\":{\"ok\":%llu,\"exhausted\":%llu,\"other\":%llu,\"sockets\":%llu}",
                      static_cast<unsigned long long>(packets.ok.load()),
                      static_cast<unsigned long long>(packets.exhausted.load()),
                      static_cast<unsigned long long>(packets.other.load()),
                      static_cast<unsigned long long>(dumps.ok.load()),
                      static_cast<unsigned long long>(dumps.exhausted.load()),
                      static_cast<unsigned long long>(dumps.other.load()),
                      static_cast<unsigned long long>(dumped_sockets.load()));
    (void)!write(report[1], buf, static_cast<size_t>(n));
    _exit(0);
  }
  close(report[1]);
  close(ready[1]);
  const auto settle_start = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(a.settle_ms));
  // Ready: the flooder said so (a byte). Not: 60 s passed, or it died
  // (end of file), or it never started.
  bool siege_ready = false;
  const auto settle_until = settle_start + std::chrono::seconds(60);
  while (!siege_ready && Clock::now() < settle_until) {
    pollfd siege{ready[0], POLLIN, 0};
    if (poll(&siege, 1, 100) <= 0) continue;
    char byte;
    if (read(ready[0], &byte, 1) != 1) break;
    siege_ready = true;
  }
  close(ready[0]);
  const double settled_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - settle_start).count();

  auto op = grpc::CreateChannel("unix://" + a.unix_path, grpc::InsecureChannelCredentials());
  auto dp = v1::DatapathService::NewStub(op);
  auto tune = v1::TuningService::NewStub(op);
  auto health_unix = grpc::health::v1::Health::NewStub(op);
  auto health_tcp = grpc::health::v1::Health::NewStub(Channel(a.tcp, 1000));
  Latencies update, apply, health_u, health_t;
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(10); };
  uint64_t revision = 0;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::ListRulesRequest req;
    req.set_device(a.device);
    v1::ListRulesResponse resp;
    if (dp->ListRules(&ctx, req, &resp).ok()) revision = resp.revision();
  }
  for (int i = 0; i < a.operator_calls; ++i) {
    {
      v1::UpdateRulesRequest req;
      req.set_device(a.device);
      req.set_expected_revision(revision);
      auto* add = req.add_edits()->mutable_add();
      add->set_action(v1::RULE_ACTION_BLOCK);
      add->set_prefix("198.51.100." + std::to_string(1 + i % 200));
      v1::UpdateRulesResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      const auto start = Clock::now();
      grpc::Status st = dp->UpdateRules(&ctx, req, &resp);
      update.Add(start, st);
      if (st.ok()) {
        revision = resp.revision();
        v1::UpdateRulesRequest del;
        del.set_device(a.device);
        del.set_expected_revision(revision);
        del.add_edits()->set_delete_id(resp.added(0).id());
        grpc::ClientContext ctx2;
        ctx2.set_deadline(deadline());
        const auto start2 = Clock::now();
        grpc::Status st2 = dp->UpdateRules(&ctx2, del, &resp);
        update.Add(start2, st2);
        if (st2.ok()) revision = resp.revision();
      }
    }
    {
      v1::ApplyTuningRequest req;
      auto* s = req.mutable_intent()->mutable_limits()->add_settings();
      s->set_name("somaxconn");
      s->set_value(i % 2 ? "4096" : "4097");
      v1::ApplyTuningResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline());
      const auto start = Clock::now();
      apply.Add(start, tune->ApplyTuning(&ctx, req, &resp));
    }
    for (auto* h : {&health_u, &health_t}) {
      grpc::health::v1::HealthCheckRequest req;
      grpc::health::v1::HealthCheckResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      const auto start = Clock::now();
      grpc::Status st = (h == &health_u ? health_unix : health_tcp)->Check(&ctx, req, &resp);
      if (st.ok() && resp.status() != grpc::health::v1::HealthCheckResponse::SERVING)
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving");
      h->Add(start, st);
    }
  }
  kill(flooder, SIGTERM);
  std::string flood_report;
  char buf[512];
  for (ssize_t n; (n = read(report[0], buf, sizeof(buf))) > 0;) flood_report.append(buf, n);
  waitpid(flooder, nullptr, 0);
  for (int fd : idle) close(fd);
  std::printf(
      "{\"update_rules_ms\":%s,\"apply_tuning_ms\":%s,\"health_unix_ms\":%s,"
      "\"health_tcp_ms\":%s,\"idle_connected\":%zu,\"siege_ready\":%s,\"settled_ms\":%.0f,"
      "%s}\n",
      update.Json().c_str(), apply.Json().c_str(), health_u.Json().c_str(), health_t.Json().c_str(),
      idle_connected, siege_ready ? "true" : "false", settled_ms,
      flood_report.empty() ? "\"floods\":null" : flood_report.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--tcp") {
      a.tcp = v;
    } else if (k == "--unix") {
      a.unix_path = v;
    } else if (k == "--device") {
      a.device = v;
    } else if (k == "--packet-floods") {
      a.packet_floods = std::atoi(v.c_str());
    } else if (k == "--dump-floods") {
      a.dump_floods = std::atoi(v.c_str());
    } else if (k == "--idle") {
      a.idle = std::atoi(v.c_str());
    } else if (k == "--operator-calls") {
      a.operator_calls = std::atoi(v.c_str());
    } else if (k == "--flood-channels") {
      a.flood_channels = std::atoi(v.c_str());
    } else if (k == "--idle-peers") {
      a.idle_peers = std::atoi(v.c_str());
    } else if (k == "--settle-ms") {
      a.settle_ms = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "agent_load: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (a.tcp.empty() || a.unix_path.empty() || a.device.empty()) {
    std::fprintf(stderr, "agent_load: --tcp, --unix and --device are required\n");
    return 2;
  }
  return Run(a);
}
