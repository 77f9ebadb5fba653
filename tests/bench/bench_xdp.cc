// XDP cost through BPF_PROG_TEST_RUN, same packets, same run, one CPU:
//   harness  an empty XDP program (subtracted from every figure: "net")
//   xdpfilt  xdp-filter's xdpfilt_alw_all (Debian's xdp-tools) with one source
//            IP rule and one TCP destination-port rule
//   ours     netagent_xdp with the same two rules (exact source + port)
//   full     netagent_xdp with everything on: 10,000 CIDR + 100,000 exact
//            blocklist entries (plus allowlists), port rules, SYN guard on the
//            real clock, drop samples on as an operator would run them (1 in
//            100, at most 100 per second per CPU), rule hit counters
// Each figure is the minimum (and median) of `rounds` runs of `repeat`
// packets; the programs are interleaved round by round. Usage: bench_xdp [repeat] [rounds]
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/bpf/xdp_harness.h"
#include "xdp_empty.skel.h"

using namespace netagent::bpftest;

namespace {

constexpr const char* kXdpFilterObj = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o";
// xdp-filter's common_kern_user.h
constexpr uint64_t kMapFlagSrc = 1 << 0, kMapFlagDst = 1 << 1, kMapFlagTcp = 1 << 2;

int Die(const std::string& what) {
  std::fprintf(stderr, "bench_xdp: %s\n", what.c_str());
  std::exit(1);
}

double RunNs(int prog_fd, const Bytes& pkt, int repeat) {
  Bytes out(pkt.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(pkt.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .repeat = repeat);
  if (bpf_prog_test_run_opts(prog_fd, &o)) Die("test run failed");
  return o.duration;  // the kernel's mean per run, ns
}

uint32_t Action(int prog_fd, const Bytes& pkt) {
  Bytes out(pkt.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(pkt.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &o)) Die("test run failed");
  return o.retval;
}

const char* ActName(uint32_t a) { return a == XDP_DROP ? "DROP" : a == XDP_PASS ? "PASS" : "?"; }

// xdp-filter loaded from Debian's object, its pinning turned off.
struct XdpFilter {
  bpf_object* obj = nullptr;
  int fd = -1;
  XdpFilter(const std::string& src_ip, uint16_t port) {
    obj = bpf_object__open_file(kXdpFilterObj, nullptr);
    if (!obj) Die(std::string("cannot open ") + kXdpFilterObj + " (install xdp-tools)");
    bpf_map* m;
    bpf_object__for_each_map(m, obj) bpf_map__set_pin_path(m, nullptr);
    if (bpf_object__load(obj)) Die("cannot load xdp-filter");
    bpf_program* p = bpf_object__next_program(obj, nullptr);
    fd = bpf_program__fd(p);
    int ncpu = libbpf_num_possible_cpus();
    std::vector<uint64_t> v(ncpu, kMapFlagSrc);
    Bytes a = Addr4(src_ip);
    if (bpf_map_update_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "filter_ipv4")), a.data(),
                            v.data(), BPF_ANY))
      Die("xdp-filter ip rule");
    std::fill(v.begin(), v.end(), kMapFlagDst | kMapFlagTcp);
    uint32_t k = port;
    if (bpf_map_update_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "filter_ports")), &k,
                            v.data(), BPF_ANY))
      Die("xdp-filter port rule");
  }
  ~XdpFilter() { bpf_object__close(obj); }
};

std::string Ip(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  return inet_ntoa(a);
}

double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = argc > 1 ? std::atoi(argv[1]) : 1000000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  if (std::string why = BpfUnavailableReason(); !why.empty()) Die(why);

  const std::string blocked = "10.0.0.66", client = "10.0.0.1";
  const uint16_t blocked_port = 80, open_port = 443;
  // The packets: a SYN that matches no rule (the whole pipeline, then PASS)
  // and one from the blocklisted source (DROP).
  Bytes syn_pass = Syn4(client, open_port);
  Bytes syn_drop = Syn4(blocked, open_port);

  xdp_empty* empty = xdp_empty__open_and_load();
  if (!empty) Die("cannot load the empty program");
  int empty_fd = bpf_program__fd(empty->progs.xdp_empty);

  XdpFilter filt(blocked, blocked_port);

  Xdp ours([](netagent_xdp* s) {
    s->rodata->en_allow_exact = 0;
    s->rodata->en_allow_cidr = 0;
    s->rodata->en_block_cidr = 0;
    s->rodata->en_syn_guard = 0;
    s->rodata->en_samples = 0;
  });
  if (!ours.ok()) Die(ours.error());
  ours.SetConfig(na_config{});
  ours.AddExact4(blocked, 1);
  ours.SetPort(blocked_port, NA_PORT_BLOCK_TCP, 2);

  Xdp full;  // every feature on, the real clock
  if (!full.ok()) Die(full.error());
  {
    na_config c{};
    c.malformed_drop = 1;
    c.syn_rate = 1000000000;  // never limits the one benchmark source
    c.syn_burst = 1000000000;
    c.syn_prefix4 = 32;
    c.syn_prefix6 = 128;
    c.global_rate = 100000;
    c.global_burst = 100000;
    c.sample_every = 100;
    c.sample_max_per_sec = 100;
    full.SetConfig(c);
    std::mt19937 rng(42);
    uint32_t rule = 1;
    std::vector<std::pair<uint32_t, uint32_t>> cidrs;  // (network, plen)
    while (cidrs.size() < 10000) {
      uint32_t plen = 16 + rng() % 13;  // /16../28
      uint32_t net = (rng() & ~((1u << (32 - plen)) - 1));
      if ((net >> 24) == 10 || (net >> 24) == 0 || (net >> 24) >= 224) continue;
      if (full.AddCidr4(NA_LIST_BLOCK, Ip(net), plen, rule++)) Die("cidr insert");
      cidrs.push_back({net, plen});
    }
    for (int i = 0; i < 100000;) {
      uint32_t a = rng();
      if ((a >> 24) == 10 || (a >> 24) == 0 || (a >> 24) >= 224) continue;
      if (full.AddExact4(Ip(a), rule++)) Die("exact insert");
      i++;
    }
    // Allowlists with a few entries, so their lookups are real.
    for (int i = 0; i < 100; i++) {
      full.AddExact4(Ip(0xc6120000u + i), rule++, NA_ACT_ALLOW);             // 198.18.0.x
      full.AddCidr4(NA_LIST_ALLOW, Ip(0xc6130000u + (i << 8)), 24, rule++);  // 198.19.x.0/24
    }
    full.AddExact4(blocked, rule++);
    full.SetPort(blocked_port, NA_PORT_BLOCK_TCP, rule++);
    std::printf(
        "full pipeline: %zu CIDR + 100001 exact blocklist entries, 100 + 100 allowlist, "
        "%u rule ids\n",
        cidrs.size(), rule - 1);
  }
  // SYN sources that match no rule: one in a /16 that holds CIDR rules (the
  // long-prefix table is probed and misses) and one in a /16 without (the /16
  // directory answers). Both from the space the rules are drawn from.
  std::string src_walk, src_dir;
  {
    std::mt19937 rng(7);
    int dir_fd = bpf_map__fd(full.skel()->maps.cidr4_dir);
    while (src_walk.empty() || src_dir.empty()) {
      uint32_t a = rng();
      if ((a >> 24) == 10 || (a >> 24) == 0 || (a >> 24) >= 224) continue;
      if (Action(full.prog_fd(), Syn4(Ip(a), open_port)) != XDP_PASS) continue;
      uint32_t slot = a >> 16;
      na_dir4 d{};
      bpf_map_lookup_elem(dir_fd, &slot, &d);
      bool rules_in_slot = d.list[NA_LIST_BLOCK].long_lens || d.list[NA_LIST_BLOCK].has_short ||
                           d.list[NA_LIST_ALLOW].long_lens || d.list[NA_LIST_ALLOW].has_short;
      (rules_in_slot ? src_walk : src_dir) = Ip(a);
    }
  }
  Bytes syn_walk = Syn4(src_walk, open_port), syn_dir = Syn4(src_dir, open_port);

  struct Case {
    std::string name;
    int fd;
    const Bytes* pkt;
    std::vector<double> ns;
  };
  std::vector<Case> cases = {
      {"harness (empty XDP)", empty_fd, &syn_pass, {}},
      {"xdp-filter, SYN, no match", filt.fd, &syn_pass, {}},
      {"ours (same rules), SYN, no match", ours.prog_fd(), &syn_pass, {}},
      {"xdp-filter, blocked source", filt.fd, &syn_drop, {}},
      {"ours (same rules), blocked source", ours.prog_fd(), &syn_drop, {}},
      {"full, SYN pass, /16 without CIDR rules", full.prog_fd(), &syn_dir, {}},
      {"full, SYN pass, /16 with CIDR rules (probes)", full.prog_fd(), &syn_walk, {}},
      {"full, blocklisted /32 drop", full.prog_fd(), &syn_drop, {}},
  };
  for (Case& c : cases)
    std::printf("  %-48s -> %s\n", c.name.c_str(), ActName(Action(c.fd, *c.pkt)));
  for (int r = 0; r < rounds; r++)
    for (Case& c : cases) c.ns.push_back(RunNs(c.fd, *c.pkt, repeat));

  // Interference from other work on the machine only ever adds time: the
  // minimum is the figure, the median shows the spread.
  double harness = Min(cases[0].ns), harness_med = Median(cases[0].ns);
  std::printf("\nBPF_PROG_TEST_RUN, repeat=%d, %d interleaved rounds, one CPU\n", repeat, rounds);
  std::printf("  %-50s %7s %7s %9s\n", "program / packet", "min ns", "net ns", "median net");
  std::vector<double> net(cases.size());
  for (size_t i = 0; i < cases.size(); i++) {
    net[i] = Min(cases[i].ns) - harness;
    std::printf("  %-50s %7.1f %7.1f %9.1f\n", cases[i].name.c_str(), Min(cases[i].ns),
                i ? net[i] : 0.0, i ? Median(cases[i].ns) - harness_med : 0.0);
  }
  std::printf("\nours / xdp-filter (net), SYN matching no rule: %.2f (target <= 0.70)\n",
              net[2] / net[1]);
  std::printf("ours / xdp-filter (net), blocked source:       %.2f (target <= 0.70)\n",
              net[4] / net[3]);
  std::printf(
      "full pipeline, SYN pass path: %.1f ns net, %.1f from a /16 holding rules (target <= 90)\n",
      net[5], net[6]);
  std::printf("full pipeline, blocklisted /32 drop path: %.1f ns net (target <= 40)\n", net[7]);
  xdp_empty__destroy(empty);
  return 0;
}
