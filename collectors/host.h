// Who the host is: uname fields and the hostname of the agent's UTS namespace.
#pragma once

#include <string>

namespace netagent::collectors {

struct HostIdentity {
  std::string hostname;
  std::string kernel_release;
  std::string kernel_version;
  std::string machine;
};

HostIdentity ReadHostIdentity();

}  // namespace netagent::collectors
