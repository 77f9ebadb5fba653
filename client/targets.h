// Where netctl sends a command: agents named on the command line, in a targets
// file, or behind a DNS name (each A/AAAA record is one agent, as a Kubernetes
// headless Service gives).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace netagent::client {

inline constexpr uint16_t kDefaultPort = 9470;
inline constexpr const char* kDefaultSocket = "/run/netagent/netagent.sock";

struct Target {
  // As the user wrote it (or "NAME/ADDRESS" for a DNS record); used in output.
  std::string display;
  // gRPC channel target: "unix:///path", "host:port", "[v6]:port".
  std::string address;
  bool unix_socket = false;
  // Name to verify the server certificate against when connecting by address
  // (DNS-discovered targets); empty means the host part of `address`.
  std::string tls_name;
  // Set when the target could not even be formed (a DNS name that does not
  // resolve): reported as that target's failure, next to the others.
  std::string error;
};

// "unix:///path", "unix:/path", "/path" (a socket), "host", "host:port",
// "[v6]:port", or a bare IPv6 address. INVALID_ARGUMENT says why.
absl::StatusOr<Target> ParseTarget(absl::string_view text);

// One target per line; blank lines and '#' comments are skipped. Errors name
// the file and line.
absl::StatusOr<std::vector<Target>> ParseTargetsFile(absl::string_view text,
                                                     absl::string_view filename);

// "NAME:PORT" -> name and port; INVALID_ARGUMENT for anything else.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseDnsName(absl::string_view text);

// Resolves NAME:PORT to one target per address. An unresolvable name gives a
// single target carrying the error.
std::vector<Target> ResolveDnsTargets(const std::string& name, uint16_t port);

}  // namespace netagent::client
