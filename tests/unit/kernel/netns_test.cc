#include "kernel/netns.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace netagent::kernel {
namespace {

// Found on a 6.18 host where the agent could not read /proc/1/ns/net (PID 1
// outside its reach): it took the host's own namespace for a child one and
// refused every host-wide knob there.
TEST(Netns, TheInitialNamespaceIsKnownByItsFixedInodeOrByPid1) {
  const NsFileId fixed{kInitialNetnsInode, 4};
  EXPECT_TRUE(IsInitialNetns(fixed, std::nullopt));
  EXPECT_TRUE(IsInitialNetns(fixed, NsFileId{0xF0000123, 4}));
  // Older kernels number it like any other: PID 1's tells.
  const NsFileId old{0xF0000098, 4};
  EXPECT_TRUE(IsInitialNetns(old, old));
  EXPECT_FALSE(IsInitialNetns(old, NsFileId{0xF0000098, 5}));
  EXPECT_FALSE(IsInitialNetns(NsFileId{0xF0000200, 4}, old));
  // Neither: not known to be the initial one, so treated as a child.
  EXPECT_FALSE(IsInitialNetns(old, std::nullopt));
}

// The namespace this test runs in, as the kernel numbers it: a fixed-inode
// kernel never gives a child namespace the initial one's inode.
TEST(Netns, CurrentNamespaceAgreesWithItsInode) {
  auto id = CurrentNetns();
  ASSERT_TRUE(id.ok()) << id.status();
  if (id->inode == kInitialNetnsInode) EXPECT_TRUE(id->initial);
  struct stat self;
  ASSERT_EQ(::stat("/proc/self/ns/net", &self), 0);
  EXPECT_EQ(id->inode, self.st_ino);
}

}  // namespace
}  // namespace netagent::kernel
