// Every ethtool genl reply parser on every message of a datagram: link
// modes and state, channels, rings, coalescing, pause, string sets, features
// (named from the message's own ETH_SS_FEATURES set when it has one), the
// standard statistics groups and RSS.
#include <linux/ethtool.h>

#include "collectors/ethtool.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netagent;
  static const std::vector<std::string> kNames = {"tx-scatter-gather", "", "rx-checksum",
                                                  "toeplitz", "xor"};
  fuzz::ForEachMessage(data, size, [](const nlmsghdr& m) {
    (void)collectors::ParseLinkModes(m);
    (void)collectors::ParseLinkState(m);
    (void)collectors::ParseChannels(m);
    (void)collectors::ParseRings(m);
    (void)collectors::ParseCoalesce(m);
    (void)collectors::ParsePause(m);
    auto sets = collectors::ParseStringSets(m);
    const std::vector<std::string>* names = &kNames;
    if (sets.ok()) {
      if (auto it = sets->find(ETH_SS_FEATURES); it != sets->end()) names = &it->second;
    }
    (void)collectors::ParseFeatures(m, *names);
    (void)collectors::ParseRss(m, *names);
    if (auto groups = collectors::ParseStats(m); groups.ok()) {
      for (const auto& g : *groups) {
        for (const auto& b : g.histogram) (void)collectors::HistogramBucketName(b);
      }
    }
  });
  return 0;
}
