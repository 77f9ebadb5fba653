#include "diagnosis/rules.h"

#include <linux/if.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "collectors/inet.h"
#include "kernel/text.h"
#include "tuners/knobs.h"

namespace netagent::diagnosis {
namespace {

using collectors::FormatAddress;
using collectors::FormatEndpoint;

// Numbers as people read them: 412, 3.5, 0.25.
std::string Num(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  if (std::fabs(v) >= 100) return absl::StrFormat("%.0f", v);
  if (std::fabs(v) >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2g", v);
}

std::string Seconds(const Window& w) { return absl::StrCat(Num(std::round(w.seconds())), " s"); }

Severity Max(Severity a, Severity b) { return static_cast<int>(a) >= static_cast<int>(b) ? a : b; }

// The severity of several metrics: the highest any reaches; info when none
// reaches a level but `something` is non-zero; unset when nothing happened.
std::optional<Severity> Worst(std::initializer_list<std::optional<Severity>> grades,
                              bool something) {
  std::optional<Severity> out;
  for (const auto& g : grades)
    if (g) out = out ? Max(*out, *g) : *g;
  if (!out && something) out = Severity::kInfo;
  return out;
}

Evidence CounterEvidence(const Window& w, absl::string_view counter) {
  Evidence e;
  e.name = std::string(counter);
  e.delta = w.Delta(counter);
  e.value = w.Rate(counter);
  e.unit = "/s";
  if (!e.delta) e.note = "not in this kernel's counters";
  return e;
}

Evidence Value(std::string name, double value, std::string unit, std::string note = "") {
  Evidence e;
  e.name = std::move(name);
  e.value = value;
  e.unit = std::move(unit);
  e.note = std::move(note);
  return e;
}

// `want` moved within what one apply may do to `knob` (its full name): its
// bounds and its largest step from `current`, so the plan is one the
// planner accepts as is. A larger need takes several steps.
int64_t Reachable(absl::string_view knob, int64_t current, int64_t want) {
  const tuners::SysctlSpec* spec = tuners::FindSysctl(knob);
  if (spec == nullptr) return want;
  if (spec->max_step > 0 && current > 0) {
    want = std::min<int64_t>(want,
                             static_cast<int64_t>(static_cast<double>(current) * spec->max_step));
  }
  return std::clamp<int64_t>(want, spec->floor, spec->ceiling);
}

// Reachable, when that is above `current`: a knob already at the agent's
// ceiling for it (or above) gets no proposal at all.
std::optional<int64_t> Raise(absl::string_view knob, int64_t current, int64_t want) {
  const int64_t next = Reachable(knob, current, want);
  if (next <= current) return std::nullopt;
  return next;
}

std::string AtCeiling(absl::string_view knob, int64_t current) {
  return absl::StrCat(knob, " is ", current,
                      ", at or above the most the agent sets it to: look for what fills it");
}

tuners::Intent Limits(tuners::Settings settings) {
  tuners::Intent i;
  i.what = tuners::LimitsIntent{std::move(settings)};
  return i;
}

tuners::Intent Sysctl(tuners::Settings settings) {
  tuners::Intent i;
  i.what = tuners::SysctlIntent{std::move(settings)};
  return i;
}

// The kernel's own account (skb:kfree_skb) of drops of `reason` over the
// window, when the kernel-drop collector ran through it: evidence with the
// devices, and the source prefixes its sampled drops came from. Returns the
// drops cited (0 without the collector).
int64_t CiteDrops(const Window& w, Finding& f, absl::string_view reason, size_t sources = 3) {
  if (!w.Drops()) return 0;
  int64_t n = 0;
  std::vector<std::pair<int64_t, std::string>> by_device;
  for (const auto& [key, delta] : *w.Drops()) {
    if (key.first != reason) continue;
    n += delta;
    by_device.push_back({delta, key.second.empty() ? "no device" : key.second});
  }
  if (n <= 0) return 0;
  // The five that dropped most (a host may have a thousand veths).
  std::sort(by_device.begin(), by_device.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first > y.first : x.second < y.second;
  });
  std::vector<std::string> devices;
  for (size_t i = 0; i < by_device.size() && i < 5; ++i)
    devices.push_back(absl::StrCat(by_device[i].second, " ", by_device[i].first));
  if (by_device.size() > 5) devices.push_back(absl::StrCat("and ", by_device.size() - 5, " more"));
  Evidence e;
  e.name = absl::StrCat("kernel drops, reason ", reason);
  e.delta = n;
  e.value = w.seconds() > 0 ? static_cast<double>(n) / w.seconds() : 0;
  e.unit = "/s";
  e.note = absl::StrCat("skb:kfree_skb; ", absl::StrJoin(devices, ", "));
  f.evidence.push_back(std::move(e));
  for (const DropSource& s : w.pair().drop_sources) {
    if (sources == 0) break;
    if (s.reason != reason) continue;
    f.attribution.push_back(
        {"source", s.prefix, absl::StrCat(s.samples, " sampled drops, reason ", reason)});
    --sources;
  }
  return n;
}

// ---------------------------------------------------------------- listen-overflow

struct ListenerSeen {
  std::string endpoint;
  ListenerWatch w;
};

std::vector<ListenerSeen> ListenersSeen(const SnapshotPair& pair) {
  std::vector<ListenerSeen> out;
  for (const auto& [endpoint, w] : pair.listeners) out.push_back({endpoint, w});
  std::sort(out.begin(), out.end(), [](const ListenerSeen& a, const ListenerSeen& b) {
    return a.w.full != b.w.full ? a.w.full > b.w.full : a.endpoint < b.endpoint;
  });
  return out;
}

std::optional<Finding> ListenOverflow(const Window& w, const std::vector<Level>& levels) {
  const auto overflows = w.Delta("TcpExtListenOverflows");
  if (!overflows || *overflows <= 0) return std::nullopt;
  const double rate = w.Rate("TcpExtListenOverflows");
  Finding f;
  f.severity = *Worst({Grade(rate, LevelOf(levels, "overflows_per_second"))}, true);
  f.evidence.push_back(CounterEvidence(w, "TcpExtListenOverflows"));
  f.evidence.push_back(CounterEvidence(w, "TcpExtListenDrops"));
  CiteDrops(w, f, "TCP_LISTEN_OVERFLOW");
  const auto somaxconn = w.SysctlInt("net.core.somaxconn");
  if (somaxconn) f.evidence.push_back(Value("net.core.somaxconn", *somaxconn, ""));

  bool app_limited = false, somaxconn_limited = false;
  std::vector<std::string> named;
  for (const ListenerSeen& l : ListenersSeen(w.pair())) {
    const ListenerWatch& lw = l.w;
    const bool nearly = uint64_t{lw.max_queue} * 5 >= uint64_t{lw.backlog} * 4;  // 80 %
    if (lw.full == 0 && !nearly) continue;
    Attribution a;
    a.kind = "listener";
    a.object = l.endpoint;
    a.detail = absl::StrCat("accept queue up to ", lw.max_queue, " of ", lw.backlog, "; full in ",
                            lw.full, " of ", lw.samples, " samples");
    if (somaxconn && lw.backlog < *somaxconn) {
      app_limited = true;
      absl::StrAppend(&a.detail, "; listen() backlog ", lw.backlog, " < somaxconn ", *somaxconn);
      f.remediation.limits.push_back(absl::StrCat(
          "listener ", l.endpoint, " has backlog ", lw.backlog, " < somaxconn ", *somaxconn,
          ": the application's listen() backlog is the limit; raising somaxconn will not help. "
          "Raise the backlog in the application (listen(fd, N) or its setting) or make it "
          "accept faster — or, if somaxconn was raised since it started, restart it: a "
          "listener keeps the backlog it got at listen()"));
    } else if (somaxconn) {
      somaxconn_limited = true;
      absl::StrAppend(&a.detail, "; backlog capped at somaxconn ", *somaxconn);
    }
    f.evidence.push_back(Value(absl::StrCat("listener ", l.endpoint, " accept queue max"),
                               lw.max_queue, "connections", absl::StrCat("backlog ", lw.backlog)));
    named.push_back(l.endpoint);
    f.attribution.push_back(std::move(a));
  }
  if (named.empty()) {
    f.remediation.limits.push_back(absl::StrCat(
        "no listener was seen full in ", w.pair().listener_samples,
        " samples: the overflows came in bursts shorter than a sample; run again with a longer "
        "window, or see which listener with `netctl drops` (reason TCP_LISTEN_OVERFLOW)"));
  }
  const std::optional<int64_t> next =
      somaxconn_limited && somaxconn
          ? Raise("net.core.somaxconn", *somaxconn, std::max<int64_t>(*somaxconn * 2, 4096))
          : std::nullopt;
  if (somaxconn_limited && somaxconn && !next) {
    f.remediation.limits.push_back(AtCeiling("net.core.somaxconn", *somaxconn));
  }
  if (next) {
    f.remediation.intent = Limits({{"somaxconn", absl::StrCat(*next)}});
    f.remediation.summary = absl::StrCat(
        "raise net.core.somaxconn from ", *somaxconn, " to ", *next,
        " so the listeners whose backlog it caps get a longer accept queue (the application "
        "must ask for at least that much in listen(); most pass a large value or -1)");
  } else if (app_limited) {
    f.remediation.summary =
        "nothing on the host: the application's own listen() backlog is the limit";
  }
  if (f.remediation.intent) {
    f.remediation.limits.push_back(
        "a listener's backlog is fixed when it calls listen(): the new somaxconn reaches it once "
        "the application listens again (a restart or reload)");
  }
  f.remediation.limits.push_back(
      "a longer queue absorbs bursts; an application that accepts more slowly than connections "
      "arrive fills any queue");
  f.summary =
      absl::StrCat(*overflows, " accept-queue overflows in ", Seconds(w), " (", Num(rate), "/s)",
                   named.empty() ? "" : absl::StrCat(" on ", absl::StrJoin(named, ", ")),
                   app_limited ? "; the application's listen() backlog is the limit" : "");
  f.verification = {"TcpExtListenOverflows per second", "0 over the same window"};
  return f;
}

// ---------------------------------------------------------------- syn-flood

std::string SourcePrefix(const collectors::IpAddress& a) {
  collectors::IpAddress p = a;
  const size_t keep = a.family == AF_INET ? 3 : 8;  // /24, /64
  std::fill(p.bytes.begin() + keep, p.bytes.end(), 0);
  return absl::StrCat(FormatAddress(p), a.family == AF_INET ? "/24" : "/64");
}

// The first of the fast path's allow rules that overlaps `net`, or "".
std::string AllowOverlapping(const FastPath& fp, const std::string& net) {
  auto n = collectors::ParsePrefix(net, "network");
  if (!n.ok()) return "";
  for (const std::string& allowed : fp.allowed) {
    auto a = collectors::ParsePrefix(allowed, "allowed");
    if (!a.ok() || a->address.family != n->address.family) continue;
    const bool overlap = a->length <= n->length ? a->Contains(n->address) : n->Contains(a->address);
    if (overlap) return allowed;
  }
  return "";
}

// Fewer half-open connections, or fewer SYNs a second dropped or answered
// with cookies, than this are no basis for a block.
constexpr uint64_t kMinFloodHalfOpen = 16;
constexpr double kMinFloodRate = 100;

std::optional<Finding> SynFlood(const Window& w, const std::vector<Level>& levels) {
  const double drops = w.Rate("TcpExtTCPReqQFullDrop");
  const double cookies = w.Rate("TcpExtTCPReqQFullDoCookies");
  const int64_t dropped = w.Delta("TcpExtTCPReqQFullDrop").value_or(0);
  const int64_t cookied = w.Delta("TcpExtTCPReqQFullDoCookies").value_or(0);
  // tcp_syncookies=2 answers every SYN with a cookie, full queue or not: the
  // cookie counters then say nothing about the queue.
  const bool always_cookies = w.SysctlInt("net.ipv4.tcp_syncookies").value_or(1) == 2;
  if (dropped <= 0 && (cookied <= 0 || always_cookies)) return std::nullopt;
  Finding f;
  f.severity = *Worst(
      {Grade(drops, LevelOf(levels, "syn_drops_per_second")),
       always_cookies ? std::nullopt : Grade(cookies, LevelOf(levels, "cookies_per_second"))},
      true);
  for (const char* c : {"TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
                        "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed"})
    f.evidence.push_back(CounterEvidence(w, c));
  const auto cookies_on = w.SysctlInt("net.ipv4.tcp_syncookies");
  const auto syn_backlog = w.SysctlInt("net.ipv4.tcp_max_syn_backlog");
  if (cookies_on) f.evidence.push_back(Value("net.ipv4.tcp_syncookies", *cookies_on, ""));
  if (syn_backlog) f.evidence.push_back(Value("net.ipv4.tcp_max_syn_backlog", *syn_backlog, ""));

  std::vector<std::string> listeners;
  // The networks that hold most of the half-open connections, each a
  // tenth of them or more: a flood from a few networks (not spoofed over
  // the whole address space) that the fast path can drop before the stack.
  std::vector<std::string> flooders;
  uint64_t half_open = 0, from_flooders = 0;
  if (const auto& s = w.pair().after.sockets) {
    // SO_REUSEPORT: every socket of an endpoint carries the endpoint's count.
    std::set<std::string> counted;
    for (const auto& l : s->listeners) {
      if (l.syn_recv == 0) continue;
      if (counted.insert(FormatEndpoint(l.address, l.port)).second) half_open += l.syn_recv;
      listeners.push_back(FormatEndpoint(l.address, l.port));
      f.attribution.push_back(
          {"listener", FormatEndpoint(l.address, l.port),
           absl::StrCat(l.syn_recv, " half-open (SYN_RECV), backlog ", l.backlog)});
    }
    std::map<std::string, uint64_t> prefixes;
    for (const auto& [addr, n] : s->top_syn_recv_sources) prefixes[SourcePrefix(addr)] += n;
    std::vector<std::pair<std::string, uint64_t>> top(prefixes.begin(), prefixes.end());
    std::sort(top.begin(), top.end(),
              [](const auto& a, const auto& b) { return a.second > b.second; });
    for (size_t i = 0; i < top.size() && i < 5; ++i) {
      f.attribution.push_back(
          {"source", top[i].first, absl::StrCat(top[i].second, " half-open connections")});
    }
    for (const auto& [prefix, n] : top) {
      if (n * 10 < half_open || from_flooders * 10 >= half_open * 8) break;
      flooders.push_back(prefix);
      from_flooders += n;
    }
    if (half_open < kMinFloodHalfOpen || from_flooders * 10 < half_open * 8) flooders.clear();
  }
  // Clients whose handshakes complete but are not accepted leave half-open
  // connections too (their last ACK is dropped at a full accept queue):
  // that is a slow application, and its clients (or the load balancer in
  // front) are what a block would drop. And a trickle of SYNs is no flood:
  // a block on its word would let anyone name a network for the host to cut
  // off by spoofing a few packets from it.
  std::string no_block;
  const int64_t overflows = w.Delta("TcpExtListenOverflows").value_or(0);
  if (!flooders.empty() && overflows > 0) {
    no_block = absl::StrCat(
        "no block is proposed: ", overflows,
        " accept-queue overflows in the window mean completed handshakes are waiting on the "
        "application, and the half-open connections may be its own clients' (see "
        "listen-overflow)");
  } else if (!flooders.empty() && drops + cookies < kMinFloodRate) {
    no_block =
        absl::StrCat("no block is proposed below ", kMinFloodRate,
                     " SYNs a second dropped or answered with cookies (", Num(drops + cookies),
                     " here): too little to tell a flood from sources spoofed to frame a "
                     "network");
  }
  if (!no_block.empty()) {
    f.remediation.limits.push_back(no_block);
    flooders.clear();
  }
  // The one device the fast path can block on (with several, which one the
  // flood comes in on is not known here).
  const FastPath* fast_path = nullptr;
  size_t blocking = 0;
  for (const auto& fp : w.pair().after.fast_paths) {
    if (!fp.blocklist) continue;
    ++blocking;
    fast_path = &fp;
  }
  if (blocking != 1) fast_path = nullptr;
  // An allow rule is checked before any block: a network it overlaps would
  // stay in part or whole, the flood with it, and the block would not
  // verify. No block then, and why.
  if (fast_path != nullptr && !flooders.empty() && !fast_path->rules_unread.empty()) {
    f.remediation.limits.push_back(absl::StrCat("no block is proposed: the rules on ",
                                                fast_path->device, " could not be read (",
                                                fast_path->rules_unread, ")"));
    flooders.clear();
  }
  if (fast_path != nullptr) {
    for (const std::string& net : flooders) {
      const std::string allow = AllowOverlapping(*fast_path, net);
      if (allow.empty()) continue;
      f.remediation.limits.push_back(
          absl::StrCat("no block is proposed: the allow rule for ", allow, " on ",
                       fast_path->device, " overlaps ", net,
                       ", and allow rules are checked before blocks (the flood from it "
                       "would go on)"));
      flooders.clear();
      break;
    }
  }
  const std::string networks = absl::StrJoin(flooders, ", ");
  const std::string share =
      absl::StrCat(from_flooders, " of ", half_open, " half-open connections");
  if (cookies_on && *cookies_on == 0) {
    f.remediation.intent = Limits({{"tcp_syncookies", "1"}});
    f.remediation.summary =
        "turn SYN cookies on (tcp_syncookies=1): a full SYN queue then answers with cookies "
        "instead of dropping legitimate clients";
  } else if (!flooders.empty() && fast_path != nullptr) {
    tuners::Intent block;
    block.what = tuners::DatapathBlockIntent{fast_path->device, flooders, false};
    f.remediation.intent = std::move(block);
    f.remediation.summary = absl::StrCat("drop ", networks, " in the fast path on ",
                                         fast_path->device, " before the stack: they hold ", share);
  } else {
    f.remediation.summary =
        "SYN cookies already answer for the full queue; drop the flood before the stack with "
        "the fast path's per-source SYN limit";
  }
  if (!flooders.empty()) {
    f.remediation.limits.push_back(absl::StrCat(
        "a block drops every address of ", networks,
        ", legitimate clients there too; see who they are first (netctl sockets --state "
        "syn-recv), and apply it with --confirm-within so that it lifts itself unless kept"));
    if (fast_path == nullptr) {
      f.remediation.limits.push_back(absl::StrCat(
          blocking > 1 ? "the fast path runs on several devices and which one the flood "
                         "arrives on is not known here"
                       : "the fast path (with its blocklist) runs on no device here",
          ": block the networks that hold ", share,
          " on the device the flood arrives on (netctl datapath attach DEV; netctl tune apply "
          "block --dev DEV ",
          absl::StrJoin(flooders, " "), ")"));
    }
  }
  f.remediation.limits.push_back(
      "a listener's SYN queue is full at its accept backlog (listen() backlog capped at "
      "somaxconn); tcp_max_syn_backlog only matters while SYN cookies are off");
  f.remediation.limits.push_back(
      "a flood is not fixed by host limits: the fast path's SYN guard limits SYNs per source, "
      "and its new-source guard spoofed floods, before the stack (netctl datapath attach DEV "
      "--syn-rate 200 --new-source-rate 2000)");
  f.summary = absl::StrCat(
      "SYN queue full: ", dropped, " SYNs dropped and ", cookied, " answered with cookies in ",
      Seconds(w), listeners.empty() ? "" : absl::StrCat(" on ", absl::StrJoin(listeners, ", ")));
  f.verification = {"TcpExtTCPReqQFullDrop and TcpExtTCPReqQFullDoCookies per second",
                    "0 over the same window"};
  return f;
}

// ---------------------------------------------------------------- conntrack-full

uint64_t Named(const collectors::NamedValues& v, absl::string_view name) {
  for (const auto& [n, x] : v)
    if (n == name) return x;
  return 0;
}

std::optional<Finding> ConntrackFull(const Window& w, const std::vector<Level>& levels) {
  const auto& b = w.pair().before.conntrack;
  const auto& a = w.pair().after.conntrack;
  if (!a || !a->count || !a->max || *a->max == 0) return std::nullopt;
  const double fill = 100.0 * static_cast<double>(*a->count) / static_cast<double>(*a->max);
  int64_t drops = 0, early = 0;
  std::vector<Evidence> deltas;
  for (const char* name : {"drop", "early_drop", "insert_failed"}) {
    const uint64_t after = Named(a->total, name);
    const uint64_t before = b ? Named(b->total, name) : after;
    const int64_t d = after >= before ? static_cast<int64_t>(after - before) : 0;
    // insert_failed is mostly a race of two packets of one new flow (DNS
    // A and AAAA from one socket), not a full table: evidence only.
    if (std::string_view(name) != "insert_failed") drops += d;
    if (std::string_view(name) == "early_drop") early = d;
    Evidence e =
        Value(absl::StrCat("conntrack ", name), w.seconds() > 0 ? d / w.seconds() : 0, "/s");
    e.delta = d;
    deltas.push_back(std::move(e));
  }
  const double drop_rate = w.seconds() > 0 ? drops / w.seconds() : 0;
  auto sev = Worst({Grade(fill, LevelOf(levels, "fill_percent")),
                    Grade(drop_rate, LevelOf(levels, "drops_per_second"))},
                   false);
  if (!sev) return std::nullopt;
  Finding f;
  f.severity = *sev;
  f.evidence.push_back(Value("conntrack entries", static_cast<double>(*a->count), "entries"));
  f.evidence.push_back(Value("net.netfilter.nf_conntrack_max", static_cast<double>(*a->max), ""));
  f.evidence.push_back(Value("conntrack fill", fill, "%"));
  for (auto& e : deltas) f.evidence.push_back(std::move(e));
  // A full table drops new flows through netfilter: with the firewall's own
  // drops under one reason.
  if (drops > 0 && CiteDrops(w, f, "NETFILTER_DROP") > 0) {
    f.evidence.back().note += " (the firewall's rules drop under this reason too)";
  }
  f.attribution.push_back(
      {"table", "conntrack",
       absl::StrCat(*a->count, " of ", *a->max, " entries (", Num(fill), " %)")});
  // A larger table helps only a table that is full (or evicting to stay so).
  const bool table_full = fill >= LevelOf(levels, "fill_percent").warning || early > 0;
  const std::optional<int64_t> next =
      table_full ? Raise("net.netfilter.nf_conntrack_max", static_cast<int64_t>(*a->max),
                         std::max<int64_t>(static_cast<int64_t>(*a->max) * 2,
                                           static_cast<int64_t>(*a->count) * 2))
                 : std::nullopt;
  if (next) {
    f.remediation.intent = Limits({{"nf_conntrack_max", absl::StrCat(*next)}});
    f.remediation.summary =
        absl::StrCat("raise net.netfilter.nf_conntrack_max from ", *a->max, " to ", *next,
                     " (each entry takes ~320 bytes of kernel memory)");
  } else if (table_full) {
    f.remediation.limits.push_back(
        AtCeiling("net.netfilter.nf_conntrack_max", static_cast<int64_t>(*a->max)));
  } else {
    f.remediation.summary =
        "the table is not full: the drops come from packets conntrack refused (invalid, or "
        "dropped by a helper), not from its size";
  }
  f.remediation.limits.push_back(
      "nf_conntrack_max is one limit for the whole host: a child namespace cannot change it; "
      "apply it in the host's namespace");
  f.remediation.limits.push_back(
      "a table filled by short or unanswered flows (UDP to many ports, scans) fills any size: "
      "see `netctl conntrack summary` for the states and sources; shorter timeouts "
      "(nf_conntrack_udp_timeout, ..._tcp_timeout_*) or NOTRACK rules for such traffic are the "
      "lasting fix");
  f.summary = absl::StrCat(
      "conntrack table ", Num(fill), " % full (", *a->count, " of ", *a->max, ")",
      drops > 0 ? absl::StrCat("; ", drops, " new flows dropped in ", Seconds(w)) : "");
  f.verification = {"conntrack fill and drops",
                    absl::StrCat("fill below ", Num(LevelOf(levels, "fill_percent").warning),
                                 " % and no drop, insert_failed or early_drop over the window")};
  return f;
}

// ---------------------------------------------------------------- port-exhaustion

std::optional<Finding> PortExhaustion(const Window& w, const std::vector<Level>& levels) {
  const auto& s = w.pair().after.sockets;
  if (!s || s->time_wait.ephemeral_ports == 0 || s->time_wait.busiest_peer_count == 0)
    return std::nullopt;
  const auto& tw = s->time_wait;
  const double fill = tw.busiest_peer_fill_percent;
  const auto sev = Grade(fill, LevelOf(levels, "peer_fill_percent"));
  if (!sev) return std::nullopt;
  Finding f;
  f.severity = *sev;
  f.evidence.push_back(Value("TIME_WAIT sockets", static_cast<double>(tw.count), "sockets"));
  f.evidence.push_back(Value(absl::StrCat("TIME_WAIT to ", tw.busiest_peer),
                             static_cast<double>(tw.busiest_peer_count), "sockets"));
  f.evidence.push_back(
      Value("ephemeral ports", tw.ephemeral_ports, "ports",
            absl::StrCat("ip_local_port_range ", tw.ephemeral.low, " ", tw.ephemeral.high)));
  f.evidence.push_back(Value("busiest peer's share of the port range", fill, "%"));
  f.evidence.push_back(CounterEvidence(w, "TcpExtTCPTimeWaitOverflow"));
  f.attribution.push_back({"peer", tw.busiest_peer,
                           absl::StrCat(tw.busiest_peer_count, " TIME_WAIT of ", tw.ephemeral_ports,
                                        " ephemeral ports")});
  tuners::Settings set;
  const auto reuse = w.SysctlInt("net.ipv4.tcp_tw_reuse");
  const auto timestamps = w.SysctlInt("net.ipv4.tcp_timestamps");
  const bool no_timestamps = timestamps && *timestamps == 0;
  // Reuse needs timestamps: without them it is no remediation.
  if ((!reuse || *reuse != 1) && !no_timestamps) set.push_back({"tcp_tw_reuse", "1"});
  const uint32_t low = std::min<uint32_t>(tw.ephemeral.low, 10240);
  const uint32_t high = std::max<uint32_t>(tw.ephemeral.high, 65000);
  if (low != tw.ephemeral.low || high != tw.ephemeral.high)
    set.push_back({"ip_local_port_range", absl::StrCat(low, " ", high)});
  if (!set.empty()) {
    std::vector<std::string> parts;
    for (const auto& [k, v] : set) parts.push_back(absl::StrCat(k, "=", v));
    f.remediation.intent = Limits(set);
    f.remediation.summary = absl::StrCat(
        absl::StrJoin(parts, ", "),
        absl::StrContains(parts[0], "tcp_tw_reuse")
            ? ": reuse TIME_WAIT ports for new outgoing connections (safe with TCP timestamps) "
              "and give connections more ports"
            : ": give connections more ports");
  }
  if (no_timestamps) {
    f.remediation.limits.push_back(
        "tcp_tw_reuse reuses a TIME_WAIT port only for connections with TCP timestamps (on "
        "both ends), and net.ipv4.tcp_timestamps is 0 here: it is not proposed; turn "
        "timestamps on first (not managed by the agent)");
  }
  f.remediation.limits.push_back(
      "every short connection to one peer address and port holds a port for 60 s in "
      "TIME_WAIT; connection reuse (keep-alive, pooling) in the client is the lasting fix");
  f.remediation.limits.push_back(
      "a wider port range may reach ports that services listen on: check "
      "ip_local_reserved_ports");
  f.summary = absl::StrCat(tw.busiest_peer_count, " TIME_WAIT sockets to ", tw.busiest_peer, ": ",
                           Num(fill), " % of the ", tw.ephemeral_ports,
                           " ephemeral ports; new connections to it fail with EADDRNOTAVAIL "
                           "when none is left");
  f.verification = {
      absl::StrCat("TIME_WAIT to the busiest peer / ephemeral ports"),
      absl::StrCat("below ", Num(LevelOf(levels, "peer_fill_percent").warning), " %")};
  return f;
}

// ---------------------------------------------------------------- softnet

struct CpuDelta {
  uint32_t cpu;
  collectors::SoftnetCounters d;
};

std::vector<CpuDelta> SoftnetDeltas(const SnapshotPair& p) {
  std::vector<CpuDelta> out;
  if (!p.before.softnet || !p.after.softnet) return out;
  for (const auto& a : p.after.softnet->rows) {
    for (const auto& b : p.before.softnet->rows) {
      if (b.cpu != a.cpu) continue;
      out.push_back({a.cpu, collectors::DiffSoftnetCounters(b.counters, a.counters)});
    }
  }
  return out;
}

std::optional<Finding> SoftnetDrops(const Window& w, const std::vector<Level>& levels) {
  uint64_t dropped = 0, flow_limit = 0;
  std::vector<CpuDelta> deltas = SoftnetDeltas(w.pair());
  for (const auto& c : deltas) {
    dropped += c.d.dropped;
    flow_limit += c.d.flow_limit_count.value_or(0);
  }
  if (dropped == 0) return std::nullopt;
  const double rate = w.seconds() > 0 ? dropped / w.seconds() : 0;
  Finding f;
  f.severity = *Worst({Grade(rate, LevelOf(levels, "drops_per_second"))}, true);
  Evidence total = Value("softnet dropped", rate, "/s");
  total.delta = static_cast<int64_t>(dropped);
  f.evidence.push_back(total);
  const auto backlog = w.SysctlInt("net.core.netdev_max_backlog");
  if (backlog) f.evidence.push_back(Value("net.core.netdev_max_backlog", *backlog, ""));
  if (flow_limit) f.evidence.push_back(Value("softnet flow_limit_count", flow_limit, "packets"));
  CiteDrops(w, f, "CPU_BACKLOG");
  std::sort(deltas.begin(), deltas.end(),
            [](const CpuDelta& a, const CpuDelta& b) { return a.d.dropped > b.d.dropped; });
  size_t busy_cpus = 0;
  std::vector<std::string> cpus;  // CiteDrops put the source prefixes first
  for (const auto& c : deltas) {
    if (c.d.processed > 0) ++busy_cpus;
    if (c.d.dropped == 0) continue;
    cpus.push_back(absl::StrCat("cpu ", c.cpu));
    f.attribution.push_back(
        {"cpu", absl::StrCat("cpu ", c.cpu),
         absl::StrCat(c.d.dropped, " dropped of ", c.d.processed + c.d.dropped, " packets",
                      c.d.received_rps && *c.d.received_rps
                          ? absl::StrCat(", ", *c.d.received_rps, " steered here by RPS")
                          : "")});
  }
  if (backlog) {
    if (auto next =
            Raise("net.core.netdev_max_backlog", *backlog, std::max<int64_t>(*backlog * 2, 2048))) {
      f.remediation.intent = Sysctl({{"net.core.netdev_max_backlog", absl::StrCat(*next)}});
      f.remediation.summary = absl::StrCat("raise net.core.netdev_max_backlog from ", *backlog,
                                           " to ", *next, " packets per CPU");
    } else {
      f.remediation.limits.push_back(AtCeiling("net.core.netdev_max_backlog", *backlog));
    }
  }
  f.remediation.limits.push_back(
      "netdev_max_backlog is one setting for the whole host: a child namespace cannot change "
      "it; apply it in the host's namespace");
  if (cpus.size() == 1 && deltas.size() > 1)
    f.remediation.limits.push_back(
        "all drops are on one CPU: a longer backlog only delays them if that CPU is saturated; "
        "spread the load with RPS (netctl tune plan rps --dev DEV)");
  f.summary =
      absl::StrCat(dropped, " packets dropped from full per-CPU backlogs in ", Seconds(w), " (",
                   Num(rate), "/s)", cpus.empty() ? "" : absl::StrCat(", most on ", cpus[0]));
  f.verification = {"softnet dropped per second (all CPUs)", "0 over the same window"};
  return f;
}

std::optional<Finding> SoftnetSqueeze(const Window& w, const std::vector<Level>& levels) {
  uint64_t squeezed = 0, dropped = 0;
  std::vector<CpuDelta> deltas = SoftnetDeltas(w.pair());
  for (const auto& c : deltas) {
    squeezed += c.d.time_squeeze;
    dropped += c.d.dropped;
  }
  if (squeezed == 0) return std::nullopt;
  const double rate = w.seconds() > 0 ? squeezed / w.seconds() : 0;
  Finding f;
  // Squeezes alone are a busy softirq, not a fault: above info only with
  // packets lost beside them.
  f.severity = dropped > 0 ? *Worst({Grade(rate, LevelOf(levels, "squeezes_per_second"))}, true)
                           : Severity::kInfo;
  Evidence e = Value("softnet time_squeeze", rate, "/s");
  e.delta = static_cast<int64_t>(squeezed);
  f.evidence.push_back(e);
  const auto budget = w.SysctlInt("net.core.netdev_budget");
  const auto usecs = w.SysctlInt("net.core.netdev_budget_usecs");
  if (budget) f.evidence.push_back(Value("net.core.netdev_budget", *budget, "packets"));
  if (usecs) f.evidence.push_back(Value("net.core.netdev_budget_usecs", *usecs, "µs"));
  std::sort(deltas.begin(), deltas.end(), [](const CpuDelta& a, const CpuDelta& b) {
    return a.d.time_squeeze > b.d.time_squeeze;
  });
  for (const auto& c : deltas) {
    if (c.d.time_squeeze == 0) continue;
    f.attribution.push_back(
        {"cpu", absl::StrCat("cpu ", c.cpu),
         absl::StrCat(c.d.time_squeeze, " squeezes, ", c.d.processed, " packets")});
  }
  if (budget) {
    tuners::Settings set;
    std::vector<std::string> parts;
    if (auto next = Raise("net.core.netdev_budget", *budget, std::max<int64_t>(*budget * 2, 600))) {
      set.push_back({"net.core.netdev_budget", absl::StrCat(*next)});
      parts.push_back(absl::StrCat("netdev_budget ", *budget, " -> ", *next));
    }
    if (usecs) {
      if (auto next = Raise("net.core.netdev_budget_usecs", *usecs, 8000)) {
        set.push_back({"net.core.netdev_budget_usecs", absl::StrCat(*next)});
        parts.push_back(absl::StrCat("netdev_budget_usecs ", *usecs, " -> ", *next));
      }
    }
    if (!set.empty()) {
      f.remediation.intent = Sysctl(set);
      f.remediation.summary =
          absl::StrCat("let one softirq round process more: ", absl::StrJoin(parts, ", "));
    } else {
      f.remediation.limits.push_back(AtCeiling("net.core.netdev_budget", *budget));
    }
  }
  f.remediation.limits.push_back(
      "a larger budget holds the CPU longer per round (latency for other work on it); global "
      "settings: a child namespace cannot change them");
  f.summary = absl::StrCat(
      "the receive softirq ran out of budget ", squeezed, " times in ", Seconds(w),
      dropped > 0 ? absl::StrCat(", with ", dropped, " packets dropped") : " (no packet lost)");
  f.verification = {"softnet time_squeeze and dropped per second",
                    "squeezes below the warning level and no drop"};
  return f;
}

// ---------------------------------------------------------------- retransmissions

std::optional<Finding> Retransmissions(const Window& w, const std::vector<Level>& levels) {
  const auto out = w.Delta("TcpOutSegs");
  const auto all_retrans = w.Delta("TcpRetransSegs");
  if (!out || !all_retrans || *all_retrans <= 0 || *out <= 0) return std::nullopt;
  // SYNs sent again are handshakes nobody answered (a full accept or SYN
  // queue elsewhere, a closed port behind a firewall): not loss of data,
  // and the other rules name them. Only data segments count here.
  const int64_t syn = std::max<int64_t>(0, w.Delta("TcpExtTCPSynRetrans").value_or(0));
  const std::optional<int64_t> retrans = std::max<int64_t>(0, *all_retrans - syn);
  if (*retrans <= 0) return std::nullopt;
  const double percent = 100.0 * static_cast<double>(*retrans) / static_cast<double>(*out);
  const Level& min_segments = LevelOf(levels, "min_segments");
  // Too few segments for a ratio to mean anything: at most info.
  const bool enough = static_cast<double>(*out) >= min_segments.warning;
  auto sev = enough ? Grade(percent, LevelOf(levels, "retransmitted_percent")) : std::nullopt;
  if (!sev && percent < 1) return std::nullopt;
  Finding f;
  f.severity = sev.value_or(Severity::kInfo);
  f.evidence.push_back(Value("retransmitted segments", percent, "%",
                             absl::StrCat(*retrans, " of ", *out, " segments sent",
                                          syn ? absl::StrCat(", besides ", syn, " SYNs") : "")));
  for (const char* c :
       {"TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPFastRetrans", "TcpExtTCPLostRetransmit",
        "TcpExtTCPSpuriousRTOs", "TcpExtTCPSynRetrans", "TcpExtTCPLossProbes"})
    f.evidence.push_back(CounterEvidence(w, c));
  const auto& a = w.pair().after.sockets;
  const auto& b = w.pair().before.sockets;
  if (a) {
    for (const auto& p : a->top_retransmitting) {
      uint64_t before = 0;
      if (b) {
        for (const auto& q : b->top_retransmitting)
          if (q.address == p.address) before = q.retransmitted;
      }
      if (p.retransmitted <= before) continue;
      f.attribution.push_back(
          {"peer", FormatAddress(p.address),
           absl::StrCat(p.retransmitted - before, " retransmitted in the window by its ",
                        p.connections, " connections; mean RTT ", Num(p.mean_rtt_ms()), " ms")});
      if (f.attribution.size() >= 5) break;
    }
  }
  const int64_t rto = w.Delta("TcpExtTCPTimeouts").value_or(0);
  const int64_t fast = w.Delta("TcpExtTCPFastRetrans").value_or(0);
  const int64_t spurious = w.Delta("TcpExtTCPSpuriousRTOs").value_or(0);
  std::string kind;
  if (rto > fast) {
    kind = "mostly timeouts (RTO): whole flights lost, or a peer that stopped answering";
  } else {
    kind = "mostly fast retransmits: isolated losses on the path";
  }
  if (spurious > 0 && spurious * 2 >= rto)
    kind += "; many RTOs were spurious (delay spikes, not loss)";
  f.remediation.summary =
      "find where packets are lost (NIC errors and drops on both ends, the path); BBR keeps "
      "throughput under random loss better than loss-based algorithms";
  f.remediation.limits.push_back(
      "no host setting removes loss on the path; a different congestion control changes how "
      "much it costs, not whether it happens");
  f.summary = absl::StrCat(Num(percent), " % of TCP segments retransmitted in ", Seconds(w), " (",
                           *retrans, " of ", *out, "): ", kind);
  f.verification = {
      "(TcpRetransSegs - TCPSynRetrans) / TcpOutSegs",
      absl::StrCat("below ", Num(LevelOf(levels, "retransmitted_percent").warning), " %")};
  return f;
}

// ---------------------------------------------------------------- udp-rcvbuf

std::optional<Finding> UdpRcvbuf(const Window& w, const std::vector<Level>& levels) {
  const int64_t d =
      w.Delta("UdpRcvbufErrors").value_or(0) + w.Delta("Udp6RcvbufErrors").value_or(0);
  if (d <= 0) return std::nullopt;
  const double rate = w.seconds() > 0 ? d / w.seconds() : 0;
  Finding f;
  f.severity = *Worst({Grade(rate, LevelOf(levels, "errors_per_second"))}, true);
  f.evidence.push_back(CounterEvidence(w, "UdpRcvbufErrors"));
  f.evidence.push_back(CounterEvidence(w, "Udp6RcvbufErrors"));
  f.evidence.push_back(CounterEvidence(w, "UdpInDatagrams"));
  CiteDrops(w, f, "SOCKET_RCVBUFF");
  const auto rmem_max = w.SysctlInt("net.core.rmem_max");
  const auto rmem_default = w.SysctlInt("net.core.rmem_default");
  if (rmem_max) f.evidence.push_back(Value("net.core.rmem_max", *rmem_max, "bytes"));
  if (rmem_default) f.evidence.push_back(Value("net.core.rmem_default", *rmem_default, "bytes"));
  if (rmem_max) {
    if (auto next =
            Raise("net.core.rmem_max", *rmem_max, std::max<int64_t>(*rmem_max * 4, 8 << 20))) {
      f.remediation.intent = Sysctl({{"net.core.rmem_max", absl::StrCat(*next)}});
      f.remediation.summary =
          absl::StrCat("let applications ask for larger UDP receive buffers: net.core.rmem_max ",
                       *rmem_max, " -> ", *next);
    } else {
      f.remediation.limits.push_back(AtCeiling("net.core.rmem_max", *rmem_max));
    }
  }
  f.remediation.limits.push_back(
      "only applications that set SO_RCVBUF get more; others use net.core.rmem_default (not "
      "managed by the agent), and a reader slower than its sender overflows any buffer");
  f.summary = absl::StrCat(d, " UDP datagrams dropped on full receive buffers in ", Seconds(w),
                           " (", Num(rate), "/s)");
  f.verification = {"UdpRcvbufErrors + Udp6RcvbufErrors per second", "0 over the same window"};
  return f;
}

// ---------------------------------------------------------------- tcp memory

std::optional<Finding> TcpMemory(const Window& w, const std::vector<Level>& levels) {
  const int64_t pressures = w.Delta("TcpExtTCPMemoryPressures").value_or(0);
  const int64_t aborts = w.Delta("TcpExtTCPAbortOnMemory").value_or(0);
  double percent = 0;
  int64_t pages = 0, high = 0;
  if (const auto& s = w.pair().after.sockstat) {
    auto tcp = s->find("TCP");
    if (tcp != s->end()) {
      auto m = tcp->second.find("mem");
      if (m != tcp->second.end()) pages = m->second;
    }
    high = w.SysctlInt("net.ipv4.tcp_mem", 2).value_or(0);
    if (high > 0) percent = 100.0 * static_cast<double>(pages) / static_cast<double>(high);
  }
  auto sev =
      Worst({Grade(percent, LevelOf(levels, "memory_percent")),
             Grade(static_cast<double>(pressures + aborts), LevelOf(levels, "pressure_events"))},
            false);
  if (!sev) return std::nullopt;
  Finding f;
  f.severity = *sev;
  f.evidence.push_back(Value("TCP memory", static_cast<double>(pages), "pages",
                             absl::StrCat("tcp_mem ", w.Sysctl("net.ipv4.tcp_mem").value_or("?"))));
  f.evidence.push_back(Value("TCP memory of tcp_mem's high mark", percent, "%"));
  f.evidence.push_back(CounterEvidence(w, "TcpExtTCPMemoryPressures"));
  f.evidence.push_back(CounterEvidence(w, "TcpExtTCPAbortOnMemory"));
  CiteDrops(w, f, "PROTO_MEM");
  f.attribution.push_back(
      {"sysctl", "net.ipv4.tcp_mem", absl::StrCat(pages, " pages in use, high ", high)});
  f.remediation.summary = "nothing the agent manages: net.ipv4.tcp_mem is host-wide";
  f.remediation.limits.push_back(
      "raise net.ipv4.tcp_mem on the host (pages; the kernel sizes it from RAM at boot) or find "
      "the sockets holding memory (`netctl sockets -m` sorted by queues)");
  f.summary = absl::StrCat("TCP memory at ", Num(percent), " % of tcp_mem's high mark",
                           pressures ? absl::StrCat(", ", pressures, " pressure events") : "",
                           aborts ? absl::StrCat(", ", aborts, " connections aborted") : "");
  f.verification = {"TCP memory / tcp_mem high, and TCPMemoryPressures",
                    "below the warning level, no new pressure event"};
  return f;
}

// ---------------------------------------------------------------- orphans

std::optional<Finding> Orphans(const Window& w, const std::vector<Level>& levels) {
  const auto& s = w.pair().after.sockstat;
  const auto max = w.SysctlInt("net.ipv4.tcp_max_orphans");
  if (!s || !max || *max <= 0) return std::nullopt;
  auto tcp = s->find("TCP");
  if (tcp == s->end()) return std::nullopt;
  auto o = tcp->second.find("orphan");
  if (o == tcp->second.end()) return std::nullopt;
  const double percent = 100.0 * static_cast<double>(o->second) / static_cast<double>(*max);
  const int64_t aborts = w.Delta("TcpExtTCPAbortOnMemory").value_or(0);
  auto sev = Grade(percent, LevelOf(levels, "orphan_percent"));
  if (!sev) return std::nullopt;
  Finding f;
  f.severity = *sev;
  f.evidence.push_back(Value("orphaned TCP sockets", static_cast<double>(o->second), "sockets"));
  f.evidence.push_back(Value("net.ipv4.tcp_max_orphans", static_cast<double>(*max), ""));
  f.evidence.push_back(CounterEvidence(w, "TcpExtTCPAbortOnMemory"));
  f.attribution.push_back(
      {"sysctl", "net.ipv4.tcp_max_orphans", absl::StrCat(o->second, " orphans of ", *max)});
  const auto fin = w.SysctlInt("net.ipv4.tcp_fin_timeout");
  if (fin && *fin > 30) {
    f.remediation.intent = Limits({{"tcp_fin_timeout", "30"}});
    f.remediation.summary =
        absl::StrCat("orphans in FIN_WAIT_2 go sooner: tcp_fin_timeout ", *fin, " -> 30 s");
  }
  f.remediation.limits.push_back(
      "beyond tcp_max_orphans the kernel resets orphaned connections; peers that never "
      "acknowledge the close keep them (see `netctl sockets --state fin-wait-1,fin-wait-2,"
      "closing,last-ack`)");
  f.summary =
      absl::StrCat(o->second, " orphaned TCP sockets: ", Num(percent), " % of tcp_max_orphans",
                   aborts ? absl::StrCat(", ", aborts, " aborted for memory") : "");
  f.verification = {"orphans / tcp_max_orphans", "below the warning level"};
  return f;
}

// ---------------------------------------------------------------- NIC

struct DeviceDelta {
  std::string name;
  std::string kind;     // "" for a physical device
  uint32_t master = 0;  // a bond's or bridge's port
  uint32_t rx_queues = 0;
  std::map<std::string, uint64_t> d;
};

std::vector<DeviceDelta> DeviceDeltas(const SnapshotPair& p) {
  std::vector<DeviceDelta> out;
  if (!p.before.links || !p.after.links) return out;
  for (const auto& a : *p.after.links) {
    for (const auto& b : *p.before.links) {
      if (b.ifindex != a.ifindex || b.stats_count == 0 || a.stats_count == 0) continue;
      DeviceDelta dd;
      dd.name = a.name;
      dd.kind = a.kind;
      dd.master = a.master;
      dd.rx_queues = a.num_rx_queues;
      for (int i = 0; i < std::min(a.stats_count, b.stats_count); ++i)
        dd.d[collectors::kLinkStatNames[i]] =
            a.stats[i] >= b.stats[i] ? a.stats[i] - b.stats[i] : 0;
      out.push_back(std::move(dd));
    }
  }
  return out;
}

// A receive queue over the window: its packets and drops (each where the
// device counts it per queue).
struct QueueDelta {
  uint32_t queue = 0;
  std::optional<uint64_t> packets, drops;
  std::string drops_from;
};

std::vector<QueueDelta> RxQueueDeltas(const SnapshotPair& p, const std::string& dev) {
  std::vector<QueueDelta> out;
  auto b = p.before.rx_queues.find(dev);
  auto a = p.after.rx_queues.find(dev);
  if (b == p.before.rx_queues.end() || a == p.after.rx_queues.end()) return out;
  const auto delta = [](std::optional<uint64_t> x, std::optional<uint64_t> y) {
    return x && y ? std::optional<uint64_t>(*y >= *x ? *y - *x : 0) : std::nullopt;
  };
  for (const auto& after : a->second) {
    for (const auto& before : b->second) {
      if (before.queue != after.queue) continue;
      out.push_back({after.queue, delta(before.packets, after.packets),
                     delta(before.drops, after.drops), after.drops_from});
    }
  }
  return out;
}

// Which of `dev`'s receive queues lost the frames, and whether one queue
// takes most of the packets (the traffic hashes onto it): attribution per
// queue that dropped (the four that dropped most), and the busiest queue
// when it carries at least half of the packets and twice its even share
// (with two or three queues: 80 %).
void AttributeQueues(const Window& w, const std::string& dev, Finding& f) {
  std::vector<QueueDelta> queues = RxQueueDeltas(w.pair(), dev);
  if (queues.empty()) return;
  uint64_t packets = 0;
  bool all_packets = true;
  for (const auto& q : queues) {
    packets += q.packets.value_or(0);
    all_packets &= q.packets.has_value();
  }
  const auto share = [&](const QueueDelta& q) {
    return all_packets && packets > 0 && q.packets
               ? absl::StrCat(", ", Num(100.0 * *q.packets / packets), " % of ", dev,
                              "'s received packets")
               : std::string();
  };
  std::vector<const QueueDelta*> dropping;
  for (const auto& q : queues)
    if (q.drops.value_or(0) > 0) dropping.push_back(&q);
  std::sort(dropping.begin(), dropping.end(), [](const QueueDelta* x, const QueueDelta* y) {
    return *x->drops != *y->drops ? *x->drops > *y->drops : x->queue < y->queue;
  });
  for (size_t i = 0; i < dropping.size() && i < 4; ++i) {
    const QueueDelta& q = *dropping[i];
    f.attribution.push_back({"queue", absl::StrCat(dev, " rx queue ", q.queue),
                             absl::StrCat(*q.drops, " dropped (", q.drops_from, ")", share(q))});
  }
  if (!all_packets || packets == 0 || queues.size() < 2) return;
  const QueueDelta* busiest = &queues.front();
  for (const auto& q : queues)
    if (*q.packets > *busiest->packets) busiest = &q;
  const double fraction = static_cast<double>(*busiest->packets) / packets;
  const double even = 1.0 / static_cast<double>(queues.size());
  if (fraction < std::max(0.5, std::min(0.8, 2 * even))) return;
  f.evidence.push_back(
      Value(absl::StrCat(dev, " rx queue ", busiest->queue, " share"), 100.0 * fraction, "%",
            absl::StrCat("of ", packets, " packets over ", queues.size(), " receive queues")));
  if (dropping.empty()) {
    f.attribution.push_back({"queue", absl::StrCat(dev, " rx queue ", busiest->queue),
                             absl::StrCat(*busiest->packets, " packets", share(*busiest))});
  }
  f.remediation.limits.push_back(absl::StrCat(
      dev, "'s rx queue ", busiest->queue, " takes ", Num(100.0 * fraction), " % of its packets (",
      queues.size(),
      " queues): the traffic hashes onto one queue and one CPU (a few large flows, or an RSS "
      "indirection table or hash fields that do not spread it); a larger ring only delays the "
      "loss: spread the flows (netctl tune plan rss) or steer them in software (RPS)"));
}

std::optional<Finding> NicDrops(const Window& w, const std::vector<Level>& levels) {
  Finding f;
  std::optional<Severity> worst;
  std::vector<std::string> names;
  for (const DeviceDelta& dev : DeviceDeltas(w.pair())) {
    auto get = [&](const char* n) {
      auto it = dev.d.find(n);
      return it == dev.d.end() ? uint64_t{0} : it->second;
    };
    // rx_dropped also counts frames nobody wanted (rx_nohandler: unknown
    // protocols) and, on a bond's inactive slave, everything by design.
    const uint64_t soft = get("rx_dropped") - std::min(get("rx_dropped"), get("rx_nohandler"));
    const uint64_t hw = get("rx_missed_errors") + get("rx_fifo_errors") + get("rx_over_errors");
    const uint64_t lost = soft + hw;
    if (lost == 0) continue;
    const uint64_t seen = get("rx_packets") + lost;
    const double percent = 100.0 * lost / static_cast<double>(seen);
    const double hw_rate = w.seconds() > 0 ? hw / w.seconds() : 0;
    const bool enough = seen >= 1000 && dev.master == 0;
    auto sev = Worst({enough ? Grade(percent, LevelOf(levels, "drop_percent")) : std::nullopt,
                      Grade(hw_rate, LevelOf(levels, "ring_drops_per_second"))},
                     true);
    worst = worst ? Max(*worst, *sev) : *sev;
    names.push_back(dev.name);
    f.attribution.push_back(
        {"device", dev.name,
         absl::StrCat(lost, " of ", seen, " received packets lost (", Num(percent), " %): dropped ",
                      soft, " (besides ", get("rx_nohandler"), " nobody wanted), missed ",
                      get("rx_missed_errors"), ", fifo ", get("rx_fifo_errors"), ", over ",
                      get("rx_over_errors"))});
    Evidence e = Value(absl::StrCat(dev.name, " receive loss"), percent, "%");
    e.delta = static_cast<int64_t>(lost);
    f.evidence.push_back(e);
    if (auto r = w.pair().rings.find(dev.name); r != w.pair().rings.end()) {
      std::optional<uint64_t> rx, rx_max;
      for (const auto& [name, value] : r->second) {
        if (name == "rx") rx = value;
        if (name == "rx-max") rx_max = value;
      }
      if (rx && rx_max) {
        f.evidence.push_back(Value(absl::StrCat(dev.name, " rx ring"), static_cast<double>(*rx),
                                   "descriptors", absl::StrCat("max ", *rx_max)));
        absl::StrAppend(&f.attribution.back().detail, "; rx ring ", *rx, " of ", *rx_max);
        f.remediation.limits.push_back(
            *rx < *rx_max ? absl::StrCat(dev.name, "'s receive ring is ", *rx, " of a possible ",
                                         *rx_max, ": `ethtool -G ", dev.name, " rx ", *rx_max,
                                         "` gives bursts room (rings are not managed by the agent; "
                                         "a ring change resets the link on many drivers)")
                          : absl::StrCat(dev.name, "'s receive ring is at its maximum ", *rx_max,
                                         ": spread the load over more queues and CPUs instead"));
      }
    }
    AttributeQueues(w, dev.name, f);
  }
  if (!worst) return std::nullopt;
  f.severity = *worst;
  f.remediation.summary =
      "see which queue loses them (`netctl nic DEV`: per-queue and driver counters); missed and "
      "fifo drops are a full receive ring: a larger ring (ethtool -G) or more queues and CPUs "
      "(netctl tune plan channels / rss / irq)";
  f.remediation.limits.push_back(
      "rx_dropped also counts packets the stack did not want (unknown protocols, VLANs, "
      "multicast); compare with rx_nohandler and the drop reasons (`netctl drops`)");
  f.summary = absl::StrCat("receive loss on ", absl::StrJoin(names, ", "), " in ", Seconds(w));
  f.verification = {"rx dropped, missed, fifo and over errors per device",
                    "below the warning level over the same window"};
  return f;
}

std::optional<Finding> NicErrors(const Window& w, const std::vector<Level>& levels) {
  Finding f;
  std::optional<Severity> worst;
  std::vector<std::string> names;
  for (const DeviceDelta& dev : DeviceDeltas(w.pair())) {
    auto get = [&](const char* n) {
      auto it = dev.d.find(n);
      return it == dev.d.end() ? uint64_t{0} : it->second;
    };
    const uint64_t errors = get("rx_errors") + get("tx_errors");
    if (errors == 0) continue;
    const uint64_t packets = get("rx_packets") + get("tx_packets");
    const double percent = 100.0 * errors / static_cast<double>(packets + errors);
    // A handful of frames is no ratio.
    auto sev = Worst({packets + errors >= 1000 ? Grade(percent, LevelOf(levels, "error_percent"))
                                               : std::nullopt},
                     true);
    worst = worst ? Max(*worst, *sev) : *sev;
    names.push_back(dev.name);
    f.attribution.push_back(
        {"device", dev.name,
         absl::StrCat(errors, " errors in ", packets, " packets (", Num(percent), " %): crc ",
                      get("rx_crc_errors"), ", frame ", get("rx_frame_errors"), ", length ",
                      get("rx_length_errors"), ", carrier ", get("tx_carrier_errors"))});
    Evidence e = Value(absl::StrCat(dev.name, " errors"), percent, "%");
    e.delta = static_cast<int64_t>(errors);
    f.evidence.push_back(e);
  }
  if (!worst) return std::nullopt;
  f.severity = *worst;
  f.remediation.summary =
      "nothing the agent can change: CRC and frame errors are the cable, optics, or the peer "
      "port; carrier errors a link going down";
  f.remediation.limits.push_back("check the link (ethtool DEV, the switch port's counters)");
  f.summary = absl::StrCat("interface errors on ", absl::StrJoin(names, ", "), " in ", Seconds(w));
  f.verification = {"rx_errors + tx_errors / packets", "below the warning level"};
  return f;
}

// ---------------------------------------------------------------- link flaps

std::optional<Finding> LinkFlaps(const Window& w, const std::vector<Level>& levels) {
  const auto& b = w.pair().before.links;
  const auto& a = w.pair().after.links;
  if (!a || !b) return std::nullopt;
  Finding f;
  std::optional<Severity> worst;
  std::vector<std::string> names;
  for (const auto& l : *a) {
    if (!l.carrier_changes) continue;
    for (const auto& o : *b) {
      if (o.ifindex != l.ifindex || !o.carrier_changes) continue;
      const uint32_t d = *l.carrier_changes - *o.carrier_changes;  // u32, wraps
      if (d == 0) continue;
      auto sev = Worst({Grade(d, LevelOf(levels, "carrier_changes"))}, true);
      worst = worst ? Max(*worst, *sev) : *sev;
      names.push_back(l.name);
      f.attribution.push_back({"device", l.name,
                               absl::StrCat(d, " carrier changes in the window; now ",
                                            (l.flags & IFF_LOWER_UP) ? "up" : "down")});
      f.evidence.push_back(Value(absl::StrCat(l.name, " carrier changes"), d, "changes"));
    }
  }
  if (!worst) return std::nullopt;
  f.severity = *worst;
  f.remediation.summary =
      "nothing the agent can change: a link that goes down and up is the cable, optics, the "
      "peer port or its driver (or someone setting it down)";
  f.remediation.limits.push_back(
      "check the link's counters (`netctl nic DEV`: carrier and CRC errors) and the switch "
      "port's log; bonds and routing daemons react to every flap");
  f.summary = absl::StrCat("carrier changed on ", absl::StrJoin(names, ", "), " in ", Seconds(w));
  f.verification = {"carrier changes per device", "none over the window"};
  return f;
}

// ---------------------------------------------------------------- buffer-limited flows

std::optional<Finding> BufferLimited(const Window& w, const std::vector<Level>& levels) {
  const auto& a = w.pair().after.sockets;
  if (!a || a->busiest_flows.empty()) return std::nullopt;
  std::map<uint64_t, const collectors::FlowLimits*> before;
  if (const auto& b = w.pair().before.sockets) {
    for (const auto& fl : b->busiest_flows) before[fl.cookie] = &fl;
  }
  const Level& share = LevelOf(levels, "limited_percent");
  const Level& min_busy = LevelOf(levels, "min_busy_ms");
  Finding f;
  std::optional<Severity> worst;
  size_t snd = 0, rwnd = 0;
  for (const auto& fl : a->busiest_flows) {
    // The window's part when the flow was there before; its life otherwise.
    uint64_t busy = fl.busy_us, s = fl.sndbuf_limited_us, r = fl.rwnd_limited_us;
    auto it = before.find(fl.cookie);
    // Graded over the window only: a flow not seen before has lifetime
    // totals, which say nothing of now.
    if (w.pair().before.sockets && it == before.end()) continue;
    if (it != before.end()) {
      if (busy < it->second->busy_us) continue;
      busy -= it->second->busy_us;
      s -= std::min(s, it->second->sndbuf_limited_us);
      r -= std::min(r, it->second->rwnd_limited_us);
    }
    if (static_cast<double>(busy) / 1000 < min_busy.warning) continue;
    const double sp = 100.0 * static_cast<double>(s) / static_cast<double>(busy);
    const double rp = 100.0 * static_cast<double>(r) / static_cast<double>(busy);
    // Waiting on the peer's window is the peer's (or its application's)
    // matter: info. A full send buffer is this host's.
    std::optional<Severity> sev = Grade(sp, share);
    if (!sev && Grade(rp, share)) sev = Severity::kInfo;
    if (!sev) continue;
    worst = worst ? Max(*worst, *sev) : *sev;
    if (sp >= rp)
      ++snd;
    else
      ++rwnd;
    f.attribution.push_back(
        {"flow", absl::StrCat(fl.local, " -> ", fl.peer),
         absl::StrCat(sp >= rp ? "send buffer" : "peer's receive window", " limited ",
                      Num(std::max(sp, rp)), " % of ", Num(busy / 1000.0), " ms busy; ",
                      fl.sndbuf ? absl::StrCat("send buffer ", fl.sndbuf, " bytes, ") : "", "RTT ",
                      Num(fl.rtt_us / 1000.0), " ms, delivery ", Num(fl.delivery_rate * 8 / 1e6),
                      " Mbit/s")});
    if (f.attribution.size() >= 5) break;
  }
  if (!worst) return std::nullopt;
  f.severity = *worst;
  const auto wmem = w.Sysctl("net.ipv4.tcp_wmem");
  const auto rmem = w.Sysctl("net.ipv4.tcp_rmem");
  if (wmem) f.evidence.push_back(Value("net.ipv4.tcp_wmem", 0, "", *wmem));
  if (rmem) f.evidence.push_back(Value("net.ipv4.tcp_rmem", 0, "", *rmem));
  f.evidence.push_back(Value("flows limited by their send buffer", snd, "flows"));
  f.evidence.push_back(Value("flows limited by the peer's receive window", rwnd, "flows"));
  if (snd > 0) {
    tuners::Intent bdp;
    bdp.what = tuners::BdpIntent{0, absl::ZeroDuration(), true};
    f.remediation.intent = bdp;
    f.remediation.summary =
        "size the TCP buffer maxima to the bandwidth-delay product of the busiest flows "
        "(tcp_rmem/tcp_wmem max = 2 x delivery rate x min RTT)";
  } else {
    f.remediation.summary = "nothing on this host: the peers' receive windows are the limit";
  }
  if (rwnd > 0) {
    f.remediation.limits.push_back(
        "a flow limited by the peer's receive window needs a larger tcp_rmem on the peer, not "
        "here");
  }
  f.remediation.limits.push_back(
      "an application that sets SO_SNDBUF/SO_RCVBUF itself is capped by wmem_max/rmem_max and "
      "not autotuned");
  f.summary = absl::StrCat(snd + rwnd, " busy TCP flows spent most of their time waiting on a ",
                           snd >= rwnd ? "full send buffer" : "peer's full receive window", " in ",
                           Seconds(w));
  f.verification = {"sndbuf_limited and rwnd_limited / busy time of the busiest flows",
                    absl::StrCat("below ", Num(share.warning), " %")};
  return f;
}

// ---------------------------------------------------------------- neighbour tables

std::optional<Finding> NeighbourOverflow(const Window& w, const std::vector<Level>& levels) {
  const auto& b = w.pair().before.neighbours;
  const auto& a = w.pair().after.neighbours;
  if (!a) return std::nullopt;
  Finding f;
  std::optional<Severity> worst;
  tuners::Settings set;
  std::vector<std::string> names;
  for (const auto& t : *a) {
    const bool v6 = t.table == "ndisc_cache";
    const std::string knob =
        absl::StrCat("net.", v6 ? "ipv6" : "ipv4", ".neigh.default.gc_thresh3");
    const auto thresh = w.SysctlInt(knob);
    uint64_t fulls = 0;
    if (b) {
      for (const auto& o : *b) {
        if (o.table != t.table) continue;
        const uint64_t now = Named(t.totals, "table_fulls"), then = Named(o.totals, "table_fulls");
        fulls = now >= then ? now - then : 0;
      }
    }
    const double fill =
        thresh && *thresh > 0 ? 100.0 * t.entries / static_cast<double>(*thresh) : 0;
    auto sev = Worst({Grade(fill, LevelOf(levels, "fill_percent")),
                      Grade(static_cast<double>(fulls), LevelOf(levels, "table_fulls"))},
                     false);
    if (!sev) continue;
    worst = worst ? Max(*worst, *sev) : *sev;
    const std::string family = v6 ? "IPv6 (ndisc)" : "IPv4 (ARP)";
    names.push_back(family);
    Evidence e = Value(absl::StrCat(t.table, " table_fulls"),
                       w.seconds() > 0 ? fulls / w.seconds() : 0, "/s");
    e.delta = static_cast<int64_t>(fulls);
    f.evidence.push_back(e);
    f.evidence.push_back(Value(absl::StrCat(t.table, " entries"), t.entries, "entries",
                               thresh ? absl::StrCat("gc_thresh3 ", *thresh) : ""));
    f.attribution.push_back(
        {"table", family,
         absl::StrCat(t.entries, " entries", thresh ? absl::StrCat(" of gc_thresh3 ", *thresh) : "",
                      "; ", fulls, " times full in the window")});
    if (thresh) {
      if (auto next = Raise(knob, *thresh,
                            std::max<int64_t>(*thresh * 2, static_cast<int64_t>(t.entries) * 2))) {
        set.push_back({knob, absl::StrCat(*next)});
      }
    }
  }
  if (!worst) return std::nullopt;
  f.severity = *worst;
  CiteDrops(w, f, "NEIGH_CREATEFAIL");
  if (!set.empty()) {
    f.remediation.intent = Sysctl(set);
    f.remediation.summary = "raise gc_thresh3 so the table holds every neighbour in use";
  }
  f.remediation.limits.push_back(
      "gc_thresh1 and gc_thresh2 (when collection starts) are left as they are; a flat network "
      "with thousands of hosts on one segment, or a scan, fills any table");
  f.summary = absl::StrCat("neighbour table ", absl::StrJoin(names, " and "),
                           " full or nearly: new neighbours are refused (\"neighbour table "
                           "overflow\"), and traffic to them is dropped");
  f.verification = {"table_fulls per second, entries / gc_thresh3",
                    "no table_fulls over the window, fill below the warning level"};
  return f;
}

// ---------------------------------------------------------------- MTU black hole

std::optional<Finding> MtuBlackhole(const Window& w, const std::vector<Level>& levels) {
  const auto& a = w.pair().after.sockets;
  if (!a) return std::nullopt;
  const Level& min_mss = LevelOf(levels, "min_mss");
  Finding f;
  size_t n = 0;
  for (const auto& st : a->stalled) {
    // The peer answered the handshake (and maybe small data), then every
    // full-sized segment times out: what a path that drops big packets and
    // the ICMP saying so looks like from here.
    // A full-sized segment outstanding (a small request to a dead peer is
    // not one), after the peer acknowledged something.
    const uint64_t outstanding =
        st.bytes_sent > st.bytes_acked ? st.bytes_sent - st.bytes_acked : 0;
    if (st.retransmits < 3 || st.snd_mss < min_mss.warning || st.bytes_acked > 64 * 1024 ||
        st.bytes_acked <= 1 || outstanding < st.snd_mss) {
      continue;
    }
    ++n;
    if (f.attribution.size() < 5) {
      f.attribution.push_back(
          {"flow", absl::StrCat(st.local, " -> ", st.peer),
           absl::StrCat(static_cast<int>(st.retransmits), " timeouts in a row with ", st.unacked,
                        " segments of up to ", st.snd_mss, " bytes unacknowledged (path MTU ",
                        st.pmtu, "); ", st.bytes_acked, " bytes acknowledged in all; last ACK ",
                        Num(st.last_ack_recv_ms / 1000.0), " s ago")});
    }
  }
  if (n == 0) return std::nullopt;
  const auto sev = Grade(static_cast<double>(n), LevelOf(levels, "stalled_flows"));
  if (!sev) return std::nullopt;
  Finding out = std::move(f);
  out.severity = *sev;
  out.evidence.push_back(Value("connections stalled on full-sized segments", n, "connections"));
  for (const char* c :
       {"TcpExtTCPMTUPFail", "TcpExtTCPMTUPSuccess", "IcmpInDestUnreachs", "TcpExtTCPTimeouts"})
    out.evidence.push_back(CounterEvidence(w, c));
  const auto probing = w.SysctlInt("net.ipv4.tcp_mtu_probing");
  if (probing) out.evidence.push_back(Value("net.ipv4.tcp_mtu_probing", *probing, ""));
  if (!probing || *probing == 0) {
    out.remediation.intent = Limits({{"tcp_mtu_probing", "1"}});
    out.remediation.summary =
        "turn on packetization-layer PMTU discovery after a black hole is seen "
        "(tcp_mtu_probing=1): the connection then retries with smaller segments";
  } else {
    out.remediation.summary =
        "MTU probing is already on; the path must let ICMP through or clamp the MSS";
  }
  out.remediation.limits.push_back(
      "the lasting fix is on the path: let ICMP \"fragmentation needed\" (IPv4 type 3 code 4) "
      "and ICMPv6 \"packet too big\" through, or clamp the MSS on the router");
  out.remediation.limits.push_back(
      "a peer that stopped answering looks the same from here; check that small packets to it "
      "still get through (ping -M do -s 1400 / -s 500)");
  out.summary = absl::StrCat(n, " TCP connection", n == 1 ? "" : "s",
                             " stalled: full-sized segments time out again and again after the "
                             "peer answered smaller ones (a path MTU black hole)");
  out.verification = {"connections with 3+ timeouts in a row on full-sized segments",
                      "none, and TCPMTUPSuccess growing if probing is on"};
  return out;
}

// ---------------------------------------------------------------- IRQ / RSS imbalance

std::optional<Finding> IrqImbalance(const Window& w, const std::vector<Level>& levels) {
  const auto& b = w.pair().before.softirqs;
  const auto& a = w.pair().after.softirqs;
  if (!a || !b || a->cpus.size() < 2 || a->cpus != b->cpus) return std::nullopt;
  auto ai = a->counts.find("NET_RX");
  auto bi = b->counts.find("NET_RX");
  if (ai == a->counts.end() || bi == b->counts.end()) return std::nullopt;
  std::vector<uint64_t> d(a->cpus.size(), 0);
  uint64_t total = 0;
  size_t busiest = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    // The kernel keeps these as unsigned int per CPU: they wrap at 2^32.
    d[i] = collectors::Delta32(bi->second[i], ai->second[i]);
    total += d[i];
    if (d[i] > d[busiest]) busiest = i;
  }
  const double rate = w.seconds() > 0 ? total / w.seconds() : 0;
  if (rate < LevelOf(levels, "min_rx_softirqs_per_second").warning || total == 0)
    return std::nullopt;
  const double share = 100.0 * static_cast<double>(d[busiest]) / static_cast<double>(total);
  auto sev = Grade(share, LevelOf(levels, "busiest_cpu_percent"));
  if (!sev) return std::nullopt;
  // One CPU doing the receive work is only a fault when it does not keep up:
  // squeezes or drops on that CPU.
  const uint32_t cpu = a->cpus[busiest];
  uint64_t squeezed = 0, dropped = 0;
  for (const auto& c : SoftnetDeltas(w.pair())) {
    if (c.cpu != cpu) continue;
    squeezed = c.d.time_squeeze;
    dropped = c.d.dropped;
  }
  Finding f;
  // Squeezes alone are a busy CPU (see softnet-squeeze): only drops make
  // the pile-up a fault.
  f.severity = dropped > 0 ? *sev : Severity::kInfo;
  Evidence e = Value(absl::StrCat("NET_RX softirqs on cpu ", cpu), share, "%",
                     absl::StrCat(d[busiest], " of ", total, " in the window"));
  e.delta = static_cast<int64_t>(d[busiest]);
  f.evidence.push_back(e);
  f.evidence.push_back(Value(absl::StrCat("cpu ", cpu, " softnet time_squeeze"), squeezed, ""));
  f.evidence.push_back(Value(absl::StrCat("cpu ", cpu, " softnet dropped"), dropped, ""));
  f.attribution.push_back(
      {"cpu", absl::StrCat("cpu ", cpu),
       absl::StrCat(Num(share), " % of the receive softirqs of ", a->cpus.size(), " CPUs; ",
                    squeezed, " squeezes, ", dropped, " drops")});
  // The device receiving most: spread its queues' interrupts, or steer its
  // one queue's packets with RPS.
  // The device receiving most, among those whose queues take packets from
  // the wire or a peer (not a bond, bridge or VLAN on top of one).
  static const std::set<std::string> kStacked = {"bond",   "bridge", "team",   "vlan", "macvlan",
                                                 "ipvlan", "vxlan",  "geneve", "dummy"};
  const DeviceDelta* top = nullptr;
  uint64_t top_rx = 0;
  std::vector<DeviceDelta> devs = DeviceDeltas(w.pair());
  for (const DeviceDelta& dev : devs) {
    auto it = dev.d.find("rx_packets");
    if (it == dev.d.end() || it->second <= top_rx || dev.name == "lo" || kStacked.count(dev.kind)) {
      continue;
    }
    top = &dev;
    top_rx = it->second;
  }
  if (top != nullptr) {
    f.attribution.push_back({"device", top->name,
                             absl::StrCat(top_rx, " packets received in the window on ",
                                          top->rx_queues, " receive queue(s)")});
    tuners::Intent i;
    if (top->rx_queues > 1 && top->kind.empty()) {
      i.what = tuners::IrqAffinityIntent{top->name, ""};
      f.remediation.summary =
          absl::StrCat("spread ", top->name, "'s queue interrupts over the CPUs of its NUMA node");
    } else {
      i.what = tuners::RpsIntent{top->name, "", false};
      f.remediation.summary =
          absl::StrCat("steer ", top->name, "'s received packets to other CPUs with RPS");
    }
    f.remediation.intent = i;
  }
  f.remediation.limits.push_back(
      "NET_RX counts and softnet are the host's, whatever namespace the agent serves: in a "
      "child namespace the pile-up may come from another namespace's devices");
  f.remediation.limits.push_back(
      "irqbalance may move interrupts back: the agent reports it as drift, it does not fight "
      "it; a device without MSI-X queues has one interrupt whatever the affinity");
  f.summary = absl::StrCat("cpu ", cpu, " handles ", Num(share), " % of the receive softirqs",
                           squeezed + dropped > 0 ? " and does not keep up" : "");
  f.verification = {"share of NET_RX softirqs on the busiest CPU, its squeezes and drops",
                    "below the warning level, or no squeeze or drop there"};
  return f;
}

// ---------------------------------------------------------------- kernel-drops

enum class DropKind {
  kCited,     // a rule of its own cites it (reported here when that rule found nothing)
  kFault,     // something is broken or overloaded: graded
  kSignal,    // worth knowing, often working as meant (AQM, back-pressure, PMTU): info
  kPolicy,    // a filter someone configured dropped it: info
  kNoSocket,  // nothing listens there: info
  kRoutine,   // TCP/IP working as meant (old segments, closed sockets): not reported
};

struct DropReasonInfo {
  const char* reason;
  DropKind kind;
  const char* meaning;
  const char* owner = "";  // kCited: the rule that cites it
};

// What the kernel's drop reasons mean here (include/net/dropreason-core.h).
// Reasons not listed are reported as info with their name (kernels add
// reasons every release).
const std::vector<DropReasonInfo>& DropReasonTable() {
  using K = DropKind;
  static const std::vector<DropReasonInfo> t = {
      {"TCP_LISTEN_OVERFLOW", K::kCited, "a listener's accept queue was full", "listen-overflow"},
      {"CPU_BACKLOG", K::kCited, "a CPU's backlog was full (netdev_max_backlog)", "softnet-drops"},
      {"SOCKET_RCVBUFF", K::kCited, "a socket's receive buffer was full", "udp-rcvbuf"},
      {"PROTO_MEM", K::kCited, "a protocol's memory limit was reached (tcp_mem, udp_mem)",
       "tcp-memory-pressure"},
      {"NEIGH_CREATEFAIL", K::kCited, "the neighbour table refused a new entry (gc_thresh3)",
       "neighbour-overflow"},
      {"NEIGH_FAILED", K::kFault,
       "address resolution failed: a next hop or neighbour does not answer ARP / NDP"},
      {"NEIGH_QUEUEFULL", K::kFault,
       "too many packets waiting for address resolution (a neighbour that does not answer)"},
      {"NEIGH_DEAD", K::kFault, "the neighbour entry was dead"},
      {"NEIGH_HH_FILLFAIL", K::kFault, "the link-layer header could not be filled"},
      {"TCP_CSUM", K::kFault,
       "TCP checksum wrong: corrupted on the path, or a device's checksum offload is broken"},
      {"UDP_CSUM", K::kFault,
       "UDP checksum wrong: corrupted on the path, or a device's checksum offload is broken"},
      {"IP_CSUM", K::kFault, "IPv4 header checksum wrong: corrupted on the path"},
      {"ICMP_CSUM", K::kFault, "ICMP checksum wrong: corrupted on the path"},
      {"SKB_CSUM", K::kFault, "checksum wrong (found while copying to the socket)"},
      {"IP_INHDR", K::kFault, "IPv4 header invalid (version, length, options)"},
      {"PKT_TOO_SMALL", K::kFault, "packet shorter than its headers say"},
      {"HDR_TRUNC", K::kFault, "headers truncated"},
      {"NOMEM", K::kFault, "no memory for the packet"},
      {"PFMEMALLOC", K::kFault, "the packet used emergency memory reserves"},
      {"FULL_RING", K::kFault, "a device's ring was full"},
      {"QDISC_DROP", K::kFault,
       "dropped by a queueing discipline on send: the device's queue was full"},
      {"QDISC_OVERLIMIT", K::kFault, "over a queueing discipline's limit on send"},
      {"FQ_FLOW_LIMIT", K::kFault, "fq's per-flow limit (flow_limit) on send"},
      {"FQ_BAND_LIMIT", K::kFault, "fq's per-band limit on send"},
      {"FQ_HORIZON_LIMIT", K::kFault, "fq's time horizon on send (a timestamp too far)"},
      {"SOCKET_BACKLOG", K::kFault,
       "a socket's backlog was full while its owner held it (a busy application thread)"},
      {"TCP_OFO_QUEUE_PRUNE", K::kFault,
       "out-of-order queue pruned: the receive buffer was exhausted"},
      {"IP_OUTNOROUTES", K::kFault, "no route to send it"},
      {"IP_INNOROUTES", K::kFault, "no route for a received packet"},
      {"DEV_READY", K::kFault, "the device was not up"},
      {"DEV_HDR", K::kFault, "device header invalid"},
      {"FRAG_REASM_TIMEOUT", K::kFault,
       "fragments never completed: a fragment was lost on the way"},
      {"FRAG_TOO_FAR", K::kFault, "fragments too far apart (ipfrag_max_dist)"},
      {"SKB_GSO_SEG", K::kFault, "segmentation offload failed"},
      {"SKB_RX_HEADROOM", K::kFault, "not enough headroom in the packet"},
      {"RECURSION_LIMIT", K::kFault, "the stack's recursion limit (stacked devices) was hit"},
      {"NO_TX_TARGET", K::kFault, "no device to send it to"},
      {"TUNNEL_TXINFO", K::kFault, "a tunnel had no metadata to send it with"},
      {"VXLAN_INVALID_HDR", K::kFault, "VXLAN header invalid"},
      {"VXLAN_VNI_NOT_FOUND", K::kFault, "VXLAN network identifier not configured here"},
      {"VXLAN_ENTRY_EXISTS", K::kFault, "VXLAN forwarding entry conflict"},
      {"MAC_INVALID_SOURCE", K::kFault, "invalid source MAC address"},
      {"TC_COOKIE_ERROR", K::kFault, "tc configuration error (cookie)"},
      {"TC_CHAIN_NOTFOUND", K::kFault, "tc configuration error (a goto to a missing chain)"},
      {"TC_RECLASSIFY_LOOP", K::kFault, "tc configuration error (reclassify loop)"},
      {"TCP_MD5NOTFOUND", K::kFault, "TCP-MD5 signature expected and missing"},
      {"TCP_MD5UNEXPECTED", K::kFault, "TCP-MD5 signature not expected"},
      {"TCP_MD5FAILURE", K::kFault, "TCP-MD5 signature wrong (keys differ)"},
      {"TCP_AUTH_HDR", K::kFault, "TCP-MD5 and TCP-AO options both present"},
      {"TCP_AONOTFOUND", K::kFault, "TCP-AO signature expected and missing"},
      {"TCP_AOUNEXPECTED", K::kFault, "TCP-AO signature not expected"},
      {"TCP_AOKEYNOTFOUND", K::kFault, "TCP-AO key not found"},
      {"TCP_AOFAILURE", K::kFault, "TCP-AO signature wrong (keys differ)"},
      {"QDISC_CONGESTED", K::kSignal,
       "dropped by a queueing discipline's AQM for congestion (working as meant)"},
      {"DUALPI2_STEP_DROP", K::kSignal, "dropped by dualpi2's AQM (working as meant)"},
      {"TCP_ZEROWINDOW", K::kSignal,
       "data sent into a zero receive window: the application does not read (back-pressure)"},
      {"PKT_TOO_BIG", K::kSignal,
       "bigger than the MTU with fragmentation forbidden (path MTU discovery at work)"},
      {"SKB_UCOPY_FAULT", K::kSignal, "copying to the application failed (a bad buffer)"},
      {"NETFILTER_DROP", K::kPolicy,
       "a netfilter rule dropped it (iptables, nftables; or conntrack refusing new flows)"},
      {"IP_RPFILTER", K::kPolicy,
       "reverse-path filter (rp_filter): the source is not routed back over this device "
       "(asymmetric routing, or spoofed sources)"},
      {"XDP", K::kPolicy, "an XDP program dropped it"},
      {"TC_INGRESS", K::kPolicy, "a tc filter or program dropped it on receive"},
      {"TC_EGRESS", K::kPolicy, "a tc filter or program dropped it on send"},
      {"BPF_CGROUP_EGRESS", K::kPolicy, "a cgroup BPF program dropped it on send"},
      {"SECURITY_HOOK", K::kPolicy, "a security module (LSM) dropped it"},
      {"SOCKET_FILTER", K::kPolicy, "a socket filter (SO_ATTACH_FILTER) dropped it"},
      {"XFRM_POLICY", K::kPolicy, "an IPsec policy dropped it"},
      {"TCP_MINTTL", K::kPolicy, "below a socket's minimum TTL (IP_MINTTL)"},
      {"CAKE_FLOOD", K::kPolicy, "cake's flood protection"},
      {"ARP_PVLAN_DISABLE", K::kPolicy, "private VLAN ARP proxy disabled"},
      {"PSP_INPUT", K::kPolicy, "PSP policy on receive"},
      {"PSP_OUTPUT", K::kPolicy, "PSP policy on send"},
      {"NO_SOCKET", K::kNoSocket,
       "no socket for it: a closed port (a service down, a client of one, or a scan)"},
  };
  return t;
}

// Routine discards: TCP/IP working as meant. Not reported.
const std::set<std::string, std::less<>>& RoutineDrops() {
  static const std::set<std::string, std::less<>> r = {"NOT_SPECIFIED",
                                                       "SOCKET_CLOSE",
                                                       "UNIX_DISCONNECT",
                                                       "UNIX_SKIP_OOB",
                                                       "OTHERHOST",
                                                       "UNICAST_IN_L2_MULTICAST",
                                                       "IP_NOPROTO",
                                                       "TCP_FLAGS",
                                                       "TCP_ABORT_ON_DATA",
                                                       "TCP_OLD_DATA",
                                                       "TCP_OVERWINDOW",
                                                       "TCP_OFOMERGE",
                                                       "TCP_OFO_DROP",
                                                       "TCP_RFC7323_PAWS",
                                                       "TCP_RFC7323_PAWS_ACK",
                                                       "TCP_RFC7323_TW_PAWS",
                                                       "TCP_RFC7323_TSECR",
                                                       "TCP_OLD_SEQUENCE",
                                                       "TCP_INVALID_SEQUENCE",
                                                       "TCP_INVALID_END_SEQUENCE",
                                                       "TCP_INVALID_ACK_SEQUENCE",
                                                       "TCP_RESET",
                                                       "TCP_INVALID_SYN",
                                                       "TCP_CLOSE",
                                                       "TCP_FASTOPEN",
                                                       "TCP_OLD_ACK",
                                                       "TCP_TOO_OLD_ACK",
                                                       "TCP_ACK_UNSENT_DATA",
                                                       "QUEUE_PURGE",
                                                       "IPV6DISABLED",
                                                       "DUP_FRAG",
                                                       "IP_INADDRERRORS",
                                                       "IP_LOCAL_SOURCE",
                                                       "IP_INVALID_SOURCE",
                                                       "IP_LOCALNET",
                                                       "IP_INVALID_DEST",
                                                       "IPV6_NDISC_FRAG",
                                                       "IPV6_NDISC_HOP_LIMIT",
                                                       "IPV6_NDISC_BAD_CODE",
                                                       "IPV6_NDISC_BAD_OPTIONS",
                                                       "IPV6_NDISC_NS_OTHERHOST",
                                                       "PACKET_SOCK_ERROR",
                                                       "TAP_FILTER",
                                                       "TAP_TXFILTER",
                                                       "LOCAL_MAC",
                                                       "MAC_IEEE_MAC_CONTROL",
                                                       "BRIDGE_INGRESS_STP_STATE",
                                                       "UNHANDLED_PROTO",
                                                       "IP_TUNNEL_ECN",
                                                       "INVALID_PROTO",
                                                       "CAN_RX_INVALID_FRAME",
                                                       "CANFD_RX_INVALID_FRAME",
                                                       "CANXL_RX_INVALID_FRAME"};
  return r;
}

const DropReasonInfo* DropInfo(absl::string_view reason) {
  for (const DropReasonInfo& i : DropReasonTable())
    if (reason == i.reason) return &i;
  return nullptr;
}

// Drops below this rate are not mentioned unless they are faults.
constexpr double kNotedDropsPerSecond = 1;

std::optional<Finding> UnexplainedDrops(const Window& w, const std::vector<Level>& levels) {
  if (!w.Drops() || w.seconds() <= 0) return std::nullopt;
  struct Reason {
    std::string name;
    const DropReasonInfo* info = nullptr;
    DropKind kind = DropKind::kPolicy;
    int64_t drops = 0;
    std::vector<std::pair<int64_t, std::string>> devices;
  };
  std::map<std::string, Reason> by_reason;
  for (const auto& [key, delta] : *w.Drops()) {
    if (RoutineDrops().count(key.first)) continue;
    Reason& r = by_reason[key.first];
    r.name = key.first;
    r.info = DropInfo(key.first);
    r.kind = r.info ? r.info->kind : DropKind::kPolicy;  // unknown: info
    r.drops += delta;
    r.devices.push_back({delta, key.second});
  }
  std::vector<Reason> shown;
  double worst_fault = 0;  // graded per reason: the host's worst one
  for (auto& [name, r] : by_reason) {
    if (r.kind == DropKind::kCited) {
      // Its own rule reports it with context; here only when that rule
      // found nothing (a UDP socket's PROTO_MEM is no TCP memory pressure).
      if (w.Fired(r.info->owner)) continue;
      r.kind = DropKind::kFault;
    }
    const double rate = static_cast<double>(r.drops) / w.seconds();
    if (r.kind == DropKind::kFault) {
      worst_fault = std::max(worst_fault, rate);
    } else if (rate < kNotedDropsPerSecond) {
      continue;
    }
    shown.push_back(std::move(r));
  }
  if (shown.empty()) return std::nullopt;
  std::sort(shown.begin(), shown.end(), [](const Reason& a, const Reason& b) {
    const bool fa = a.kind == DropKind::kFault, fb = b.kind == DropKind::kFault;
    return fa != fb ? fa : a.drops != b.drops ? a.drops > b.drops : a.name < b.name;
  });
  Finding f;
  f.severity = *Worst({Grade(worst_fault, LevelOf(levels, "fault_drops_per_second"))}, true);
  std::vector<std::string> parts;
  int64_t total = 0;
  // New flows conntrack refused over the window: part of NETFILTER_DROP.
  int64_t conntrack_drops = 0;
  if (w.pair().before.conntrack && w.pair().after.conntrack) {
    for (const char* n : {"drop", "early_drop"}) {
      const uint64_t a = Named(w.pair().after.conntrack->total, n);
      const uint64_t b = Named(w.pair().before.conntrack->total, n);
      if (a > b) conntrack_drops += static_cast<int64_t>(a - b);
    }
  }
  for (Reason& r : shown) {
    total += r.drops;
    const double rate = static_cast<double>(r.drops) / w.seconds();
    std::sort(r.devices.rbegin(), r.devices.rend());
    CiteDrops(w, f, r.name);
    const std::string& top = r.devices.front().second;
    if (!top.empty()) {
      f.attribution.push_back(
          {"device", top, absl::StrCat(r.devices.front().first, " drops, reason ", r.name)});
    }
    std::string part = absl::StrCat(r.name, " ", Num(rate), "/s");
    if (!top.empty()) absl::StrAppend(&part, " on ", top);
    for (const DropSource& s : w.pair().drop_sources) {
      if (s.reason != r.name) continue;
      absl::StrAppend(&part, " from ", s.prefix);
      break;
    }
    parts.push_back(std::move(part));
    std::string limit = absl::StrCat(
        r.name, ": ", r.info ? r.info->meaning : "a reason this catalog does not describe");
    if (r.kind == DropKind::kPolicy) {
      absl::StrAppend(&limit,
                      " — configured on purpose or not, it is no tuning matter: `nft list "
                      "ruleset`, `iptables -L -v -n`, `tc filter show`, `bpftool net` and "
                      "`netctl datapath stats` show which rule or program");
    }
    if (r.name == "NETFILTER_DROP" && conntrack_drops > 0) {
      absl::StrAppend(&limit, "; conntrack refused ", conntrack_drops,
                      " new flows in the window, which count here too (see conntrack-full)");
    }
    f.remediation.limits.push_back(std::move(limit));
  }
  if (w.DropsUncounted() > 0) {
    f.remediation.limits.push_back(absl::StrCat(
        w.DropsUncounted(),
        " drops in the window were counted nowhere: the collector's key "
        "table was full (many devices × reasons × protocols); the figures above are short"));
  }
  f.remediation.summary =
      "nothing the agent tunes: each reason below says what drops and where to look";
  f.summary = absl::StrCat(total, " packets dropped by the kernel in ", Seconds(w), ": ",
                           absl::StrJoin(parts, "; "));
  f.verification = {
      "kernel drops of these reasons per second (netctl drops --window)",
      absl::StrCat("each fault below ", Num(LevelOf(levels, "fault_drops_per_second").warning),
                   "/s over the same window")};
  return f;
}

// ---------------------------------------------------------------- the catalog

std::vector<RuleSpec> BuildCatalog() {
  std::vector<RuleSpec> c;
  c.push_back(
      {"listen-overflow",
       "Accept queue overflow",
       "TcpExtListenOverflows and ListenDrops over the window; every listener's accept queue "
       "and backlog, sampled each second; net.core.somaxconn",
       "A connection whose handshake completes waits in its listener's accept queue until the "
       "application calls accept(). The queue holds the listen() backlog, capped at "
       "net.core.somaxconn. When it is full the kernel drops the handshake's last ACK (or "
       "resets, with tcp_abort_on_overflow), the client retransmits, and connections stall for "
       "a second or more. The limit is whichever is smaller: the application's backlog or "
       "somaxconn — raising somaxconn only helps listeners it caps.",
       "Netdata 1m_tcp_accept_queue_overflows: average > 1/s warning, > 5/s critical",
       {{"overflows_per_second", 1, 5, "/s", "ListenOverflows per second over the window"}},
       ListenOverflow});
  c.push_back(
      {"syn-flood",
       "SYN queue full (SYN flood)",
       "TcpExtTCPReqQFullDrop, TCPReqQFullDoCookies, Syncookies*; SYN_RECV sockets per "
       "listener and per source; tcp_syncookies, tcp_max_syn_backlog",
       "Each SYN creates a half-open request in its listener's SYN queue until the handshake "
       "completes. When the queue is full the kernel answers with SYN cookies (tcp_syncookies "
       "1) — no state kept, but TCP options like window scaling may be lost — or drops the SYN "
       "(cookies off). A flood of spoofed SYNs keeps it full.",
       "Netdata TCPReqQFullDrop / TCPReqQFullDoCookies: average > 1/s warning, > 5/s critical",
       {{"syn_drops_per_second", 1, 5, "/s", "SYNs dropped on a full SYN queue per second"},
        {"cookies_per_second", 1, 5, "/s", "SYN cookies sent for a full SYN queue per second"}},
       SynFlood});
  c.push_back(
      {"conntrack-full",
       "Connection tracking table near full",
       "conntrack entries against nf_conntrack_max; drop, early_drop and insert_failed over "
       "the window",
       "Every tracked flow takes an entry until its timeout. When the table is full, new flows "
       "are dropped (after evicting what early_drop can), which looks like random connection "
       "failures.",
       "node-problem-detector and Netdata: > 90 % warning; Netdata > 95 % critical; any drop",
       {{"fill_percent", 90, 95, "%", "entries / nf_conntrack_max"},
        {"drops_per_second", 0.01, 1, "/s", "drop + early_drop + insert_failed per second"}},
       ConntrackFull});
  c.push_back(
      {"port-exhaustion",
       "Ephemeral ports to one peer running out (TIME_WAIT)",
       "TIME_WAIT sockets per remote endpoint against the ephemeral port range "
       "(ip_local_port_range); tcp_tw_reuse; TCPTimeWaitOverflow",
       "An outgoing connection needs a local port unique for its remote address and port. "
       "Every connection this host closes first keeps its port in TIME_WAIT for 60 s. Many "
       "short connections to one service use the range up; connect() then fails with "
       "EADDRNOTAVAIL.",
       "no published alert; the port range is the limit (TIME_WAIT per peer / ports)",
       {{"peer_fill_percent", 50, 80, "%", "TIME_WAIT to the busiest peer / ephemeral ports"}},
       PortExhaustion});
  c.push_back(
      {"softnet-drops",
       "Per-CPU backlog drops (softnet)",
       "softnet_stat dropped and flow_limit_count per CPU; net.core.netdev_max_backlog",
       "Packets handed to a CPU by RPS, veth, loopback or a driver without NAPI wait in that "
       "CPU's backlog (netdev_max_backlog packets). When the CPU does not keep up the backlog "
       "fills and new packets are dropped before any protocol sees them.",
       "bpftune: > 1/32 of the backlog per minute; Netdata softnet dropped (> 10/min, silenced "
       "for noise)",
       {{"drops_per_second", 0.5, 10, "/s", "packets dropped from backlogs per second"}},
       SoftnetDrops});
  c.push_back(
      {"softnet-squeeze",
       "Receive softirq out of budget (time squeeze)",
       "softnet_stat time_squeeze and dropped per CPU; netdev_budget, netdev_budget_usecs",
       "One NAPI round processes at most netdev_budget packets or netdev_budget_usecs; when "
       "work is left it ends early (a squeeze) and the rest waits for the next round. Squeezes "
       "alone mean a busy CPU; with drops beside them the rounds are too short for the load.",
       "Netdata softnet squeezed (> 10/min, silenced for noise); above info only with drops",
       {{"squeezes_per_second", 10, 100, "/s", "squeezes per second, counted with drops only"}},
       SoftnetSqueeze});
  c.push_back(
      {"retransmissions",
       "TCP retransmissions",
       "TcpRetransSegs less SYN retransmissions (TCPSynRetrans) / TcpOutSegs over the window; "
       "RTOs, fast retransmits, spurious RTOs; peers whose connections retransmitted in the "
       "window",
       "A segment not acknowledged in time (RTO) or reported missing (duplicate ACKs, SACK) is "
       "sent again. A few per cent of retransmissions cut loss-based congestion control's "
       "throughput hard; timeouts also stall the connection for at least 200 ms.",
       "community rules: RetransSegs / OutSegs > 1-5 %; bpftune ~1.5 % loss",
       {{"retransmitted_percent", 2, 5, "%", "RetransSegs / OutSegs"},
        {"min_segments", 1000, 1000, "segments",
         "segments sent in the window below which the ratio is not graded"}},
       Retransmissions});
  c.push_back(
      {"udp-rcvbuf",
       "UDP receive buffer overflows",
       "UdpRcvbufErrors, Udp6RcvbufErrors; net.core.rmem_max, rmem_default",
       "A UDP socket whose receive buffer is full drops every datagram that arrives until the "
       "application reads; the sender is not told.",
       "bpftune (UDP buffer exhaustion); any sustained rate",
       {{"errors_per_second", 1, 100, "/s", "datagrams dropped on full buffers per second"}},
       UdpRcvbuf});
  c.push_back({"tcp-memory-pressure",
               "TCP memory pressure",
               "TCP pages in use (sockstat) against tcp_mem; TCPMemoryPressures, TCPAbortOnMemory",
               "Above tcp_mem's middle mark TCP enters memory pressure and shrinks every socket's "
               "buffers; at the high mark new allocations fail and connections are aborted.",
               "the kernel's own marks: pressure events; above 80 % of the high mark",
               {{"memory_percent", 80, 100, "%", "TCP pages / tcp_mem high"},
                {"pressure_events", 1, 100, "events", "TCPMemoryPressures + TCPAbortOnMemory"}},
               TcpMemory});
  c.push_back({"orphans",
               "Orphaned TCP sockets near the limit",
               "orphans (sockstat) against net.ipv4.tcp_max_orphans; TCPAbortOnMemory",
               "A socket closed by its application but not yet by the peer is an orphan; beyond "
               "tcp_max_orphans the kernel resets them and logs \"too many orphaned sockets\".",
               "the kernel's limit: above half of it warning, 90 % critical",
               {{"orphan_percent", 50, 90, "%", "orphans / tcp_max_orphans"}},
               Orphans});
  c.push_back(
      {"nic-drops",
       "Packets lost on receive (device)",
       "rx_dropped, rx_missed_errors, rx_fifo_errors, rx_over_errors against rx_packets per "
       "device",
       "A receive ring with no free descriptor when a packet arrives loses it in hardware "
       "(missed, fifo, over); rx_dropped counts what the driver or stack discarded.",
       "Netdata: inbound drop ratio >= 2 %; FIFO errors > 0",
       {{"drop_percent", 2, 10, "%", "lost / (received + lost)"},
        {"ring_drops_per_second", 0.01, 100, "/s", "missed + fifo + over per second"}},
       NicDrops});
  c.push_back(
      {"nic-errors",
       "Interface errors",
       "rx_errors and tx_errors against packets per device, with CRC, frame, length and "
       "carrier detail",
       "Errors are frames damaged on the wire or a link going down: they are lost before the "
       "stack.",
       "node-mixin NodeNetworkReceiveErrs: errors / packets > 1 %",
       {{"error_percent", 1, 5, "%", "(rx + tx errors) / packets"}},
       NicErrors});
  c.push_back(
      {"link-flaps",
       "Link flapping",
       "IFLA_CARRIER_CHANGES per device over the window",
       "Each time a link loses and regains its carrier, traffic on it is lost until it is back, "
       "and bonds, routing daemons and the neighbours react.",
       "Prometheus node-mixin NodeNetworkInterfaceFlapping: more than 2 changes in 2 minutes",
       {{"carrier_changes", 3, 6, "changes", "carrier changes in the window"}},
       LinkFlaps});
  c.push_back(
      {"buffer-limited",
       "TCP flows limited by their buffers",
       "tcp_info busy time, sndbuf_limited and rwnd_limited of the busiest established flows "
       "(over the window for flows seen at both ends); tcp_rmem, tcp_wmem",
       "A sender may have at most its send buffer in flight, a receiver advertises at most "
       "its receive buffer: a path whose bandwidth-delay product is larger cannot be filled, "
       "and the flow spends its time waiting. Autotuning grows buffers only up to tcp_wmem and "
       "tcp_rmem's maximum.",
       "the kernel's own accounting (tcpi_sndbuf_limited, tcpi_rwnd_limited): most of the busy "
       "time",
       {{"limited_percent", 50, 80, "%", "limited time / busy time of a flow"},
        {"min_busy_ms", 200, 200, "ms", "busy time below which a flow is not graded"}},
       BufferLimited});
  c.push_back(
      {"neighbour-overflow",
       "Neighbour table (ARP / NDP) full",
       "/proc/net/stat/arp_cache and ndisc_cache: entries against gc_thresh3, table_fulls over "
       "the window",
       "Every IP neighbour the host talks to directly takes an entry. At gc_thresh3 entries "
       "the kernel forces a collection; when nothing can go, a new neighbour is refused "
       "(\"neighbour table overflow\" in the kernel log) and packets to it are dropped.",
       "bpftune (neighbour table full: gc_thresh3 +25 %); the kernel's table_fulls",
       {{"fill_percent", 90, 100, "%", "entries / gc_thresh3"},
        {"table_fulls", 1, 100, "times", "times the table was full in the window"}},
       NeighbourOverflow});
  c.push_back(
      {"mtu-blackhole",
       "Path MTU black hole",
       "established connections with 3 or more timeouts in a row on full-sized segments and "
       "little acknowledged (tcp_info); TCPMTUPFail/Success, ICMP unreachables; "
       "tcp_mtu_probing",
       "A router whose next hop has a smaller MTU drops packets too big for it and tells the "
       "sender with ICMP \"fragmentation needed\" / \"packet too big\". When a firewall "
       "drops that ICMP, the sender never learns: the handshake and small packets pass, every "
       "full-sized segment is lost, and the connection times out over and over.",
       "no published threshold; any connection in this state is stuck",
       {{"stalled_flows", 1, 5, "connections", "connections stalled on full-sized segments"},
        {"min_mss", 1000, 1000, "bytes", "MSS below which a stall is not counted"}},
       MtuBlackhole});
  c.push_back(
      {"irq-imbalance",
       "Receive work piled on one CPU (IRQ / RSS imbalance)",
       "NET_RX softirqs per CPU (/proc/softirqs) over the window, that CPU's softnet squeezes "
       "and drops; the device receiving most and its queue count",
       "Each receive queue raises its interrupt on the CPUs of its affinity, and that CPU runs "
       "the softirq that takes the packets up the stack. A single queue, or every queue's "
       "interrupt on one CPU, puts all receive work there; when it cannot keep up it squeezes "
       "and drops while the other CPUs idle.",
       "no published threshold; graded above info only with squeezes or drops on that CPU",
       {{"busiest_cpu_percent", 80, 95, "%", "the busiest CPU's share of NET_RX softirqs"},
        {"min_rx_softirqs_per_second", 1000, 1000, "/s",
         "receive softirqs per second below which the spread is not graded"}},
       IrqImbalance});
  c.push_back(
      {"kernel-drops",
       "Packets dropped by the kernel, by reason",
       "the kernel's own drop reasons (skb:kfree_skb through the agent's kernel-drop "
       "collector) over the window, per reason and device, with the source prefixes of "
       "sampled drops; a reason another rule cites (TCP_LISTEN_OVERFLOW, CPU_BACKLOG, "
       "SOCKET_RCVBUFF, PROTO_MEM, NEIGH_CREATEFAIL) is reported here only when that rule "
       "found nothing; TCP/IP's routine discards (old or duplicate segments, closed sockets) "
       "are not reported; signals, policy drops and NO_SOCKET are info from 1/s",
       "Every packet the kernel frees as dropped carries a reason (kernel 5.17 and later): a "
       "bad checksum, a full queue, a firewall rule, no socket. Counters such as "
       "IpInHdrErrors say something was lost; the reason, the device and the source say what "
       "and where. Faults (corruption, full queues, no route, a neighbour that does not "
       "answer) are graded per reason by rate; drops someone configured (netfilter, "
       "rp_filter, XDP, tc, LSM), the stack working as meant (AQM, a zero window, PMTU "
       "discovery) and packets to closed ports are listed as info with where they came from. "
       "Needs the collector: attached on demand by Diagnose; read by the continuous "
       "evaluation only with netagentd --drop-reasons start.",
       "no published threshold: any sustained fault rate; the kernel's reasons as documented "
       "in include/net/dropreason-core.h",
       {{"fault_drops_per_second", 1, 100, "/s",
         "drops per second of the worst reason that is a fault (not policy, signal or "
         "routine)"}},
       UnexplainedDrops});
  return c;
}

}  // namespace

absl::string_view SeverityName(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kCritical:
      return "critical";
  }
  return "unknown";
}

std::optional<Severity> SeverityFromName(absl::string_view name) {
  for (Severity s : {Severity::kInfo, Severity::kWarning, Severity::kCritical})
    if (name == SeverityName(s)) return s;
  return std::nullopt;
}

Window::Window(const SnapshotPair& pair) : pair_(pair) {
  seconds_ = absl::ToDoubleSeconds(pair.window());
  for (auto [snap, into] : {std::pair{&pair.before, &before_}, std::pair{&pair.after, &after_}}) {
    if (!snap->counters) continue;
    for (const auto& v : snap->counters->values) (*into)[v.name()] = v.value;
  }
  const auto& b = pair.before.drops;
  const auto& a = pair.after.drops;
  if (b && a && b->attached_at == a->attached_at) {
    drops_.emplace();
    // Compared by device index; named as the device was called at the end
    // (or at the start, for one that went away).
    auto name = [&](uint32_t ifindex) -> std::string {
      if (ifindex == 0) return "";
      for (const auto* d : {&a->devices, &b->devices})
        if (auto it = d->find(ifindex); it != d->end()) return it->second;
      return absl::StrCat("ifindex ", ifindex);
    };
    for (const auto& [key, count] : a->counts) {
      auto it = b->counts.find(key);
      const uint64_t was = it == b->counts.end() ? 0 : it->second;
      if (count > was)
        (*drops_)[{key.first, name(key.second)}] += static_cast<int64_t>(count - was);
    }
    drops_uncounted_ = a->table_full > b->table_full ? a->table_full - b->table_full : 0;
  }
}

std::optional<int64_t> Window::Drops(absl::string_view reason) const {
  if (!drops_) return std::nullopt;
  int64_t n = 0;
  for (const auto& [key, delta] : *drops_)
    if (key.first == reason) n += delta;
  return n;
}

std::optional<int64_t> Window::Delta(absl::string_view counter) const {
  auto b = before_.find(counter);
  auto a = after_.find(counter);
  if (b == before_.end() || a == after_.end()) return std::nullopt;
  collectors::CounterValue before, after;
  before.value = b->second;
  after.value = a->second;
  return collectors::CounterDelta(before, after);
}

double Window::Rate(absl::string_view counter) const {
  auto d = Delta(counter);
  return d && seconds_ > 0 ? static_cast<double>(*d) / seconds_ : 0;
}

std::optional<int64_t> Window::Value(absl::string_view counter) const {
  auto a = after_.find(counter);
  if (a == after_.end()) return std::nullopt;
  return a->second;
}

std::optional<std::string> Window::Sysctl(absl::string_view name) const {
  auto it = pair_.after.sysctls.find(std::string(name));
  if (it == pair_.after.sysctls.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> Window::SysctlInt(absl::string_view name, size_t index) const {
  auto v = Sysctl(name);
  if (!v) return std::nullopt;
  std::vector<absl::string_view> words =
      absl::StrSplit(*v, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  int64_t out = 0;
  if (index >= words.size() || !absl::SimpleAtoi(words[index], &out)) return std::nullopt;
  return out;
}

const std::vector<RuleSpec>& Catalog() {
  static const std::vector<RuleSpec> c = BuildCatalog();
  return c;
}

const RuleSpec* FindRule(absl::string_view id) {
  for (const RuleSpec& r : Catalog())
    if (r.id == id) return &r;
  return nullptr;
}

std::optional<Severity> Grade(double value, const Level& level) {
  if (value >= level.critical) return Severity::kCritical;
  if (value >= level.warning) return Severity::kWarning;
  return std::nullopt;
}

const Level& LevelOf(const std::vector<Level>& levels, absl::string_view metric) {
  for (const Level& l : levels)
    if (l.metric == metric) return l;
  static const Level never{"", 1e300, 1e300, "", ""};
  return never;
}

absl::Status ValidateOptions(const DiagnoseOptions& options, absl::string_view prefix) {
  const std::string field = prefix.empty() ? "" : absl::StrCat(prefix, ".");
  for (const std::string& id : options.rules) {
    if (!FindRule(id)) {
      return absl::InvalidArgumentError(absl::StrCat(field, "rules: no rule ", kernel::Quote(id)));
    }
  }
  for (const auto& [id, metrics] : options.overrides) {
    const RuleSpec* r = FindRule(id);
    if (!r) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "thresholds: no rule ", kernel::Quote(id)));
    }
    for (const auto& [metric, level] : metrics) {
      if (LevelOf(r->levels, metric).metric.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, "thresholds.", id, ": no metric ", kernel::Quote(metric)));
      }
      if (!(level.warning >= 0) || !(level.critical >= level.warning) ||
          !std::isfinite(level.critical)) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, "thresholds.", id, ".", metric,
                         ": warning and critical must be numbers with 0 <= warning <= critical"));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<Finding> Diagnose(const SnapshotPair& pair, const DiagnoseOptions& options) {
  Window w(pair);
  std::vector<Finding> out;
  const std::set<std::string> only(options.rules.begin(), options.rules.end());
  // Every rule runs, in catalog order (kernel-drops last: it reports the
  // reasons whose own rule found nothing); the answer has those asked for.
  for (const RuleSpec& r : Catalog()) {
    std::vector<Level> levels = r.levels;
    if (auto o = options.overrides.find(r.id); o != options.overrides.end()) {
      for (Level& l : levels) {
        auto m = o->second.find(l.metric);
        if (m == o->second.end()) continue;
        l.warning = m->second.warning;
        l.critical = m->second.critical;
      }
    }
    std::optional<Finding> f = r.evaluate(w, levels);
    if (f) w.MarkFired(r.id);
    if (!only.empty() && !only.count(r.id)) continue;
    if (!f || static_cast<int>(f->severity) < static_cast<int>(options.min_severity)) continue;
    f->rule = r.id;
    f->title = r.title;
    f->explanation = r.explanation;
    out.push_back(std::move(*f));
  }
  std::stable_sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) {
    return static_cast<int>(a.severity) > static_cast<int>(b.severity);
  });
  return out;
}

}  // namespace netagent::diagnosis
