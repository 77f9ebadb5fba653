// netctl nic [IFACE].
#include <map>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/nic.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

uint64_t Stat(const v1::Link& l, const char* name) {
  auto it = l.stats().find(name);
  return it == l.stats().end() ? 0 : it->second;
}

void LinkRows(const v1::ListNicsResponse& r, Rows& rows) {
  for (const auto& l : r.links()) {
    rows.push_back({l.name(), l.kind().empty() ? "-" : l.kind(), l.operstate(), Num(l.mtu()),
                    l.qdisc(), Num(Stat(l, "rx_packets")), Num(Stat(l, "rx_bytes")),
                    Num(Stat(l, "rx_dropped")), Num(Stat(l, "tx_packets")),
                    Num(Stat(l, "tx_bytes")), Num(Stat(l, "tx_dropped")), l.xdp().mode()});
  }
}

std::string Status(const v1::Capability& c) {
  return c.available() ? "" : "unsupported: " + c.reason();
}

std::string Opt(bool has, uint32_t v) { return has ? Num(v) : "n/a"; }

void Kv(Table& t, const std::string& k, const std::string& v) { t.AddRow({k, v}); }

std::string Joined(const google::protobuf::RepeatedPtrField<v1::NamedValue>& values) {
  std::vector<std::string> parts;
  for (const auto& v : values) parts.push_back(absl::StrCat(v.name(), " ", v.value()));
  return absl::StrJoin(parts, ", ");
}

void NicBlock(const v1::GetNicResponse& r, std::ostream& out) {
  const auto& l = r.link();
  Table t({"FIELD", "VALUE"});
  Kv(t, "interface",
     absl::StrCat(l.name(), " (index ", l.ifindex(), l.kind().empty() ? "" : ", " + l.kind(),
                  l.link_ifindex() ? absl::StrCat(", peer index ", l.link_ifindex()) : "", ")"));
  Kv(t, "state", absl::StrCat(l.operstate(), " <", absl::StrJoin(l.flags(), ","), ">"));
  Kv(t, "mtu / qdisc / txqlen", absl::StrCat(l.mtu(), " / ", l.qdisc(), " / ", l.txqlen()));
  Kv(t, "queues", absl::StrCat(l.num_rx_queues(), " rx, ", l.num_tx_queues(), " tx"));
  Kv(t, "address", l.address());
  Kv(t, "xdp",
     l.xdp().mode() == "none" ? "none" : absl::StrCat(l.xdp().mode(), " prog ", l.xdp().prog_id()));
  Kv(t, "driver",
     r.driver().status().available()
         ? absl::StrCat(r.driver().driver(), " ", r.driver().version(),
                        r.driver().bus_info().empty() ? "" : " bus " + r.driver().bus_info())
         : Status(r.driver().status()));
  const auto& lm = r.link_modes();
  Kv(t, "link",
     lm.status().available()
         ? absl::StrCat(
               lm.has_speed_mbps() ? absl::StrCat(lm.speed_mbps(), "Mb/s") : "speed unknown", " ",
               lm.duplex(), " duplex, autoneg ", lm.autoneg() ? "on" : "off",
               lm.has_link_detected() ? (lm.link_detected() ? ", link detected" : ", no link") : "")
         : Status(lm.status()));
  const auto& c = r.channels();
  Kv(t, "channels",
     c.status().available()
         ? absl::StrCat("rx ", Opt(c.has_rx(), c.rx()), "/", Opt(c.has_rx_max(), c.rx_max()),
                        " tx ", Opt(c.has_tx(), c.tx()), "/", Opt(c.has_tx_max(), c.tx_max()),
                        " other ", Opt(c.has_other(), c.other()), "/",
                        Opt(c.has_other_max(), c.other_max()), " combined ",
                        Opt(c.has_combined(), c.combined()), "/",
                        Opt(c.has_combined_max(), c.combined_max()), " (current/max)")
         : Status(c.status()));
  Kv(t, "rings",
     r.rings().status().available() ? Joined(r.rings().values()) : Status(r.rings().status()));
  Kv(t, "coalesce",
     r.coalesce().status().available() ? Joined(r.coalesce().values())
                                       : Status(r.coalesce().status()));
  if (r.features().status().available()) {
    std::vector<std::string> on;
    int fixed = 0;
    for (const auto& f : r.features().features()) {
      if (f.active()) on.push_back(f.name());
      fixed += f.fixed() ? 1 : 0;
    }
    Kv(t, "features",
       absl::StrCat(on.size(), " of ", r.features().features_size(), " on (", fixed,
                    " fixed): ", absl::StrJoin(on, " ")));
  } else {
    Kv(t, "features", Status(r.features().status()));
  }
  const auto& p = r.pause();
  Kv(t, "pause",
     p.status().available() ? absl::StrCat("autoneg ", p.autoneg() ? "on" : "off", " rx ",
                                           p.rx() ? "on" : "off", " tx ", p.tx() ? "on" : "off")
                            : Status(p.status()));
  Kv(t, "rss",
     r.rss().status().available()
         ? absl::StrCat(r.rss().hash_function(), ", ", r.rss().indirection_size(),
                        "-entry indirection table, key ", r.rss().hash_key())
         : Status(r.rss().status()));
  Kv(t, "standard stats",
     r.standard_stats().status().available()
         ? absl::StrCat(r.standard_stats().groups_size(), " groups")
         : Status(r.standard_stats().status()));
  Kv(t, "queue stats",
     r.queue_stats().status().available() ? absl::StrCat(r.queue_stats().queues_size(), " queues")
                                          : Status(r.queue_stats().status()));
  Kv(t, "irqs",
     r.irqs().status().available() ? absl::StrCat(r.irqs().irqs_size())
                                   : Status(r.irqs().status()));
  t.Render(out);

  Table counters({"COUNTER", "VALUE"});
  std::map<std::string, uint64_t> link_stats(l.stats().begin(), l.stats().end());
  for (const auto& [name, value] : link_stats) counters.AddRow({name, Num(value)});
  for (const auto& g : r.standard_stats().groups()) {
    for (const auto& v : g.stats()) counters.AddRow({g.name() + "." + v.name(), Num(v.value())});
  }
  for (const auto& v : r.driver_stats().counters())
    counters.AddRow({"driver." + v.name(), Num(v.value())});
  for (const auto& q : r.queue_stats().queues()) {
    for (const auto& v : q.values()) {
      counters.AddRow(
          {absl::StrCat("queue.", q.type(), "-", q.id(), ".", v.name()), Num(v.value())});
    }
  }
  out << "\n";
  counters.Render(out);
  if (r.queues().rx_size() + r.queues().tx_size() > 0) {
    out << "\n";
    Table q({"QUEUE", "RPS/XPS-CPUS", "RPS-FLOW-CNT/XPS-RXQS"});
    for (const auto& rx : r.queues().rx()) {
      q.AddRow({absl::StrCat("rx-", rx.id()), rx.rps_cpus(),
                rx.has_rps_flow_cnt() ? Num(rx.rps_flow_cnt()) : "-"});
    }
    for (const auto& tx : r.queues().tx()) {
      q.AddRow({absl::StrCat("tx-", tx.id()), tx.xps_cpus().empty() ? "-" : tx.xps_cpus(),
                tx.xps_rxqs().empty() ? "-" : tx.xps_rxqs()});
    }
    q.Render(out);
  }
  if (r.irqs().irqs_size() > 0) {
    out << "\n";
    Table irqs({"IRQ", "NAME", "COUNT", "AFFINITY", "EFFECTIVE"});
    for (const auto& i : r.irqs().irqs()) {
      irqs.AddRow(
          {Num(i.irq()), i.name(), Num(i.count()), i.affinity_list(), i.effective_affinity_list()});
    }
    irqs.Render(out);
  }
}

}  // namespace

int RunNic(const CommandContext& c, const NicArgs& args) {
  View view;
  if (args.name.empty()) {
    view.header = {"NAME",     "KIND",    "STATE",   "MTU",      "QDISC",   "RX-PKTS",
                   "RX-BYTES", "RX-DROP", "TX-PKTS", "TX-BYTES", "TX-DROP", "XDP"};
    view.rows = TypedRows<v1::ListNicsResponse>(LinkRows);
    return RunUnary(c, view, [](const Target&, grpc::Channel& ch, absl::Time d) {
      return Unary(ch, d, v1::ListNicsRequest(), &v1::NicService::Stub::ListNics);
    });
  }
  {
    v1::GetNicRequest req;
    req.set_name(args.name);
    req.set_driver_stats_include(args.include);
    req.set_driver_stats_exclude(args.exclude);
    view.block = TypedBlock<v1::GetNicResponse>(NicBlock);
    return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
      return Unary(ch, d, req, &v1::NicService::Stub::GetNic);
    });
  }
}

void AddNicCommands(Commands& commands) {
  auto args = std::make_shared<NicArgs>();
  auto* nic = commands.app().add_subcommand(
      "nic", "interfaces and counters; with a name, everything ethtool shows");
  nic->add_option("interface", args->name,
                  "one interface: link, driver, channels, rings, "
                  "coalescing, features, pause, RSS, counters, queues, IRQs");
  nic->add_option("--include", args->include, "RE2 on driver counter names to keep");
  nic->add_option("--exclude", args->exclude, "RE2 on driver counter names to drop");
  commands.Runs(nic, [args](CommandContext& c) { return RunNic(c, *args); });
}

}  // namespace netagent::client
