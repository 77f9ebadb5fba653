// What the harnesses share. Netlink harnesses take one datagram and hand it to
// kernel::ParseReply, as NetlinkSocket::Request does with every recv(), so the
// parsers see only messages the reply walk let through; seeds are the
// datagrams of tests/fixtures/netlink. Text harnesses take the file's bytes.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kernel/netlink.h"

namespace netagent::fuzz {

// Every data message of one datagram, any sequence and port.
inline void ForEachMessage(const uint8_t* data, size_t size,
                           absl::FunctionRef<void(const nlmsghdr&)> fn) {
  kernel::ReplyProgress progress;
  (void)kernel::ParseReply(
      data, size, 0, 0, "fuzz",
      [&](const nlmsghdr& m) {
        fn(m);
        return absl::OkStatus();
      },
      progress);
}

inline absl::string_view Text(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// A promise the code under test broke: reported like a sanitizer finding, so
// the input is saved and the suite fails.
[[noreturn]] inline void Broken(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
  std::abort();
}

}  // namespace netagent::fuzz

#define FUZZ_CHECK(cond) ((cond) ? (void)0 : ::netagent::fuzz::Broken(__FILE__, __LINE__, #cond))
