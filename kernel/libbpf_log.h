// libbpf's messages, every one through a single hook set once per process:
// to the agent's log (debug for libbpf's info and debug lines, warn for its
// warnings), or, on a thread inside a LibbpfLogCapture, into that capture
// instead. A load that fails puts the end of the verifier's log into the
// error it returns; an error that is an expected answer (an empty TC slot
// queried) is captured and dropped.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kernel/caps.h"

namespace netagent::kernel {

// Idempotent; every entry point of the loader and the manager calls it.
void InstallLibbpfLog();

class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  void Append(const char* text);
  // The last `max` bytes of what was captured, from a line start.
  std::string Tail(size_t max = 2048) const;

 private:
  std::string text_;
  LibbpfLogCapture* outer_;
};

// What loading a program needs, as the kernel checks it: a networking
// program (XDP, TC) bpf_capable() and bpf_net_capable(); a tracing one
// bpf_capable() and perfmon_capable().
inline const CapabilityNeeds kNetProgramNeeds = {{CAP_BPF, CAP_SYS_ADMIN},
                                                 {CAP_NET_ADMIN, CAP_SYS_ADMIN}};
inline const CapabilityNeeds kTracingProgramNeeds = {{CAP_BPF, CAP_SYS_ADMIN},
                                                     {CAP_PERFMON, CAP_SYS_ADMIN}};

// A failed libbpf call (`err`: its return value or an errno): the errno's
// status, the end of what `log` captured (the verifier's log for a load),
// and, for a permission refusal, the capabilities of `needs` this process
// lacks.
absl::Status LoadError(int err, absl::string_view what, const LibbpfLogCapture& log,
                       const CapabilityNeeds& needs);

}  // namespace netagent::kernel
