// A packet blaster for benchmarks between network namespaces: one prebuilt
// Ethernet + IPv4 + UDP frame sent over and over on one device through an
// AF_PACKET socket with PACKET_QDISC_BYPASS (straight into the driver's
// transmit: no socket, routing, neighbour or qdisc work per packet), in
// batches of sendmmsg. The same frame every time: one source address, one
// flow. This kernel has no pktgen.
//
//   pktblast --dev IF --dst-mac MAC --src IP --dst IP [--duration S] [--pps N]
//            [--threads N] [--cpus 0,1] [--batch N] [--size BYTES] [--dport P]
//
// Run it in the namespace of the device (ip netns exec). When done it prints
// one line on stdout:
//   sent=N seconds=T pps=R refused=F user_s=U sys_s=S
// sent counts frames the driver took. A frame the driver drops or refuses
// (a veth whose peer's ring is full, a stopped queue) fails its sendmmsg with
// ENOBUFS, which ends that call: refused counts those frames, and sending goes
// on with the next batch. seconds runs from the first send to the last;
// user_s and sys_s are this process's CPU time (sys includes whatever the
// kernel did for the frames in this thread's context: on a veth that is
// usually the receiving side too).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pktblast: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const std::string& msg) {
  if (!msg.empty()) std::fprintf(stderr, "pktblast: %s\n", msg.c_str());
  std::fprintf(stderr,
               "usage: pktblast --dev IF --dst-mac MAC --src IP --dst IP [options]\n"
               "  --duration S   seconds to send (default 5, fractions allowed)\n"
               "  --pps N        offered load in frames/s over all threads (default 0:\n"
               "                 as fast as possible)\n"
               "  --threads N    sending threads, one socket each (default 1)\n"
               "  --cpus LIST    pin thread i to the i-th CPU of LIST (e.g. 0,1)\n"
               "  --batch N      frames per sendmmsg (default 64)\n"
               "  --size BYTES   frame length without FCS, >= 60 (default 60)\n"
               "  --sport P, --dport P  UDP ports (default 9000 and 9)\n");
  std::exit(2);
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

uint16_t ip_checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

bool parse_mac(const std::string& s, uint8_t out[6]) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return false;
  for (int i = 0; i < 6; ++i) {
    if (v[i] > 255) return false;
    out[i] = static_cast<uint8_t>(v[i]);
  }
  return true;
}

struct Options {
  std::string dev, dst_mac, src, dst;
  double duration = 5;
  double pps = 0;
  int threads = 1;
  std::vector<int> cpus;
  int batch = 64;
  int size = 60;
  int sport = 9000, dport = 9;
};

struct Result {
  uint64_t sent = 0, refused = 0;
  int64_t first_ns = 0, last_ns = 0;
};

std::vector<uint8_t> build_frame(const Options& o, const uint8_t src_mac[6]) {
  std::vector<uint8_t> f(o.size, 0);
  uint8_t dmac[6];
  if (!parse_mac(o.dst_mac, dmac)) usage("--dst-mac: not a MAC address");
  std::memcpy(&f[0], dmac, 6);
  std::memcpy(&f[6], src_mac, 6);
  f[12] = 0x08;  // IPv4
  f[13] = 0x00;
  uint8_t* ip = &f[14];
  const int ip_len = o.size - 14;
  ip[0] = 0x45;
  ip[2] = static_cast<uint8_t>(ip_len >> 8);
  ip[3] = static_cast<uint8_t>(ip_len);
  ip[6] = 0x40;  // DF
  ip[8] = 64;    // TTL
  ip[9] = IPPROTO_UDP;
  in_addr a;
  if (inet_pton(AF_INET, o.src.c_str(), &a) != 1) usage("--src: not an IPv4 address");
  std::memcpy(ip + 12, &a, 4);
  if (inet_pton(AF_INET, o.dst.c_str(), &a) != 1) usage("--dst: not an IPv4 address");
  std::memcpy(ip + 16, &a, 4);
  const uint16_t c = ip_checksum(ip, 20);
  ip[10] = static_cast<uint8_t>(c >> 8);
  ip[11] = static_cast<uint8_t>(c);
  uint8_t* udp = ip + 20;
  const int udp_len = ip_len - 20;
  udp[0] = static_cast<uint8_t>(o.sport >> 8);
  udp[1] = static_cast<uint8_t>(o.sport);
  udp[2] = static_cast<uint8_t>(o.dport >> 8);
  udp[3] = static_cast<uint8_t>(o.dport);
  udp[4] = static_cast<uint8_t>(udp_len >> 8);
  udp[5] = static_cast<uint8_t>(udp_len);
  // UDP checksum 0: none (allowed over IPv4).
  return f;
}

void sender(const Options& o, int index, int ifindex, const std::vector<uint8_t>& frame,
            std::latch& go, Result* r) {
  if (index < static_cast<int>(o.cpus.size())) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpus[index], &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
      errno = EINVAL;
      die("pin to CPU " + std::to_string(o.cpus[index]));
    }
  }
  // Protocol 0: this socket receives nothing.
  const int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) die("socket(AF_PACKET)");
  const int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0)
    die("PACKET_QDISC_BYPASS");
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_ifindex = ifindex;
  ll.sll_protocol = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof(ll)) != 0) die("bind " + o.dev);

  std::vector<iovec> iov(o.batch);
  std::vector<mmsghdr> msgs(o.batch);
  for (int i = 0; i < o.batch; ++i) {
    iov[i].iov_base = const_cast<uint8_t*>(frame.data());
    iov[i].iov_len = frame.size();
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  go.wait();
  const double pps = o.pps / o.threads;
  const int64_t start = now_ns();
  const int64_t end = start + static_cast<int64_t>(o.duration * 1e9);
  r->first_ns = start;
  uint64_t sent = 0, refused = 0;
  int64_t t = start;
  while (t < end) {
    if (pps > 0) {
      // Paced: the next batch goes when the schedule allows all of it.
      const auto due = static_cast<uint64_t>(static_cast<double>(t - start) * pps / 1e9);
      if (sent + o.batch > due) {
        const int64_t when =
            start + static_cast<int64_t>(static_cast<double>(sent + o.batch) * 1e9 / pps);
        if (when >= end) break;
        timespec ts{static_cast<time_t>(when / 1000000000), static_cast<long>(when % 1000000000)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
        t = now_ns();
        continue;
      }
    }
    const int n = sendmmsg(fd, msgs.data(), o.batch, 0);
    if (n < 0) {
      if (errno == ENOBUFS || errno == EAGAIN) {
        ++refused;
      } else {
        die("sendmmsg");
      }
    } else {
      sent += n;
    }
    t = now_ns();
  }
  r->last_ns = t;
  r->sent = sent;
  r->refused = refused;
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--dev")
      o.dev = val();
    else if (a == "--dst-mac")
      o.dst_mac = val();
    else if (a == "--src")
      o.src = val();
    else if (a == "--dst")
      o.dst = val();
    else if (a == "--duration")
      o.duration = std::atof(val().c_str());
    else if (a == "--pps")
      o.pps = std::atof(val().c_str());
    else if (a == "--threads")
      o.threads = std::atoi(val().c_str());
    else if (a == "--batch")
      o.batch = std::atoi(val().c_str());
    else if (a == "--size")
      o.size = std::atoi(val().c_str());
    else if (a == "--sport")
      o.sport = std::atoi(val().c_str());
    else if (a == "--dport")
      o.dport = std::atoi(val().c_str());
    else if (a == "--cpus") {
      std::string s = val();
      for (size_t p = 0; p < s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        o.cpus.push_back(std::atoi(s.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else if (a == "--help" || a == "-h")
      usage("");
    else
      usage("unknown argument " + a);
  }
  if (o.dev.empty() || o.dst_mac.empty() || o.src.empty() || o.dst.empty())
    usage("--dev, --dst-mac, --src and --dst are required");
  if (o.threads < 1 || o.batch < 1 || o.batch > 1024 || o.size < 60 || o.size > 1514 ||
      o.duration <= 0 || o.pps < 0)
    usage("a value is out of range");

  const int ifindex = static_cast<int>(if_nametoindex(o.dev.c_str()));
  if (ifindex == 0) die("device " + o.dev);
  uint8_t src_mac[6];
  {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, o.dev.c_str(), IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFHWADDR, &ifr) != 0) die("SIOCGIFHWADDR " + o.dev);
    std::memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
    close(s);
  }
  const std::vector<uint8_t> frame = build_frame(o, src_mac);

  std::latch go(1);
  std::vector<Result> results(o.threads);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.threads; ++i) {
    threads.emplace_back(sender, std::cref(o), i, ifindex, std::cref(frame), std::ref(go),
                         &results[i]);
  }
  usleep(20000);  // sockets made, threads pinned
  go.count_down();
  for (auto& t : threads) t.join();

  Result total;
  total.first_ns = results[0].first_ns;
  total.last_ns = results[0].last_ns;
  for (const Result& r : results) {
    total.sent += r.sent;
    total.refused += r.refused;
    total.first_ns = std::min(total.first_ns, r.first_ns);
    total.last_ns = std::max(total.last_ns, r.last_ns);
  }
  const double secs = static_cast<double>(total.last_ns - total.first_ns) / 1e9;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("sent=%" PRIu64 " seconds=%.4f pps=%.0f refused=%" PRIu64 " user_s=%.3f sys_s=%.3f\n",
              total.sent, secs, static_cast<double>(total.sent) / secs, total.refused,
              static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6,
              static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6);
  return 0;
}
