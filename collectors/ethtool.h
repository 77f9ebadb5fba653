// What `ethtool` shows, from the kernel's ethtool generic netlink family (link
// modes, channels, rings, coalescing, features, pause, standard statistics,
// RSS) and, for the driver's private counters (`ethtool -S`), the SIOCETHTOOL
// ioctl: the kernel has no netlink path for those.
//
// Each part is a Section: the value, or the reason the device does not offer
// it ("Operation not supported" and the kernel's extended ack for coalescing
// on veth, say). A part a driver lacks is never an error of the whole and
// never zeros.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel/genl.h"
#include "kernel/netlink.h"

namespace netagent::collectors {

template <typename T>
struct Section {
  absl::Status status;  // OK, or why the device does not give this part
  T value{};
  bool ok() const { return status.ok(); }
};

using NamedValues = std::vector<std::pair<std::string, uint64_t>>;

struct LinkModes {
  std::optional<uint32_t> speed_mbps;  // unset: unknown (link down, virtual)
  std::string duplex;                  // "full", "half", "unknown"
  bool autoneg = false;
  std::optional<bool> link_detected;
};

struct Channels {
  std::optional<uint32_t> rx_max, tx_max, other_max, combined_max;
  std::optional<uint32_t> rx, tx, other, combined;
};

struct Feature {
  std::string name;
  bool active = false;
  bool wanted = false;
  bool fixed = false;  // the driver does not let it change
};

struct Pause {
  bool autoneg = false, rx = false, tx = false;
};

struct StatGroup {
  std::string name;  // eth-phy, eth-mac, eth-ctrl, rmon
  NamedValues stats;
};

struct Rss {
  std::string hash_function;  // toeplitz, xor, crc32, or the bit number
  std::vector<uint32_t> indirection;
  std::string hash_key;  // raw bytes
};

// ETHTOOL_A_COALESCE_* id of an ethtool coalescing parameter name
// ("rx-usecs"), and whether the kernel carries it as a u8 (the adaptive and
// CQE flags) rather than a u32.
std::optional<uint16_t> CoalesceAttr(absl::string_view name);
bool CoalesceAttrIsFlag(uint16_t attr);

// Parsers of one reply message each (pure: tests replay recorded replies).
absl::StatusOr<LinkModes> ParseLinkModes(const nlmsghdr& nlh);
absl::StatusOr<bool> ParseLinkState(const nlmsghdr& nlh);
absl::StatusOr<Channels> ParseChannels(const nlmsghdr& nlh);
// Rings and coalescing: every attribute the kernel sent (it sends only those
// the driver supports), by ethtool's parameter names.
absl::StatusOr<NamedValues> ParseRings(const nlmsghdr& nlh);
absl::StatusOr<NamedValues> ParseCoalesce(const nlmsghdr& nlh);
// Features in compact bitsets, named from the ETH_SS_FEATURES string set.
absl::StatusOr<std::vector<Feature>> ParseFeatures(const nlmsghdr& nlh,
                                                   const std::vector<std::string>& names);
absl::StatusOr<Pause> ParsePause(const nlmsghdr& nlh);
// Returns the groups with stat ids; names come from each group's string set.
// The kernel puts every counter in a GRP_STAT nest of its own and every
// histogram bucket (rmon) in a HIST_RX / HIST_TX nest of its own.
struct StatHistogramBucket {
  bool tx = false;             // HIST_TX, else HIST_RX
  uint32_t low = 0, high = 0;  // frame sizes in octets; 0: open on that side
  uint64_t value = 0;
};
struct RawStatGroup {
  uint32_t id = 0;
  uint32_t string_set = 0;
  std::vector<std::pair<uint16_t, uint64_t>> stats;
  std::vector<StatHistogramBucket> histogram;  // in the kernel's order
};
absl::StatusOr<std::vector<RawStatGroup>> ParseStats(const nlmsghdr& nlh);
// A bucket's name as `ethtool -S --groups rmon` prints it, less the group:
// ethtool's "rx-rmon-etherStatsPkts65to127Octets" is "rx-etherStatsPkts65to127Octets"
// of the rmon group ("...64Octets" when only high is set, "...1519toMaxOctets"
// when only low is).
std::string HistogramBucketName(const StatHistogramBucket& b);
absl::StatusOr<Rss> ParseRss(const nlmsghdr& nlh, const std::vector<std::string>& hfunc_names);
// STRSET_GET reply: string set id -> strings by index. DATA_LOSS for a string
// without an index or outside its set's count, or for more than
// kMaxStringSetStrings strings in all (a reply fits in 64 KiB: a few thousand).
inline constexpr uint32_t kMaxStringSetStrings = 1 << 16;
absl::StatusOr<std::map<uint32_t, std::vector<std::string>>> ParseStringSets(const nlmsghdr& nlh);

// ethtool genl requests for one device.
class EthtoolClient {
 public:
  static absl::StatusOr<EthtoolClient> Open();

  Section<LinkModes> GetLinkModes(const std::string& dev);
  Section<Channels> GetChannels(const std::string& dev);
  Section<NamedValues> GetRings(const std::string& dev);
  Section<NamedValues> GetCoalesce(const std::string& dev);
  Section<std::vector<Feature>> GetFeatures(const std::string& dev);
  Section<Pause> GetPause(const std::string& dev);
  Section<std::vector<StatGroup>> GetStandardStats(const std::string& dev);
  Section<Rss> GetRss(const std::string& dev);

  // A set-request (ETHTOOL_MSG_*_SET): the kernel answers with an ack only.
  // Its refusal carries errno and extended ack text.
  absl::Status Set(uint8_t cmd, const std::string& dev,
                   absl::FunctionRef<void(kernel::NetlinkMessage&)> attrs);
  bool HasOp(uint8_t cmd) const { return family_.HasOp(cmd); }

  // Every reply received is appended to `recorder` ([u32 length][bytes]).
  void set_recorder(std::string* recorder) { sock_.set_recorder(recorder); }

  // One do-request (`dev` empty: no device): the reply message copied out,
  // or the kernel's error.
  absl::StatusOr<std::vector<uint32_t>> Request(
      uint8_t cmd, const std::string& dev, uint32_t flags,
      absl::FunctionRef<void(kernel::NetlinkMessage&)> extra);

 private:
  EthtoolClient(kernel::NetlinkSocket sock, kernel::GenlFamily family)
      : sock_(std::move(sock)), family_(std::move(family)) {}

  kernel::NetlinkMessage Build(uint8_t cmd, const std::string& dev, uint32_t flags);
  absl::StatusOr<std::vector<std::string>> StringSet(uint32_t id, const std::string& dev);

  kernel::NetlinkSocket sock_;
  kernel::GenlFamily family_;
};

struct DriverInfo {
  std::string driver, version, firmware, bus_info;
  std::string expansion_rom;  // erom_version, mostly empty
};

// SIOCETHTOOL ETHTOOL_GDRVINFO.
absl::StatusOr<DriverInfo> GetDriverInfo(const std::string& dev);
// SIOCETHTOOL GSSET_INFO + GSTRINGS + GSTATS: the driver's private counters,
// in its order. The kernel copies out as many entries as the driver has at
// each call, whatever count the caller announced: the buffers have headroom
// and end at an inaccessible page (a count that outgrew them is EFAULT, not a
// heap overflow), and a count that changed between the calls is read again,
// a few times, then ABORTED.
absl::StatusOr<NamedValues> GetDriverStats(const std::string& dev);
// The same through `ioctl`, which makes one SIOCETHTOOL call for a command
// struct and returns 0 or the errno (tests play a driver with it).
using EthtoolIoctl = absl::FunctionRef<int(void* cmd)>;
absl::StatusOr<NamedValues> GetDriverStats(const std::string& dev, EthtoolIoctl ioctl);

}  // namespace netagent::collectors
