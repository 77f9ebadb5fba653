// Makes sockets in many TCP states for the socket tests and benchmarks, then
// waits for SIGTERM. Run it inside a test namespace.
//
//   sockfarm [--port P] [--established N] [--time-wait N] [--close-wait N]
//            [--unaccepted N --backlog B --unaccepted-port P2]
//            [--syn-recv N --syn-recv-port P3] [--udp N] [--ipv6]
//            [--dual-stack N --dual-stack-port P4] [--ipv6-pairs N --ipv6-port P5]
//
// --established N: N client/server pairs on loopback (2N sockets).
// --time-wait N: N pairs closed by the client first (client side TIME_WAIT).
// --close-wait N: N pairs where the client closed and the server did not.
// --unaccepted N: connections a listener with backlog B never accepts.
// --syn-recv N: connects to P3; with the test's firewall rule dropping the
//   handshake's last ACK, the listener keeps N SYN_RECV request sockets.
// --dual-stack N: a listener on [::]:P4 (IPV6_V6ONLY off) and N IPv4 clients
//   of it on 127.0.0.1: the accepted sockets are IPv6 with v4-mapped
//   addresses (::ffff:127.0.0.1), the clients IPv4.
// --ipv6-pairs N: N client/server pairs over ::1 to port P5, whatever --ipv6.
// Prints "ready" on stdout once every socket exists.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool g_ipv6 = false;

void Die(const char* what) {
  std::fprintf(stderr, "sockfarm: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

sockaddr_storage Addr(int port, socklen_t* len) {
  sockaddr_storage ss{};
  if (g_ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_loopback;
    *len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

int Listen(int port, int backlog) {
  int fd = socket(g_ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len;
  sockaddr_storage a = Addr(port, &len);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0) Die("bind");
  if (listen(fd, backlog) < 0) Die("listen");
  return fd;
}

int Connect(int port, bool wait) {
  int fd = socket(g_ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) Die("socket");
  socklen_t len;
  sockaddr_storage a = Addr(port, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) < 0 && errno != EINPROGRESS) Die("connect");
  if (wait) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 5000) != 1) Die("connect timeout");
  }
  return fd;
}

// A socket of `family` bound to `addr`:`port` (listening) or connected to it.
int Socket(int family, const char* addr, int port, bool listening) {
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, addr, &a->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, addr, &a->sin_addr);
    len = sizeof(sockaddr_in);
  }
  if (listening) {
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) Die("bind");
    if (listen(fd, 4096) < 0) Die("listen");
  } else if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    Die("connect");
  }
  return fd;
}

int Accept(int lfd) {
  pollfd p{lfd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) Die("accept timeout");
  int fd = accept(lfd, nullptr, nullptr);
  if (fd < 0) Die("accept");
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 5000, established = 0, time_wait = 0, close_wait = 0, unaccepted = 0, backlog = 16;
  int unaccepted_port = 5001, syn_recv = 0, syn_recv_port = 5002, udp = 0;
  int dual_stack = 0, dual_stack_port = 5003, ipv6_pairs = 0, ipv6_port = 5004;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--port")
      port = next();
    else if (a == "--established")
      established = next();
    else if (a == "--time-wait")
      time_wait = next();
    else if (a == "--close-wait")
      close_wait = next();
    else if (a == "--unaccepted")
      unaccepted = next();
    else if (a == "--backlog")
      backlog = next();
    else if (a == "--unaccepted-port")
      unaccepted_port = next();
    else if (a == "--syn-recv")
      syn_recv = next();
    else if (a == "--syn-recv-port")
      syn_recv_port = next();
    else if (a == "--udp")
      udp = next();
    else if (a == "--ipv6")
      g_ipv6 = true;
    else if (a == "--dual-stack")
      dual_stack = next();
    else if (a == "--dual-stack-port")
      dual_stack_port = next();
    else if (a == "--ipv6-pairs")
      ipv6_pairs = next();
    else if (a == "--ipv6-port")
      ipv6_port = next();
    else {
      std::fprintf(stderr, "sockfarm: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  signal(SIGPIPE, SIG_IGN);

  std::vector<int> keep;
  int lfd = Listen(port, 4096);
  keep.push_back(lfd);
  for (int i = 0; i < established + time_wait + close_wait; ++i) {
    int c = Connect(port, true);
    int s = Accept(lfd);
    if (i < established) {
      // Some data so queues and counters are not all zero.
      (void)!write(c, "hello", 5);
      keep.push_back(c);
      keep.push_back(s);
    } else if (i < established + time_wait) {
      close(c);  // active close: the client ends in TIME_WAIT
      char buf[16];
      pollfd p{s, POLLIN, 0};
      poll(&p, 1, 2000);
      (void)!read(s, buf, sizeof(buf));
      close(s);
    } else {
      close(c);  // the server never closes: CLOSE_WAIT
      keep.push_back(s);
    }
  }
  if (unaccepted > 0) {
    keep.push_back(Listen(unaccepted_port, backlog));
    for (int i = 0; i < unaccepted; ++i) keep.push_back(Connect(unaccepted_port, true));
  }
  if (syn_recv > 0) {
    keep.push_back(Listen(syn_recv_port, 4096));
    for (int i = 0; i < syn_recv; ++i) keep.push_back(Connect(syn_recv_port, false));
  }
  if (dual_stack > 0) {
    int l = Socket(AF_INET6, "::", dual_stack_port, true);
    keep.push_back(l);
    for (int i = 0; i < dual_stack; ++i) {
      keep.push_back(Socket(AF_INET, "127.0.0.1", dual_stack_port, false));
      keep.push_back(Accept(l));
    }
  }
  if (ipv6_pairs > 0) {
    int l = Socket(AF_INET6, "::1", ipv6_port, true);
    keep.push_back(l);
    for (int i = 0; i < ipv6_pairs; ++i) {
      keep.push_back(Socket(AF_INET6, "::1", ipv6_port, false));
      keep.push_back(Accept(l));
    }
  }
  for (int i = 0; i < udp; ++i) {
    int fd = socket(g_ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    socklen_t len;
    sockaddr_storage a = Addr(0, &len);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0) Die("bind udp");
    keep.push_back(fd);
  }
  // Let the handshakes of --syn-recv reach the listener.
  usleep(200000);
  std::printf("ready\n");
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig;
  sigwait(&set, &sig);
  return 0;
}
