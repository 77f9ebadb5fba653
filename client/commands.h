// netctl's subcommands: each builds its request, runs it against every target
// through FanOut/StreamAll, and prints through the output layer. Each returns
// the process exit code: 0 when every target succeeded, 1 when any failed.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/fanout.h"
#include "client/output.h"
#include "client/targets.h"

namespace netagent::client {

struct CommandContext {
  std::vector<Target> targets;
  const Dialer* dialer = nullptr;
  Format format = Format::kTable;
  // Show which target each line is about (see PrintOutcomes).
  bool label_targets = false;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
};

int RunHost(const CommandContext& c);
int RunHealth(const CommandContext& c);
int RunLogLevel(const CommandContext& c, const std::string& level);
int RunSoftnet(const CommandContext& c, std::optional<absl::Duration> window);

struct CountersArgs {
  std::optional<absl::Duration> window;
  std::string filter;
  bool nonzero = false;
};
int RunCounters(const CommandContext& c, const CountersArgs& args);

struct WatchArgs {
  absl::Duration interval = absl::Seconds(1);
  uint32_t count = 0;
  std::string filter;
  bool nonzero = false;
};
// Runs until every stream ends or StopWatches() is called (Ctrl-C), which
// ends them without counting as a failure.
int RunWatch(const CommandContext& c, const WatchArgs& args);
void StopWatches();

}  // namespace netagent::client

namespace netagent::client {

struct SocketsArgs {
  bool tcp = false, udp = false;  // neither: TCP
  bool ipv4 = false, ipv6 = false;
  std::vector<std::string> states;
  std::string source, destination, source_port, destination_port;
  bool info = false;    // -i: tcp_info, congestion control, BBR
  bool memory = false;  // -m: skmeminfo
  bool count = false;   // print how many, not the sockets
  uint32_t page_size = 0;
  std::string page_token;
  uint32_t top = 10;
};
int RunSockets(const CommandContext& c, const SocketsArgs& args);
int RunSocketSummary(const CommandContext& c, const SocketsArgs& args);

}  // namespace netagent::client

namespace netagent::client {

struct NicArgs {
  std::string name;  // empty: every interface
  std::string include, exclude;
};
int RunNic(const CommandContext& c, const NicArgs& args);

}  // namespace netagent::client

namespace netagent::client {

struct ConntrackArgs {
  bool ipv4 = false, ipv6 = false;
  std::optional<uint32_t> zone, mark, mark_mask;
  std::string protocol;
  std::vector<std::string> tcp_states;
  std::string source, destination, source_port, destination_port;
  bool count = false;
  uint32_t top = 10;
};
int RunConntrackStats(const CommandContext& c);
int RunConntrackList(const CommandContext& c, const ConntrackArgs& args);
int RunConntrackSummary(const CommandContext& c, const ConntrackArgs& args);

}  // namespace netagent::client
