// Loads the verdict pipeline (netagent_xdp through its skeleton; nothing
// attached, nothing pinned), fills its maps by name and runs packets through
// BPF_PROG_TEST_RUN. Used by the BPF tests and by the XDP benchmark.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datapath/cidr4_index.h"
#include "netagent_dp.h"
#include "netagent_xdp.skel.h"
#include "tests/bpf/packets.h"

namespace netagent::bpftest {

struct RunOut {
  int err = 0;          // from bpf_prog_test_run_opts (0 or -errno)
  uint32_t retval = 0;  // XDP or TC action
  uint32_t duration_ns = 0;
};

// Why BPF tests cannot run here, or "" when they can.
inline std::string BpfUnavailableReason() {
  if (geteuid() != 0) return "needs root (CAP_BPF, CAP_PERFMON) to load XDP programs";
  return "";
}

// The verdict pipeline's maps and a loaded program, whichever object they
// came from (the XDP program or the TC guard share map names and layouts).
class Guard {
 public:
  virtual ~Guard() = default;

  bool ok() const { return obj_ != nullptr; }
  const std::string& error() const { return error_; }
  int prog_fd() const { return prog_fd_; }
  // Whether a program's return value means the packet was dropped.
  virtual bool Dropped(uint32_t retval) const = 0;

  int map_fd(const char* name) const {
    bpf_map* m = bpf_object__find_map_by_name(obj_, name);
    return m ? bpf_map__fd(m) : -1;
  }

  int SetConfig(const na_config& c) {
    uint32_t zero = 0;
    return bpf_map_update_elem(map_fd("na_config"), &zero, &c, BPF_ANY);
  }

  RunOut Run(const Bytes& pkt, int repeat = 1) {
    Bytes out(pkt.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(pkt.size()),
                .data_size_out = static_cast<uint32_t>(out.size()), .repeat = repeat);
    RunOut r;
    r.err = bpf_prog_test_run_opts(prog_fd(), &o);
    if (r.err) r.err = -errno;
    r.retval = o.retval;
    r.duration_ns = o.duration;
    return r;
  }

  // Address rules: exact ones go to the shared exact table with their list.
  int AddExact4(const std::string& a, uint32_t rule, uint32_t action = NA_ACT_BLOCK) {
    Bytes k = Addr4(a);
    na_rule v{rule, action};
    return bpf_map_update_elem(map_fd("exact4"), k.data(), &v, BPF_ANY);
  }
  int AddExact6(const std::string& a, uint32_t rule, uint32_t action = NA_ACT_BLOCK) {
    Bytes k = Addr6(a);
    na_rule v{rule, action};
    return bpf_map_update_elem(map_fd("exact6"), k.data(), &v, BPF_ANY);
  }
  // CIDR rules; `list` is NA_LIST_ALLOW or NA_LIST_BLOCK. IPv4 goes through
  // Cidr4Index as the loader will: long entry first, then the directory.
  int AddCidr4(int list, const std::string& a, uint32_t plen, uint32_t rule) {
    return Apply4(cidr4_.Add(list, ntohl(Addr4Host(a)), plen, rule));
  }
  int RemoveCidr4(int list, const std::string& a, uint32_t plen) {
    return Apply4(cidr4_.Remove(list, ntohl(Addr4Host(a)), plen));
  }
  int AddCidr6(int list, const std::string& a, uint32_t plen, uint32_t rule) {
    na_lpm6_key k{plen, {}};
    Bytes b = Addr6(a);
    std::memcpy(k.addr, b.data(), 16);
    na_rule v{rule, 0};
    return bpf_map_update_elem(map_fd(list == NA_LIST_ALLOW ? "allow6_lpm" : "block6_lpm"), &k, &v,
                               BPF_ANY);
  }
  const datapath::Cidr4Index& cidr4() const { return cidr4_; }

  int SetPort(uint16_t port, uint32_t flags, uint32_t rule) {
    uint32_t k = port;
    na_port_rule v{rule, flags};
    return bpf_map_update_elem(map_fd("ports"), &k, &v, BPF_ANY);
  }

  // Per-CPU {packets, bytes} summed over CPUs.
  na_counter Counter(uint32_t reason, bool dropped) {
    return SumCounter("counters", NA_CNT_IDX(reason, dropped));
  }
  na_counter RuleHits(uint32_t rule) { return SumCounter("rule_hits", rule); }
  uint64_t Event(uint32_t ev) {
    std::vector<uint64_t> v(ncpu_);
    if (bpf_map_lookup_elem(map_fd("events"), &ev, v.data())) return ~0ull;
    uint64_t s = 0;
    for (uint64_t x : v) s += x;
    return s;
  }

  // Drains the ring buffer.
  std::vector<na_sample> Samples() {
    std::vector<na_sample> got;
    ring_buffer* rb = ring_buffer__new(
        map_fd("samples"),
        [](void* ctx, void* data, size_t size) {
          if (size >= sizeof(na_sample)) {
            na_sample s;
            std::memcpy(&s, data, sizeof(s));
            static_cast<std::vector<na_sample>*>(ctx)->push_back(s);
          }
          return 0;
        },
        &got, nullptr);
    if (!rb) return got;
    ring_buffer__consume(rb);
    ring_buffer__free(rb);
    return got;
  }

 protected:
  Guard() {
    // Per-CPU state (counters, the global SYN bucket, sampling) is read back
    // from the CPU the runs happen on: stay on one.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(sched_getcpu(), &set);
    sched_setaffinity(0, sizeof(set), &set);
    libbpf_set_print(nullptr);
    ncpu_ = libbpf_num_possible_cpus();
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  bpf_object* obj_ = nullptr;  // set by the subclass once loaded
  int prog_fd_ = -1;
  std::string error_;

 private:
  na_counter SumCounter(const char* map, uint32_t idx) {
    std::vector<na_counter> v(ncpu_);
    na_counter s{};
    if (bpf_map_lookup_elem(map_fd(map), &idx, v.data())) return {~0ull, ~0ull};
    for (const na_counter& c : v) {
      s.packets += c.packets;
      s.bytes += c.bytes;
    }
    return s;
  }

  static uint32_t Addr4Host(const std::string& a) {
    uint32_t v;
    Bytes b = Addr4(a);
    std::memcpy(&v, b.data(), 4);
    return v;
  }
  int Apply4(const datapath::Cidr4Index::Delta& d) {
    int lfd = map_fd("cidr4_long"), dfd = map_fd("cidr4_dir");
    if (d.long_put && bpf_map_update_elem(lfd, &d.long_put->first, &d.long_put->second, BPF_ANY))
      return -errno;
    for (const auto& [slot, v] : d.dir)
      if (bpf_map_update_elem(dfd, &slot, &v, BPF_ANY)) return -errno;
    if (d.long_del && bpf_map_delete_elem(lfd, &*d.long_del)) return -errno;
    return 0;
  }

  datapath::Cidr4Index cidr4_;
  int ncpu_ = 1;
};

// netagent_xdp through its skeleton.
class Xdp : public Guard {
 public:
  using Tweak = std::function<void(netagent_xdp*)>;

  // Opens and loads; `tweak` sets the const volatile switches before load.
  // On failure error() says why (errno text).
  explicit Xdp(const Tweak& tweak = {}) {
    skel_ = netagent_xdp__open();
    if (!skel_) {
      error_ = std::string("open: ") + std::strerror(errno);
      return;
    }
    if (tweak) tweak(skel_);
    if (int err = netagent_xdp__load(skel_)) {
      error_ = std::string("load: ") + std::strerror(-err);
      netagent_xdp__destroy(skel_);
      skel_ = nullptr;
      return;
    }
    obj_ = skel_->obj;
    prog_fd_ = bpf_program__fd(skel_->progs.netagent_xdp);
  }
  ~Xdp() override {
    if (skel_) netagent_xdp__destroy(skel_);
  }

  bool Dropped(uint32_t retval) const override { return retval == XDP_DROP; }
  netagent_xdp* skel() { return skel_; }

 private:
  netagent_xdp* skel_ = nullptr;
};

}  // namespace netagent::bpftest
