// A long fat path between two network namespaces, in user space: this kernel
// has no netem, so a TUN device in each namespace and this program in between
// stand in for the wire. Every packet read from one TUN is held for a fixed
// one-way delay and then written into the other one; optionally it first goes
// through a bottleneck of a given rate with a drop-tail queue of a given size.
//
//   delayline --ns-a NS1 --ns-b NS2 [--addr-a 10.77.0.1] [--addr-b 10.77.0.2]
//             [--delay-ms 100] [--rate-mbit 1000] [--queue-bytes N] [--mtu 1500] ...
//
// (--help lists every flag.) Prints "ready" on stdout once both devices are up
// and packets flow; on SIGTERM or SIGINT (and when its parent dies) it stops
// and prints per-direction counters on stderr.
//
// How it works:
// - Each TUN is created inside its namespace: the thread enters the namespace
//   (setns) before opening /dev/net/tun, so the device lives there, and the
//   ioctl socket that sets its address, MTU and flags is made there too. The
//   file descriptors keep working from anywhere once the thread is back home.
// - With offloads (the default) the devices use IFF_VNET_HDR and TUNSETOFFLOAD
//   (checksum, TSO): the sending stack hands over TSO super-packets of up to
//   64 KiB with a virtio-net header, which are written unchanged into the other
//   device, so one read and one write move ~45 MTU-sized segments.
// - One thread per direction. Packets are read into a byte ring with their
//   release time (arrival + delay, or departure from the bottleneck + delay);
//   the delay is constant, so release times are in FIFO order and the thread
//   sleeps (ppoll, nanosecond timeout) until the oldest one is due.
// - The bottleneck is a virtual clock: a packet departs when the link has
//   serialized everything before it (size / rate); the queue is whatever has
//   not departed yet. A packet that would push the queue over --queue-bytes is
//   dropped (drop-tail). Sizes are counted as on the wire: a super-packet of N
//   segments counts its headers N times.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <thread>

namespace {

// The virtio-net header TUN puts in front of every packet with IFF_VNET_HDR
// (linux/virtio_net.h, which does not compile as C++: a field is called
// `class`). Native byte order, as TUN uses by default.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10);
constexpr uint8_t kVnetNeedsCsum = 1;
constexpr uint8_t kGsoTcpV4 = 1, kGsoTcpV6 = 4, kGsoEcn = 0x80;

constexpr size_t kVnetHdrLen = sizeof(VnetHdr);
// Largest thing one read can return: an IPv4/IPv6 packet of up to 64 KiB
// (TSO super-packet or a 65535-byte MTU) plus the virtio-net header.
constexpr size_t kMaxRead = 65536 + 256;
constexpr size_t kAlign = 64;
constexpr int kReadBatch = 64;

void usage(FILE* out) {
  std::fprintf(
      out,
      "usage: delayline --ns-a NAME --ns-b NAME [options]\n"
      "\n"
      "Joins two network namespaces through a TUN device in each and a user-space\n"
      "delay line between them (this kernel has no netem).\n"
      "\n"
      "  --ns-a NAME, --ns-b NAME  namespaces (names under /run/netns, or paths)\n"
      "  --addr-a IP, --addr-b IP  IPv4 addresses of the two ends\n"
      "                            (default 10.77.0.1 and 10.77.0.2)\n"
      "  --prefix-len N            prefix length of both addresses (default 24)\n"
      "  --dev-a NAME, --dev-b NAME  device names (default dla and dlb)\n"
      "  --delay-ms MS             ONE-WAY delay, applied in each direction, so the\n"
      "                            round-trip time is 2 x MS (plus any queueing);\n"
      "                            fractions allowed (default 0)\n"
      "  --rate-mbit R             bottleneck rate in each direction, Mbit/s on the wire\n"
      "                            (default 0: no limit, as fast as the copies go)\n"
      "  --queue-bytes N           bottleneck queue (drop-tail), only with --rate-mbit;\n"
      "                            default: one round trip's worth at the rate\n"
      "                            (rate x 2 x delay), at least 256 KiB\n"
      "  --mtu N                   MTU of both devices (default 1500; with offloads TCP\n"
      "                            still moves 64 KiB per packet through the line)\n"
      "  --no-offload              no virtio-net header and no TSO: every packet is one\n"
      "                            MTU-sized read and write (use a large --mtu then)\n"
      "  --txqueuelen N            queue of each device towards this program\n"
      "                            (default 1000 packets)\n"
      "  --hold-mb N               memory for packets in flight per direction; packets\n"
      "                            that do not fit are dropped and counted as 'hold-full'\n"
      "                            (default: enough for rate x delay + queue, or for\n"
      "                            10 Gbit/s x delay without a rate; at least 8 MiB)\n"
      "  --help\n"
      "\n"
      "Prints \"ready\" on stdout once both devices are up. SIGTERM or SIGINT (or the\n"
      "parent's death) stops it; counters per direction then go to stderr.\n"
      "Example: RTT 200 ms, 1 Gbit/s bottleneck:\n"
      "  delayline --ns-a a --ns-b b --delay-ms 100 --rate-mbit 1000\n");
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "delayline: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void bad_usage(const std::string& msg) {
  std::fprintf(stderr, "delayline: %s (see --help)\n", msg.c_str());
  std::exit(2);
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

double parse_number(const std::string& flag, const char* text, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
    bad_usage(flag + ": not a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
              "]: " + text);
  return v;
}

struct Options {
  std::string ns[2];
  std::string addr[2] = {"10.77.0.1", "10.77.0.2"};
  std::string dev[2] = {"dla", "dlb"};
  int prefix_len = 24;
  double delay_ms = 0;
  double rate_mbit = 0;
  double queue_bytes = -1;  // -1: default
  int mtu = 1500;
  bool offload = true;
  int txqueuelen = 1000;
  double hold_mb = -1;  // -1: default
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (a == "--no-offload") {
      o.offload = false;
      continue;
    }
    if (i + 1 >= argc) bad_usage("unknown flag or missing value: " + a);
    const char* v = argv[++i];
    if (a == "--ns-a")
      o.ns[0] = v;
    else if (a == "--ns-b")
      o.ns[1] = v;
    else if (a == "--addr-a")
      o.addr[0] = v;
    else if (a == "--addr-b")
      o.addr[1] = v;
    else if (a == "--dev-a")
      o.dev[0] = v;
    else if (a == "--dev-b")
      o.dev[1] = v;
    else if (a == "--prefix-len")
      o.prefix_len = static_cast<int>(parse_number(a, v, 1, 30));
    else if (a == "--delay-ms")
      o.delay_ms = parse_number(a, v, 0, 60000);
    else if (a == "--rate-mbit")
      o.rate_mbit = parse_number(a, v, 0, 1e6);
    else if (a == "--queue-bytes")
      o.queue_bytes = parse_number(a, v, 1500, 1e11);
    else if (a == "--mtu")
      o.mtu = static_cast<int>(parse_number(a, v, 576, 65535));
    else if (a == "--txqueuelen")
      o.txqueuelen = static_cast<int>(parse_number(a, v, 1, 1e6));
    else if (a == "--hold-mb")
      o.hold_mb = parse_number(a, v, 1, 65536);
    else
      bad_usage("unknown flag: " + a);
  }
  if (o.ns[0].empty() || o.ns[1].empty()) bad_usage("--ns-a and --ns-b are required");
  for (int s = 0; s < 2; ++s) {
    if (o.dev[s].empty() || o.dev[s].size() >= IFNAMSIZ) bad_usage("bad device name: " + o.dev[s]);
    in_addr tmp;
    if (inet_pton(AF_INET, o.addr[s].c_str(), &tmp) != 1)
      bad_usage("not an IPv4 address: " + o.addr[s]);
  }
  if (o.queue_bytes >= 0 && o.rate_mbit <= 0) bad_usage("--queue-bytes needs --rate-mbit");
  return o;
}

// ---- setup: one TUN device inside a namespace ----

int open_netns(const std::string& name) {
  const std::string path = name.find('/') != std::string::npos ? name : "/run/netns/" + name;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(("open " + path).c_str());
  return fd;
}

void ifreq_ioctl(int sock, unsigned long req, ifreq& ifr, const char* what) {
  if (ioctl(sock, req, &ifr) < 0) die(what);
}

void set_inet(ifreq& ifr, const std::string& dev, in_addr addr) {
  std::memset(&ifr, 0, sizeof(ifr));
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr = addr;
  std::memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
}

// Called while the thread is inside the device's namespace.
void write_proc(const std::string& path, const char* value) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;  // best effort (no IPv6, say)
  if (write(fd, value, std::strlen(value)) < 0) {
  }
  close(fd);
}

// Enters the namespace, creates and configures the device there, comes back.
// Returns the TUN file descriptor (non-blocking).
int make_tun(const Options& o, int side, int home_ns) {
  const int ns = open_netns(o.ns[side]);
  if (setns(ns, CLONE_NEWNET) < 0) die(("setns " + o.ns[side]).c_str());
  close(ns);

  const int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) die("open /dev/net/tun");
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", o.dev[side].c_str());
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (o.offload ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die(("TUNSETIFF " + o.dev[side]).c_str());
  if (o.offload) {
    int hdr_len = static_cast<int>(kVnetHdrLen);
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) die("TUNSETVNETHDRSZ");
    const unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, offloads) < 0) die("TUNSETOFFLOAD");
  }

  // The socket belongs to the namespace it is made in: make it here.
  const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket");
  const std::string& dev = o.dev[side];
  // No IPv6 on the line: no router solicitations or MLD reports in the data.
  write_proc("/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6", "1");

  std::memset(&ifr, 0, sizeof(ifr));
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());
  ifr.ifr_mtu = o.mtu;
  ifreq_ioctl(sock, SIOCSIFMTU, ifr, "SIOCSIFMTU");
  std::memset(&ifr, 0, sizeof(ifr));
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());
  ifr.ifr_qlen = o.txqueuelen;
  ifreq_ioctl(sock, SIOCSIFTXQLEN, ifr, "SIOCSIFTXQLEN");

  in_addr addr;
  inet_pton(AF_INET, o.addr[side].c_str(), &addr);
  set_inet(ifr, dev, addr);
  ifreq_ioctl(sock, SIOCSIFADDR, ifr, "SIOCSIFADDR");
  in_addr mask;
  mask.s_addr = htonl(~uint32_t{0} << (32 - o.prefix_len));
  set_inet(ifr, dev, mask);
  ifreq_ioctl(sock, SIOCSIFNETMASK, ifr, "SIOCSIFNETMASK");

  std::memset(&ifr, 0, sizeof(ifr));
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev.c_str());
  ifreq_ioctl(sock, SIOCGIFFLAGS, ifr, "SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP;
  ifreq_ioctl(sock, SIOCSIFFLAGS, ifr, "SIOCSIFFLAGS");
  close(sock);

  if (setns(home_ns, CLONE_NEWNET) < 0) die("setns back");
  return fd;
}

// ---- data path ----

struct Held {
  size_t off;
  uint32_t len;     // bytes read (virtio-net header included)
  uint32_t wire;    // bytes on the wire
  int64_t release;  // CLOCK_MONOTONIC ns
};

// Packets in flight for one direction: bytes in one mapping, used as a ring,
// and their descriptors in arrival order (which is also release order).
class Ring {
 public:
  explicit Ring(size_t cap) : cap_(cap) {
    void* p = mmap(nullptr, cap_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    base_ = static_cast<char*>(p);
  }
  ~Ring() { munmap(base_, cap_); }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Room for one read of up to `need` bytes, or nullptr when full.
  char* reserve(size_t need) {
    if (q_.empty()) {
      tail_ = 0;
      return base_;
    }
    const size_t head = q_.front().off;
    if (tail_ > head) {  // not wrapped: free space at the end, then before head
      if (cap_ - tail_ >= need) return base_ + tail_;
      if (head >= need) return base_;
      return nullptr;
    }
    return head - tail_ >= need ? base_ + tail_ : nullptr;  // wrapped
  }
  void commit(char* at, uint32_t len, uint32_t wire, int64_t release) {
    const size_t off = static_cast<size_t>(at - base_);
    q_.push_back(Held{off, len, wire, release});
    tail_ = std::min(cap_, (off + len + kAlign - 1) / kAlign * kAlign);
    held_ += len;
  }
  bool empty() const { return q_.empty(); }
  const Held& front() const { return q_.front(); }
  const char* data(const Held& h) const { return base_ + h.off; }
  void pop() {
    held_ -= q_.front().len;
    q_.pop_front();
  }
  size_t held_bytes() const { return held_; }
  size_t packets() const { return q_.size(); }

 private:
  char* base_ = nullptr;
  size_t cap_;
  size_t tail_ = 0;
  size_t held_ = 0;
  std::deque<Held> q_;
};

struct Stats {
  uint64_t rx_pkts = 0, rx_segs = 0, rx_bytes = 0;  // bytes: IP bytes on the wire
  uint64_t fwd_pkts = 0, fwd_segs = 0, fwd_bytes = 0;
  uint64_t drop_queue_pkts = 0, drop_queue_bytes = 0;
  uint64_t drop_hold_pkts = 0, drop_hold_bytes = 0;
  uint64_t write_errors = 0, read_errors = 0;
  uint64_t peak_held_bytes = 0;
  uint64_t left_pkts = 0, left_bytes = 0;  // still held at exit
  int last_write_errno = 0;
};

struct Direction {
  const char* name;
  int in_fd, out_fd, stop_fd;
  size_t hdr_len;  // virtio-net header in front of every packet, or 0
  int64_t delay_ns;
  double ns_per_byte;  // 0: no rate limit
  double queue_bytes;
  size_t hold_bytes;
  Stats st;
};

// What a (super-)packet weighs on the wire, and how many segments it is.
// `p` starts at the virtio-net header (if any); `n` is the read length.
void wire_size(const char* p, size_t n, size_t hdr_len, uint32_t& wire, uint32_t& segs) {
  const size_t ip_len = n - hdr_len;
  wire = static_cast<uint32_t>(ip_len);
  segs = 1;
  if (hdr_len == 0) return;
  VnetHdr vh;
  std::memcpy(&vh, p, sizeof(vh));
  const int type = vh.gso_type & ~kGsoEcn;
  if ((type != kGsoTcpV4 && type != kGsoTcpV6) || vh.gso_size == 0) return;
  // Headers repeated in every segment: up to the end of the TCP header
  // (csum_start is where it begins), else what the kernel says.
  size_t headers = vh.hdr_len;
  if (vh.flags & kVnetNeedsCsum) {
    const size_t l4 = vh.csum_start;
    if (l4 + 13 <= ip_len)
      headers = l4 + (static_cast<size_t>(static_cast<uint8_t>(p[hdr_len + l4 + 12]) >> 4)) * 4;
  }
  if (headers == 0 || headers >= ip_len) return;
  const size_t payload = ip_len - headers;
  const size_t n_segs = (payload + vh.gso_size - 1) / vh.gso_size;
  if (n_segs <= 1) return;
  segs = static_cast<uint32_t>(n_segs);
  wire = static_cast<uint32_t>(ip_len + (n_segs - 1) * headers);
}

void run(Direction& d) {
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake up when the packet is due, not 50 us later
  Ring ring(d.hold_bytes);
  static thread_local char scratch[kMaxRead];
  Stats& st = d.st;
  int64_t last_depart = 0;  // when the bottleneck has serialized everything so far

  for (;;) {
    int64_t now = now_ns();
    // Release everything that is due.
    while (!ring.empty() && ring.front().release <= now) {
      const Held& h = ring.front();
      if (write(d.out_fd, ring.data(h), h.len) < 0) {
        ++st.write_errors;
        st.last_write_errno = errno;
      } else {
        uint32_t wire, segs;
        wire_size(ring.data(h), h.len, d.hdr_len, wire, segs);
        ++st.fwd_pkts;
        st.fwd_segs += segs;
        st.fwd_bytes += wire;
      }
      ring.pop();
    }
    // Take in what has arrived, up to a batch (then release again).
    int got = 0;
    bool drained = false;
    while (got < kReadBatch) {
      char* slot = ring.reserve(kMaxRead);
      char* buf = slot != nullptr ? slot : scratch;
      const ssize_t n = read(d.in_fd, buf, kMaxRead);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) ++st.read_errors;
        drained = true;
        break;
      }
      ++got;
      if (static_cast<size_t>(n) <= d.hdr_len) continue;
      now = now_ns();
      uint32_t wire, segs;
      wire_size(buf, static_cast<size_t>(n), d.hdr_len, wire, segs);
      ++st.rx_pkts;
      st.rx_segs += segs;
      st.rx_bytes += wire;
      if (slot == nullptr) {
        ++st.drop_hold_pkts;
        st.drop_hold_bytes += wire;
        continue;
      }
      int64_t release = now + d.delay_ns;
      if (d.ns_per_byte > 0) {
        const int64_t start = std::max(now, last_depart);
        const double queued = static_cast<double>(start - now) / d.ns_per_byte;
        if (queued + wire > d.queue_bytes) {
          ++st.drop_queue_pkts;
          st.drop_queue_bytes += wire;
          continue;
        }
        last_depart = start + static_cast<int64_t>(std::llround(wire * d.ns_per_byte));
        release = last_depart + d.delay_ns;
      }
      ring.commit(slot, static_cast<uint32_t>(n), wire, release);
      st.peak_held_bytes = std::max<uint64_t>(st.peak_held_bytes, ring.held_bytes());
    }
    if (!drained) continue;  // a full batch: release what is due, then read on

    // Nothing more to read: sleep until a packet arrives, the oldest one is due, or stop.
    pollfd fds[2] = {{d.in_fd, POLLIN, 0}, {d.stop_fd, POLLIN, 0}};
    timespec ts{};
    timespec* timeout = nullptr;
    if (!ring.empty()) {
      const int64_t wait = ring.front().release - now_ns();
      if (wait <= 0) continue;
      ts.tv_sec = wait / 1000000000;
      ts.tv_nsec = wait % 1000000000;
      timeout = &ts;
    }
    const int r = ppoll(fds, 2, timeout, nullptr);
    if (r < 0 && errno != EINTR) die("ppoll");
    if (r > 0 && (fds[1].revents & POLLIN)) break;
  }
  while (!ring.empty()) {
    ++st.left_pkts;
    st.left_bytes += ring.front().wire;
    ring.pop();
  }
}

void print_stats(const Direction& d, double seconds) {
  const Stats& s = d.st;
  std::fprintf(stderr,
               "delayline %s: in %" PRIu64 " pkts (%" PRIu64 " segments) %" PRIu64
               " bytes; forwarded %" PRIu64 " pkts (%" PRIu64 " segments) %" PRIu64
               " bytes, %.1f Mbit/s average; dropped: queue %" PRIu64 " pkts %" PRIu64
               " bytes, hold-full %" PRIu64 " pkts %" PRIu64 " bytes; write errors %" PRIu64
               "%s%s, read errors %" PRIu64 "; held at exit %" PRIu64 " pkts %" PRIu64
               " bytes; peak held %" PRIu64 " bytes\n",
               d.name, s.rx_pkts, s.rx_segs, s.rx_bytes, s.fwd_pkts, s.fwd_segs, s.fwd_bytes,
               seconds > 0 ? s.fwd_bytes * 8 / seconds / 1e6 : 0.0, s.drop_queue_pkts,
               s.drop_queue_bytes, s.drop_hold_pkts, s.drop_hold_bytes, s.write_errors,
               s.write_errors ? " last: " : "",
               s.write_errors ? std::strerror(s.last_write_errno) : "", s.read_errors, s.left_pkts,
               s.left_bytes, s.peak_held_bytes);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);

  // Die with the parent (a benchmark script killed hard must not leave us behind).
  const pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) die("PR_SET_PDEATHSIG");
  if (getppid() != parent) return 1;

  // Signals are taken by sigwait in the main thread only.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("open /proc/self/ns/net");
  const int tun_a = make_tun(o, 0, home);
  const int tun_b = make_tun(o, 1, home);
  close(home);
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) die("eventfd");

  const double bytes_per_ns = o.rate_mbit * 1e6 / 8 / 1e9;
  const double delay_s = o.delay_ms / 1000;
  double queue = o.queue_bytes;
  if (o.rate_mbit > 0 && queue < 0)
    queue = std::max(256.0 * 1024, o.rate_mbit * 1e6 / 8 * 2 * delay_s);
  double hold = o.hold_mb * 1024 * 1024;
  if (o.hold_mb < 0) {
    const double rate_bytes = o.rate_mbit > 0 ? o.rate_mbit * 1e6 / 8 : 10e9 / 8;
    hold = rate_bytes * delay_s * 1.25 + std::max(queue, 0.0) + 4.0 * kMaxRead;
    hold = std::max(hold, 8.0 * 1024 * 1024);
  }
  const size_t hold_bytes = static_cast<size_t>(hold) / kAlign * kAlign + 2 * kMaxRead;

  Direction dirs[2];
  for (int i = 0; i < 2; ++i) {
    Direction& d = dirs[i];
    d.name = i == 0 ? "a->b" : "b->a";
    d.in_fd = i == 0 ? tun_a : tun_b;
    d.out_fd = i == 0 ? tun_b : tun_a;
    d.stop_fd = stop_fd;
    d.hdr_len = o.offload ? kVnetHdrLen : 0;
    d.delay_ns = static_cast<int64_t>(std::llround(o.delay_ms * 1e6));
    d.ns_per_byte = o.rate_mbit > 0 ? 1 / bytes_per_ns : 0;
    d.queue_bytes = queue;
    d.hold_bytes = hold_bytes;
  }
  std::fprintf(stderr,
               "delayline: %s %s/%d (%s) <-> %s %s/%d (%s): one-way delay %.3f ms (RTT %.3f ms), "
               "rate %s, queue %s, mtu %d, offload %s, hold %.1f MiB per direction\n",
               o.ns[0].c_str(), o.addr[0].c_str(), o.prefix_len, o.dev[0].c_str(), o.ns[1].c_str(),
               o.addr[1].c_str(), o.prefix_len, o.dev[1].c_str(), o.delay_ms, 2 * o.delay_ms,
               o.rate_mbit > 0 ? (std::to_string(o.rate_mbit) + " Mbit/s").c_str() : "unlimited",
               queue > 0 ? (std::to_string(static_cast<long long>(queue)) + " bytes").c_str() : "-",
               o.mtu, o.offload ? "on (vnet hdr, TSO)" : "off", hold_bytes / 1048576.0);

  const int64_t started = now_ns();
  std::thread workers[2] = {std::thread(run, std::ref(dirs[0])),
                            std::thread(run, std::ref(dirs[1]))};
  std::printf("ready\n");
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  const uint64_t one = 1;
  if (write(stop_fd, &one, sizeof(one)) < 0) die("eventfd write");
  for (auto& t : workers) t.join();
  const double seconds = static_cast<double>(now_ns() - started) / 1e9;
  std::fprintf(stderr, "delayline: stopped by signal %d after %.1f s\n", sig, seconds);
  for (const auto& d : dirs) print_stats(d, seconds);
  close(tun_a);
  close(tun_b);
  close(stop_fd);
  return 0;
}
