// node_exporter's names for what the agent exports (--metrics-compat
// node_exporter): the series of node_exporter 1.5's softnet, netstat,
// sockstat, conntrack, tcpstat, netdev and ethtool collectors, made from the
// agent's own families of the same scrape, so that dashboards and the
// node-mixin alerts written for node_exporter keep working on hosts where
// the agent replaces node_exporter's network collectors. Pure functions.
//
// Differences, each on purpose and in docs/operations.md: the agent's
// device and counter filters apply (node_exporter's netstat default exports
// ~50 counters, the agent all of them); softnet's `cpu` is the CPU the row
// is of (node_exporter 1.5 numbers the rows; they differ only with CPUs
// offline); tcpstat's rx_queued_bytes / tx_queued_bytes pseudo-states and
// the ethtool collector's link-mode gauges (node_network_autonegotiate...)
// are not produced.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "agent/exposition.h"

namespace netagent::agent {

// Appends node_exporter's families for the data in `ours` (the agent's
// families of one scrape); `page_size` turns sockstat's bytes back into
// pages for node_sockstat_*_mem.
void AddNodeExporterFamilies(const Families& ours, int64_t page_size, Families& out);

// An nstat name split the way node_exporter names it: "TcpExtListenDrops" ->
// {"TcpExt", "ListenDrops"}, "Ip6InReceives" -> {"Ip6", "InReceives"}.
// Unset for a group node_exporter does not read (Sctp) or a name that is
// no group's.
std::optional<std::pair<std::string, std::string>> SplitNstatName(absl::string_view name);

// A driver statistic's node_exporter name: "rx_queue_0_drops" ->
// "node_ethtool_received_queue_0_drops", "[3]: tx_bytes" ->
// "node_ethtool_3_transmitted_bytes"; the seven standard names node_exporter
// declares as totals ("rx_packets" -> "node_ethtool_received_packets_total").
std::string NodeExporterEthtoolName(absl::string_view stat);

}  // namespace netagent::agent
