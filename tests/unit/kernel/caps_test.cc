// A permission refusal names the capability this process lacks. The test
// drops one from its effective set in a child process (capset) and checks
// what the hint says there; the parent keeps its own.
#include "kernel/caps.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace netagent::kernel {
namespace {

bool DropEffective(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  data[cap / 32].effective &= ~(1u << (cap % 32));
  return ::syscall(SYS_capset, &header, data) == 0;
}

TEST(Capabilities, ARefusalNamesTheCapabilityThisProcessLacks) {
  if (!HasCapability(CAP_SYS_ADMIN) || !HasCapability(CAP_BPF)) {
    GTEST_SKIP() << "needs root with CAP_SYS_ADMIN and CAP_BPF";
  }
  const CapabilityNeeds bpf = {{CAP_BPF, CAP_SYS_ADMIN}, {CAP_NET_ADMIN, CAP_SYS_ADMIN}};
  const absl::Status refused = absl::PermissionDeniedError("load the XDP program");
  // Held: nothing to say, and other errors are never touched.
  EXPECT_EQ(MissingCapabilities(bpf), "");
  EXPECT_EQ(WithCapabilityHint(refused, bpf), refused);
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipefd[0]);
    std::string out;
    if (DropEffective(CAP_SYS_ADMIN) && DropEffective(CAP_BPF)) {
      out = std::string(WithCapabilityHint(refused, bpf).message()) + "|" +
            std::string(WithCapabilityHint(absl::NotFoundError("x"), bpf).message()) + "|" +
            MissingCapabilities({{CAP_NET_ADMIN}});
    }
    (void)!::write(pipefd[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(pipefd[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof(buf))) > 0;) got.append(buf, n);
  ::close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(got,
            "load the XDP program; this process lacks CAP_BPF (or CAP_SYS_ADMIN) (grant it in the "
            "systemd unit's CapabilityBoundingSet or the container's "
            "securityContext.capabilities.add)|x|");
  EXPECT_EQ(CapabilityName(CAP_PERFMON), "CAP_PERFMON");
  EXPECT_EQ(CapabilityName(63), "capability 63");
}

}  // namespace
}  // namespace netagent::kernel
