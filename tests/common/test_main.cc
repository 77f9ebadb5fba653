// The main of the test binaries that touch bpf and namespaces. Each test
// process (ctest runs one test per process) gets a private mount namespace
// in which /sys/fs/bpf is not mounted: what the code under test needs, it
// must set up itself, as on a fresh machine, and nothing it pins outlives it.
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tests/common/test_support.h"

namespace netagent::testing {

std::string IsolateMounts() {
  if (::unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + strerror(errno);
  // Nothing done here propagates back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return std::string("make / private: ") + strerror(errno);
  for (int i = 0; i < 16; ++i) {
    struct statfs fs {};
    if (::statfs("/sys/fs/bpf", &fs) != 0 || fs.f_type != BPF_FS_MAGIC) return "";
    if (::umount2("/sys/fs/bpf", MNT_DETACH) != 0)
      return std::string("umount /sys/fs/bpf: ") + strerror(errno);
  }
  return "/sys/fs/bpf: still a bpf filesystem after 16 unmounts";
}

}  // namespace netagent::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::geteuid() == 0) {
    const std::string why = netagent::testing::IsolateMounts();
    if (!why.empty()) {
      std::fprintf(stderr, "cannot isolate the test's mounts: %s\n", why.c_str());
      return 1;
    }
  }
  return RUN_ALL_TESTS();
}
