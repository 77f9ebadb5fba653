// netctl's subcommands: each builds its request, runs it against every target
// through FanOut/StreamAll, and prints through the output layer. Each returns
// the process exit code: 0 when every target succeeded, 1 when any failed.
#pragma once

#include <grpcpp/client_context.h>

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/fanout.h"
#include "client/output.h"
#include "client/targets.h"

namespace netagent::v1 {
class TuningIntent;
class DiagnoseResponse;
}  // namespace netagent::v1

namespace CLI {
class App;
}  // namespace CLI

namespace netagent::client {

// What runs a subcommand, with the context made from netctl's global flags.
using Runner = std::function<int(CommandContext&)>;

// netctl's subcommands register themselves: each command file adds its
// commands to the command line (flags bound to arguments of its own) with
// the function that runs each (Add*Commands below). main parses, makes the
// context and runs the one given.
class Commands {
 public:
  explicit Commands(CLI::App& app) : app_(app) {}
  CLI::App& app() const { return app_; }
  // `cmd` (made on app() or under it) is run by `run` when given.
  void Runs(CLI::App* cmd, Runner run);
  // --top N [--by COL] and --sum on a numeric command (`top_flag`: how this
  // command spells --top).
  void AddAggregate(CLI::App* cmd, const std::string& top_flag);
  const Aggregate& aggregate() const { return aggregate_; }
  // The command given on the command line that runs (the deepest given
  // command that has a runner), and its runner; null when none was.
  const CLI::App* GivenCommand() const;
  const Runner* Given() const;

 private:
  CLI::App& app_;
  std::vector<std::pair<CLI::App*, Runner>> runners_;
  Aggregate aggregate_;
};

// Every command, in the order `netctl --help` lists them (the functions below).
void AddAllCommands(Commands& commands);
void AddHostCommands(Commands& commands);  // host, health, log-level, softnet, counters
void AddDropCommands(Commands& commands);
void AddSocketCommands(Commands& commands);
void AddNicCommands(Commands& commands);
void AddConntrackCommands(Commands& commands);
void AddTuneCommands(Commands& commands);
void AddDatapathCommands(Commands& commands);
void AddWatchCommand(Commands& commands);
void AddDoctorCommand(Commands& commands);
void AddPlaybookCommands(Commands& commands);

inline constexpr int kUsageError = 2;
// "netctl: MESSAGE" on stderr (the context's, in a runner); returns kUsageError.
int UsageError(const std::string& message);
int UsageError(const CommandContext& c, const std::string& message);
// A duration flag: "" -> nullopt, otherwise a positive duration ("500ms",
// "5s"); the error names the flag.
absl::StatusOr<std::optional<absl::Duration>> ParseDurationFlag(const std::string& text,
                                                                const std::string& flag);

// Views of the read commands, for the commands and their tests.
View HostView();
View SoftnetView(bool windowed);
View CountersView(bool windowed);
View ConntrackStatsView();

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

struct DropsArgs {
  std::optional<absl::Duration> window;
  std::vector<std::string> reasons;  // NO_SOCKET, netfilter_drop, ...
  std::vector<std::string> devices;
  std::optional<uint32_t> samples;  // unset: the agent's default
};
// The kernel's drops by reason (TelemetryService.GetDropReasons).
int RunDrops(const CommandContext& c, const DropsArgs& args);

struct WatchArgs {
  absl::Duration interval = absl::Seconds(1);
  uint32_t count = 0;
  std::string filter;
  bool nonzero = false;
};
// Runs until every stream ends or Ctrl-C (StopCalls), which ends them
// without counting as a failure.
int RunWatch(const CommandContext& c, const WatchArgs& args);

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
// How `netctl sockets` shows ListSocketsResponse batches (ss -tainm's columns).
View SocketsView(const SocketsArgs& args);
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

namespace netagent::client {

// Flags of `netctl tune plan|apply <intent>`, turned into a TuningIntent by
// BuildIntent (usage errors name the flag).
struct TuneArgs {
  // bdp, cc, rps, xps, rfs, channels, rss, irq, coalesce, limits, sysctl, block
  std::string intent;
  std::string device;
  std::string bandwidth, rtt, ceiling;
  bool observed = false;
  std::string algorithm;
  std::string cpus;
  bool off = false;
  uint32_t entries = 0;
  std::optional<uint32_t> combined, rx, tx, other;
  uint32_t queues = 0;
  std::vector<uint32_t> weights;
  std::string profile;
  std::vector<std::string> set;  // name=value
  std::vector<std::string> prefixes;  // block
  bool clamp = false;
  // apply
  std::string confirm_within;
  std::string expect_digest;
  // confirm, rollback, history, show
  std::string change_id;
  bool force = false;
  uint32_t limit = 0;
  bool active_only = false;
  std::string filter;
  // journal ack
  std::string journal_file;
};

// "1gbit", "500mbit", "10G", "2.5Gbit/s", "100000" (bits per second).
absl::StatusOr<uint64_t> ParseBitRate(const std::string& text, const std::string& flag);
// "256M", "64MiB", "1G", "65536" (bytes; K/M/G are powers of 1024).
absl::StatusOr<uint64_t> ParseByteSize(const std::string& text, const std::string& flag);

struct DoctorArgs {
  std::optional<absl::Duration> window;
  std::vector<std::string> rules;
  std::string min_severity;
  std::string explain;      // --explain RULE: the rule, not a diagnosis
  bool list_rules = false;  // --rules: the catalog
  bool watch = false;       // --watch: findings as they open, change and clear
};
int RunDoctor(const CommandContext& c, const DoctorArgs& args);
// The netctl command of a tuning intent ("netctl tune plan limits --set
// somaxconn=8192"); empty for intents the rules do not produce.
std::string IntentCommand(const netagent::v1::TuningIntent& intent, const std::string& verb);
// One target's findings as `netctl doctor` prints them.
void PrintDiagnosis(const netagent::v1::DiagnoseResponse& r, std::ostream& out);

int RunTuneShow(const CommandContext& c, const TuneArgs& args);
int RunTunePlan(const CommandContext& c, const TuneArgs& args);
int RunTuneApply(const CommandContext& c, const TuneArgs& args);
int RunTuneConfirm(const CommandContext& c, const TuneArgs& args);
int RunTuneRollback(const CommandContext& c, const TuneArgs& args);
int RunTuneHistory(const CommandContext& c, const TuneArgs& args);
int RunTuneJournal(const CommandContext& c, const TuneArgs& args);
int RunTuneJournalAck(const CommandContext& c, const TuneArgs& args);

}  // namespace netagent::client

namespace netagent::client {

// Flags of `netctl datapath ...`.
struct DatapathArgs {
  std::string device;
  // attach
  std::string mode = "auto";
  bool force = false;
  bool no_allowlist = false, no_blocklist = false;
  uint64_t syn_rate = 0, syn_burst = 0;
  uint32_t syn_prefix4 = 32, syn_prefix6 = 128;
  uint64_t new_source_rate = 0, new_source_burst = 0;
  bool listed_ports_only = false;
  bool drop_malformed = false, drop_fragments = false;
  uint32_t sample_every = 100, sample_max = 100;
  uint32_t clamp_mss = 0;
  bool class_accounting = false;
  // rules
  std::vector<std::string> allow, block;
  std::vector<uint32_t> ports;
  bool port_tcp = false, port_udp = false, port_syn_guard = false;
  std::string file, comment;
  std::vector<uint32_t> ids;
  std::optional<uint64_t> revision;  // none: the target's current revision
  // stats, samples
  bool per_cpu = false;
  bool live = false;
  uint32_t count = 0;
  // test
  std::string hex, src, dst, proto = "tcp", flags = "syn";
  uint16_t sport = 40000, dport = 80;
};

int RunDatapathAttach(const CommandContext& c, const DatapathArgs& a);
int RunDatapathDetach(const CommandContext& c, const DatapathArgs& a);
int RunDatapathStatus(const CommandContext& c);
int RunDatapathRulesAdd(const CommandContext& c, const DatapathArgs& a);
int RunDatapathRulesDel(const CommandContext& c, const DatapathArgs& a);
int RunDatapathRulesList(const CommandContext& c, const DatapathArgs& a);
int RunDatapathStats(const CommandContext& c, const DatapathArgs& a);
// Streams until Ctrl-C (StopStreams) or --count samples per target.
int RunDatapathSamples(const CommandContext& c, const DatapathArgs& a);
int RunDatapathTest(const CommandContext& c, const DatapathArgs& a);

}  // namespace netagent::client
