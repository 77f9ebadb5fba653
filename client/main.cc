// netctl: query and operate netagent agents, one host or a whole fleet.
#include <grpc/grpc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/output.h"
#include "client/targets.h"

#ifndef NETAGENT_VERSION
#define NETAGENT_VERSION "dev"
#endif

namespace {

using namespace netagent::client;

constexpr int kUsageError = 2;

int Usage(const std::string& message) {
  std::cerr << "netctl: " << TerminalText(message) << "\n";
  return kUsageError;
}

// "" -> nullopt; otherwise a positive duration.
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

// SIGINT and SIGTERM are blocked in every thread and taken by one waiting
// thread; a signal that landed on a gRPC thread would end the process
// mid-write (gRPC starts its threads in grpc_init, so the mask must be set
// before).
sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

// The first Ctrl-C (or SIGTERM) cancels every call in flight: a command that
// streams until Ctrl-C ends normally (exit status 0); any other prints what
// arrived, names the targets that did not answer and exits 130. A second
// signal ends netctl by that signal as if nothing were blocked.
void WaitForStopSignals(sigset_t signals) {
  bool stopping = false;
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (!stopping) {
      stopping = true;
      StopCalls();
      continue;
    }
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    raise(sig);
  }
}

// "netctl counters" for a subcommand.
std::string CommandPath(const CLI::App* cmd) {
  std::string path;
  for (; cmd != nullptr && cmd->get_parent() != nullptr; cmd = cmd->get_parent()) {
    path = cmd->get_name() + (path.empty() ? "" : " " + path);
  }
  return "netctl" + (path.empty() ? "" : " " + path);
}

// Every subcommand (recursively) that has the option `name` ("--window").
void CommandsWith(const CLI::App* app, const std::string& name, std::vector<std::string>& out) {
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_option_no_throw(name) != nullptr) out.push_back(CommandPath(sub));
    CommandsWith(sub, name, out);
  }
}

// The words CLI11 could not place, in the order they were typed, each said
// once: an option named with where it belongs, or a word that is not one.
int UnexpectedArguments(CLI::App& app, const std::vector<std::string>& extras, int argc,
                        char** argv) {
  const CLI::App* given = &app;
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (const CLI::App* sub : given->get_subcommands()) {
      given = sub;
      deeper = true;
      break;
    }
  }
  std::vector<std::string> left(extras);
  bool after_option = false;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    auto it = std::find(left.begin(), left.end(), word);
    if (it == left.end()) {
      after_option = false;
      continue;
    }
    left.erase(it);
    if (word.size() > 1 && word[0] == '-') {
      const std::string name = word.substr(0, word.find('='));
      std::vector<std::string> owners;
      CommandsWith(&app, name, owners);
      const std::string here = CommandPath(given);
      auto bare = [](std::string path) { return path.substr(std::min(path.size(), size_t{7})); };
      if (owners.empty()) {
        Usage(absl::StrCat(bare(here).empty() ? "netctl" : bare(here), ": no option ", name, " (",
                           here, " --help lists them)"));
      } else if (std::find(owners.begin(), owners.end(), here) != owners.end()) {
        Usage(absl::StrCat(name, " is an option of ", bare(here), ": put it after the command (",
                           here, " ", word, ")"));
      } else {
        for (std::string& o : owners) o = bare(o);
        Usage(absl::StrCat(bare(here), " does not take ", name, "; it belongs to ",
                           absl::StrJoin(owners, ", ")));
      }
      after_option = true;
    } else if (!after_option) {
      Usage(absl::StrCat(CommandPath(given).substr(7), ": unexpected argument \"", word, "\""));
    }
  }
  return kUsageError;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"netctl: query and operate netagent agents, one host or a fleet at once"};
  app.set_version_flag("--version", NETAGENT_VERSION);
  app.require_subcommand(1);
  // Global flags anywhere: `netctl host -o json` as well as `netctl -o json
  // host` (subcommands made after this inherit it and pass what they do not
  // know up to their parent).
  app.fallthrough();
  app.footer(
      "Exit status: 0 every target succeeded, 1 at least one target failed, 2 usage error.\n"
      "Default target: unix:///run/netagent/netagent.sock.");

  std::vector<std::string> target_flags, dns_flags;
  std::string targets_file, output = "table", timeout_text = "10s", connect_timeout_text = "3s",
                            order = "arrival";
  ConnectOptions connect;
  app.add_option("-t,--target", target_flags,
                 "agent: unix:///path, host, host:port, [v6]:port (repeatable)");
  app.add_option("--targets-file", targets_file, "file with one target per line");
  app.add_option("--dns", dns_flags, "NAME:PORT: every A/AAAA record is one agent (repeatable)");
  app.add_option("--concurrency", connect.concurrency,
                 "targets connected and queried at once (default 32); windowed calls and "
                 "streams run on every target together, only connecting is limited");
  app.add_option("--timeout", timeout_text, "per-target deadline (default 10s)");
  app.add_option("--connect-timeout", connect_timeout_text,
                 "how long to wait for a TCP target to connect (default 3s)");
  app.add_option("--order", order,
                 "arrival: each target's result as it answers (default); targets: in the "
                 "order of the target list")
      ->check(CLI::IsMember({"arrival", "targets"}));
  app.add_option("-o,--output", output, "table or json")->check(CLI::IsMember({"table", "json"}));
  app.add_flag("--tls", connect.tls, "use TLS for TCP targets (system roots unless --tls-ca)");
  app.add_option("--tls-ca", connect.tls_ca,
                 "CA certificate(s) that signed the agents' certificates");
  app.add_option("--tls-cert", connect.tls_cert, "client certificate for mTLS");
  app.add_option("--tls-key", connect.tls_key, "client private key for mTLS");
  app.add_option("--tls-server-name", connect.tls_server_name,
                 "name to check the agents' certificates against");

  auto* host = app.add_subcommand("host", "host identity, CPUs, namespace, capabilities, caller");
  auto* health = app.add_subcommand("health", "grpc.health.v1 status of each agent");
  std::string level;
  auto* log_level = app.add_subcommand("log-level", "set the agents' log level (operator)");
  log_level->add_option("level", level, "trace, debug, info, warn or error")->required();

  std::string softnet_window;
  // Fleet aggregation of the numeric commands.
  Aggregate aggregate;
  auto add_aggregate = [&](CLI::App* cmd, const std::string& top_flag) {
    cmd->add_option(top_flag, aggregate.top,
                    "over a fleet: the N targets with the highest --by value, per row "
                    "(counter, CPU, ...)");
    cmd->add_option("--by", aggregate.by, "the column --top ranks by (default: the main rate)");
    cmd->add_flag("--sum", aggregate.sum, "over a fleet: each row added up across targets");
  };
  auto* softnet = app.add_subcommand("softnet", "per-CPU softnet statistics");
  softnet->add_option("--window", softnet_window, "sample twice this far apart: rates per second");

  std::string counters_window;
  CountersArgs counters_args;
  add_aggregate(softnet, "--top");
  auto* counters = app.add_subcommand("counters", "SNMP / netstat / snmp6 counters (like nstat)");
  add_aggregate(counters, "--top");
  counters->add_option("--window", counters_window,
                       "sample twice this far apart: deltas and rates");
  counters->add_option("--filter", counters_args.filter, "RE2 regular expression on the name");
  counters->add_flag("--nonzero", counters_args.nonzero,
                     "hide zero values (zero deltas with --window)");

  std::string drops_window;
  DropsArgs drops_args;
  auto* drops = app.add_subcommand(
      "drops", "packets the kernel dropped, by drop reason, device and protocol (5.17+)");
  drops->add_option("--window", drops_window, "read twice this far apart: deltas and rates");
  drops
      ->add_option("--reason", drops_args.reasons,
                   "only this reason (NO_SOCKET, TCP_LISTEN_OVERFLOW, ...; repeatable)")
      ->delimiter(',');
  drops->add_option("--dev", drops_args.devices, "only this device (repeatable)")->delimiter(',');
  drops->add_option("--samples", drops_args.samples,
                    "flow samples to show, newest first (default 20, at most 256, 0: none)");

  SocketsArgs sockets_args;
  auto* sockets = app.add_subcommand("sockets", "sockets like ss -tuanim: filtered in the kernel");
  auto socket_filters = [&sockets_args](CLI::App* cmd) {
    cmd->add_flag("--tcp", sockets_args.tcp, "TCP sockets (the default)");
    cmd->add_flag("--udp", sockets_args.udp, "UDP sockets");
    cmd->add_flag("-4", sockets_args.ipv4, "IPv4 only");
    cmd->add_flag("-6", sockets_args.ipv6, "IPv6 only");
    cmd->add_option("--state", sockets_args.states,
                    "established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed, "
                    "close-wait, last-ack, listening, closing, connected, all (repeatable)")
        ->delimiter(',');
    cmd->add_option("--src", sockets_args.source, "local address or CIDR prefix");
    cmd->add_option("--dst", sockets_args.destination, "peer address or CIDR prefix");
    cmd->add_option("--sport", sockets_args.source_port, "local port or range (1024-65535)");
    cmd->add_option("--dport", sockets_args.destination_port, "peer port or range");
  };
  socket_filters(sockets);
  sockets->add_flag("-i,--info", sockets_args.info, "tcp_info, congestion control, BBR");
  sockets->add_flag("-m,--memory", sockets_args.memory, "socket memory (skmem)");
  sockets->add_flag("--count", sockets_args.count, "print how many sockets match, not them");
  sockets->add_option("--page-size", sockets_args.page_size, "at most this many sockets");
  sockets->add_option("--page-token", sockets_args.page_token, "continue a previous page");
  auto* sockets_summary = sockets->add_subcommand(
      "summary", "states, listeners' accept queues, TIME_WAIT, worst peers");
  socket_filters(sockets_summary);
  sockets_summary->add_option("--top", sockets_args.top, "peers per list (default 10)");
  add_aggregate(sockets_summary, "--top-hosts");

  NicArgs nic_args;
  auto* nic =
      app.add_subcommand("nic", "interfaces and counters; with a name, everything ethtool shows");
  nic->add_option("interface", nic_args.name,
                  "one interface: link, driver, channels, rings, "
                  "coalescing, features, pause, RSS, counters, queues, IRQs");
  nic->add_option("--include", nic_args.include, "RE2 on driver counter names to keep");
  nic->add_option("--exclude", nic_args.exclude, "RE2 on driver counter names to drop");

  ConntrackArgs ct_args;
  auto* conntrack = app.add_subcommand("conntrack", "connection tracking: stats, list, summary");
  conntrack->require_subcommand(1);
  auto* ct_stats =
      conntrack->add_subcommand("stats", "entries, limit and per-CPU statistics (cheap)");
  add_aggregate(ct_stats, "--top");
  auto* ct_list = conntrack->add_subcommand("list", "the entries, like conntrack -L");
  auto* ct_summary =
      conntrack->add_subcommand("summary", "counts per protocol and state, top sources");
  for (CLI::App* cmd : {ct_list, ct_summary}) {
    cmd->add_flag("-4", ct_args.ipv4, "IPv4 only (with -6: both)");
    cmd->add_flag("-6", ct_args.ipv6, "IPv6 only (with -4: both)");
    cmd->add_option("-p,--protocol", ct_args.protocol, "tcp, udp, icmp, ... or a number");
    cmd->add_option("--state", ct_args.tcp_states, "TCP state (ESTABLISHED, TIME_WAIT, ...)")
        ->delimiter(',');
    cmd->add_option("-s,--src", ct_args.source, "original source address or CIDR prefix");
    cmd->add_option("-d,--dst", ct_args.destination, "original destination address or prefix");
    cmd->add_option("--sport", ct_args.source_port, "original source port or range");
    cmd->add_option("--dport", ct_args.destination_port, "original destination port or range");
    cmd->add_option("--zone", ct_args.zone, "conntrack zone");
    cmd->add_option("--mark", ct_args.mark, "connection mark (with --mark-mask: mark/mask)");
    cmd->add_option("--mark-mask", ct_args.mark_mask, "mask for --mark");
  }
  ct_list->add_flag("--count", ct_args.count, "print how many entries match, not them");
  ct_summary->add_option("--top", ct_args.top, "sources in the top list (default 10)");

  TuneArgs tune_args;
  auto* tune = app.add_subcommand(
      "tune",
      "plan, apply, confirm and roll back tuning (apply/confirm/rollback need an operator)");
  tune->require_subcommand(1);
  auto* tune_show =
      tune->add_subcommand("show", "every managed knob: value, default, bounds, who set it");
  tune_show->add_option("--dev", tune_args.device, "also this device's knobs");
  tune_show->add_option("--filter", tune_args.filter, "RE2 on knob names");
  auto* tune_plan = tune->add_subcommand("plan", "what an intent would change (changes nothing)");
  auto* tune_apply = tune->add_subcommand("apply", "apply an intent as one change set");
  tune_apply->add_option("--confirm-within", tune_args.confirm_within,
                         "roll back by itself unless confirmed within this time (like 60s)");
  tune_apply->add_option("--expect-digest", tune_args.expect_digest,
                         "apply only if the plan still has this digest (from tune plan)");
  std::vector<CLI::App*> intent_cmds;
  for (CLI::App* parent : {tune_plan, tune_apply}) {
    parent->require_subcommand(1);
    auto add = [&](const char* name, const char* what) {
      CLI::App* cmd = parent->add_subcommand(name, what);
      cmd->add_flag("--clamp", tune_args.clamp, "clamp values outside bounds instead of refusing");
      if (parent == tune_apply) {
        cmd->add_option("--confirm-within", tune_args.confirm_within,
                        "roll back by itself unless confirmed within this time (like 60s)");
        cmd->add_option("--expect-digest", tune_args.expect_digest,
                        "apply only if the plan still has this digest (from tune plan)");
        cmd->add_option("--id", tune_args.change_id,
                        "the change id (default: one generated id for every target)");
      }
      intent_cmds.push_back(cmd);
      return cmd;
    };
    auto* bdp = add("bdp", "TCP buffer maxima from bandwidth x RTT (or observed flows)");
    bdp->add_option("--bandwidth", tune_args.bandwidth, "path bandwidth (like 1gbit, 500mbit)");
    bdp->add_option("--rtt", tune_args.rtt, "path round-trip time (like 200ms)");
    bdp->add_flag("--observed", tune_args.observed, "from the busiest current flows");
    bdp->add_option("--ceiling", tune_args.ceiling, "largest buffer max (default 256M)");
    auto* cc = add("cc", "default congestion control");
    cc->add_option("algorithm", tune_args.algorithm, "bbr, cubic, ...")->required();
    for (const char* n : {"rps", "xps", "irq"}) {
      auto* q = add(n, std::string(n) == "irq"   ? "IRQ affinity of the device's queues"
                       : std::string(n) == "rps" ? "receive packet steering masks"
                                                 : "transmit packet steering masks");
      q->add_option("--dev", tune_args.device, "device")->required();
      q->add_option("--cpus", tune_args.cpus, "CPU list (default: online, local, not isolated)");
      if (std::string(n) != "irq") q->add_flag("--off", tune_args.off, "turn it off");
    }
    auto* rfs = add("rfs", "receive flow steering tables");
    rfs->add_option("--dev", tune_args.device, "device")->required();
    rfs->add_option("--entries", tune_args.entries, "global flow entries, a power of two (32768)");
    rfs->add_flag("--off", tune_args.off, "turn it off");
    auto* ch = add("channels", "queue counts (ethtool -L)");
    ch->add_option("--dev", tune_args.device, "device")->required();
    ch->add_option("--combined", tune_args.combined, "combined channels");
    ch->add_option("--rx", tune_args.rx, "receive-only channels");
    ch->add_option("--tx", tune_args.tx, "transmit-only channels");
    ch->add_option("--other", tune_args.other, "other channels");
    auto* rss = add("rss", "RSS indirection table (ethtool -X)");
    rss->add_option("--dev", tune_args.device, "device")->required();
    rss->add_option("--queues", tune_args.queues, "spread over the first N queues (default all)");
    rss->add_option("--weights", tune_args.weights, "weight per queue")->delimiter(',');
    auto* co = add("coalesce", "interrupt coalescing (ethtool -C)");
    co->add_option("--dev", tune_args.device, "device")->required();
    co->add_option("--profile", tune_args.profile, "latency or throughput");
    co->add_option("--set", tune_args.set, "parameter=value (rx-usecs=50)");
    auto* lim = add("limits", "listen, SYN, TIME_WAIT, port, backlog and conntrack limits");
    lim->add_option("--set", tune_args.set, "name=value (somaxconn=8192)")->required();
    auto* sc = add("sysctl", "any managed sysctl, within its bounds");
    sc->add_option("--set", tune_args.set, "name=value")->required();
  }
  auto* tune_confirm =
      tune->add_subcommand("confirm", "keep a change applied with --confirm-within");
  tune_confirm->add_option("id", tune_args.change_id, "change id")->required();
  auto* tune_rollback = tune->add_subcommand("rollback", "restore the values a change replaced");
  tune_rollback->add_option("id", tune_args.change_id, "change id")->required();
  tune_rollback->add_flag("--force", tune_args.force,
                          "also over values someone else changed since");
  auto* tune_history =
      tune->add_subcommand("history", "changes, newest first: who, when, what, outcome");
  tune_history->add_option("--limit", tune_args.limit, "at most this many (default 50)");
  tune_history->add_flag("--active", tune_args.active_only, "only changes in effect");
  auto* tune_journal = tune->add_subcommand(
      "journal", "the change journal: set aside at start (and what it held), failing writes");
  auto* tune_journal_ack = tune_journal->add_subcommand(
      "ack", "after checking what a journal set aside may have left: start a fresh one");
  tune_journal_ack->add_option("--file", tune_args.journal_file,
                               "only if this is the file set aside (path or base name)");

  DatapathArgs dp;
  auto* datapath = app.add_subcommand("datapath", "the XDP/TC fast path: blocklists, SYN guard");
  datapath->require_subcommand(1);
  auto* dp_attach = datapath->add_subcommand("attach", "attach the fast path to a device");
  dp_attach->add_option("device", dp.device, "interface")->required();
  dp_attach->add_option("--mode", dp.mode, "auto (native, else generic), native, generic, tc");
  dp_attach->add_flag("--force", dp.force, "replace another XDP program on the device");
  dp_attach->add_flag("--no-allowlist", dp.no_allowlist, "compile the allowlist out");
  dp_attach->add_flag("--no-blocklist", dp.no_blocklist, "compile the blocklist out");
  dp_attach->add_option("--syn-rate", dp.syn_rate, "SYN guard: SYNs per second per source prefix");
  dp_attach->add_option("--syn-burst", dp.syn_burst, "SYN guard: bucket size (default the rate)");
  dp_attach->add_option("--syn-prefix4", dp.syn_prefix4, "group IPv4 sources by /N (default 32)");
  dp_attach->add_option("--syn-prefix6", dp.syn_prefix6, "group IPv6 sources by /N (default 128)");
  dp_attach->add_option("--new-source-rate", dp.new_source_rate,
                        "SYN guard: new sources per second per CPU (spoofed floods)");
  dp_attach->add_option("--new-source-burst", dp.new_source_burst,
                        "bucket of new sources (default the rate)");
  dp_attach->add_flag("--listed-ports-only", dp.listed_ports_only,
                      "guard only ports marked by a --syn-guard port rule");
  dp_attach->add_flag("--drop-malformed", dp.drop_malformed, "drop malformed packets");
  dp_attach->add_flag("--drop-fragments", dp.drop_fragments, "drop IP fragments");
  dp_attach->add_option("--sample-every", dp.sample_every, "sample 1 drop in N (0: none; 100)");
  dp_attach->add_option("--sample-max", dp.sample_max, "samples per second per CPU (100)");
  dp_attach->add_option("--clamp-mss", dp.clamp_mss, "TC: clamp the MSS of SYNs to this");
  dp_attach->add_flag("--class-accounting", dp.class_accounting, "TC: count per protocol/port");
  auto* dp_detach = datapath->add_subcommand("detach", "detach and remove the pins");
  dp_detach->add_option("device", dp.device, "interface")->required();
  auto* dp_status = datapath->add_subcommand("status", "devices with the fast path attached");
  auto* dp_rules = datapath->add_subcommand("rules", "allow/block rules");
  dp_rules->require_subcommand(1);
  auto* dp_add = dp_rules->add_subcommand("add", "add rules as one batch (all or nothing)");
  dp_add->add_option("device", dp.device, "interface")->required();
  dp_add->add_option("--block", dp.block, "block this address or CIDR prefix (repeatable)");
  dp_add->add_option("--allow", dp.allow, "allow this address or prefix (beats block)");
  dp_add->add_option("--port", dp.ports, "a destination port rule (repeatable)");
  dp_add->add_flag("--tcp", dp.port_tcp, "--port: drop TCP");
  dp_add->add_flag("--udp", dp.port_udp, "--port: drop UDP");
  dp_add->add_flag("--syn-guard", dp.port_syn_guard, "--port: SYN-guarded (--listed-ports-only)");
  dp_add->add_option("--file", dp.file, "lines of \"allow|block PREFIX [comment]\"");
  dp_add->add_option("--comment", dp.comment, "comment on every rule added");
  auto* dp_del = dp_rules->add_subcommand("del", "delete rules by id as one batch");
  dp_del->add_option("device", dp.device, "interface")->required();
  dp_del->add_option("ids", dp.ids, "rule ids")->required();
  for (CLI::App* cmd : {dp_add, dp_del}) {
    cmd->add_option("--revision", dp.revision,
                    "apply only at this rules revision (default: the target's current one)");
  }
  auto* dp_list = dp_rules->add_subcommand("list", "rules with their hit counts");
  dp_list->add_option("device", dp.device, "interface")->required();
  auto* dp_stats = datapath->add_subcommand("stats", "packets and bytes per verdict and reason");
  dp_stats->add_option("device", dp.device, "interface")->required();
  dp_stats->add_flag("--per-cpu", dp.per_cpu, "also per CPU");
  add_aggregate(dp_stats, "--top");
  auto* dp_samples = datapath->add_subcommand("samples", "stream drop samples until Ctrl-C");
  dp_samples->add_option("device", dp.device, "interface")->required();
  dp_samples->add_flag("--live", dp.live, "skip the agent's recent samples");
  dp_samples->add_option("--count", dp.count, "stop after this many samples per target");
  auto* dp_test = datapath->add_subcommand(
      "test", "would this packet be dropped? (runs a private copy of the program)");
  dp_test->add_option("device", dp.device, "interface")->required();
  dp_test->add_option("--hex", dp.hex, "the frame, from the Ethernet header, in hex");
  dp_test->add_option("--src", dp.src, "source address");
  dp_test->add_option("--dst", dp.dst, "destination address");
  dp_test->add_option("--proto", dp.proto, "tcp (default), udp or icmp");
  dp_test->add_option("--sport", dp.sport, "source port (40000)");
  dp_test->add_option("--dport", dp.dport, "destination port (80)");
  dp_test->add_option("--flags", dp.flags, "TCP flags, comma-separated (syn)");

  std::string watch_interval = "1s";
  WatchArgs watch_args;
  auto* watch = app.add_subcommand("watch", "stream softnet and counter changes until Ctrl-C");
  watch->add_option("--interval", watch_interval, "between samples (default 1s, at least 100ms)");
  watch->add_option("--count", watch_args.count, "stop after this many samples");
  watch->add_option("--filter", watch_args.filter, "RE2 regular expression on counter names");
  watch->add_flag("--nonzero", watch_args.nonzero, "only counters that changed");

  DoctorArgs doctor_args;
  std::string doctor_window;
  auto* doctor = app.add_subcommand(
      "doctor", "what is wrong: findings with evidence, where, why, and the fix to apply");
  doctor->add_option("--window", doctor_window, "how long to measure (default 10s, 1s to 5m)");
  doctor->add_option("--rule", doctor_args.rules, "only this rule (repeatable)");
  doctor->add_option("--min-severity", doctor_args.min_severity,
                     "info (default), warning or critical");
  doctor->add_option("--explain", doctor_args.explain,
                     "print a rule: what it measures, its thresholds, why");
  doctor->add_flag("--rules", doctor_args.list_rules, "print every rule");
  doctor->add_flag("--watch", doctor_args.watch,
                   "findings as the agent's own evaluation opens, changes and clears them, "
                   "until Ctrl-C");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError&) {
    return UnexpectedArguments(app, app.remaining(true), argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsageError;
  }

  auto timeout = ParseDurationFlag(timeout_text, "--timeout");
  if (!timeout.ok()) return Usage(std::string(timeout.status().message()));
  if (!timeout->has_value() || **timeout == absl::ZeroDuration())
    return Usage("--timeout: must be positive");
  connect.timeout = **timeout;
  auto connect_timeout = ParseDurationFlag(connect_timeout_text, "--connect-timeout");
  if (!connect_timeout.ok()) return Usage(std::string(connect_timeout.status().message()));
  if (!connect_timeout->has_value() || **connect_timeout == absl::ZeroDuration())
    return Usage("--connect-timeout: must be positive");
  connect.connect_timeout = **connect_timeout;

  CommandContext ctx;
  for (const std::string& t : target_flags) {
    auto parsed = ParseTarget(t);
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    ctx.targets.push_back(std::move(*parsed));
  }
  if (!targets_file.empty()) {
    std::ifstream in(targets_file);
    if (!in) return Usage(absl::StrCat("--targets-file: cannot read ", targets_file));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = ParseTargetsFile(text, targets_file);
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    if (parsed->empty())
      return Usage(absl::StrCat("--targets-file: ", targets_file, " lists no targets"));
    for (auto& t : *parsed) ctx.targets.push_back(std::move(t));
  }
  for (const std::string& d : dns_flags) {
    auto name = ParseDnsName(d);
    if (!name.ok()) return Usage(std::string(name.status().message()));
    for (auto& t : ResolveDnsTargets(name->first, name->second))
      ctx.targets.push_back(std::move(t));
  }
  if (ctx.targets.empty())
    ctx.targets.push_back(*ParseTarget(absl::StrCat("unix://", kDefaultSocket)));

  auto dialer = Dialer::Create(connect);
  if (!dialer.ok()) return Usage(std::string(dialer.status().message()));
  ctx.dialer = &*dialer;
  ctx.format = output == "json" ? Format::kJson : Format::kTable;
  ctx.label_targets = !targets_file.empty() || !dns_flags.empty();
  ctx.target_order = order == "targets";
  if (aggregate.top > 0 && aggregate.sum) return Usage("--top and --sum: one or the other");
  if (!aggregate.by.empty() && aggregate.top == 0) return Usage("--by goes with --top");
  ctx.aggregate = aggregate;
  ctx.progress = ::isatty(STDERR_FILENO) == 1;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;

  if (*host) return RunHost(ctx);
  if (*health) return RunHealth(ctx);
  if (*log_level) return RunLogLevel(ctx, level);
  if (*nic) return RunNic(ctx, nic_args);
  if (*ct_stats) return RunConntrackStats(ctx);
  if (*ct_list) return RunConntrackList(ctx, ct_args);
  if (*ct_summary) return RunConntrackSummary(ctx, ct_args);
  if (*tune_show) return RunTuneShow(ctx, tune_args);
  if (*dp_attach) return RunDatapathAttach(ctx, dp);
  if (*dp_detach) return RunDatapathDetach(ctx, dp);
  if (*dp_status) return RunDatapathStatus(ctx);
  if (*dp_add) return RunDatapathRulesAdd(ctx, dp);
  if (*dp_del) return RunDatapathRulesDel(ctx, dp);
  if (*dp_list) return RunDatapathRulesList(ctx, dp);
  if (*dp_stats) return RunDatapathStats(ctx, dp);
  if (*dp_test) return RunDatapathTest(ctx, dp);
  if (*tune_confirm) return RunTuneConfirm(ctx, tune_args);
  if (*tune_rollback) return RunTuneRollback(ctx, tune_args);
  if (*tune_history) return RunTuneHistory(ctx, tune_args);
  if (*tune_journal_ack) return RunTuneJournalAck(ctx, tune_args);
  if (*tune_journal) return RunTuneJournal(ctx, tune_args);
  for (CLI::App* cmd : intent_cmds) {
    if (*cmd) tune_args.intent = cmd->get_name();
  }
  if (*tune_plan) return RunTunePlan(ctx, tune_args);
  if (*tune_apply) return RunTuneApply(ctx, tune_args);
  if (*sockets_summary) return RunSocketSummary(ctx, sockets_args);
  if (*sockets) return RunSockets(ctx, sockets_args);
  if (*doctor) {
    auto w = ParseDurationFlag(doctor_window, "--window");
    if (!w.ok()) return Usage(std::string(w.status().message()));
    doctor_args.window = *w;
    if (!doctor_window.empty() && !doctor_args.window)
      return Usage("--window: at least 1s (counters need time to move)");
    if (doctor_args.watch) {
      if (doctor_args.window) return Usage("doctor --watch: --window is the agent's interval");
      ctx.streaming = true;  // Ctrl-C ends the streams cleanly: exit status 0
    }
    return RunDoctor(ctx, doctor_args);
  }
  if (*softnet) {
    auto w = ParseDurationFlag(softnet_window, "--window");
    if (!w.ok()) return Usage(std::string(w.status().message()));
    return RunSoftnet(ctx, *w);
  }
  if (*drops) {
    auto w = ParseDurationFlag(drops_window, "--window");
    if (!w.ok()) return Usage(std::string(w.status().message()));
    drops_args.window = *w;
    return RunDrops(ctx, drops_args);
  }
  if (*counters) {
    auto w = ParseDurationFlag(counters_window, "--window");
    if (!w.ok()) return Usage(std::string(w.status().message()));
    counters_args.window = *w;
    return RunCounters(ctx, counters_args);
  }
  if (*watch || *dp_samples) {
    std::optional<absl::Duration> interval;
    if (*watch) {
      auto i = ParseDurationFlag(watch_interval, "--interval");
      if (!i.ok()) return Usage(std::string(i.status().message()));
      if (!i->has_value()) return Usage("--interval: must be positive");
      watch_args.interval = **i;
    }
    // Ctrl-C ends the streams cleanly: they are cancelled, exit status 0.
    ctx.streaming = true;
    return *watch ? RunWatch(ctx, watch_args) : RunDatapathSamples(ctx, dp);
  }
  return Usage("no command");
}

int main(int argc, char** argv) {
  const sigset_t stop = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::thread(WaitForStopSignals, stop).detach();
  // Hold gRPC up for the whole process: otherwise it shuts down (joining its
  // threads, several milliseconds) as soon as the last channel goes away.
  grpc_init();
  const int rc = Main(argc, argv);
  // Everything is printed: leave without gRPC's orderly shutdown, which joins
  // its threads and costs a few milliseconds on every invocation.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  _exit(rc);
}
