#include "collectors/host.h"

#include <sys/utsname.h>

namespace netagent::collectors {

HostIdentity ReadHostIdentity() {
  HostIdentity id;
  utsname u{};
  if (::uname(&u) == 0) {
    id.hostname = u.nodename;
    id.kernel_release = u.release;
    id.kernel_version = u.version;
    id.machine = u.machine;
  }
  return id;
}

}  // namespace netagent::collectors
