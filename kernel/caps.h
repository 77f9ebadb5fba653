// The Linux capabilities this process holds, so that a refusal can name the
// one that is missing (a systemd unit's CapabilityBoundingSet, a container's
// securityContext) instead of a bare "Operation not permitted".
#pragma once

#include <linux/capability.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace netagent::kernel {

// In the effective set (capget(2); no libcap).
bool HasCapability(int cap);

// "CAP_NET_ADMIN", or "capability N" for a number this build does not name.
std::string CapabilityName(int cap);

// What an operation needs: every group satisfied, a group by any one of its
// capabilities (the kernel's "CAP_BPF or CAP_SYS_ADMIN").
using CapabilityNeeds = std::vector<std::vector<int>>;

// The groups of `needs` this process satisfies none of, as text:
// "CAP_BPF (or CAP_SYS_ADMIN)", joined by " and "; empty when none is missing.
std::string MissingCapabilities(const CapabilityNeeds& needs);

// `status` with the missing capabilities named when it is a permission
// refusal (PERMISSION_DENIED) and some are missing; otherwise unchanged.
absl::Status WithCapabilityHint(absl::Status status, const CapabilityNeeds& needs);

// The sentence WithCapabilityHint appends, for messages that are not a
// status: "; this process lacks CAP_X (...)" or empty.
std::string CapabilityHint(const CapabilityNeeds& needs);

}  // namespace netagent::kernel
