// The TC guard (netagent_tc_guard) through its skeleton, with the same map
// helpers as the XDP program (Guard): nothing attached, nothing pinned.
#pragma once

#include <linux/pkt_cls.h>

#include "netagent_tc_guard.skel.h"
#include "tests/bpf/xdp_harness.h"

namespace netagent::bpftest {

class TcGuard : public Guard {
 public:
  using Tweak = std::function<void(netagent_tc_guard*)>;

  explicit TcGuard(const Tweak& tweak = {}) {
    skel_ = netagent_tc_guard__open();
    if (!skel_) {
      error_ = std::string("open: ") + std::strerror(errno);
      return;
    }
    if (tweak) tweak(skel_);
    if (int err = netagent_tc_guard__load(skel_)) {
      error_ = std::string("load: ") + std::strerror(-err);
      netagent_tc_guard__destroy(skel_);
      skel_ = nullptr;
      return;
    }
    obj_ = skel_->obj;
    prog_fd_ = bpf_program__fd(skel_->progs.netagent_tc_guard);
  }
  ~TcGuard() override {
    if (skel_) netagent_tc_guard__destroy(skel_);
  }

  // A pass is TC_ACT_UNSPEC (the next filter on the hook runs).
  bool Dropped(uint32_t retval) const override { return retval == TC_ACT_SHOT; }
  netagent_tc_guard* skel() { return skel_; }

 private:
  netagent_tc_guard* skel_ = nullptr;
};

}  // namespace netagent::bpftest
