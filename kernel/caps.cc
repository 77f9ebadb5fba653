#include "kernel/caps.h"

#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace netagent::kernel {

bool HasCapability(int cap) {
  if (cap < 0 || cap >= 64) return false;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective >> (cap % 32)) & 1u;
}

std::string CapabilityName(int cap) {
  switch (cap) {
    case CAP_NET_ADMIN:
      return "CAP_NET_ADMIN";
    case CAP_NET_RAW:
      return "CAP_NET_RAW";
    case CAP_SYS_ADMIN:
      return "CAP_SYS_ADMIN";
    case CAP_SYS_NICE:
      return "CAP_SYS_NICE";
    case CAP_SYS_RESOURCE:
      return "CAP_SYS_RESOURCE";
    case CAP_DAC_READ_SEARCH:
      return "CAP_DAC_READ_SEARCH";
    case CAP_DAC_OVERRIDE:
      return "CAP_DAC_OVERRIDE";
    case CAP_PERFMON:
      return "CAP_PERFMON";
    case CAP_BPF:
      return "CAP_BPF";
    default:
      return absl::StrCat("capability ", cap);
  }
}

std::string MissingCapabilities(const CapabilityNeeds& needs) {
  std::vector<std::string> missing;
  for (const std::vector<int>& group : needs) {
    bool held = false;
    for (int cap : group) held = held || HasCapability(cap);
    if (held || group.empty()) continue;
    std::string text = CapabilityName(group.front());
    if (group.size() > 1) {
      std::vector<std::string> others;
      for (size_t i = 1; i < group.size(); ++i) others.push_back(CapabilityName(group[i]));
      absl::StrAppend(&text, " (or ", absl::StrJoin(others, " or "), ")");
    }
    missing.push_back(std::move(text));
  }
  return absl::StrJoin(missing, " and ");
}

std::string CapabilityHint(const CapabilityNeeds& needs) {
  const std::string missing = MissingCapabilities(needs);
  if (missing.empty()) return "";
  return absl::StrCat("; this process lacks ", missing,
                      " (grant it in the systemd unit's CapabilityBoundingSet or the "
                      "container's securityContext.capabilities.add)");
}

absl::Status WithCapabilityHint(absl::Status status, const CapabilityNeeds& needs) {
  if (status.code() != absl::StatusCode::kPermissionDenied) return status;
  const std::string hint = CapabilityHint(needs);
  if (hint.empty()) return status;
  return absl::Status(status.code(), absl::StrCat(status.message(), hint));
}

}  // namespace netagent::kernel
