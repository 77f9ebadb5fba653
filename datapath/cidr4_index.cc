#include "datapath/cidr4_index.h"

#include <arpa/inet.h>

#include <array>

namespace netagent::datapath {

na_dir4 Cidr4Index::Dir(uint32_t slot) const {
  na_dir4 d{};
  for (int list = 0; list < 2; list++) {
    na_dir4_list& l = d.list[list];
    for (int plen = 16; plen >= 0; plen--) {
      auto it = rules_.find({list, static_cast<uint32_t>(plen), (slot << 16) & Mask4(plen)});
      if (it != rules_.end()) {
        l.short_rule = it->second;
        l.has_short = 1;
        break;
      }
    }
    auto c = long_counts_.find({list, slot});
    if (c != long_counts_.end())
      for (int i = 0; i < 16; i++)
        if (c->second[i]) l.long_lens |= static_cast<uint16_t>(1u << i);
  }
  return d;
}

std::vector<std::pair<uint32_t, na_dir4>> Cidr4Index::Slots(uint32_t addr, uint32_t plen) const {
  uint32_t first, count;
  if (plen >= 16) {
    first = addr >> 16;
    count = 1;
  } else {
    count = 1u << (16 - plen);
    first = (addr >> 16) & ~(count - 1);
  }
  std::vector<std::pair<uint32_t, na_dir4>> out;
  out.reserve(count);
  for (uint32_t s = first; s < first + count; s++) out.emplace_back(s, Dir(s));
  return out;
}

Cidr4Index::Delta Cidr4Index::Add(int list, uint32_t addr, uint32_t plen, uint32_t rule_id) {
  addr &= Mask4(plen);
  Delta d;
  auto [it, inserted] = rules_.insert_or_assign({list, plen, addr}, rule_id);
  if (plen > 16) {
    if (inserted) long_counts_[{list, addr >> 16}][plen - 17]++;
    na_cidr4_key k{static_cast<uint8_t>(list), static_cast<uint8_t>(plen), 0, htonl(addr)};
    d.long_put = {k, na_rule{rule_id, 0}};
    if (!inserted) return d;  // same lengths, same directory
  }
  d.dir = Slots(addr, plen);
  return d;
}

Cidr4Index::Delta Cidr4Index::Remove(int list, uint32_t addr, uint32_t plen) {
  addr &= Mask4(plen);
  Delta d;
  if (!rules_.erase({list, plen, addr})) return d;
  if (plen > 16) {
    auto c = long_counts_.find({list, addr >> 16});
    if (c != long_counts_.end() && c->second[plen - 17] > 0) c->second[plen - 17]--;
    d.long_del =
        na_cidr4_key{static_cast<uint8_t>(list), static_cast<uint8_t>(plen), 0, htonl(addr)};
  }
  d.dir = Slots(addr, plen);
  return d;
}

std::optional<uint32_t> Cidr4Index::Match(int list, uint32_t addr) const {
  for (int plen = 32; plen >= 0; plen--) {
    auto it = rules_.find({list, static_cast<uint32_t>(plen), addr & Mask4(plen)});
    if (it != rules_.end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace netagent::datapath
