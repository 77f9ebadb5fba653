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
        UsageError(absl::StrCat(bare(here).empty() ? "netctl" : bare(here), ": no option ", name,
                                " (", here, " --help lists them)"));
      } else if (std::find(owners.begin(), owners.end(), here) != owners.end()) {
        UsageError(absl::StrCat(name, " is an option of ", bare(here),
                                ": put it after the command (", here, " ", word, ")"));
      } else {
        for (std::string& o : owners) o = bare(o);
        UsageError(absl::StrCat(bare(here), " does not take ", name, "; it belongs to ",
                                absl::StrJoin(owners, ", ")));
      }
      after_option = true;
    } else if (!after_option) {
      UsageError(
          absl::StrCat(CommandPath(given).substr(7), ": unexpected argument \"", word, "\""));
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

  Commands commands(app);
  AddAllCommands(commands);

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
  if (!timeout.ok()) return UsageError(std::string(timeout.status().message()));
  if (!timeout->has_value() || **timeout == absl::ZeroDuration())
    return UsageError("--timeout: must be positive");
  connect.timeout = **timeout;
  auto connect_timeout = ParseDurationFlag(connect_timeout_text, "--connect-timeout");
  if (!connect_timeout.ok()) return UsageError(std::string(connect_timeout.status().message()));
  if (!connect_timeout->has_value() || **connect_timeout == absl::ZeroDuration())
    return UsageError("--connect-timeout: must be positive");
  connect.connect_timeout = **connect_timeout;

  CommandContext ctx;
  for (const std::string& t : target_flags) {
    auto parsed = ParseTarget(t);
    if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
    ctx.targets.push_back(std::move(*parsed));
  }
  if (!targets_file.empty()) {
    std::ifstream in(targets_file);
    if (!in) return UsageError(absl::StrCat("--targets-file: cannot read ", targets_file));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = ParseTargetsFile(text, targets_file);
    if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
    if (parsed->empty())
      return UsageError(absl::StrCat("--targets-file: ", targets_file, " lists no targets"));
    for (auto& t : *parsed) ctx.targets.push_back(std::move(t));
  }
  for (const std::string& d : dns_flags) {
    auto name = ParseDnsName(d);
    if (!name.ok()) return UsageError(std::string(name.status().message()));
    for (auto& t : ResolveDnsTargets(name->first, name->second))
      ctx.targets.push_back(std::move(t));
  }
  if (ctx.targets.empty())
    ctx.targets.push_back(*ParseTarget(absl::StrCat("unix://", kDefaultSocket)));

  auto dialer = Dialer::Create(connect);
  if (!dialer.ok()) return UsageError(std::string(dialer.status().message()));
  ctx.dialer = &*dialer;
  ctx.format = output == "json" ? Format::kJson : Format::kTable;
  ctx.label_targets = !targets_file.empty() || !dns_flags.empty();
  ctx.target_order = order == "targets";
  const Aggregate& aggregate = commands.aggregate();
  if (aggregate.top > 0 && aggregate.sum) return UsageError("--top and --sum: one or the other");
  if (!aggregate.by.empty() && aggregate.top == 0) return UsageError("--by goes with --top");
  ctx.aggregate = aggregate;
  ctx.progress = ::isatty(STDERR_FILENO) == 1;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;

  const Runner* run = commands.Given();
  if (run == nullptr) return UsageError("no command");
  return (*run)(ctx);
}

int main(int argc, char** argv) {
  // A file size limit (ulimit -f) makes a write fail with EFBIG instead of
  // killing netctl: a playbook run that cannot record stops and rolls back.
  signal(SIGXFSZ, SIG_IGN);
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
