// Sends one UDP datagram to each of COUNT (port, source socket) combinations on
// loopback, so a namespace with conntrack on gets COUNT distinct entries.
//   udpspray COUNT [--ipv6] [--base-port P]
// Ports P..65535 are used in turn from one socket, then from the next one.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: udpspray COUNT [--ipv6] [--base-port P]\n");
    return 2;
  }
  const long count = std::atol(argv[1]);
  bool v6 = false;
  int base = 1024;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--ipv6")
      v6 = true;
    else if (a == "--base-port" && i + 1 < argc)
      base = std::atoi(argv[++i]);
  }
  const int per_socket = 65536 - base;
  int fd = -1;
  for (long n = 0; n < count; ++n) {
    if (n % per_socket == 0) {
      if (fd >= 0) close(fd);
      fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
      if (fd < 0) {
        std::perror("socket");
        return 1;
      }
    }
    const int port = base + static_cast<int>(n % per_socket);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      a->sin6_port = htons(static_cast<uint16_t>(port));
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a->sin_port = htons(static_cast<uint16_t>(port));
      len = sizeof(*a);
    }
    if (sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
      std::perror("sendto");
      return 1;
    }
  }
  return 0;
}
