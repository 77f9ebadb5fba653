// netctl's command registry: every command file adds its commands, and the
// command given on the command line (the deepest one) is the one that runs,
// with its own flags; aggregation flags reach the context.
#include "client/commands.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace netagent::client {
namespace {

struct Cli {
  CLI::App app{"netctl"};
  Commands commands{app};
  Cli() {
    app.require_subcommand(1);
    app.fallthrough();
    AddAllCommands(commands);
  }
  // Parses `words` (after "netctl"); the given command's path, "" for none.
  std::string Given(std::vector<std::string> words) {
    std::reverse(words.begin(), words.end());  // CLI11 takes them last first
    app.parse(words);
    const CLI::App* given = commands.GivenCommand();
    if (given == nullptr || commands.Given() == nullptr) return "";
    std::string path;
    for (const CLI::App* a = given; a->get_parent() != nullptr; a = a->get_parent())
      path = a->get_name() + (path.empty() ? "" : " " + path);
    return path;
  }
};

TEST(Commands, TheDeepestGivenCommandRuns) {
  EXPECT_EQ(Cli().Given({"host"}), "host");
  EXPECT_EQ(Cli().Given({"sockets", "-i"}), "sockets");
  EXPECT_EQ(Cli().Given({"sockets", "summary", "--top", "3"}), "sockets summary");
  EXPECT_EQ(Cli().Given({"tune", "journal"}), "tune journal");
  EXPECT_EQ(Cli().Given({"tune", "journal", "ack"}), "tune journal ack");
  EXPECT_EQ(Cli().Given({"tune", "apply", "limits", "--set", "somaxconn=8192"}),
            "tune apply limits");
  EXPECT_EQ(Cli().Given({"datapath", "rules", "list", "veth0"}), "datapath rules list");
}

TEST(Commands, EveryLeafCommandHasARunner) {
  Cli cli;
  std::vector<const CLI::App*> todo = {&cli.app};
  size_t leaves = 0;
  while (!todo.empty()) {
    const CLI::App* a = todo.back();
    todo.pop_back();
    auto subs = a->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) {
      ++leaves;
      // Parse the path to this leaf with what it requires filled in.
      std::vector<std::string> words;
      for (const CLI::App* p = a; p->get_parent() != nullptr; p = p->get_parent())
        words.insert(words.begin(), p->get_name());
      SCOPED_TRACE(::testing::PrintToString(words));
      for (const CLI::Option* o : a->get_options()) {
        if (!o->get_required()) continue;
        if (o->get_positional()) {
          words.push_back("1");
        } else {
          words.push_back(o->get_name());
          words.push_back(o->get_name() == "--set" ? "somaxconn=1" : "1");
        }
      }
      Cli fresh;
      EXPECT_NE(fresh.Given(words), "");
    }
    for (const CLI::App* s : subs) todo.push_back(s);
  }
  EXPECT_GT(leaves, 30u);
}

TEST(Commands, RunnersGetTheirOwnFlags) {
  // A runner checks its own flags before any call: a bad one is a usage
  // error (no context, no target needed).
  Cli bad;
  std::vector<std::string> bad_words = {"xx", "--window", "drops"};
  bad.app.parse(bad_words);
  CommandContext c;
  std::ostringstream err;
  c.err = &err;
  EXPECT_EQ((*bad.commands.Given())(c), kUsageError);
  EXPECT_EQ(err.str(), "netctl: --window: \"xx\" is not a duration (like 500ms, 5s, 2m)\n");
}

TEST(Commands, AggregateFlags) {
  Cli cli;
  std::vector<std::string> words = {"ListenOverflows", "--filter", "RATE/s", "--by", "5",
                                    "--top",           "counters"};
  cli.app.parse(words);
  EXPECT_EQ(cli.commands.aggregate().top, 5u);
  EXPECT_EQ(cli.commands.aggregate().by, "RATE/s");
  EXPECT_FALSE(cli.commands.aggregate().sum);
}

}  // namespace
}  // namespace netagent::client
