// What every test binary shares: one way to wait for a condition (poll, never
// sleep-then-assert), one way to skip without root, and the mount isolation
// the kernel-facing binaries run in (see test_main.cc).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace netagent::testing {

// Polls `cond` until it returns true or `timeout` passes; returns its last
// answer. Poll interval starts at 1 ms and doubles up to `every`, so a fast
// condition costs little and a slow one does not spin.
template <typename F>
bool Eventually(F&& cond, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::chrono::milliseconds every = std::chrono::milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::milliseconds wait(1);
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, every);
  }
}

// Root is needed for namespaces, netlink writes and bpf; without it the
// test is skipped and says why: REQUIRE_ROOT() or REQUIRE_ROOT("and XDP").
#define REQUIRE_ROOT(...)                                                                   \
  do {                                                                                      \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces " __VA_ARGS__; \
  } while (0)

// Called by the shared test main before any test (and any thread): moves the
// process into a private mount namespace and unmounts bpffs there, so every
// test starts on a host as bare as a fresh machine (no bpffs, no pins left by
// anyone), and what it pins vanishes with it. Returns an error text, or "".
std::string IsolateMounts();

}  // namespace netagent::testing
