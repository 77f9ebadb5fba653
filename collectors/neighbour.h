// The neighbour tables' statistics: /proc/net/stat/arp_cache (IPv4) and
// ndisc_cache (IPv6), one hex row per CPU under a header of names. The
// "entries" column is the table's size now, repeated on every row; the
// others are per-CPU counters, summed here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "collectors/ethtool.h"

namespace netagent::collectors {

struct NeighbourStats {
  std::string table;  // "arp_cache", "ndisc_cache"
  uint64_t entries = 0;
  NamedValues totals;  // allocs, destroys, ..., forced_gc_runs, table_fulls
};

// DATA_LOSS for a row whose column count differs from the header's or a
// value that is not hex.
absl::StatusOr<NeighbourStats> ParseNeighbourStats(absl::string_view text,
                                                   absl::string_view table);

// Both tables under `proc_net`/stat; a table whose file is absent (no IPv6)
// is left out.
absl::StatusOr<std::vector<NeighbourStats>> ReadNeighbourStats(
    const std::string& proc_net = "/proc/net");

}  // namespace netagent::collectors
