// The user-space half of the XDP program's IPv4 CIDR lookup (see cidr4_dir in
// datapath/include/netagent_dp.h): keeps the rule set and says, after each
// change, which /16 directory slots and long-prefix entries to write. Pure:
// no maps, no fds; the loader (and the BPF tests) apply what it returns.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "netagent_dp.h"

namespace netagent::datapath {

class Cidr4Index {
 public:
  // What one change asks the maps for.
  struct Delta {
    std::vector<std::pair<uint32_t, na_dir4>> dir;  // slot -> new value
    std::optional<std::pair<na_cidr4_key, na_rule>> long_put;
    std::optional<na_cidr4_key> long_del;
  };

  // `addr` in host order, masked to `plen` here; `list` NA_LIST_*. Adding an
  // existing prefix replaces its rule id.
  Delta Add(int list, uint32_t addr, uint32_t plen, uint32_t rule_id);
  // Removing an absent prefix yields an empty delta.
  Delta Remove(int list, uint32_t addr, uint32_t plen);

  // The directory entry of `slot` as the rule set stands.
  na_dir4 Dir(uint32_t slot) const;
  size_t size() const { return rules_.size(); }

  // Longest-prefix match over the rule set (the reference the tests compare
  // the program with). `addr` in host order.
  std::optional<uint32_t> Match(int list, uint32_t addr) const;

 private:
  using Key = std::tuple<int, uint32_t, uint32_t>;  // list, plen, masked addr
  std::vector<std::pair<uint32_t, na_dir4>> Slots(uint32_t addr, uint32_t plen) const;
  std::map<Key, uint32_t> rules_;
  // Per list, per slot, how many prefixes of each length 17..32 it holds.
  std::map<std::pair<int, uint32_t>, std::array<uint32_t, 16>> long_counts_;
};

inline uint32_t Mask4(uint32_t plen) { return plen == 0 ? 0 : ~0u << (32 - plen); }

}  // namespace netagent::datapath
