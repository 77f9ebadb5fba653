// The rule catalog on snapshot pairs built from recorded procfs files of two
// kernels (6.1 and 6.18): the "before" is the recording, the "after" the
// same with the counters an incident moves. Each rule: firing, quiet, each
// severity edge, and missing data.
#include "diagnosis/rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/unit/fixtures.h"

namespace netagent::diagnosis {
namespace {

using ::netagent::testing::Fixture;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

collectors::IpAddress Addr(const std::string& text) {
  auto p = collectors::ParsePrefix(text, "test");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->address : collectors::IpAddress{};
}

class Pair {
 public:
  explicit Pair(const std::string& kernel = "linux-6.18", double seconds = 10) {
    collectors::CounterSample c;
    for (auto [file, source] : {std::pair{"netstat", collectors::CounterSource::kNetstat},
                                std::pair{"snmp", collectors::CounterSource::kSnmp}}) {
      auto v =
          collectors::ParseSnmpPairs(Fixture(absl::StrCat("procfs/", kernel, "/", file)), source);
      EXPECT_TRUE(v.ok()) << v.status();
      c.values.insert(c.values.end(), v->begin(), v->end());
    }
    auto softnet = collectors::ParseSoftnet(
        Fixture(absl::StrCat("procfs/", kernel, "/softnet_stat")), {0, 1, 2, 3});
    EXPECT_TRUE(softnet.ok()) << softnet.status();
    p_.before.taken = absl::FromUnixSeconds(1800000000);
    p_.after.taken = p_.before.taken + absl::Seconds(seconds);
    p_.before.counters = p_.after.counters = c;
    p_.before.softnet = p_.after.softnet = *softnet;
    for (auto* s : {&p_.before, &p_.after}) {
      s->sysctls = {
          {"net.core.somaxconn", "4096"},          {"net.ipv4.tcp_syncookies", "1"},
          {"net.ipv4.tcp_max_syn_backlog", "512"}, {"net.ipv4.ip_local_port_range", "32768\t60999"},
          {"net.ipv4.tcp_tw_reuse", "2"},          {"net.core.netdev_max_backlog", "1000"},
          {"net.core.netdev_budget", "300"},       {"net.core.netdev_budget_usecs", "2000"},
          {"net.core.rmem_max", "212992"},         {"net.ipv4.tcp_max_orphans", "65536"},
          {"net.ipv4.tcp_fin_timeout", "60"},      {"net.ipv4.tcp_mem", "90000 120000 180000"}};
    }
  }

  // Adds `n` to a counter in "after" (it must be in the recording).
  Pair& Add(const std::string& counter, int64_t n) {
    for (auto& v : p_.after.counters->values) {
      if (v.name() == counter) {
        v.value += n;
        return *this;
      }
    }
    ADD_FAILURE() << counter << " is not in the recording";
    return *this;
  }
  Pair& Sysctl(const std::string& name, const std::string& value) {
    p_.before.sysctls[name] = p_.after.sysctls[name] = value;
    return *this;
  }
  Pair& Listener(const std::string& addr, uint16_t port, uint32_t queue, uint32_t backlog,
                 int samples = 1) {
    collectors::ListenerStats l;
    l.address = Addr(addr);
    l.port = port;
    l.accept_queue = queue;
    l.backlog = backlog;
    for (int i = 0; i < samples; ++i) FoldListeners(p_, {l});
    return *this;
  }
  // The kernel-drop collector's counts: `before` and `after` for (reason,
  // device), attached before the window.
  Pair& Drops(const std::string& reason, const std::string& device, uint64_t before,
              uint64_t after) {
    for (auto* s : {&p_.before, &p_.after}) {
      if (!s->drops) s->drops = KernelDrops{absl::FromUnixSeconds(1700000000), {}, {}, 0};
    }
    // A device index per name (0: no device), named in both snapshots.
    uint32_t ifindex = 0;
    if (!device.empty()) {
      for (const auto& [i, n] : p_.after.drops->devices)
        if (n == device) ifindex = i;
      if (ifindex == 0) ifindex = static_cast<uint32_t>(p_.after.drops->devices.size()) + 2;
      p_.before.drops->devices[ifindex] = p_.after.drops->devices[ifindex] = device;
    }
    if (before) p_.before.drops->counts[{reason, ifindex}] = before;
    p_.after.drops->counts[{reason, ifindex}] = after;
    return *this;
  }
  Pair& DropSource(const std::string& prefix, uint64_t samples, const std::string& reason) {
    p_.drop_sources.push_back({prefix, samples, reason});
    return *this;
  }
  SnapshotPair& get() { return p_; }

  std::vector<Finding> Run(const std::string& rule, LevelOverrides overrides = {}) {
    DiagnoseOptions o;
    o.rules = {rule};
    o.overrides = std::move(overrides);
    return Diagnose(p_, o);
  }

 private:
  SnapshotPair p_;
};

TEST(Catalog, RulesHaveIdsTitlesLevelsAndExplanations) {
  std::set<std::string> ids;
  for (const RuleSpec& r : Catalog()) {
    EXPECT_TRUE(ids.insert(r.id).second) << r.id;
    EXPECT_FALSE(r.title.empty()) << r.id;
    EXPECT_FALSE(r.explanation.empty()) << r.id;
    EXPECT_FALSE(r.sources.empty()) << r.id;
    ASSERT_FALSE(r.levels.empty()) << r.id;
    for (const Level& l : r.levels) EXPECT_LE(l.warning, l.critical) << r.id << " " << l.metric;
  }
  EXPECT_GE(ids.size(), 18u);
}

// A recording against itself: nothing changed, nothing found, on both kernels.
TEST(Catalog, AQuietWindowFindsNothing) {
  for (const char* k : {"linux-6.1", "linux-6.18"}) {
    Pair p(k);
    EXPECT_TRUE(Diagnose(p.get(), {}).empty()) << k;
  }
}

// Missing inputs (a collector that failed): rules skip, nothing crashes.
TEST(Catalog, MissingDataIsNoFinding) {
  SnapshotPair empty;
  empty.after.taken = empty.before.taken + absl::Seconds(10);
  EXPECT_TRUE(Diagnose(empty, {}).empty());
  Pair p;
  p.Add("TcpExtListenOverflows", 500);
  p.get().before.counters.reset();
  EXPECT_TRUE(p.Run("listen-overflow").empty());
}

TEST(ListenOverflow, TheApplicationsBacklogIsNamedAsTheLimit) {
  Pair p;
  p.Add("TcpExtListenOverflows", 412).Add("TcpExtListenDrops", 412);
  p.Listener("0.0.0.0", 8080, 17, 16, 9).Listener("0.0.0.0", 22, 0, 4096, 9);
  auto f = p.Run("listen-overflow");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);  // 41.2/s
  EXPECT_THAT(f[0].summary,
              HasSubstr("412 accept-queue overflows in 10 s (41.2/s) on 0.0.0.0:8080"));
  ASSERT_EQ(f[0].attribution.size(), 1u);
  EXPECT_EQ(f[0].attribution[0].object, "0.0.0.0:8080");
  EXPECT_THAT(f[0].attribution[0].detail, HasSubstr("full in 9 of 9 samples"));
  EXPECT_FALSE(f[0].remediation.intent.has_value()) << "somaxconn cannot help a listen(16)";
  EXPECT_THAT(f[0].remediation.limits[0],
              HasSubstr("listener 0.0.0.0:8080 has backlog 16 < somaxconn 4096: the "
                        "application's listen() backlog is the limit; raising somaxconn will "
                        "not help"));
  EXPECT_EQ(f[0].verification.condition, "0 over the same window");
}

TEST(ListenOverflow, ABacklogCappedBySomaxconnGetsAPlan) {
  Pair p;
  p.Sysctl("net.core.somaxconn", "128");
  p.Add("TcpExtListenOverflows", 30);
  p.Listener("::", 443, 128, 128, 3);
  auto f = p.Run("listen-overflow");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);  // 3/s
  ASSERT_TRUE(f[0].remediation.intent.has_value());
  const auto& lim = std::get<tuners::LimitsIntent>(f[0].remediation.intent->what);
  ASSERT_EQ(lim.settings.size(), 1u);
  // 4096 is the aim; one apply may move somaxconn 16-fold at most.
  EXPECT_EQ(lim.settings[0], (std::pair<std::string, std::string>{"somaxconn", "2048"}));
  EXPECT_THAT(f[0].attribution[0].detail, HasSubstr("capped at somaxconn 128"));
}

TEST(ListenOverflow, SeverityEdgesAndOverrides) {
  auto sev = [](int64_t overflows, LevelOverrides o = {}) {
    Pair p;
    p.Add("TcpExtListenOverflows", overflows);
    auto f = p.Run("listen-overflow", o);
    return f.empty() ? std::optional<Severity>() : f[0].severity;
  };
  EXPECT_EQ(sev(0), std::nullopt);
  EXPECT_EQ(sev(9), Severity::kInfo);      // 0.9/s
  EXPECT_EQ(sev(10), Severity::kWarning);  // 1/s
  EXPECT_EQ(sev(49), Severity::kWarning);
  EXPECT_EQ(sev(50), Severity::kCritical);  // 5/s
  EXPECT_EQ(sev(9, {{"listen-overflow", {{"overflows_per_second", {"", 0.5, 0.8}}}}}),
            Severity::kCritical);
}

TEST(ListenOverflow, NoListenerSeenFullIsSaid) {
  Pair p;
  p.Add("TcpExtListenOverflows", 100);
  p.Listener("0.0.0.0", 80, 1, 511, 5);
  auto f = p.Run("listen-overflow");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_TRUE(f[0].attribution.empty());
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("no listener was seen full in 5 samples"));
}

// A listener 10.0.0.1:80 whose SYN queue (its backlog) holds `half_open`
// from these sources.
collectors::SocketSummary HalfOpen(
    uint64_t half_open, std::vector<std::pair<collectors::IpAddress, uint64_t>> sources) {
  collectors::SocketSummary s;
  collectors::ListenerStats l;
  l.address = Addr("10.0.0.1");
  l.port = 80;
  l.backlog = static_cast<uint32_t>(half_open);
  l.syn_recv = half_open;
  s.listeners.push_back(l);
  s.top_syn_recv_sources = std::move(sources);
  return s;
}

TEST(SynFlood, CookiesOffGetsCookiesOnAndSourcesAreNamed) {
  Pair p;
  p.Sysctl("net.ipv4.tcp_syncookies", "0");
  p.Add("TcpExtTCPReqQFullDrop", 600);
  p.get().after.sockets = HalfOpen(
      128, {{Addr("198.51.100.7"), 100}, {Addr("198.51.100.9"), 20}, {Addr("203.0.113.1"), 8}});
  auto f = p.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);
  ASSERT_TRUE(f[0].remediation.intent.has_value());
  EXPECT_EQ(std::get<tuners::LimitsIntent>(f[0].remediation.intent->what).settings[0].first,
            "tcp_syncookies");
  ASSERT_GE(f[0].attribution.size(), 3u);
  EXPECT_EQ(f[0].attribution[0].object, "10.0.0.1:80");
  EXPECT_EQ(f[0].attribution[1].object, "198.51.100.0/24");
  EXPECT_THAT(f[0].attribution[1].detail, HasSubstr("120 half-open"));
}

TEST(SynFlood, CookiesAlreadyOnIsNoSysctlPlan) {
  Pair p;
  p.Add("TcpExtTCPReqQFullDoCookies", 20);
  auto f = p.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);  // 2/s
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  EXPECT_THAT(f[0].remediation.limits[1], HasSubstr("SYN guard"));
}

// Cookies on (`cookies` sent over the 10 s window), a full queue of
// `half_open` from these /24 sources.
Pair CookiedFlood(uint64_t half_open,
                  std::vector<std::pair<collectors::IpAddress, uint64_t>> sources,
                  int64_t cookies = 2000) {
  Pair p;
  p.Add("TcpExtTCPReqQFullDoCookies", cookies);
  p.get().after.sockets = HalfOpen(half_open, std::move(sources));
  return p;
}

TEST(SynFlood, AFloodFromAFewNetworksIsBlockedInTheFastPath) {
  Pair p = CookiedFlood(128, {{Addr("198.51.100.0"), 70},
                              {Addr("192.0.2.0"), 40},
                              {Addr("203.0.113.0"), 10},
                              {Addr("10.9.8.0"), 8}});
  p.get().after.fast_paths = {{"eth1", false}, {"eth0", true}};
  auto f = p.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  ASSERT_TRUE(f[0].remediation.intent.has_value());
  const auto& block = std::get<tuners::DatapathBlockIntent>(f[0].remediation.intent->what);
  EXPECT_EQ(block.device, "eth0");  // the one with a blocklist
  // 70 + 40 = 110 of 128 (86 %): enough; the rest is not blocked.
  EXPECT_EQ(block.prefixes, (std::vector<std::string>{"198.51.100.0/24", "192.0.2.0/24"}));
  EXPECT_FALSE(block.remove);
  EXPECT_THAT(f[0].remediation.summary, HasSubstr("110 of 128 half-open"));
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("legitimate clients there too"));
}

// Allow rules are checked before blocks: a network an allow rule overlaps
// (covering it, or inside it) would keep flooding through a block.
TEST(SynFlood, NoBlockOfANetworkAnAllowRuleOverlaps) {
  for (const std::string allowed : {"198.51.100.0/22", "198.51.100.7/32"}) {
    Pair p = CookiedFlood(128, {{Addr("198.51.100.0"), 70}, {Addr("192.0.2.0"), 50}});
    p.get().after.fast_paths = {{"eth0", true, {"10.0.0.0/8", allowed}}};
    auto f = p.Run("syn-flood");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_FALSE(f[0].remediation.intent.has_value()) << allowed;
    EXPECT_THAT(f[0].remediation.limits[0],
                HasSubstr("the allow rule for " + allowed + " on eth0 overlaps 198.51.100.0/24"));
  }
  // Rules that could not be read may hold such an allow rule.
  Pair unread = CookiedFlood(128, {{Addr("198.51.100.0"), 70}, {Addr("192.0.2.0"), 50}});
  unread.get().after.fast_paths = {{"eth0", true, {}, "device busy"}};
  auto u = unread.Run("syn-flood");
  ASSERT_EQ(u.size(), 1u);
  EXPECT_FALSE(u[0].remediation.intent.has_value());
  EXPECT_THAT(u[0].remediation.limits[0], HasSubstr("could not be read (device busy)"));
  // Allow rules elsewhere (and of the other family) leave the block as it was.
  Pair p = CookiedFlood(128, {{Addr("198.51.100.0"), 70}, {Addr("192.0.2.0"), 50}});
  p.get().after.fast_paths = {{"eth0", true, {"10.0.0.0/8", "198.51.101.0/24", "2001:db8::/32"}}};
  auto f = p.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  ASSERT_TRUE(f[0].remediation.intent.has_value());
  EXPECT_EQ(std::get<tuners::DatapathBlockIntent>(f[0].remediation.intent->what).prefixes,
            (std::vector<std::string>{"198.51.100.0/24", "192.0.2.0/24"}));
}

TEST(SynFlood, ASpreadOrSmallFloodOrNoFastPathIsNoBlock) {
  // Spoofed over many networks: no few of them hold most of the queue.
  std::vector<std::pair<collectors::IpAddress, uint64_t>> spread;
  for (int i = 0; i < 10; ++i) spread.push_back({Addr(absl::StrCat("10.", i, ".0.0")), 10});
  Pair wide = CookiedFlood(1000, spread);
  wide.get().after.fast_paths = {{"eth0", true}};
  auto f = wide.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  // Too few half-open connections to judge by.
  Pair small = CookiedFlood(10, {{Addr("198.51.100.0"), 10}});
  small.get().after.fast_paths = {{"eth0", true}};
  f = small.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  // Two devices could block: which one the flood arrives on is not known.
  Pair two = CookiedFlood(100, {{Addr("198.51.100.0"), 90}});
  two.get().after.fast_paths = {{"eth0", true}, {"eth1", true}};
  f = two.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  EXPECT_THAT(f[0].remediation.limits[1], HasSubstr("several devices"));
  EXPECT_THAT(f[0].remediation.limits[1],
              HasSubstr("netctl tune apply block --dev DEV 198.51.100.0/24"));
}

TEST(SynFlood, ABlockNeedsFourFifthsAFloodAndNoOverflowingListener) {
  // 40 % and 30 %: each a tenth or more, together short of four fifths.
  Pair spread = CookiedFlood(100, {{Addr("198.51.100.0"), 40},
                                   {Addr("192.0.2.0"), 30},
                                   {Addr("203.0.113.0"), 9},
                                   {Addr("10.9.8.0"), 9}});
  spread.get().after.fast_paths = {{"eth0", true}};
  auto f = spread.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  // A slow application: handshakes complete and overflow the accept queue,
  // and its own clients' half-open connections fill the SYN queue.
  Pair slow = CookiedFlood(100, {{Addr("198.51.100.0"), 100}});
  slow.get().after.fast_paths = {{"eth0", true}};
  slow.Add("TcpExtListenOverflows", 500);
  f = slow.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("500 accept-queue overflows"));
  // A trickle (5 cookies a second) is no basis for cutting a network off.
  Pair trickle = CookiedFlood(64, {{Addr("198.51.100.0"), 64}}, 50);
  trickle.get().after.fast_paths = {{"eth0", true}};
  f = trickle.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("no block is proposed below 100 SYNs"));
}

// SO_REUSEPORT: each listening socket of one endpoint carries the
// endpoint's half-open count; counted once, the flood's share is right.
TEST(SynFlood, ReuseportListenersAreOneEndpoint) {
  Pair p = CookiedFlood(100, {{Addr("198.51.100.0"), 90}});
  auto second = p.get().after.sockets->listeners[0];
  p.get().after.sockets->listeners.push_back(second);
  p.get().after.sockets->listeners.push_back(second);
  p.get().after.fast_paths = {{"eth0", true}};
  auto f = p.Run("syn-flood");
  ASSERT_EQ(f.size(), 1u);
  ASSERT_TRUE(f[0].remediation.intent.has_value());
  EXPECT_THAT(f[0].remediation.summary, HasSubstr("90 of 100 half-open"));
}

collectors::ConntrackStats Conntrack(uint64_t count, uint64_t max, uint64_t drop) {
  collectors::ConntrackStats c;
  c.count = count;
  c.max = max;
  c.total = {{"found", 5}, {"drop", drop}, {"early_drop", 0}, {"insert_failed", 0}};
  return c;
}

TEST(ConntrackFull, FillEdgesAndDrops) {
  auto run = [](uint64_t count, uint64_t drops) {
    Pair p;
    p.get().before.conntrack = Conntrack(count, 1000, 7);
    p.get().after.conntrack = Conntrack(count, 1000, 7 + drops);
    return p.Run("conntrack-full");
  };
  EXPECT_TRUE(run(899, 0).empty());
  EXPECT_EQ(run(900, 0).at(0).severity, Severity::kWarning);
  EXPECT_EQ(run(950, 0).at(0).severity, Severity::kCritical);
  auto dropping = run(100, 1);  // 0.1/s
  ASSERT_EQ(dropping.size(), 1u);
  EXPECT_EQ(dropping[0].severity, Severity::kWarning);
  EXPECT_THAT(dropping[0].summary, HasSubstr("1 new flows dropped"));
  auto full = run(999, 50);
  ASSERT_TRUE(full[0].remediation.intent.has_value());
  EXPECT_EQ(std::get<tuners::LimitsIntent>(full[0].remediation.intent->what).settings[0],
            (std::pair<std::string, std::string>{"nf_conntrack_max", "2000"}));
  EXPECT_THAT(full[0].remediation.limits[0], HasSubstr("child namespace cannot change it"));
  // A low threshold from the config fires on a nearly empty table.
  Pair low;
  low.get().before.conntrack = low.get().after.conntrack = Conntrack(30, 1000, 0);
  EXPECT_EQ(low.Run("conntrack-full", {{"conntrack-full", {{"fill_percent", {"", 1, 2}}}}})
                .at(0)
                .severity,
            Severity::kCritical);
}

TEST(PortExhaustion, TheBusiestPeerAgainstTheRange) {
  auto run = [](uint64_t tw) {
    Pair p;
    collectors::SocketSummary s;
    s.time_wait.count = tw + 3;
    s.time_wait.ephemeral = {32768, 60999};
    s.time_wait.ephemeral_ports = 28232;
    s.time_wait.busiest_peer = "10.1.0.2:5432";
    s.time_wait.busiest_peer_count = tw;
    s.time_wait.busiest_peer_fill_percent = 100.0 * tw / 28232;
    p.get().after.sockets = s;
    return p.Run("port-exhaustion");
  };
  EXPECT_TRUE(run(14000).empty());  // 49.6 %
  auto f = run(23000);              // 81 %
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);
  EXPECT_EQ(f[0].attribution[0].object, "10.1.0.2:5432");
  const auto& lim = std::get<tuners::LimitsIntent>(f[0].remediation.intent->what);
  ASSERT_EQ(lim.settings.size(), 2u);
  EXPECT_EQ(lim.settings[0], (std::pair<std::string, std::string>{"tcp_tw_reuse", "1"}));
  EXPECT_EQ(lim.settings[1],
            (std::pair<std::string, std::string>{"ip_local_port_range", "10240 65000"}));
  EXPECT_EQ(run(15000).at(0).severity, Severity::kWarning);
  for (const auto& l : f[0].remediation.limits) EXPECT_THAT(l, Not(HasSubstr("timestamps")));
}

// tcp_tw_reuse needs timestamps: with them off the finding says reuse will
// not happen.
TEST(PortExhaustion, TwReuseWithoutTimestampsIsSaid) {
  Pair p;
  p.Sysctl("net.ipv4.tcp_timestamps", "0");
  collectors::SocketSummary s;
  s.time_wait.ephemeral = {32768, 60999};
  s.time_wait.ephemeral_ports = 28232;
  s.time_wait.busiest_peer = "10.1.0.2:5432";
  s.time_wait.busiest_peer_count = s.time_wait.count = 23000;
  s.time_wait.busiest_peer_fill_percent = 81;
  p.get().after.sockets = s;
  auto f = p.Run("port-exhaustion");
  ASSERT_EQ(f.size(), 1u);
  bool said = false;
  for (const auto& l : f[0].remediation.limits)
    said = said || l.find("net.ipv4.tcp_timestamps is 0") != std::string::npos;
  EXPECT_TRUE(said);
  // Only the wider range is proposed: reuse would not happen.
  const auto& lim = std::get<tuners::LimitsIntent>(f[0].remediation.intent->what);
  ASSERT_EQ(lim.settings.size(), 1u);
  EXPECT_EQ(lim.settings[0].first, "ip_local_port_range");
  EXPECT_THAT(f[0].remediation.summary, Not(HasSubstr("TIME_WAIT")));
}

TEST(Softnet, DropsPerCpuAndSqueezesOnlyWithDrops) {
  Pair p;
  auto& rows = p.get().after.softnet->rows;
  ASSERT_GE(rows.size(), 2u);
  rows[1].counters.dropped += 50;  // 5/s on one CPU
  rows[1].counters.time_squeeze += 300;
  auto f = p.Run("softnet-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  ASSERT_EQ(f[0].attribution.size(), 1u);
  EXPECT_EQ(f[0].attribution[0].object, absl::StrCat("cpu ", rows[1].cpu));
  EXPECT_EQ(std::get<tuners::SysctlIntent>(f[0].remediation.intent->what).settings[0],
            (std::pair<std::string, std::string>{"net.core.netdev_max_backlog", "2048"}));
  auto sq = p.Run("softnet-squeeze");
  ASSERT_EQ(sq.size(), 1u);
  EXPECT_EQ(sq[0].severity, Severity::kWarning);  // 30/s with drops
  Pair busy;
  busy.get().after.softnet->rows[0].counters.time_squeeze += 5000;
  auto quiet = busy.Run("softnet-squeeze");
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_EQ(quiet[0].severity, Severity::kInfo) << "a busy CPU without loss is no alarm";
}

// The lab's burst into one CPU (tests/integration/incidents_test.cc): with
// the kernel's drop reasons the source prefix is attributed first, and the
// summary and the one-CPU advice still go by the CPUs.
TEST(Softnet, KernelDropSourcesDoNotTakeTheCpusPlace) {
  Pair p;
  auto& rows = p.get().after.softnet->rows;
  ASSERT_GE(rows.size(), 2u);
  rows[1].counters.dropped += 500;
  p.Drops("CPU_BACKLOG", "veth0", 10, 410);
  p.get().drop_sources = {{"10.66.0.0/24", 170, "CPU_BACKLOG"}};
  auto f = p.Run("softnet-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_THAT(f[0].summary, HasSubstr(absl::StrCat("most on cpu ", rows[1].cpu)));
  ASSERT_EQ(f[0].attribution.size(), 2u);
  EXPECT_EQ(f[0].attribution[0].object, "10.66.0.0/24");
  EXPECT_EQ(f[0].attribution[1].object, absl::StrCat("cpu ", rows[1].cpu));
  EXPECT_THAT(f[0].remediation.limits, Contains(HasSubstr("all drops are on one CPU")));
}

TEST(Softnet, ThirtyTwoBitCountersWrap) {
  Pair p;
  p.get().before.softnet->rows[0].counters.dropped = 0xfffffff0u;
  p.get().after.softnet->rows[0].counters.dropped = 0x10u;  // 32 later
  auto f = p.Run("softnet-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].evidence[0].delta, 32);
}

TEST(Retransmissions, RatioNeedsVolumeAndNamesTheKind) {
  auto run = [](int64_t out, int64_t retrans, int64_t rto) {
    Pair p;
    p.Add("TcpOutSegs", out).Add("TcpRetransSegs", retrans).Add("TcpExtTCPTimeouts", rto);
    return p.Run("retransmissions");
  };
  EXPECT_TRUE(run(100000, 500, 0).empty());  // 0.5 %
  EXPECT_EQ(run(100000, 1500, 0).at(0).severity, Severity::kInfo);
  EXPECT_EQ(run(100000, 2000, 0).at(0).severity, Severity::kWarning);
  auto f = run(100000, 6000, 5000);
  EXPECT_EQ(f.at(0).severity, Severity::kCritical);
  EXPECT_THAT(f[0].summary, HasSubstr("6 % of TCP segments retransmitted"));
  EXPECT_THAT(f[0].summary, HasSubstr("mostly timeouts (RTO)"));
  EXPECT_EQ(run(500, 100, 0).at(0).severity, Severity::kInfo) << "20 % of 500 segments";
}

// SYNs sent again to a listener whose queue is full are not data loss.
TEST(Retransmissions, SynRetransmissionsAreNotCounted) {
  Pair p;
  p.Add("TcpOutSegs", 500).Add("TcpRetransSegs", 1120).Add("TcpExtTCPSynRetrans", 1120);
  EXPECT_TRUE(p.Run("retransmissions").empty());
  p.Add("TcpOutSegs", 100000).Add("TcpRetransSegs", 3000);
  auto f = p.Run("retransmissions");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);  // 3000 of 100500
  EXPECT_THAT(f[0].evidence[0].note, HasSubstr("besides 1120 SYNs"));
}

TEST(UdpRcvbuf, ErrorsGetALargerMaximum) {
  Pair p;
  p.Add("UdpRcvbufErrors", 2000);
  auto f = p.Run("udp-rcvbuf");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);
  EXPECT_EQ(std::get<tuners::SysctlIntent>(f[0].remediation.intent->what).settings[0],
            (std::pair<std::string, std::string>{"net.core.rmem_max", "3407872"}))
      << "8 MiB is the aim, 16 x 212992 what one apply may do";
}

TEST(TcpMemory, PagesAgainstTheHighMark) {
  Pair p;
  p.get().after.sockstat = collectors::Sockstat{{"TCP", {{"mem", 150000}, {"orphan", 0}}}};
  auto f = p.Run("tcp-memory-pressure");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);  // 83 %
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  p.get().after.sockstat = collectors::Sockstat{{"TCP", {{"mem", 100}}}};
  EXPECT_TRUE(p.Run("tcp-memory-pressure").empty());
  p.Add("TcpExtTCPMemoryPressures", 2);
  EXPECT_EQ(p.Run("tcp-memory-pressure").at(0).severity, Severity::kWarning);
}

TEST(Orphans, NearTheLimitShortensFinTimeout) {
  Pair p;
  p.get().after.sockstat = collectors::Sockstat{{"TCP", {{"orphan", 40000}}}};
  auto f = p.Run("orphans");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(std::get<tuners::LimitsIntent>(f[0].remediation.intent->what).settings[0],
            (std::pair<std::string, std::string>{"tcp_fin_timeout", "30"}));
}

collectors::LinkRecord Link(const std::string& name, uint64_t rx, uint64_t dropped, uint64_t missed,
                            uint64_t errors) {
  collectors::LinkRecord l;
  l.ifindex = 7;
  l.name = name;
  l.stats_count = collectors::kLinkStatCount;
  auto set = [&](const char* n, uint64_t v) {
    for (int i = 0; i < collectors::kLinkStatCount; ++i)
      if (std::string(collectors::kLinkStatNames[i]) == n) l.stats[i] = v;
  };
  set("rx_packets", rx);
  set("tx_packets", rx);
  set("rx_dropped", dropped);
  set("rx_missed_errors", missed);
  set("rx_errors", errors);
  set("rx_crc_errors", errors);
  return l;
}

TEST(Nic, DropsAndErrorsPerDevice) {
  Pair p;
  p.get().before.links = std::vector{Link("eth9", 1000, 0, 0, 0)};
  p.get().after.links = std::vector{Link("eth9", 101000, 10, 0, 0)};
  EXPECT_EQ(p.Run("nic-drops").at(0).severity, Severity::kInfo);  // 0.01 %, no ring drops
  p.get().after.links = std::vector{Link("eth9", 101000, 10, 5, 0)};
  auto f = p.Run("nic-drops");
  EXPECT_EQ(f.at(0).severity, Severity::kWarning);  // missed > 0
  EXPECT_EQ(f[0].attribution[0].object, "eth9");
  EXPECT_THAT(f[0].attribution[0].detail, HasSubstr("missed 5"));
  p.get().after.links = std::vector{Link("eth9", 101000, 0, 0, 3000)};
  auto e = p.Run("nic-errors");
  EXPECT_EQ(e.at(0).severity, Severity::kWarning);  // 1.5 %
  EXPECT_THAT(e[0].attribution[0].detail, HasSubstr("crc 3000"));
}

// A device that lost frames in hardware is named with its ring: room to grow
// or already at the maximum.
TEST(Nic, HardwareLossNamesTheRingAgainstItsMaximum) {
  Snapshot before, after;
  before.links = std::vector{Link("eth9", 1000, 0, 0, 0), Link("eth8", 1000, 0, 0, 0)};
  after.links = std::vector{Link("eth9", 101000, 10, 5, 0), Link("eth8", 101000, 10, 0, 0)};
  (*before.links)[1].ifindex = (*after.links)[1].ifindex = 8;
  EXPECT_THAT(HardwareLossDevices(before, after, 8), ::testing::ElementsAre("eth9"))
      << "eth8 dropped in software only";
  EXPECT_TRUE(HardwareLossDevices(before, after, 0).empty());
  Pair p;
  p.get().before.links = before.links;
  p.get().after.links = after.links;
  p.get().rings["eth9"] = {{"rx-max", 4096}, {"tx-max", 4096}, {"rx", 256}, {"tx", 256}};
  auto f = p.Run("nic-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_THAT(f[0].attribution[0].detail, HasSubstr("rx ring 256 of 4096"));
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("`ethtool -G eth9 rx 4096`"));
  p.get().rings["eth9"] = {{"rx-max", 4096}, {"rx", 4096}};
  f = p.Run("nic-drops");
  EXPECT_THAT(f.at(0).remediation.limits[0], HasSubstr("at its maximum 4096"));
}

// Per-queue counters name the queue that lost the frames, and a queue that
// takes most of the packets (the flows hash onto it) is said to be the
// cause a larger ring would not fix.
TEST(Nic, TheQueueThatLostThemAndOneQueueTakingMost) {
  auto queues = [](std::vector<std::pair<uint64_t, uint64_t>> packets_drops) {
    std::vector<collectors::RxQueueCounters> out;
    for (uint32_t i = 0; i < packets_drops.size(); ++i) {
      collectors::RxQueueCounters q;
      q.queue = i;
      q.packets = packets_drops[i].first;
      q.drops = packets_drops[i].second;
      q.packets_from = "qstats rx-packets";
      q.drops_from = "qstats rx-hw-drops";
      out.push_back(q);
    }
    return out;
  };
  Pair p;
  p.get().before.links = std::vector{Link("eth9", 1000, 0, 0, 0)};
  p.get().after.links = std::vector{Link("eth9", 101000, 10, 5, 0)};
  p.get().before.rx_queues["eth9"] = queues({{1000, 0}, {1000, 0}, {1000, 0}, {1000, 0}});
  p.get().after.rx_queues["eth9"] =
      queues({{91000, 5}, {4000, 0}, {4000, 0}, {4000, 0}});  // 90.9 % on queue 0
  auto f = p.Run("nic-drops");
  ASSERT_EQ(f.size(), 1u);
  bool named = false;
  for (const auto& a : f[0].attribution) {
    if (a.kind == "queue" && a.object == "eth9 rx queue 0") {
      named = true;
      EXPECT_EQ(a.detail, "5 dropped (qstats rx-hw-drops), 90.9 % of eth9's received packets");
    }
  }
  EXPECT_TRUE(named);
  EXPECT_THAT(absl::StrJoin(f[0].remediation.limits, "\n"),
              HasSubstr("eth9's rx queue 0 takes 90.9 % of its packets (4 queues)"));

  // Spread evenly, drops on one queue: that queue is named, no hashing cause.
  p.get().after.rx_queues["eth9"] = queues({{26000, 0}, {26000, 0}, {26000, 5}, {26000, 0}});
  f = p.Run("nic-drops");
  ASSERT_EQ(f.size(), 1u);
  int queue_rows = 0;
  for (const auto& a : f[0].attribution) {
    if (a.kind != "queue") continue;
    ++queue_rows;
    EXPECT_EQ(a.object, "eth9 rx queue 2");
  }
  EXPECT_EQ(queue_rows, 1);
  EXPECT_THAT(absl::StrJoin(f[0].remediation.limits, "\n"), Not(HasSubstr("takes")));

  // Two queues: 80 % on one is the hashing cause, 70 % is not.
  p.get().before.rx_queues["eth9"] = queues({{0, 0}, {0, 0}});
  p.get().after.rx_queues["eth9"] = queues({{8000, 5}, {2000, 0}});
  EXPECT_THAT(absl::StrJoin(p.Run("nic-drops").at(0).remediation.limits, "\n"),
              HasSubstr("rx queue 0 takes 80 % of its packets (2 queues)"));
  p.get().after.rx_queues["eth9"] = queues({{7000, 5}, {3000, 0}});
  EXPECT_THAT(absl::StrJoin(p.Run("nic-drops").at(0).remediation.limits, "\n"),
              Not(HasSubstr("takes")));

  // Only in the snapshot after (a device that appeared): no queue rows.
  p.get().before.rx_queues.clear();
  f = p.Run("nic-drops");
  for (const auto& a : f.at(0).attribution) EXPECT_NE(a.kind, "queue");
}

TEST(LinkFlaps, CarrierChangesPerDevice) {
  auto run = [](uint32_t before, uint32_t after) {
    Pair p;
    auto l = Link("eth9", 0, 0, 0, 0);
    l.carrier_changes = before;
    p.get().before.links = std::vector{l};
    l.carrier_changes = after;
    p.get().after.links = std::vector{l};
    return p.Run("link-flaps");
  };
  EXPECT_TRUE(run(4, 4).empty());
  EXPECT_EQ(run(4, 6).at(0).severity, Severity::kInfo);  // one down and up
  EXPECT_EQ(run(4, 7).at(0).severity, Severity::kWarning);
  EXPECT_EQ(run(0xffffffffu, 5).at(0).severity, Severity::kCritical) << "6 changes, wrapped";
  EXPECT_EQ(run(4, 10).at(0).attribution[0].object, "eth9");
}

collectors::FlowLimits Flow(uint64_t cookie, uint64_t busy_ms, uint64_t snd_ms, uint64_t rwnd_ms) {
  collectors::FlowLimits f;
  f.cookie = cookie;
  f.local = "10.0.0.1:5201";
  f.peer = absl::StrCat("10.0.0.2:", 40000 + cookie);
  f.busy_us = busy_ms * 1000;
  f.sndbuf_limited_us = snd_ms * 1000;
  f.rwnd_limited_us = rwnd_ms * 1000;
  f.rtt_us = 200000;
  f.delivery_rate = 12500000;
  return f;
}

TEST(BufferLimited, TheWindowsShareOfAFlowsBusyTime) {
  Pair p;
  p.Sysctl("net.ipv4.tcp_wmem", "4096 16384 4194304");
  collectors::SocketSummary b, a;
  // Flow 1: limited all its life before, not in the window: quiet.
  b.busiest_flows = {Flow(1, 10000, 9000, 0), Flow(2, 1000, 0, 0)};
  a.busiest_flows = {Flow(1, 20000, 9100, 0),
                     // Flow 2: 9 s busy in the window, 8.5 s of it send-buffer limited.
                     Flow(2, 10000, 8500, 0),
                     // Flow 3: new, too little busy time to grade.
                     Flow(3, 100, 100, 0)};
  p.get().before.sockets = b;
  p.get().after.sockets = a;
  auto f = p.Run("buffer-limited");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);  // 94 %
  ASSERT_EQ(f[0].attribution.size(), 1u);
  EXPECT_EQ(f[0].attribution[0].object, "10.0.0.1:5201 -> 10.0.0.2:40002");
  EXPECT_THAT(
      f[0].attribution[0].detail,
      HasSubstr("send buffer limited 94.4 % of 9000 ms busy; RTT 200 ms, delivery 100 Mbit/s"));
  ASSERT_TRUE(f[0].remediation.intent.has_value());
  EXPECT_TRUE(std::get<tuners::BdpIntent>(f[0].remediation.intent->what).observed);
  // A flow waiting on the peer: the peer's matter (info), nothing proposed here.
  a.busiest_flows = {Flow(2, 10000, 0, 6000)};
  p.get().after.sockets = a;
  auto r = p.Run("buffer-limited");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].severity, Severity::kInfo);  // 5 of 9 s: 56 %, on the peer's window
  EXPECT_FALSE(r[0].remediation.intent.has_value());
  EXPECT_THAT(r[0].remediation.limits[0], HasSubstr("on the peer"));
  // A flow not in the first snapshot has only lifetime totals: not graded.
  a.busiest_flows = {Flow(9, 10000, 9900, 0)};
  p.get().after.sockets = a;
  EXPECT_TRUE(p.Run("buffer-limited").empty());
}

collectors::NeighbourStats Neigh(const std::string& table, uint64_t entries, uint64_t fulls) {
  collectors::NeighbourStats n;
  n.table = table;
  n.entries = entries;
  n.totals = {{"allocs", 10}, {"table_fulls", fulls}};
  return n;
}

TEST(NeighbourOverflow, FullTablesAndGcThresh3) {
  Pair p;
  p.Sysctl("net.ipv4.neigh.default.gc_thresh3", "1024");
  p.Sysctl("net.ipv6.neigh.default.gc_thresh3", "1024");
  p.get().before.neighbours = std::vector{Neigh("arp_cache", 10, 4), Neigh("ndisc_cache", 3, 0)};
  p.get().after.neighbours = std::vector{Neigh("arp_cache", 11, 4), Neigh("ndisc_cache", 3, 0)};
  EXPECT_TRUE(p.Run("neighbour-overflow").empty()) << "old table_fulls are history";
  p.get().after.neighbours = std::vector{Neigh("arp_cache", 1024, 9), Neigh("ndisc_cache", 3, 0)};
  auto f = p.Run("neighbour-overflow");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);  // 100 % full
  EXPECT_EQ(f[0].attribution[0].object, "IPv4 (ARP)");
  EXPECT_THAT(f[0].attribution[0].detail, HasSubstr("5 times full in the window"));
  const auto& set = std::get<tuners::SysctlIntent>(f[0].remediation.intent->what).settings;
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0],
            (std::pair<std::string, std::string>{"net.ipv4.neigh.default.gc_thresh3", "2048"}));
}

TEST(MtuBlackhole, FullSizedSegmentsThatNeverGetThrough) {
  auto stalled = [](uint8_t rtos, uint32_t mss, uint64_t acked) {
    collectors::StalledFlow s;
    s.local = "10.0.0.1:40000";
    s.peer = "10.9.0.1:443";
    s.retransmits = rtos;
    s.snd_mss = mss;
    s.pmtu = 1500;
    s.unacked = 10;
    s.bytes_acked = acked;
    s.bytes_sent = acked + 10 * mss;  // ten full segments outstanding
    s.last_ack_recv_ms = 12000;
    return s;
  };
  Pair p;
  collectors::SocketSummary a;
  a.stalled = {stalled(2, 1448, 100), stalled(5, 536, 100), stalled(5, 1448, 1 << 20)};
  p.get().after.sockets = a;
  EXPECT_TRUE(p.Run("mtu-blackhole").empty()) << "2 RTOs, small MSS, or a flow that went far";
  a.stalled.push_back(stalled(4, 1448, 517));
  p.get().after.sockets = a;
  p.Sysctl("net.ipv4.tcp_mtu_probing", "0");
  auto f = p.Run("mtu-blackhole");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_EQ(f[0].attribution[0].object, "10.0.0.1:40000 -> 10.9.0.1:443");
  EXPECT_THAT(f[0].attribution[0].detail, HasSubstr("4 timeouts in a row with 10 segments of up "
                                                    "to 1448 bytes unacknowledged"));
  EXPECT_EQ(std::get<tuners::LimitsIntent>(f[0].remediation.intent->what).settings[0],
            (std::pair<std::string, std::string>{"tcp_mtu_probing", "1"}));
  // A dead peer with a small request unacknowledged is not a black hole.
  auto dead = stalled(6, 1448, 517);
  dead.bytes_sent = 517 + 300;
  a.stalled.push_back(dead);
  p.get().after.sockets = a;
  EXPECT_EQ(p.Run("mtu-blackhole").at(0).attribution.size(), 1u);
  for (int i = 0; i < 4; ++i) a.stalled.push_back(stalled(3, 1448, 200));
  p.get().after.sockets = a;
  EXPECT_EQ(p.Run("mtu-blackhole").at(0).severity, Severity::kCritical);
}

TEST(IrqImbalance, OneCpuDoingTheReceiveWorkIsAFaultOnlyWhenItFallsBehind) {
  Pair p;
  collectors::Softirqs before, after;
  before.cpus = after.cpus = {0, 1};
  before.counts["NET_RX"] = {1000, 1000};
  after.counts["NET_RX"] = {1000 + 95000, 1000 + 1000};  // 9,600/s, 99 % on cpu 0
  p.get().before.softirqs = before;
  p.get().after.softirqs = after;
  auto eth = Link("eth9", 1000, 0, 0, 0);
  eth.num_rx_queues = 1;
  p.get().before.links = std::vector{eth};
  eth.stats[0] = 900000;  // rx_packets
  p.get().after.links = std::vector{eth};
  auto quiet = p.Run("irq-imbalance");
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_EQ(quiet[0].severity, Severity::kInfo) << "keeping up: not a fault";
  const uint32_t cpu0 = p.get().after.softnet->rows[0].cpu;
  ASSERT_EQ(cpu0, 0u);
  p.get().after.softnet->rows[0].counters.time_squeeze += 40;
  EXPECT_EQ(p.Run("irq-imbalance").at(0).severity, Severity::kInfo) << "busy, not losing";
  p.get().after.softnet->rows[0].counters.dropped += 10;
  auto f = p.Run("irq-imbalance");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kCritical);
  EXPECT_EQ(f[0].attribution[0].object, "cpu 0");
  EXPECT_EQ(f[0].attribution[1].object, "eth9");
  EXPECT_EQ(std::get<tuners::RpsIntent>(f[0].remediation.intent->what).device, "eth9");
  // Several queues: their interrupts are spread instead.
  for (auto* l : {&*p.get().before.links, &*p.get().after.links}) (*l)[0].num_rx_queues = 4;
  EXPECT_EQ(std::get<tuners::IrqAffinityIntent>(p.Run("irq-imbalance")[0].remediation.intent->what)
                .device,
            "eth9");
  // The counters are 32-bit: a wrap is a delta, not a CPU that did nothing.
  before.counts["NET_RX"] = {0xffffff00u, 1000};
  after.counts["NET_RX"] = {95000 - 0x100, 2000};
  p.get().before.softirqs = before;
  p.get().after.softirqs = after;
  EXPECT_EQ(p.Run("irq-imbalance").at(0).attribution[0].object, "cpu 0");
  before.counts["NET_RX"] = {1000, 1000};
  p.get().before.softirqs = before;
  // An idle host (under 1,000 receive softirqs a second) is not graded.
  after.counts["NET_RX"] = {1000 + 5000, 1000};
  p.get().after.softirqs = after;
  EXPECT_TRUE(p.Run("irq-imbalance").empty());
}

TEST(SynFlood, ModeTwoCookiesAreNotAFullQueue) {
  Pair p;
  p.Sysctl("net.ipv4.tcp_syncookies", "2");
  p.Add("TcpExtTCPReqQFullDoCookies", 500);
  EXPECT_TRUE(p.Run("syn-flood").empty()) << "tcp_syncookies=2 sends a cookie for every SYN";
  p.Add("TcpExtTCPReqQFullDrop", 100);
  EXPECT_EQ(p.Run("syn-flood").at(0).severity, Severity::kCritical);
}

// A knob at (or above) the agent's ceiling gets no proposal that would lower it.
TEST(Remediation, NothingIsProposedAtTheCeiling) {
  Pair p;
  p.Sysctl("net.core.netdev_max_backlog", "300000");
  p.get().after.softnet->rows[0].counters.dropped += 500;
  auto f = p.Run("softnet-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value());
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("at or above the most the agent sets"));
  Pair c;
  c.get().before.conntrack = Conntrack(33000000, 33554432, 0);
  c.get().after.conntrack = Conntrack(33000000, 33554432, 0);
  auto full = c.Run("conntrack-full");
  ASSERT_EQ(full.size(), 1u);
  EXPECT_FALSE(full[0].remediation.intent.has_value()) << "never halve a full table";
}

TEST(ConntrackFull, InsertRacesAloneAreNoFullTable) {
  Pair p;
  auto b = Conntrack(30, 1000, 0), a = Conntrack(30, 1000, 0);
  a.total.back().second = 3;  // insert_failed
  p.get().before.conntrack = b;
  p.get().after.conntrack = a;
  EXPECT_TRUE(p.Run("conntrack-full").empty());
  a.total[1].second = 5;  // drop
  p.get().after.conntrack = a;
  auto f = p.Run("conntrack-full");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_FALSE(f[0].remediation.intent.has_value()) << "a 3 % full table needs no larger max";
}

TEST(Nic, FewPacketsAndBondPortsAreNotGradedByRatio) {
  Pair p;
  auto before = Link("eth9", 0, 0, 0, 0);
  auto after = Link("eth9", 10, 40, 0, 0);  // 40 of 50 "lost": a bond's idle port
  after.master = 3;
  p.get().before.links = std::vector{before};
  p.get().after.links = std::vector{after};
  EXPECT_EQ(p.Run("nic-drops").at(0).severity, Severity::kInfo);
  auto e = Link("eth9", 10, 0, 0, 5);
  p.get().after.links = std::vector{e};
  EXPECT_EQ(p.Run("nic-errors").at(0).severity, Severity::kInfo) << "5 errors in 20 frames";
}

TEST(Options, UnknownRulesAndBadOverridesNameTheField) {
  DiagnoseOptions o;
  o.rules = {"nope"};
  EXPECT_THAT(ValidateOptions(o, "request").message(), HasSubstr("request.rules: no rule"));
  o.rules = {};
  o.overrides["listen-overflow"]["bogus"] = {"", 1, 2};
  EXPECT_THAT(ValidateOptions(o, "config").message(),
              HasSubstr("config.thresholds.listen-overflow: no metric"));
  o.overrides.clear();
  o.overrides["listen-overflow"]["overflows_per_second"] = {"", 5, 1};
  EXPECT_FALSE(ValidateOptions(o, "config").ok());
  o.overrides["listen-overflow"]["overflows_per_second"] = {"", 1, 5};
  EXPECT_TRUE(ValidateOptions(o, "config").ok());
}

const Evidence* EvidenceNamed(const Finding& f, const std::string& name) {
  for (const Evidence& e : f.evidence)
    if (e.name == name) return &e;
  return nullptr;
}

TEST(KernelDrops, ARulesOwnReasonIsItsEvidenceWithDeviceAndSources) {
  Pair p;
  p.Add("TcpExtListenOverflows", 400).Listener("0.0.0.0", 8080, 17, 16);
  p.Drops("TCP_LISTEN_OVERFLOW", "lo", 100, 500)
      .DropSource("10.1.2.0/24", 40, "TCP_LISTEN_OVERFLOW");
  p.DropSource("192.0.2.0/24", 9, "NO_SOCKET");
  auto f = p.Run("listen-overflow");
  ASSERT_EQ(f.size(), 1u);
  const Evidence* e = EvidenceNamed(f[0], "kernel drops, reason TCP_LISTEN_OVERFLOW");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->delta, 400);
  EXPECT_DOUBLE_EQ(e->value, 40);
  EXPECT_THAT(e->note, HasSubstr("lo 400"));
  bool source = false;
  for (const Attribution& a : f[0].attribution) {
    EXPECT_NE(a.object, "192.0.2.0/24") << "another reason's source";
    if (a.kind == "source" && a.object == "10.1.2.0/24") source = true;
  }
  EXPECT_TRUE(source);
  // The same reason is not reported again by kernel-drops.
  EXPECT_TRUE(p.Run("kernel-drops").empty());
}

TEST(KernelDrops, WithoutTheCollectorThroughTheWindowNothingIsCited) {
  Pair p;
  p.Add("TcpExtListenOverflows", 400).Listener("0.0.0.0", 8080, 17, 16);
  p.Drops("TCP_LISTEN_OVERFLOW", "lo", 100, 500).Drops("TCP_CSUM", "veth0", 0, 5000);
  // Attached again between the snapshots: the counts started over.
  p.get().after.drops->attached_at += absl::Seconds(5);
  auto f = p.Run("listen-overflow");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(EvidenceNamed(f[0], "kernel drops, reason TCP_LISTEN_OVERFLOW"), nullptr);
  EXPECT_TRUE(p.Run("kernel-drops").empty());
  p.get().before.drops.reset();
  EXPECT_TRUE(p.Run("kernel-drops").empty());
}

// Keys are device indexes: a veth deleted (or renamed) between the
// snapshots is the same key, not lifetime totals appearing as new drops.
TEST(KernelDrops, ADeviceThatWentAwayIsComparedByIndex) {
  Pair p;
  p.Drops("NETFILTER_DROP", "veth7", 90000, 90050);
  p.get().after.drops->devices.clear();  // gone by the end
  auto f = p.Run("kernel-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_THAT(f[0].summary, HasSubstr("50 packets dropped"));
  EXPECT_THAT(f[0].summary, HasSubstr("on veth7"));
  p.get().after.drops->devices[2] = "lxc1234";  // the index, renamed
  f = p.Run("kernel-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_THAT(f[0].summary, HasSubstr("50 packets dropped"));
  EXPECT_THAT(f[0].summary, HasSubstr("on lxc1234"));
}

TEST(KernelDrops, FaultsAreGradedPolicyAndClosedPortsAreInfoRoutineIsQuiet) {
  {
    Pair p;
    p.Drops("TCP_OLD_DATA", "eth0", 0, 100000).Drops("NOT_SPECIFIED", "", 0, 100000);
    EXPECT_TRUE(p.Run("kernel-drops").empty()) << "routine discards";
  }
  {
    Pair p;  // 0.5/s of a fault: info
    p.Drops("TCP_CSUM", "veth0", 10, 15);
    auto f = p.Run("kernel-drops");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kInfo);
  }
  {
    Pair p;  // 5 policy drops in 10 s: below 1/s, not mentioned
    p.Drops("NETFILTER_DROP", "veth0", 0, 5);
    EXPECT_TRUE(p.Run("kernel-drops").empty());
  }
  {
    Pair p;
    p.Drops("NETFILTER_DROP", "veth0", 0, 4120).DropSource("10.1.2.0/24", 90, "NETFILTER_DROP");
    auto f = p.Run("kernel-drops");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kInfo) << "a firewall rule is no fault";
    EXPECT_THAT(f[0].summary, HasSubstr("NETFILTER_DROP 412/s on veth0 from 10.1.2.0/24"));
    EXPECT_FALSE(f[0].remediation.intent);
    EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("nft list ruleset"));
  }
  {
    Pair p;  // the edges, per reason (never summed): 1/s warning, 100/s critical
    p.Drops("TCP_CSUM", "veth0", 0, 6).Drops("IP_CSUM", "veth0", 0, 4);
    auto f = p.Run("kernel-drops");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kInfo) << "0.6/s and 0.4/s: neither reaches 1/s";
    p.Drops("TCP_CSUM", "veth0", 0, 10);
    f = p.Run("kernel-drops");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kWarning);
    p.Drops("IP_CSUM", "veth0", 0, 1000);
    f = p.Run("kernel-drops");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kCritical);
    f = p.Run("kernel-drops", {{"kernel-drops", {{"fault_drops_per_second", {"", 200, 500}}}}});
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kInfo);
  }
  {
    Pair p;  // faults first; an unknown reason is named as such
    p.Drops("NO_SOCKET", "lo", 0, 9000).Drops("QDISC_DROP", "eth1", 0, 20);
    p.Drops("FUTURE_REASON", "eth1", 0, 50);
    auto f = p.Run("kernel-drops");
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, Severity::kWarning);
    EXPECT_THAT(f[0].summary, HasSubstr(": QDISC_DROP 2/s on eth1; NO_SOCKET 900/s on lo; "
                                        "FUTURE_REASON 5/s on eth1"));
    EXPECT_THAT(f[0].remediation.limits[2], HasSubstr("does not describe"));
  }
}

// What a busy, healthy host drops (reordering duplicates, AQM, a zero
// window, path MTU discovery, closed sockets) stays below warning.
TEST(KernelDrops, ABusyHealthyHostStaysBelowWarning) {
  Pair p;
  p.Drops("TCP_OFO_DROP", "eth0", 0, 50000).Drops("TCP_OLD_DATA", "eth0", 0, 90000);
  p.Drops("QDISC_CONGESTED", "eth0", 0, 3000).Drops("TCP_ZEROWINDOW", "eth0", 0, 400);
  p.Drops("PKT_TOO_BIG", "eth0", 0, 200).Drops("NO_SOCKET", "eth0", 0, 5000);
  p.Drops("IP_RPFILTER", "eth0", 0, 100);
  auto f = p.Run("kernel-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kInfo) << f[0].summary;
  EXPECT_THAT(f[0].summary, Not(HasSubstr("TCP_OFO_DROP")));
}

// A reason with a rule of its own is left to that rule when it fires, and
// reported here when it does not (UDP out of memory is no TCP memory
// pressure); a neighbour that does not answer is a fault, not a full table.
TEST(KernelDrops, ACitedReasonWhoseRuleFoundNothingIsReportedHere) {
  Pair p;
  p.Drops("PROTO_MEM", "", 0, 300).Drops("NEIGH_FAILED", "eth0", 0, 50);
  auto f = p.Run("kernel-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].severity, Severity::kWarning);
  EXPECT_THAT(f[0].summary, HasSubstr("PROTO_MEM 30/s"));
  EXPECT_THAT(f[0].summary, HasSubstr("NEIGH_FAILED 5/s on eth0"));
  p.Add("TcpExtTCPMemoryPressures", 3);  // now tcp-memory-pressure fires and cites it
  f = p.Run("kernel-drops");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_THAT(f[0].summary, Not(HasSubstr("PROTO_MEM")));
  auto mem = p.Run("tcp-memory-pressure");
  ASSERT_EQ(mem.size(), 1u);
  EXPECT_NE(EvidenceNamed(mem[0], "kernel drops, reason PROTO_MEM"), nullptr);
}

// Conntrack refusing new flows is said beside NETFILTER_DROP; drops the
// collector could not count are said; a reason's devices are capped at five.
TEST(KernelDrops, ConntrackShareUncountedDropsAndManyDevices) {
  Pair p;
  for (int i = 0; i < 8; ++i) p.Drops("NETFILTER_DROP", absl::StrCat("veth", i), 0, 100 + i);
  p.get().before.conntrack = Conntrack(1000, 262144, 0);
  p.get().after.conntrack = Conntrack(1000, 262144, 70);
  p.get().after.drops->table_full = 12;
  auto f = p.Run("kernel-drops");
  ASSERT_EQ(f.size(), 1u);
  const Evidence* e = EvidenceNamed(f[0], "kernel drops, reason NETFILTER_DROP");
  ASSERT_NE(e, nullptr);
  EXPECT_THAT(e->note, HasSubstr("veth7 107"));
  EXPECT_THAT(e->note, HasSubstr("and 3 more"));
  EXPECT_THAT(e->note, Not(HasSubstr("veth0 ")));
  EXPECT_THAT(f[0].remediation.limits[0], HasSubstr("conntrack refused 70 new flows"));
  EXPECT_THAT(f[0].remediation.limits[1], HasSubstr("12 drops in the window were counted nowhere"));
}

TEST(Diagnose, MostSevereFirstAndMinimumSeverity) {
  Pair p;
  p.Add("TcpExtListenOverflows", 5);  // info
  p.Add("UdpRcvbufErrors", 2000);     // critical
  auto all = Diagnose(p.get(), {});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].rule, "udp-rcvbuf");
  DiagnoseOptions o;
  o.min_severity = Severity::kWarning;
  EXPECT_EQ(Diagnose(p.get(), o).size(), 1u);
}

}  // namespace
}  // namespace netagent::diagnosis

namespace netagent::diagnosis {
namespace {

// Every rule either has a shipped playbook (docs/playbooks/RULE.yaml, whose
// match.finding names it, and maybe variants RULE-VARIANT.yaml for other
// kinds of its remediation) or is listed here with why it has none: a new
// rule must make that choice.
TEST(Catalog, EveryRuleWithARemediationHasAShippedPlaybook) {
  const std::map<std::string, std::string> without = {
      {"retransmissions", "names the path's loss; nothing on the host fixes it"},
      {"tcp-memory-pressure", "tcp_mem is host-wide and not managed"},
      {"nic-drops", "needs a per-device decision (rings, channels) by a person"},
      {"nic-errors", "a link or hardware fault"},
      {"link-flaps", "a link fault"},
      {"mtu-blackhole", "a path fault; probing is advice, not a change"},
      {"irq-imbalance", "CPU placement needs a person's plan"},
      {"kernel-drops", "evidence for other findings"},
  };
  std::set<std::string> shipped;
  const std::filesystem::path dir = std::filesystem::path(NETAGENT_SOURCE_DIR) / "docs/playbooks";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    std::ifstream in(e.path());
    std::string line, finding;
    bool kinds = false;
    while (std::getline(in, line)) {
      const auto at = line.find("  finding: ");
      if (at == 0) finding = line.substr(11);
      kinds |= absl::StartsWith(line, "  kinds: ");
    }
    const std::string file = e.path().filename().string();
    EXPECT_TRUE(file == finding + ".yaml" || absl::StartsWith(file, finding + "-")) << file;
    // A variant exists for another kind of the rule's remediation: both say
    // which kind they take.
    if (file != finding + ".yaml") {
      EXPECT_TRUE(kinds) << file << ": a variant names its remediation.kinds";
      std::ifstream main(dir / (finding + ".yaml"));
      std::string text((std::istreambuf_iterator<char>(main)), std::istreambuf_iterator<char>());
      EXPECT_NE(text.find("\n  kinds: "), std::string::npos)
          << finding << ".yaml has a variant, so it names its remediation.kinds";
    }
    if (file == finding + ".yaml") shipped.insert(finding);
  }
  std::set<std::string> ids;
  for (const auto& r : Catalog()) {
    ids.insert(r.id);
    EXPECT_TRUE(shipped.count(r.id) + without.count(r.id) == 1)
        << r.id << ": ship docs/playbooks/" << r.id << ".yaml or say why not, not both";
  }
  for (const auto& id : shipped) EXPECT_TRUE(ids.count(id)) << id << " is not a rule";
}

}  // namespace
}  // namespace netagent::diagnosis
