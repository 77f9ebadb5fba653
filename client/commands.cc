#include "client/commands.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/client_context.h>

#include <atomic>
#include <iostream>
#include <mutex>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/rpc.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "netagent/v1/host.grpc.pb.h"
#include "netagent/v1/telemetry.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace health = ::grpc::health::v1;
namespace {

std::string Cap(const v1::Capability& c) {
  if (!c.available()) return absl::StrCat("no: ", c.reason());
  return c.note().empty() ? "yes" : absl::StrCat("yes (", c.note(), ")");
}

std::string Genl(const v1::GenlFamilyCapability& g) {
  if (!g.status().available()) return Cap(g.status());
  return absl::StrCat("yes: family ", g.family_id(), " v", g.version(), ", ", g.ops_size(), " ops");
}

void HostBlock(const v1::GetHostInfoResponse& h, std::ostream& out) {
  const auto& ns = h.network_namespace();
  const auto& cpus = h.cpus();
  const auto& caps = h.capabilities();
  Table t({"FIELD", "VALUE"});
  t.AddRow({"hostname", h.hostname()});
  t.AddRow({"kernel", absl::StrCat(h.kernel_release(), " (", h.machine(), ")")});
  t.AddRow({"agent", absl::StrCat(h.agent_version(), ", started ", Time(h.agent_started_at()))});
  t.AddRow({"netns", absl::StrCat("inode ", ns.inode(), ns.initial() ? " (initial)" : "",
                                  ns.name().empty() ? "" : absl::StrCat(" name ", ns.name()))});
  t.AddRow({"cpus", absl::StrCat(cpus.online_list(), " online of ", cpus.possible_list(), ", ",
                                 cpus.numa_nodes(), " NUMA node(s)")});
  const auto& c = h.caller();
  std::string who = absl::AsciiStrToLower(
      EnumSuffix(v1::Transport_Name(c.transport()), "TRANSPORT_", c.transport()));
  if (c.has_uid()) absl::StrAppend(&who, " uid=", c.uid(), " pid=", c.pid());
  if (c.identities_size() > 0) absl::StrAppend(&who, " ", absl::StrJoin(c.identities(), ","));
  t.AddRow({"caller", absl::StrCat(who, ": ",
                                   absl::AsciiStrToLower(
                                       EnumSuffix(v1::Role_Name(c.role()), "ROLE_", c.role())),
                                   " (", c.role_reason(), ")")});
  t.AddRow({"ethtool netlink", Genl(caps.ethtool_netlink())});
  t.AddRow({"netdev netlink", Genl(caps.netdev_netlink())});
  t.AddRow({"btf", Cap(caps.btf())});
  t.AddRow({"bpffs", Cap(caps.bpffs())});
  t.AddRow({"xdp generic", Cap(caps.xdp().generic())});
  std::string native = Cap(caps.xdp().native());
  if (caps.xdp().native().available()) {
    absl::StrAppend(&native, " (", absl::StrJoin(caps.xdp().native_interfaces(), " "), ")");
  }
  t.AddRow({"xdp native", native});
  t.AddRow({"conntrack netlink", Cap(caps.conntrack_netlink())});
  t.AddRow({"drop reasons", Cap(caps.drop_reasons())});
  // Agents before the iterator do not say (and walk with sock_diag).
  if (caps.has_socket_iterator()) t.AddRow({"socket iterator", Cap(caps.socket_iterator())});
  const auto& cc = caps.congestion_control();
  t.AddRow({"congestion control",
            absl::StrCat(cc.current(), " (available: ", absl::StrJoin(cc.available(), " "),
                         "; allowed: ", absl::StrJoin(cc.allowed(), " "), ")")});
  for (const v1::WritableTree& w : caps.writable_trees()) {
    std::string text = w.writable() ? "yes" : w.writable_knobs() > 0 ? "partly" : "no";
    if (w.knobs() > 0)
      absl::StrAppend(&text, ", ", w.writable_knobs(), " of ", w.knobs(), " knobs");
    absl::StrAppend(&text, " (", w.path(), ")");
    if (!w.reason().empty()) absl::StrAppend(&text, ": ", w.reason());
    t.AddRow({absl::StrCat("writes ", w.name()), text});
  }
  for (const v1::AgentCondition& c : h.conditions()) {
    std::string text =
        absl::StrCat(absl::AsciiStrToLower(
                         EnumSuffix(v1::Severity_Name(c.severity()), "SEVERITY_", c.severity())),
                     " ", c.id(), ": ", c.summary());
    if (!c.action().empty()) absl::StrAppend(&text, " -- ", c.action());
    t.AddRow({"condition", text});
  }
  t.Render(out);
}

std::string Opt(bool has, uint64_t v) { return has ? Num(v) : "-"; }
std::string OptRate(bool has, double v) { return has ? Rate(v) : "-"; }

void SoftnetRow(const std::string& cpu, const v1::SoftnetCpu& c, bool windowed,
                std::vector<std::vector<std::string>>& rows) {
  const std::string backlog = c.has_backlog_len() ? Num(c.backlog_len()) : "-";
  if (windowed) {
    const auto& r = c.rate();
    rows.push_back({cpu, Rate(r.processed()), Rate(r.dropped()), Rate(r.time_squeeze()),
                    OptRate(r.has_received_rps(), r.received_rps()),
                    OptRate(r.has_flow_limit_count(), r.flow_limit_count()), backlog});
  } else {
    const auto& k = c.counters();
    rows.push_back({cpu, Num(k.processed()), Num(k.dropped()), Num(k.time_squeeze()),
                    Opt(k.has_received_rps(), k.received_rps()),
                    Opt(k.has_flow_limit_count(), k.flow_limit_count()), backlog});
  }
}

void SoftnetRows(const v1::GetSoftnetResponse& s, std::vector<std::vector<std::string>>& rows) {
  const bool windowed = s.has_window();
  for (const auto& c : s.cpus()) SoftnetRow(Num(c.cpu()), c, windowed, rows);
  SoftnetRow("all", s.total(), windowed, rows);
}

std::vector<std::string> SoftnetHeader(bool windowed) {
  if (windowed) {
    return {"CPU", "PROCESSED/s", "DROPPED/s", "SQUEEZED/s", "RPS/s", "FLOW_LIMIT/s", "BACKLOG"};
  }
  return {"CPU", "PROCESSED", "DROPPED", "SQUEEZED", "RPS", "FLOW_LIMIT", "BACKLOG"};
}

void CounterRows(const v1::GetCountersResponse& r, std::vector<std::vector<std::string>>& rows) {
  const bool windowed = r.has_window();
  for (const auto& c : r.counters()) {
    if (windowed) {
      rows.push_back({c.name(), SignedNum(c.value()), c.has_delta() ? SignedNum(c.delta()) : "-",
                      c.has_rate() ? Rate(c.rate()) : "-"});
    } else {
      rows.push_back({c.name(), SignedNum(c.value())});
    }
  }
}

}  // namespace

View HostView() {
  View view;
  view.block = TypedBlock<v1::GetHostInfoResponse>(HostBlock);
  return view;
}

int RunHost(const CommandContext& c) {
  return RunUnary(c, HostView(), [](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, v1::GetHostInfoRequest(), &v1::HostService::Stub::GetHostInfo);
  });
}

int RunHealth(const CommandContext& c) {
  View view;
  view.header = {"STATUS"};
  view.rows =
      TypedRows<health::HealthCheckResponse>([](const health::HealthCheckResponse& r, Rows& rows) {
        rows.push_back({health::HealthCheckResponse::ServingStatus_Name(r.status())});
      });
  return RunUnary(c, view, [](const Target&, grpc::Channel& ch, absl::Time d) {
    Outcome o = Unary(ch, d, health::HealthCheckRequest(), &health::Health::Stub::Check);
    if (o.status.ok()) {
      const auto& r = static_cast<const health::HealthCheckResponse&>(*o.result);
      if (r.status() != health::HealthCheckResponse::SERVING) {
        o.status = absl::UnavailableError(absl::StrCat(
            "agent reports ", health::HealthCheckResponse::ServingStatus_Name(r.status())));
      }
    }
    return o;
  });
}

int RunLogLevel(const CommandContext& c, const std::string& level) {
  v1::SetLogLevelRequest req;
  v1::LogLevel parsed;
  std::string upper = "LOG_LEVEL_";
  for (char ch : level) upper += static_cast<char>(::toupper(ch));
  if (!v1::LogLevel_Parse(upper, &parsed) || parsed == v1::LOG_LEVEL_UNSPECIFIED) {
    *c.err << "netctl: log-level: one of trace, debug, info, warn, error\n";
    return 2;
  }
  req.set_level(parsed);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::HostService::Stub::SetLogLevel);
  });
  View view;
  view.header = {"PREVIOUS", "CURRENT"};
  view.rows = TypedRows<v1::SetLogLevelResponse>([](const v1::SetLogLevelResponse& r, Rows& rows) {
    rows.push_back({EnumSuffix(v1::LogLevel_Name(r.previous()), "LOG_LEVEL_", r.previous()),
                    EnumSuffix(v1::LogLevel_Name(r.current()), "LOG_LEVEL_", r.current())});
  });
  return PrintOutcomes(c, std::move(outcomes), view);
}

View SoftnetView(bool windowed) {
  View view;
  view.header = SoftnetHeader(windowed);
  view.rows = TypedRows<v1::GetSoftnetResponse>(
      [](const v1::GetSoftnetResponse& m, Rows& rows) { SoftnetRows(m, rows); });
  view.keys = {0};
  view.by = view.header[2];  // DROPPED(/s)
  return view;
}

int RunSoftnet(const CommandContext& c, std::optional<absl::Duration> window) {
  v1::GetSoftnetRequest req;
  if (window) SetDuration(*window, req.mutable_window());
  return RunUnary(
      c, SoftnetView(window.has_value()),
      [&](const Target&, grpc::Channel& ch, absl::Time d) {
        return Unary(ch, d, req, &v1::TelemetryService::Stub::GetSoftnet);
      },
      window.value_or(absl::ZeroDuration()));
}

View CountersView(bool windowed) {
  View view;
  view.header = windowed ? std::vector<std::string>{"NAME", "VALUE", "DELTA", "RATE/s"}
                         : std::vector<std::string>{"NAME", "VALUE"};
  view.rows = TypedRows<v1::GetCountersResponse>(
      [](const v1::GetCountersResponse& m, Rows& rows) { CounterRows(m, rows); });
  view.keys = {0};
  view.by = windowed ? "RATE/s" : "VALUE";
  return view;
}

int RunCounters(const CommandContext& c, const CountersArgs& args) {
  v1::GetCountersRequest req;
  if (args.window) SetDuration(*args.window, req.mutable_window());
  req.set_filter(args.filter);
  req.set_nonzero(args.nonzero);
  return RunUnary(
      c, CountersView(args.window.has_value()),
      [&](const Target&, grpc::Channel& ch, absl::Time d) {
        return Unary(ch, d, req, &v1::TelemetryService::Stub::GetCounters);
      },
      args.window.value_or(absl::ZeroDuration()));
}

int RunWatch(const CommandContext& c, const WatchArgs& args) {
  v1::WatchRequest req;
  SetDuration(args.interval, req.mutable_interval());
  req.set_count(args.count);
  req.set_filter(args.filter);
  req.set_nonzero(args.nonzero);
  const bool multi = c.label_targets || c.targets.size() > 1;
  return RunStreams(c, View(), [&](size_t i, grpc::Channel& ch, Printer& printer) {
    auto stub = StubFor<v1::TelemetryService::Stub>(ch);
    CallContext call;
    if (!call.started()) return absl::CancelledError("interrupted");
    auto reader = stub.Watch(&call.ctx, req);
    v1::WatchResponse msg;
    while (reader->Read(&msg)) {
      if (c.format == Format::kJson) {
        printer.Part(i, msg);
        continue;
      }
      const auto& s = msg.softnet();
      std::string text = absl::StrCat(multi ? c.targets[i].display + "  " : "", "#", msg.sequence(),
                                      "  ", Time(s.sampled_at()));
      if (s.has_window()) {
        const auto& r = s.total().rate();
        absl::StrAppend(&text, "  processed ", Rate(r.processed()), "/s  dropped ",
                        Rate(r.dropped()), "/s  squeezed ", Rate(r.time_squeeze()), "/s");
      } else {
        const auto& k = s.total().counters();
        absl::StrAppend(&text, "  processed ", k.processed(), "  dropped ", k.dropped(),
                        "  squeezed ", k.time_squeeze(), "  (", msg.counters().counters_size(),
                        " counters; deltas from the next sample)");
      }
      // One line per sample (agents' text escaped line by line, so none can
      // add lines), the counters that moved below it.
      text = TerminalText(text) + "\n";
      if (msg.counters().has_window()) {
        for (const auto& k : msg.counters().counters()) {
          if (!k.has_delta() || k.delta() == 0) continue;
          std::string line =
              absl::StrCat("    ", k.name(), "  ", k.delta() > 0 ? "+" : "", k.delta(),
                           k.has_rate() ? absl::StrCat("  ", Rate(k.rate()), "/s") : "");
          absl::StrAppend(&text, TerminalText(line), "\n");
        }
      }
      printer.Lines(i, text);
    }
    return FromGrpc(reader->Finish());
  });
}

// ---------------------------------------------------------------- registration

void Commands::Runs(CLI::App* cmd, Runner run) { runners_.emplace_back(cmd, std::move(run)); }

void Commands::AddAggregate(CLI::App* cmd, const std::string& top_flag) {
  cmd->add_option(top_flag, aggregate_.top,
                  "over a fleet: the N targets with the highest --by value, per row "
                  "(counter, CPU, ...)");
  cmd->add_option("--by", aggregate_.by, "the column --top ranks by (default: the main rate)");
  cmd->add_flag("--sum", aggregate_.sum, "over a fleet: each row added up across targets");
}

const CLI::App* Commands::GivenCommand() const {
  const Runner* run = Given();
  for (const auto& [cmd, r] : runners_)
    if (&r == run) return cmd;
  return nullptr;
}

const Runner* Commands::Given() const {
  const Runner* given = nullptr;
  int deepest = -1;
  for (const auto& [cmd, run] : runners_) {
    if (cmd->count() == 0) continue;
    int depth = 0;
    for (const CLI::App* p = cmd; p->get_parent() != nullptr; p = p->get_parent()) ++depth;
    if (depth > deepest) {
      deepest = depth;
      given = &run;
    }
  }
  return given;
}

int UsageError(const std::string& message) {
  std::cerr << "netctl: " << TerminalText(message) << "\n";
  return kUsageError;
}

int UsageError(const CommandContext& c, const std::string& message) {
  *c.err << "netctl: " << TerminalText(message) << "\n";
  return kUsageError;
}

absl::StatusOr<std::optional<absl::Duration>> ParseDurationFlag(const std::string& text,
                                                                const std::string& flag) {
  if (text.empty()) return std::nullopt;
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": \"", text, "\" is not a duration (like 500ms, 5s, 2m)"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": must not be negative"));
  }
  if (d == absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": must be positive"));
  }
  return d;
}

void AddAllCommands(Commands& commands) {
  AddHostCommands(commands);
  AddDropCommands(commands);
  AddSocketCommands(commands);
  AddNicCommands(commands);
  AddConntrackCommands(commands);
  AddTuneCommands(commands);
  AddDatapathCommands(commands);
  AddWatchCommand(commands);
  AddDoctorCommand(commands);
  AddPlaybookCommands(commands);
}

void AddHostCommands(Commands& commands) {
  CLI::App& app = commands.app();
  commands.Runs(app.add_subcommand("host", "host identity, CPUs, namespace, capabilities, caller"),
                [](CommandContext& c) { return RunHost(c); });
  commands.Runs(app.add_subcommand("health", "grpc.health.v1 status of each agent"),
                [](CommandContext& c) { return RunHealth(c); });
  auto level = std::make_shared<std::string>();
  auto* log_level = app.add_subcommand("log-level", "set the agents' log level (operator)");
  log_level->add_option("level", *level, "trace, debug, info, warn or error")->required();
  commands.Runs(log_level, [level](CommandContext& c) { return RunLogLevel(c, *level); });

  auto softnet_window = std::make_shared<std::string>();
  auto* softnet = app.add_subcommand("softnet", "per-CPU softnet statistics");
  softnet->add_option("--window", *softnet_window, "sample twice this far apart: rates per second");
  commands.AddAggregate(softnet, "--top");
  commands.Runs(softnet, [softnet_window](CommandContext& c) {
    auto w = ParseDurationFlag(*softnet_window, "--window");
    if (!w.ok()) return UsageError(c, std::string(w.status().message()));
    return RunSoftnet(c, *w);
  });

  auto counters_window = std::make_shared<std::string>();
  auto counters_args = std::make_shared<CountersArgs>();
  auto* counters = app.add_subcommand("counters", "SNMP / netstat / snmp6 counters (like nstat)");
  commands.AddAggregate(counters, "--top");
  counters->add_option("--window", *counters_window,
                       "sample twice this far apart: deltas and rates");
  counters->add_option("--filter", counters_args->filter, "RE2 regular expression on the name");
  counters->add_flag("--nonzero", counters_args->nonzero,
                     "hide zero values (zero deltas with --window)");
  commands.Runs(counters, [counters_window, counters_args](CommandContext& c) {
    auto w = ParseDurationFlag(*counters_window, "--window");
    if (!w.ok()) return UsageError(c, std::string(w.status().message()));
    counters_args->window = *w;
    return RunCounters(c, *counters_args);
  });
}

void AddWatchCommand(Commands& commands) {
  auto interval = std::make_shared<std::string>("1s");
  auto args = std::make_shared<WatchArgs>();
  auto* watch =
      commands.app().add_subcommand("watch", "stream softnet and counter changes until Ctrl-C");
  watch->add_option("--interval", *interval, "between samples (default 1s, at least 100ms)");
  watch->add_option("--count", args->count, "stop after this many samples");
  watch->add_option("--filter", args->filter, "RE2 regular expression on counter names");
  watch->add_flag("--nonzero", args->nonzero, "only counters that changed");
  commands.Runs(watch, [interval, args](CommandContext& c) {
    auto i = ParseDurationFlag(*interval, "--interval");
    if (!i.ok()) return UsageError(c, std::string(i.status().message()));
    if (!i->has_value()) return UsageError(c, "--interval: must be positive");
    args->interval = **i;
    c.streaming = true;  // Ctrl-C ends the streams cleanly: exit status 0
    return RunWatch(c, *args);
  });
}

}  // namespace netagent::client
