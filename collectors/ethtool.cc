#include "collectors/ethtool.h"

#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernel/errors.h"
#include "kernel/fd.h"

namespace netagent::collectors {
namespace {

constexpr uint16_t kHeader = 1;  // every ethtool message's header nest

// RSS_GET (6.2), newer than Debian 12's UAPI headers.
constexpr uint8_t kMsgRssGet = 38;
constexpr uint16_t kRssHfunc = 3, kRssIndir = 4, kRssHkey = 5, kRssMax = 7;

// ethtool's names for ETHTOOL_A_RINGS_* and ETHTOOL_A_COALESCE_* by id
// (the kernel's append-only enums, through 6.18).
constexpr std::array<const char*, 19> kRingNames = {nullptr,
                                                    nullptr,
                                                    "rx-max",
                                                    "rx-mini-max",
                                                    "rx-jumbo-max",
                                                    "tx-max",
                                                    "rx",
                                                    "rx-mini",
                                                    "rx-jumbo",
                                                    "tx",
                                                    "rx-buf-len",
                                                    "tcp-data-split",
                                                    "cqe-size",
                                                    "tx-push",
                                                    "rx-push",
                                                    "tx-push-buf-len",
                                                    "tx-push-buf-len-max",
                                                    "hds-thresh",
                                                    "hds-thresh-max"};
constexpr std::array<const char*, 29> kCoalesceNames = {nullptr,
                                                        nullptr,
                                                        "rx-usecs",
                                                        "rx-frames",
                                                        "rx-usecs-irq",
                                                        "rx-frames-irq",
                                                        "tx-usecs",
                                                        "tx-frames",
                                                        "tx-usecs-irq",
                                                        "tx-frames-irq",
                                                        "stats-block-usecs",
                                                        "adaptive-rx",
                                                        "adaptive-tx",
                                                        "pkt-rate-low",
                                                        "rx-usecs-low",
                                                        "rx-frames-low",
                                                        "tx-usecs-low",
                                                        "tx-frames-low",
                                                        "pkt-rate-high",
                                                        "rx-usecs-high",
                                                        "rx-frames-high",
                                                        "tx-usecs-high",
                                                        "tx-frames-high",
                                                        "sample-interval",
                                                        "cqe-mode-tx",
                                                        "cqe-mode-rx",
                                                        "tx-aggr-max-bytes",
                                                        "tx-aggr-max-frames",
                                                        "tx-aggr-time-usecs"};
constexpr std::array<const char*, 4> kStatGroupNames = {"eth-phy", "eth-mac", "eth-ctrl", "rmon"};

// Every scalar attribute of a message after the header, by the names above.
template <size_t N>
NamedValues ScalarAttrs(const nlmsghdr& nlh, const std::array<const char*, N>& names) {
  NamedValues out;
  kernel::ForEachAttr(nlh, GENL_HDRLEN, [&](const nlattr& a) {
    const uint16_t type = a.nla_type & NLA_TYPE_MASK;
    if (type == kHeader || (a.nla_type & NLA_F_NESTED)) return;  // rings and coalesce: header is 1
    const std::optional<uint64_t> v = kernel::ScalarValue(a);
    if (!v) return;
    const char* name = type < names.size() ? names[type] : nullptr;
    out.emplace_back(name ? name : absl::StrCat("attr-", type), *v);
  });
  return out;
}

bool Bit(absl::string_view words, uint32_t bit) {
  if ((bit / 32 + 1) * 4 > words.size()) return false;
  uint32_t w;
  std::memcpy(&w, words.data() + (bit / 32) * 4, 4);
  return (w >> (bit % 32)) & 1;
}

absl::Status Truncated(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("ethtool ", what, ": reply too short"));
}

}  // namespace

std::optional<uint16_t> CoalesceAttr(absl::string_view name) {
  for (size_t i = 0; i < kCoalesceNames.size(); ++i) {
    if (kCoalesceNames[i] != nullptr && name == kCoalesceNames[i]) return static_cast<uint16_t>(i);
  }
  return std::nullopt;
}

bool CoalesceAttrIsFlag(uint16_t attr) {
  return attr == ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX || attr == ETHTOOL_A_COALESCE_USE_ADAPTIVE_TX ||
         attr == 24 || attr == 25;  // cqe-mode-tx, cqe-mode-rx (5.15)
}

absl::StatusOr<LinkModes> ParseLinkModes(const nlmsghdr& nlh) {
  if (nlh.nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) return Truncated("linkmodes");
  kernel::AttrTable t(nlh, GENL_HDRLEN, ETHTOOL_A_LINKMODES_MAX);
  LinkModes m;
  if (auto speed = t.u32(ETHTOOL_A_LINKMODES_SPEED);
      speed && *speed != 0 && *speed != 0xffffffffu) {
    m.speed_mbps = *speed;
  }
  const uint8_t duplex = t.u8(ETHTOOL_A_LINKMODES_DUPLEX).value_or(0xff);
  m.duplex = duplex == DUPLEX_FULL ? "full" : duplex == DUPLEX_HALF ? "half" : "unknown";
  m.autoneg = t.u8(ETHTOOL_A_LINKMODES_AUTONEG).value_or(0) == AUTONEG_ENABLE;
  return m;
}

absl::StatusOr<bool> ParseLinkState(const nlmsghdr& nlh) {
  kernel::AttrTable t(nlh, GENL_HDRLEN, ETHTOOL_A_LINKSTATE_MAX);
  auto link = t.u8(ETHTOOL_A_LINKSTATE_LINK);
  if (!link) return absl::NotFoundError("the driver does not report link state");
  return *link != 0;
}

absl::StatusOr<Channels> ParseChannels(const nlmsghdr& nlh) {
  kernel::AttrTable t(nlh, GENL_HDRLEN, ETHTOOL_A_CHANNELS_MAX);
  Channels c;
  c.rx_max = t.u32(ETHTOOL_A_CHANNELS_RX_MAX);
  c.tx_max = t.u32(ETHTOOL_A_CHANNELS_TX_MAX);
  c.other_max = t.u32(ETHTOOL_A_CHANNELS_OTHER_MAX);
  c.combined_max = t.u32(ETHTOOL_A_CHANNELS_COMBINED_MAX);
  c.rx = t.u32(ETHTOOL_A_CHANNELS_RX_COUNT);
  c.tx = t.u32(ETHTOOL_A_CHANNELS_TX_COUNT);
  c.other = t.u32(ETHTOOL_A_CHANNELS_OTHER_COUNT);
  c.combined = t.u32(ETHTOOL_A_CHANNELS_COMBINED_COUNT);
  return c;
}

absl::StatusOr<NamedValues> ParseRings(const nlmsghdr& nlh) { return ScalarAttrs(nlh, kRingNames); }

absl::StatusOr<NamedValues> ParseCoalesce(const nlmsghdr& nlh) {
  return ScalarAttrs(nlh, kCoalesceNames);
}

absl::StatusOr<std::vector<Feature>> ParseFeatures(const nlmsghdr& nlh,
                                                   const std::vector<std::string>& names) {
  kernel::AttrTable t(nlh, GENL_HDRLEN, ETHTOOL_A_FEATURES_MAX);
  auto words = [&](uint16_t attr) -> absl::string_view {
    kernel::AttrTable b(t.get(attr), ETHTOOL_A_BITSET_MAX);
    return b.bytes(ETHTOOL_A_BITSET_VALUE);
  };
  const absl::string_view hw = words(ETHTOOL_A_FEATURES_HW);
  const absl::string_view wanted = words(ETHTOOL_A_FEATURES_WANTED);
  const absl::string_view active = words(ETHTOOL_A_FEATURES_ACTIVE);
  const absl::string_view nochange = words(ETHTOOL_A_FEATURES_NOCHANGE);
  if (active.empty()) return absl::DataLossError("ethtool features: no active bitset in the reply");
  std::vector<Feature> out;
  for (uint32_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) continue;
    Feature f;
    f.name = names[i];
    f.active = Bit(active, i);
    f.wanted = Bit(wanted, i);
    f.fixed = !Bit(hw, i) || Bit(nochange, i);
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<Pause> ParsePause(const nlmsghdr& nlh) {
  kernel::AttrTable t(nlh, GENL_HDRLEN, ETHTOOL_A_PAUSE_MAX);
  Pause p;
  p.autoneg = t.u8(ETHTOOL_A_PAUSE_AUTONEG).value_or(0);
  p.rx = t.u8(ETHTOOL_A_PAUSE_RX).value_or(0);
  p.tx = t.u8(ETHTOOL_A_PAUSE_TX).value_or(0);
  return p;
}

absl::StatusOr<std::vector<RawStatGroup>> ParseStats(const nlmsghdr& nlh) {
  std::vector<RawStatGroup> out;
  kernel::ForEachAttr(nlh, GENL_HDRLEN, [&](const nlattr& a) {
    if ((a.nla_type & NLA_TYPE_MASK) != ETHTOOL_A_STATS_GRP) return;
    RawStatGroup group;
    // Attribute types repeat here (one STAT nest per counter, one HIST nest
    // per bucket): every attribute is read, none looked up by type.
    kernel::ForEachNested(&a, [&](const nlattr& g) {
      const uint16_t type = g.nla_type & NLA_TYPE_MASK;
      if (type == ETHTOOL_A_STATS_GRP_ID) {
        group.id = static_cast<uint32_t>(kernel::ScalarValue(g).value_or(0));
      } else if (type == ETHTOOL_A_STATS_GRP_SS_ID) {
        group.string_set = static_cast<uint32_t>(kernel::ScalarValue(g).value_or(0));
      } else if (type == ETHTOOL_A_STATS_GRP_STAT) {
        // One u64 inside, whose type is the counter's id (0 included).
        kernel::ForEachNested(&g, [&](const nlattr& s) {
          if (s.nla_len - NLA_HDRLEN != 8) return;
          uint64_t v;
          std::memcpy(&v, reinterpret_cast<const char*>(&s) + NLA_HDRLEN, 8);
          group.stats.emplace_back(s.nla_type & NLA_TYPE_MASK, v);
        });
      } else if (type == ETHTOOL_A_STATS_GRP_HIST_RX || type == ETHTOOL_A_STATS_GRP_HIST_TX) {
        kernel::AttrTable b(&g, ETHTOOL_A_STATS_GRP_HIST_VAL);
        auto low = b.u32(ETHTOOL_A_STATS_GRP_HIST_BKT_LOW);
        auto high = b.u32(ETHTOOL_A_STATS_GRP_HIST_BKT_HI);
        auto value = b.u64(ETHTOOL_A_STATS_GRP_HIST_VAL);
        if (!low || !high || !value || (*low == 0 && *high == 0)) return;
        group.histogram.push_back({type == ETHTOOL_A_STATS_GRP_HIST_TX, *low, *high, *value});
      }
    });
    out.push_back(std::move(group));
  });
  return out;
}

std::string HistogramBucketName(const StatHistogramBucket& b) {
  const char* dir = b.tx ? "tx" : "rx";
  if (b.low != 0 && b.high != 0) {
    return absl::StrCat(dir, "-etherStatsPkts", b.low, "to", b.high, "Octets");
  }
  if (b.high != 0) return absl::StrCat(dir, "-etherStatsPkts", b.high, "Octets");
  return absl::StrCat(dir, "-etherStatsPkts", b.low, "toMaxOctets");
}

absl::StatusOr<Rss> ParseRss(const nlmsghdr& nlh, const std::vector<std::string>& hfunc_names) {
  kernel::AttrTable t(nlh, GENL_HDRLEN, kRssMax);
  Rss r;
  const uint32_t hfunc = t.u32(kRssHfunc).value_or(0);
  for (uint32_t bit = 0; bit < 32; ++bit) {
    if (!(hfunc & (1u << bit))) continue;
    r.hash_function = bit < hfunc_names.size() ? hfunc_names[bit] : absl::StrCat("bit-", bit);
  }
  const absl::string_view indir = t.bytes(kRssIndir);
  r.indirection.resize(indir.size() / 4);
  // Both pointers are null without the attribute: memcpy must not see them.
  if (!r.indirection.empty()) {
    std::memcpy(r.indirection.data(), indir.data(), r.indirection.size() * 4);
  }
  r.hash_key = std::string(t.bytes(kRssHkey));
  return r;
}

absl::StatusOr<std::map<uint32_t, std::vector<std::string>>> ParseStringSets(const nlmsghdr& nlh) {
  std::map<uint32_t, std::vector<std::string>> out;
  absl::Status status;
  uint32_t total = 0;
  kernel::AttrTable t(nlh, GENL_HDRLEN, ETHTOOL_A_STRSET_MAX);
  kernel::ForEachNested(t.get(ETHTOOL_A_STRSET_STRINGSETS), [&](const nlattr& set) {
    if (!status.ok()) return;
    kernel::AttrTable s(&set, ETHTOOL_A_STRINGSET_MAX);
    const uint32_t id = s.u32(ETHTOOL_A_STRINGSET_ID).value_or(0);
    // The count sizes the table before any string is read: bounded, so a
    // damaged reply cannot ask for billions of strings.
    const uint32_t count = s.u32(ETHTOOL_A_STRINGSET_COUNT).value_or(0);
    if (count > kMaxStringSetStrings - total) {
      status = absl::DataLossError(absl::StrCat("ethtool string set ", id, ": ", count,
                                                " strings (a reply holds at most ",
                                                kMaxStringSetStrings, ")"));
      return;
    }
    total += count;
    std::vector<std::string>& strings = out[id];
    strings.assign(count, "");
    kernel::ForEachNested(s.get(ETHTOOL_A_STRINGSET_STRINGS), [&](const nlattr& str) {
      if (!status.ok()) return;
      kernel::AttrTable e(&str, ETHTOOL_A_STRING_MAX);
      const std::optional<uint32_t> index = e.u32(ETHTOOL_A_STRING_INDEX);
      if (!index || *index >= count) {
        status = absl::DataLossError(
            absl::StrCat("ethtool string set ", id, ": a string ",
                         index ? absl::StrCat("with index ", *index) : "without an index",
                         " in a set of ", count));
        return;
      }
      strings[*index] = e.str(ETHTOOL_A_STRING_VALUE).value_or("");
    });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<EthtoolClient> EthtoolClient::Open() {
  NETAGENT_ASSIGN_OR_RETURN(kernel::NetlinkSocket sock,
                            kernel::NetlinkSocket::Open(NETLINK_GENERIC));
  NETAGENT_ASSIGN_OR_RETURN(kernel::GenlFamily family, kernel::ResolveGenlFamily(sock, "ethtool"));
  return EthtoolClient(std::move(sock), std::move(family));
}

kernel::NetlinkMessage EthtoolClient::Build(uint8_t cmd, const std::string& dev, uint32_t flags) {
  kernel::NetlinkMessage req(family_.id, 0);
  auto* g = req.PutHeader<genlmsghdr>();
  g->cmd = cmd;
  g->version = ETHTOOL_GENL_VERSION;
  // Every request's header is attribute 1, but STATS_GET's, which has PAD first.
  void* header = req.BeginNest(
      cmd == ETHTOOL_MSG_STATS_GET ? static_cast<uint16_t>(ETHTOOL_A_STATS_HEADER) : kHeader);
  if (!dev.empty()) req.PutString(ETHTOOL_A_HEADER_DEV_NAME, dev);
  if (flags != 0) req.PutU32(ETHTOOL_A_HEADER_FLAGS, flags);
  req.EndNest(header);
  return req;
}

absl::StatusOr<std::vector<uint32_t>> EthtoolClient::Request(
    uint8_t cmd, const std::string& dev, uint32_t flags,
    absl::FunctionRef<void(kernel::NetlinkMessage&)> extra) {
  kernel::NetlinkMessage req = Build(cmd, dev, flags);
  extra(req);
  std::vector<uint32_t> reply;
  const std::string what = absl::StrCat("ethtool ", kernel::GenlOpName("ethtool", cmd),
                                        dev.empty() ? "" : absl::StrCat(" ", dev));
  NETAGENT_RETURN_IF_ERROR(sock_.Request(req, what, [&](const nlmsghdr& m) {
    reply.resize((m.nlmsg_len + 3) / 4);
    std::memcpy(reply.data(), &m, m.nlmsg_len);
    return absl::OkStatus();
  }));
  if (reply.empty()) return absl::DataLossError(absl::StrCat(what, ": no reply"));
  return reply;
}

absl::Status EthtoolClient::Set(uint8_t cmd, const std::string& dev,
                                absl::FunctionRef<void(kernel::NetlinkMessage&)> attrs) {
  if (!family_.HasOp(cmd)) {
    return absl::UnimplementedError(
        absl::StrCat("this kernel's ethtool netlink has no ", kernel::GenlOpName("ethtool", cmd)));
  }
  kernel::NetlinkMessage req = Build(cmd, dev, 0);
  attrs(req);
  return sock_.Request(req, absl::StrCat("ethtool ", kernel::GenlOpName("ethtool", cmd), " ", dev),
                       [](const nlmsghdr&) { return absl::OkStatus(); });
}

absl::StatusOr<std::vector<std::string>> EthtoolClient::StringSet(uint32_t id,
                                                                  const std::string& dev) {
  NETAGENT_ASSIGN_OR_RETURN(
      auto reply, Request(ETHTOOL_MSG_STRSET_GET, dev, 0, [id](kernel::NetlinkMessage& m) {
        void* sets = m.BeginNest(ETHTOOL_A_STRSET_STRINGSETS);
        void* set = m.BeginNest(ETHTOOL_A_STRINGSETS_STRINGSET);
        m.PutU32(ETHTOOL_A_STRINGSET_ID, id);
        m.EndNest(set);
        m.EndNest(sets);
      }));
  NETAGENT_ASSIGN_OR_RETURN(auto sets,
                            ParseStringSets(*reinterpret_cast<const nlmsghdr*>(reply.data())));
  return std::move(sets[id]);
}

namespace {

void NoExtra(kernel::NetlinkMessage&) {}

template <typename T>
Section<T> MakeSection(absl::StatusOr<T> v) {
  Section<T> s;
  if (v.ok()) {
    s.value = std::move(*v);
  } else {
    s.status = v.status();
  }
  return s;
}

const nlmsghdr& Msg(const std::vector<uint32_t>& reply) {
  return *reinterpret_cast<const nlmsghdr*>(reply.data());
}

}  // namespace

Section<LinkModes> EthtoolClient::GetLinkModes(const std::string& dev) {
  auto modes = [&]() -> absl::StatusOr<LinkModes> {
    NETAGENT_ASSIGN_OR_RETURN(
        auto reply, Request(ETHTOOL_MSG_LINKMODES_GET, dev, ETHTOOL_FLAG_COMPACT_BITSETS, NoExtra));
    NETAGENT_ASSIGN_OR_RETURN(LinkModes m, ParseLinkModes(Msg(reply)));
    auto state = Request(ETHTOOL_MSG_LINKSTATE_GET, dev, 0, NoExtra);
    if (state.ok()) {
      if (auto link = ParseLinkState(Msg(*state)); link.ok()) m.link_detected = *link;
    }
    return m;
  }();
  return MakeSection(std::move(modes));
}

Section<Channels> EthtoolClient::GetChannels(const std::string& dev) {
  auto reply = Request(ETHTOOL_MSG_CHANNELS_GET, dev, 0, NoExtra);
  if (!reply.ok()) return {reply.status(), {}};
  return MakeSection(ParseChannels(Msg(*reply)));
}

Section<NamedValues> EthtoolClient::GetRings(const std::string& dev) {
  auto reply = Request(ETHTOOL_MSG_RINGS_GET, dev, 0, NoExtra);
  if (!reply.ok()) return {reply.status(), {}};
  return MakeSection(ParseRings(Msg(*reply)));
}

Section<NamedValues> EthtoolClient::GetCoalesce(const std::string& dev) {
  auto reply = Request(ETHTOOL_MSG_COALESCE_GET, dev, 0, NoExtra);
  if (!reply.ok()) return {reply.status(), {}};
  return MakeSection(ParseCoalesce(Msg(*reply)));
}

Section<std::vector<Feature>> EthtoolClient::GetFeatures(const std::string& dev) {
  auto names = StringSet(ETH_SS_FEATURES, "");
  if (!names.ok()) return {names.status(), {}};
  auto reply = Request(ETHTOOL_MSG_FEATURES_GET, dev, ETHTOOL_FLAG_COMPACT_BITSETS, NoExtra);
  if (!reply.ok()) return {reply.status(), {}};
  return MakeSection(ParseFeatures(Msg(*reply), *names));
}

Section<Pause> EthtoolClient::GetPause(const std::string& dev) {
  auto reply = Request(ETHTOOL_MSG_PAUSE_GET, dev, 0, NoExtra);
  if (!reply.ok()) return {reply.status(), {}};
  return MakeSection(ParsePause(Msg(*reply)));
}

Section<std::vector<StatGroup>> EthtoolClient::GetStandardStats(const std::string& dev) {
  auto reply = Request(ETHTOOL_MSG_STATS_GET, dev, ETHTOOL_FLAG_COMPACT_BITSETS,
                       [](kernel::NetlinkMessage& m) {
                         // All four groups: a compact bitset of 4 bits, no mask.
                         void* groups = m.BeginNest(ETHTOOL_A_STATS_GROUPS);
                         m.PutBytes(ETHTOOL_A_BITSET_NOMASK, nullptr, 0);
                         m.PutU32(ETHTOOL_A_BITSET_SIZE, kStatGroupNames.size());
                         const uint32_t all = (1u << kStatGroupNames.size()) - 1;
                         m.PutBytes(ETHTOOL_A_BITSET_VALUE, &all, sizeof(all));
                         m.EndNest(groups);
                       });
  if (!reply.ok()) return {reply.status(), {}};
  auto raw = ParseStats(Msg(*reply));
  if (!raw.ok()) return {raw.status(), {}};
  Section<std::vector<StatGroup>> out;
  for (const RawStatGroup& g : *raw) {
    if (g.stats.empty() && g.histogram.empty()) continue;
    auto names = StringSet(g.string_set, "");
    StatGroup group;
    group.name =
        g.id < kStatGroupNames.size() ? kStatGroupNames[g.id] : absl::StrCat("group-", g.id);
    for (const auto& [id, v] : g.stats) {
      group.stats.emplace_back(names.ok() && id < names->size() && !(*names)[id].empty()
                                   ? (*names)[id]
                                   : absl::StrCat("stat-", id),
                               v);
    }
    // After the counters, rx then tx, as ethtool prints them.
    for (bool tx : {false, true}) {
      for (const StatHistogramBucket& b : g.histogram) {
        if (b.tx == tx) group.stats.emplace_back(HistogramBucketName(b), b.value);
      }
    }
    out.value.push_back(std::move(group));
  }
  if (out.value.empty()) {
    out.status = absl::UnimplementedError(
        "the driver reports none of the standard groups (eth-phy, eth-mac, eth-ctrl, rmon)");
  }
  return out;
}

Section<Rss> EthtoolClient::GetRss(const std::string& dev) {
  auto reply = Request(kMsgRssGet, dev, 0, NoExtra);
  if (!reply.ok()) return {reply.status(), {}};
  auto names = StringSet(ETH_SS_RSS_HASH_FUNCS, "");
  return MakeSection(ParseRss(Msg(*reply), names.ok() ? *names : std::vector<std::string>{}));
}

namespace {

absl::Status Ethtool(int fd, const std::string& dev, void* data, absl::string_view what) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = static_cast<char*>(data);
  if (::ioctl(fd, SIOCETHTOOL, &ifr) < 0) {
    return kernel::LastErrnoStatus(absl::StrCat("SIOCETHTOOL ", what, " ", dev));
  }
  return absl::OkStatus();
}

absl::StatusOr<kernel::UniqueFd> IoctlSocket() {
  kernel::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return kernel::LastErrnoStatus("socket for SIOCETHTOOL");
  return fd;
}

}  // namespace

absl::StatusOr<DriverInfo> GetDriverInfo(const std::string& dev) {
  NETAGENT_ASSIGN_OR_RETURN(kernel::UniqueFd fd, IoctlSocket());
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  NETAGENT_RETURN_IF_ERROR(Ethtool(fd.get(), dev, &info, "GDRVINFO"));
  DriverInfo d;
  d.driver = std::string(info.driver, strnlen(info.driver, sizeof(info.driver)));
  d.version = std::string(info.version, strnlen(info.version, sizeof(info.version)));
  d.firmware = std::string(info.fw_version, strnlen(info.fw_version, sizeof(info.fw_version)));
  d.bus_info = std::string(info.bus_info, strnlen(info.bus_info, sizeof(info.bus_info)));
  d.expansion_rom =
      std::string(info.erom_version, strnlen(info.erom_version, sizeof(info.erom_version)));
  return d;
}

namespace {

constexpr int kDriverStatsAttempts = 4;

// `size` bytes that end where an inaccessible page begins: a kernel copy that
// runs past them fails with EFAULT instead of writing over the heap.
class GuardedBuffer {
 public:
  static absl::StatusOr<GuardedBuffer> Allocate(size_t size) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    size = (size + 7) / 8 * 8;
    const size_t pages = (size + page - 1) / page;
    const size_t len = (pages + 1) * page;
    void* map = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return kernel::LastErrnoStatus("mmap for SIOCETHTOOL");
    GuardedBuffer b;
    b.map_ = map;
    b.len_ = len;
    char* guard = static_cast<char*>(map) + pages * page;
    if (::mprotect(guard, page, PROT_NONE) != 0) return kernel::LastErrnoStatus("mprotect");
    b.data_ = guard - size;
    return b;
  }
  GuardedBuffer(GuardedBuffer&& o) noexcept
      : map_(std::exchange(o.map_, nullptr)), len_(o.len_), data_(o.data_) {}
  GuardedBuffer& operator=(GuardedBuffer&&) = delete;
  ~GuardedBuffer() {
    if (map_ != nullptr) ::munmap(map_, len_);
  }
  char* data() const { return data_; }

 private:
  GuardedBuffer() = default;
  void* map_ = nullptr;
  size_t len_ = 0;
  char* data_ = nullptr;
};

}  // namespace

absl::StatusOr<NamedValues> GetDriverStats(const std::string& dev) {
  NETAGENT_ASSIGN_OR_RETURN(kernel::UniqueFd fd, IoctlSocket());
  return GetDriverStats(dev, [&](void* cmd) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = static_cast<char*>(cmd);
    return ::ioctl(fd.get(), SIOCETHTOOL, &ifr) < 0 ? errno : 0;
  });
}

absl::StatusOr<NamedValues> GetDriverStats(const std::string& dev, EthtoolIoctl ioctl) {
  auto failed = [&](int err, absl::string_view what) {
    return kernel::ErrnoStatus(err, absl::StrCat("SIOCETHTOOL ", what, " ", dev));
  };
  for (int attempt = 0; attempt < kDriverStatsAttempts; ++attempt) {
    // ethtool_sset_info and room for the one count it returns.
    alignas(ethtool_sset_info) char sset_buf[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
    auto* sset = reinterpret_cast<ethtool_sset_info*>(sset_buf);
    sset->cmd = ETHTOOL_GSSET_INFO;
    sset->sset_mask = 1ULL << ETH_SS_STATS;
    if (int err = ioctl(sset); err != 0) return failed(err, "GSSET_INFO");
    uint32_t n = 0;
    if (sset->sset_mask) std::memcpy(&n, sset_buf + sizeof(ethtool_sset_info), sizeof(n));
    if (n == 0)
      return absl::UnimplementedError(absl::StrCat(dev, ": the driver has no private counters"));
    if (n > 1 << 20)
      return absl::DataLossError(absl::StrCat(dev, ": implausible counter count ", n));

    // The kernel writes the driver's count at the time of each call, not n:
    // room for growth, then the guard page (EFAULT: it grew past even that).
    const size_t room = 2 * static_cast<size_t>(n) + 64;
    NETAGENT_ASSIGN_OR_RETURN(
        GuardedBuffer strings,
        GuardedBuffer::Allocate(sizeof(ethtool_gstrings) + room * ETH_GSTRING_LEN));
    auto* gs = reinterpret_cast<ethtool_gstrings*>(strings.data());
    gs->cmd = ETHTOOL_GSTRINGS;
    gs->string_set = ETH_SS_STATS;
    gs->len = n;
    if (int err = ioctl(gs); err == EFAULT) {
      continue;
    } else if (err != 0) {
      return failed(err, "GSTRINGS");
    }
    if (gs->len != n) continue;
    NETAGENT_ASSIGN_OR_RETURN(
        GuardedBuffer values,
        GuardedBuffer::Allocate(sizeof(ethtool_stats) + room * sizeof(uint64_t)));
    auto* st = reinterpret_cast<ethtool_stats*>(values.data());
    st->cmd = ETHTOOL_GSTATS;
    st->n_stats = n;
    if (int err = ioctl(st); err == EFAULT) {
      continue;
    } else if (err != 0) {
      return failed(err, "GSTATS");
    }
    if (st->n_stats != n) continue;

    NamedValues out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      const char* name = reinterpret_cast<const char*>(gs->data) + i * ETH_GSTRING_LEN;
      uint64_t v;
      std::memcpy(&v, reinterpret_cast<const char*>(st->data) + i * sizeof(uint64_t), sizeof(v));
      out.emplace_back(std::string(name, strnlen(name, ETH_GSTRING_LEN)), v);
    }
    return out;
  }
  return absl::AbortedError(
      absl::StrCat(dev, ": the driver's counter set kept changing while it was read (",
                   kDriverStatsAttempts, " attempts)"));
}

}  // namespace netagent::collectors
