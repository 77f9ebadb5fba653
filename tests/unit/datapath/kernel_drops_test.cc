// The pure half of the kernel-drop collector: reason names from a kernel's
// enums (and from BTF built here as an old or new kernel would have it),
// count records, samples, reports over a window, top source prefixes.
#include "datapath/kernel_drops.h"

#include <arpa/inet.h>
#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>

#include "datapath/drop_collector.h"

namespace netagent::datapath {
namespace {

// Enumerators as kernel 6.18 has them (a few), with the markers.
std::vector<EnumValue> NewKernelReasons() {
  return {{"SKB_NOT_DROPPED_YET", 0},
          {"SKB_CONSUMED", 1},
          {"SKB_DROP_REASON_NOT_SPECIFIED", 2},
          {"SKB_DROP_REASON_NO_SOCKET", 3},
          {"SKB_DROP_REASON_NETFILTER_DROP", 12},
          {"SKB_DROP_REASON_TCP_LISTEN_OVERFLOW", 40},
          {"SKB_DROP_REASON_MAX", 130},
          {"SKB_DROP_REASON_SUBSYS_MASK", 0xffff0000ll}};
}

std::vector<EnumValue> Subsystems() {
  return {{"SKB_DROP_REASON_SUBSYS_CORE", 0},
          {"SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE", 1},
          {"SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 2},
          {"SKB_DROP_REASON_SUBSYS_NUM", 3}};
}

TEST(DropReasonNames, PrefixGoneMarkersApartNoReasonsForLimits) {
  const auto n = DropReasonNames::FromEnums(NewKernelReasons(), Subsystems());
  EXPECT_EQ(n.Name(3), "NO_SOCKET");
  EXPECT_EQ(n.Name(40), "TCP_LISTEN_OVERFLOW");
  EXPECT_EQ(n.not_dropped_yet(), 0u);
  EXPECT_EQ(n.consumed(), 1u);
  EXPECT_EQ(n.reasons().size(), 4u);  // NOT_SPECIFIED, NO_SOCKET, NETFILTER_DROP, LISTEN_OVERFLOW
  EXPECT_FALSE(n.reasons().count(0));
  EXPECT_FALSE(n.reasons().count(1));
  EXPECT_FALSE(n.reasons().count(130));
  // The markers still have names when shown, but are no reasons to filter by.
  EXPECT_EQ(n.Name(1), "CONSUMED");
  EXPECT_FALSE(n.Value("CONSUMED").has_value());
  EXPECT_FALSE(n.Value("MAX").has_value());
  EXPECT_FALSE(n.Value("SUBSYS_MASK").has_value());
}

TEST(DropReasonNames, OtherSubsystemsAndUnknownValues) {
  const auto n = DropReasonNames::FromEnums(NewKernelReasons(), Subsystems());
  EXPECT_EQ(n.Name((2u << 16) | 3), "OPENVSWITCH/3");
  EXPECT_EQ(n.Name((1u << 16) | 7), "MAC80211_UNUSABLE/7");
  EXPECT_EQ(n.Name((9u << 16) | 1), "SUBSYS_9/1");
  EXPECT_EQ(n.Name(129), "UNKNOWN_129");
  const auto bare = DropReasonNames::FromEnums(NewKernelReasons());
  EXPECT_EQ(bare.Name((2u << 16) | 3), "SUBSYS_2/3");
}

TEST(DropReasonNames, LookupIgnoresCaseAndThePrefix) {
  const auto n = DropReasonNames::FromEnums(NewKernelReasons());
  EXPECT_EQ(n.Value("TCP_LISTEN_OVERFLOW"), 40u);
  EXPECT_EQ(n.Value("tcp_listen_overflow"), 40u);
  EXPECT_EQ(n.Value("SKB_DROP_REASON_NETFILTER_DROP"), 12u);
  EXPECT_FALSE(n.Value("LISTEN_OVERFLOW").has_value());
  EXPECT_FALSE(n.Value("").has_value());
}

TEST(DropReasonNames, Kernel517HasNoMarkersAndItsZeroIsADrop) {
  const auto n = DropReasonNames::FromEnums({{"SKB_DROP_REASON_NOT_SPECIFIED", 0},
                                             {"SKB_DROP_REASON_NO_SOCKET", 1},
                                             {"SKB_DROP_REASON_MAX", 6}});
  EXPECT_FALSE(n.not_dropped_yet().has_value());
  EXPECT_FALSE(n.consumed().has_value());
  EXPECT_EQ(n.Name(0), "NOT_SPECIFIED");
  EXPECT_EQ(n.Value("NO_SOCKET"), 1u);
}

TEST(DropReasonNames, TheFirstNameOfAValueStays) {
  const auto n = DropReasonNames::FromEnums(
      {{"SKB_DROP_REASON_A", 5}, {"SKB_DROP_REASON_B", 5}, {"SKB_DROP_REASON_C", -1}});
  EXPECT_EQ(n.Name(5), "A");
  EXPECT_EQ(n.reasons().size(), 1u);
}

// BTF as a kernel would carry it: the reason enum, the subsystem enum, and
// the tracepoint's prototype with `args` arguments after the context (the
// third one the reason when `reason_arg`).
class FakeKernelBtf {
 public:
  FakeKernelBtf(bool reason_enum, int args, bool reason_arg = true) {
    b_ = btf__new_empty();
    const int u8 = btf__add_int(b_, "unsigned char", 1, 0);
    const int voidp = btf__add_ptr(b_, 0);
    const int skb = btf__add_struct(b_, "sk_buff", 0);
    const int skbp = btf__add_ptr(b_, skb);
    int reason = u8;
    if (reason_enum) {
      reason = btf__add_enum(b_, "skb_drop_reason", 4);
      btf__add_enum_value(b_, "SKB_NOT_DROPPED_YET", 0);
      btf__add_enum_value(b_, "SKB_CONSUMED", 1);
      btf__add_enum_value(b_, "SKB_DROP_REASON_NOT_SPECIFIED", 2);
      btf__add_enum_value(b_, "SKB_DROP_REASON_NO_SOCKET", 3);
      btf__add_enum(b_, "skb_drop_reason_subsys", 4);
      btf__add_enum_value(b_, "SKB_DROP_REASON_SUBSYS_CORE", 0);
      btf__add_enum_value(b_, "SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 2);
    }
    if (args >= 0) {
      const int proto = btf__add_func_proto(b_, 0);
      btf__add_func_param(b_, "__data", voidp);
      const int types[] = {skbp, voidp, reason_arg ? reason : u8, voidp};
      for (int i = 0; i < args && i < 4; ++i) btf__add_func_param(b_, "", types[i]);
      btf__add_typedef(b_, "btf_trace_kfree_skb", btf__add_ptr(b_, proto));
    }
  }
  ~FakeKernelBtf() { btf__free(b_); }
  const btf* get() const { return b_; }

 private:
  btf* b_;
};

TEST(DropReasonNamesFromBtf, ANewKernelGivesNamesAndSubsystems) {
  FakeKernelBtf k(true, 4);
  auto n = DropReasonNamesFromBtf(k.get(), "6.18.0");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->Name(3), "NO_SOCKET");
  EXPECT_EQ(n->consumed(), 1u);
  EXPECT_EQ(n->Name((2u << 16) | 1), "OPENVSWITCH/1");
}

TEST(DropReasonNamesFromBtf, Kernel517WithThreeArguments) {
  FakeKernelBtf k(true, 3);
  auto n = DropReasonNamesFromBtf(k.get(), "5.17.0");
  ASSERT_TRUE(n.ok()) << n.status();
}

TEST(DropReasonNamesFromBtf, AKernelWithoutTheEnumSaysWhichVersionBroughtIt) {
  FakeKernelBtf k(false, 2);
  auto n = DropReasonNamesFromBtf(k.get(), "5.15.0");
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("kernel 5.15.0 has no enum skb_drop_reason"),
            std::string::npos)
      << n.status();
  EXPECT_NE(n.status().message().find("5.17"), std::string::npos);
}

TEST(DropReasonNamesFromBtf, AnEnumWithoutTheReasonArgumentIsNotEnough) {
  FakeKernelBtf two(true, 2);
  auto n = DropReasonNamesFromBtf(two.get(), "5.16.0");
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("skb:kfree_skb has 2 arguments and no drop reason"),
            std::string::npos)
      << n.status();
  FakeKernelBtf wrong(true, 3, /*reason_arg=*/false);
  n = DropReasonNamesFromBtf(wrong.get(), "5.16.0");
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("not an enum skb_drop_reason"), std::string::npos);
  FakeKernelBtf none(true, -1);
  n = DropReasonNamesFromBtf(none.get(), "5.4.0");
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("no skb:kfree_skb tracepoint"), std::string::npos);
}

TEST(ProtocolName, CommonAndUnknownProtocols) {
  EXPECT_EQ(ProtocolName(0x0800, 6), "ipv4/tcp");
  EXPECT_EQ(ProtocolName(0x0800, 17), "ipv4/udp");
  EXPECT_EQ(ProtocolName(0x0800, 1), "ipv4/icmp");
  EXPECT_EQ(ProtocolName(0x86dd, 58), "ipv6/icmpv6");
  EXPECT_EQ(ProtocolName(0x86dd, 0), "ipv6/hopopts");
  EXPECT_EQ(ProtocolName(0x0800, 253), "ipv4/253");
  EXPECT_EQ(ProtocolName(0x0806, 0), "arp");
  EXPECT_EQ(ProtocolName(0x88b5, 0), "0x88b5");
  EXPECT_EQ(ProtocolName(0, 0), "unknown");
}

std::string KeyBytes(uint32_t reason, uint32_t ifindex, uint16_t l3, uint8_t l4) {
  nd_key k{reason, ifindex, l3, l4, 0};
  return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

std::string PerCpu(std::vector<uint64_t> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 8);
}

TEST(AddCountRecord, SumsEveryCpuAndRefusesOddSizes) {
  std::map<KernelDropKey, uint64_t> counts;
  EXPECT_TRUE(AddCountRecord(KeyBytes(3, 1, 0x0800, 6), PerCpu({5, 0, 7, 1}), counts));
  EXPECT_TRUE(AddCountRecord(KeyBytes(12, 2, 0x86dd, 17), PerCpu({1}), counts));
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ((counts[KernelDropKey{3, 1, 0x0800, 6}]), 13u);
  EXPECT_EQ((counts[KernelDropKey{12, 2, 0x86dd, 17}]), 1u);
  EXPECT_FALSE(AddCountRecord("short", PerCpu({1}), counts));
  EXPECT_FALSE(AddCountRecord(KeyBytes(3, 1, 0, 0), "1234567", counts));
  EXPECT_FALSE(AddCountRecord(KeyBytes(3, 1, 0, 0), "", counts));
  EXPECT_EQ(counts.size(), 2u);
}

TEST(AddSlotTables, EveryCpusUsedSlotsAddedToTheirKeys) {
  std::vector<nd_slots> cpus(3);
  std::memset(cpus.data(), 0, cpus.size() * sizeof(nd_slots));
  cpus[0].slot[5] = nd_slot{{3, 1, 0x0800, 6, 0}, 0, 10};
  cpus[0].slot[6] = nd_slot{{12, 2, 0x0800, 17, 0}, 0, 1};
  cpus[2].slot[400] = nd_slot{{3, 1, 0x0800, 6, 0}, 0, 5};  // same key, another CPU and slot
  cpus[1].slot[9] = nd_slot{{40, 2, 0x86dd, 6, 0}, 0, 0};   // free: its key is leftover bytes
  // The sampler's state ahead of the slots, laid out to look like a used
  // slot of {12, 2, ipv4/udp} with 1000 drops were it read as one.
  cpus[1].sampler = nd_sampler{(2ull << 32) | 12, 0x110800, 1000};
  const std::string value(reinterpret_cast<const char*>(cpus.data()),
                          cpus.size() * sizeof(nd_slots));
  std::map<KernelDropKey, uint64_t> counts{{KernelDropKey{3, 1, 0x0800, 6}, 100}};  // from the hash
  ASSERT_TRUE(AddSlotTables(value, counts));
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ((counts[KernelDropKey{3, 1, 0x0800, 6}]), 115u);
  EXPECT_EQ((counts[KernelDropKey{12, 2, 0x0800, 17}]), 1u);
  EXPECT_FALSE(AddSlotTables(value.substr(1), counts));
  EXPECT_FALSE(AddSlotTables("", counts));
}

// The program and the tests find a key's first slot with this function.
TEST(NdSlotHome, InTheTableTheSameFromTheWordsAndSpread) {
  std::set<uint32_t> homes;
  for (uint32_t proto = 0; proto < 256; ++proto) {
    const nd_key k{7, 3, 0x0800, static_cast<uint8_t>(proto), 0};
    const uint32_t home = nd_slot_home(&k);
    EXPECT_LT(home, static_cast<uint32_t>(ND_SLOTS));
    uint64_t lo;
    uint32_t hi;
    std::memcpy(&lo, &k, 8);
    std::memcpy(&hi, reinterpret_cast<const char*>(&k) + 8, 4);
    EXPECT_EQ(nd_slot_home_words(lo, hi), home);
    homes.insert(home);
  }
  // 256 keys into 512 slots at random would take about 200 distinct slots.
  EXPECT_GT(homes.size(), 170u);
  const nd_key a{7, 3, 0x0800, 6, 0}, b{7, 4, 0x0800, 6, 0}, c{8, 3, 0x0800, 6, 0};
  EXPECT_NE(nd_slot_home(&a), nd_slot_home(&b));
  EXPECT_NE(nd_slot_home(&a), nd_slot_home(&c));
}

TEST(EventsFromCounts, ByIndexMissingOnesZeroCappedDerived) {
  KernelDropEvents e = EventsFromCounts({10, 2, 3}, 100, true);
  EXPECT_EQ(e.sampled, 10u);
  EXPECT_EQ(e.sample_lost, 2u);
  EXPECT_EQ(e.table_full, 3u);
  EXPECT_EQ(e.no_netns, 0u);
  EXPECT_EQ(e.sample_capped, 91u);  // 100 counted + 3 without room - 10 - 2
  // Without sampling nothing is capped; a read that raced never goes below 0.
  EXPECT_EQ(EventsFromCounts({0, 0, 0, 4}, 100, false).sample_capped, 0u);
  EXPECT_EQ(EventsFromCounts({0, 0, 0, 4}, 100, false).no_netns, 4u);
  EXPECT_EQ(EventsFromCounts({12, 0}, 10, true).sample_capped, 0u);
}

nd_sample Record4(const char* src, const char* dst, uint16_t sport, uint16_t dport,
                  uint32_t reason = 3) {
  nd_sample s{};
  s.reason = reason;
  s.ifindex = 2;
  s.len = 60;
  s.l3_proto = 0x0800;
  s.l4_proto = 6;
  inet_pton(AF_INET, src, s.saddr);
  inet_pton(AF_INET, dst, s.daddr);
  s.sport = htons(sport);
  s.dport = htons(dport);
  s.has_ports = 1;
  return s;
}

TEST(SampleFromRecord, AddressesAndPortsInHostOrder) {
  const absl::Time t = absl::FromUnixSeconds(1000);
  KernelDropSample s = SampleFromRecord(Record4("10.1.2.3", "10.9.9.9", 40000, 80), t);
  EXPECT_EQ(s.at, t);
  EXPECT_EQ(s.family, AF_INET);
  EXPECT_EQ(FormatAddress(s.family, s.source), "10.1.2.3");
  EXPECT_EQ(FormatAddress(s.family, s.destination), "10.9.9.9");
  EXPECT_EQ(s.source_port, 40000);
  EXPECT_EQ(s.destination_port, 80);
  EXPECT_EQ(s.key, (KernelDropKey{3, 2, 0x0800, 6}));

  nd_sample r6{};
  r6.l3_proto = 0x86dd;
  r6.l4_proto = 58;
  inet_pton(AF_INET6, "2001:db8::1", r6.saddr);
  inet_pton(AF_INET6, "2001:db8::2", r6.daddr);
  s = SampleFromRecord(r6, t);
  EXPECT_EQ(s.family, AF_INET6);
  EXPECT_EQ(FormatAddress(s.family, s.source), "2001:db8::1");
  EXPECT_FALSE(s.source_port.has_value());

  nd_sample arp{};
  arp.l3_proto = 0x0806;
  s = SampleFromRecord(arp, t);
  EXPECT_EQ(s.family, 0);
  EXPECT_EQ(FormatAddress(s.family, s.source), "");
}

const DropReasonNames& Names() {
  static const DropReasonNames n = DropReasonNames::FromEnums(NewKernelReasons(), Subsystems());
  return n;
}

KernelDropSnapshot Snap(absl::Time t, std::map<KernelDropKey, uint64_t> counts) {
  KernelDropSnapshot s;
  s.taken = t;
  s.counts = std::move(counts);
  s.devices = {{1, "lo"}, {2, "eth0"}};
  return s;
}

const KernelDropKey kSynLo{3, 1, 0x0800, 6};
const KernelDropKey kNfEth{12, 2, 0x0800, 17};
const KernelDropKey kOverflowEth{40, 2, 0x86dd, 6};
const KernelDropKey kGoneDevice{3, 7, 0x0800, 17};

TEST(BuildKernelDropReport, OneSnapshotRowsByCountWithNames) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  const auto s = Snap(t0, {{kSynLo, 5}, {kNfEth, 50}, {kOverflowEth, 7}, {kGoneDevice, 5}});
  const KernelDropReport r = BuildKernelDropReport(nullptr, s, {}, Names(), {});
  EXPECT_FALSE(r.window.has_value());
  EXPECT_FALSE(r.total_delta.has_value());
  ASSERT_EQ(r.rows.size(), 4u);
  EXPECT_EQ(r.rows[0].reason, "NETFILTER_DROP");
  EXPECT_EQ(r.rows[0].device, "eth0");
  EXPECT_EQ(r.rows[0].protocol, "ipv4/udp");
  EXPECT_EQ(r.rows[0].count, 50u);
  EXPECT_FALSE(r.rows[0].delta.has_value());
  EXPECT_EQ(r.rows[1].reason, "TCP_LISTEN_OVERFLOW");
  EXPECT_EQ(r.rows[1].protocol, "ipv6/tcp");
  // Equal counts: by name, then device ("" for a device that is gone).
  EXPECT_EQ(r.rows[2].reason, "NO_SOCKET");
  EXPECT_EQ(r.rows[2].device, "");
  EXPECT_EQ(r.rows[2].key.ifindex, 7u);
  EXPECT_EQ(r.rows[3].device, "lo");
  EXPECT_EQ(r.total, 67u);
}

TEST(BuildKernelDropReport, AWindowGivesDeltasAndRatesAndSortsByThem) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  const auto before = Snap(t0, {{kSynLo, 5}, {kNfEth, 50}});
  const auto after = Snap(t0 + absl::Seconds(2), {{kSynLo, 25}, {kNfEth, 54}, {kOverflowEth, 3}});
  const KernelDropReport r = BuildKernelDropReport(&before, after, {}, Names(), {});
  ASSERT_TRUE(r.window.has_value());
  EXPECT_EQ(*r.window, absl::Seconds(2));
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].key, kSynLo);
  EXPECT_EQ(r.rows[0].delta, 20u);
  EXPECT_DOUBLE_EQ(*r.rows[0].rate, 10.0);
  EXPECT_EQ(r.rows[1].key, kNfEth);
  EXPECT_EQ(r.rows[1].delta, 4u);
  EXPECT_EQ(r.rows[2].key, kOverflowEth);  // new in the window: all of it
  EXPECT_EQ(r.rows[2].delta, 3u);
  EXPECT_DOUBLE_EQ(*r.rows[2].rate, 1.5);
  EXPECT_EQ(r.total_delta, 27u);
}

TEST(BuildKernelDropReport, ACountThatWentDownStartedAgain) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  const auto before = Snap(t0, {{kSynLo, 500}});
  const auto after = Snap(t0 + absl::Seconds(1), {{kSynLo, 20}});
  const KernelDropReport r = BuildKernelDropReport(&before, after, {}, Names(), {});
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].delta, 20u);
}

TEST(BuildKernelDropReport, FiltersByReasonAndDevice) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  const auto s = Snap(t0, {{kSynLo, 5}, {kNfEth, 50}, {kOverflowEth, 7}});
  KernelDropQuery q;
  q.reasons = {3, 40};
  KernelDropReport r = BuildKernelDropReport(nullptr, s, {}, Names(), q);
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].key, kOverflowEth);
  EXPECT_EQ(r.total, 12u);
  q.devices = {"eth0"};
  r = BuildKernelDropReport(nullptr, s, {}, Names(), q);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].key, kOverflowEth);
  q.reasons.clear();
  q.devices = {"nosuch"};
  EXPECT_TRUE(BuildKernelDropReport(nullptr, s, {}, Names(), q).rows.empty());
}

TEST(BuildKernelDropReport, SamplesInTheWindowNewestFirstFilteredAndCapped) {
  const absl::Time t0 = absl::FromUnixSeconds(100);
  std::vector<KernelDropSample> samples;
  // Before the window: left out.
  samples.push_back(
      SampleFromRecord(Record4("10.0.0.1", "10.0.0.9", 1, 80), t0 - absl::Seconds(1)));
  for (int i = 0; i < 5; ++i) {
    samples.push_back(SampleFromRecord(Record4("10.0.0.2", "10.0.0.9", 1000 + i, 80),
                                       t0 + absl::Milliseconds(100 * i)));
  }
  // Another reason, filtered out below.
  samples.push_back(
      SampleFromRecord(Record4("10.0.0.3", "10.0.0.9", 2, 80, 12), t0 + absl::Milliseconds(50)));
  const auto before = Snap(t0, {});
  const auto after = Snap(t0 + absl::Seconds(1), {{KernelDropKey{3, 2, 0x0800, 6}, 5}});
  KernelDropQuery q;
  q.reasons = {3};
  q.max_samples = 3;
  const KernelDropReport r = BuildKernelDropReport(&before, after, samples, Names(), q);
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_EQ(r.samples[0].sample.source_port, 1004);
  EXPECT_EQ(r.samples[1].sample.source_port, 1003);
  EXPECT_EQ(r.samples[0].reason, "NO_SOCKET");
  EXPECT_EQ(r.samples[0].device, "eth0");
  EXPECT_EQ(r.samples[0].protocol, "ipv4/tcp");
  EXPECT_EQ(r.samples[0].source, "10.0.0.2");
  EXPECT_EQ(r.samples[0].destination, "10.0.0.9");
  // The top sources count every sample of the window that passed the filter.
  ASSERT_EQ(r.top_sources.size(), 1u);
  EXPECT_EQ(r.top_sources[0].prefix, "10.0.0.0/24");
  EXPECT_EQ(r.top_sources[0].samples, 5u);

  // Without a window every kept sample counts.
  const KernelDropReport all = BuildKernelDropReport(nullptr, after, samples, Names(), {});
  EXPECT_EQ(all.samples.size(), 7u);
  EXPECT_EQ(all.top_sources[0].samples, 7u);
}

TEST(TopSourcePrefixes, GroupedByPrefixMostFirstWithTheirMainReason) {
  const absl::Time t = absl::FromUnixSeconds(1);
  std::vector<KernelDropSample> s;
  for (int i = 0; i < 3; ++i)
    s.push_back(SampleFromRecord(Record4("192.0.2.10", "10.0.0.1", 1, 80, 40), t));
  s.push_back(SampleFromRecord(Record4("192.0.2.99", "10.0.0.1", 1, 80, 3), t));
  s.push_back(SampleFromRecord(Record4("198.51.100.7", "10.0.0.1", 1, 80, 12), t));
  s.push_back(SampleFromRecord(Record4("198.51.100.8", "10.0.0.1", 1, 80, 12), t));
  s.push_back(SampleFromRecord(Record4("203.0.113.1", "10.0.0.1", 1, 80, 3), t));
  nd_sample r6{};
  r6.reason = 3;
  r6.l3_proto = 0x86dd;
  inet_pton(AF_INET6, "2001:db8:1:2:aaaa::1", r6.saddr);
  s.push_back(SampleFromRecord(r6, t));
  nd_sample arp{};
  arp.l3_proto = 0x0806;
  s.push_back(SampleFromRecord(arp, t));

  auto top = TopSourcePrefixes(s, Names(), 10);
  ASSERT_EQ(top.size(), 4u);
  EXPECT_EQ(top[0].prefix, "192.0.2.0/24");
  EXPECT_EQ(top[0].samples, 4u);
  EXPECT_EQ(top[0].top_reason, "TCP_LISTEN_OVERFLOW");
  EXPECT_EQ(top[1].prefix, "198.51.100.0/24");
  EXPECT_EQ(top[1].top_reason, "NETFILTER_DROP");
  // Equal counts: by prefix text.
  EXPECT_EQ(top[2].prefix, "2001:db8:1:2::/64");
  EXPECT_EQ(top[3].prefix, "203.0.113.0/24");

  top = TopSourcePrefixes(s, Names(), 2, 32, 48);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].prefix, "192.0.2.10/32");
  EXPECT_EQ(top[0].samples, 3u);
  top = TopSourcePrefixes(s, Names(), 10, 20, 48);
  EXPECT_EQ(top[0].prefix, "192.0.0.0/20");
  EXPECT_EQ(top[2].prefix, "2001:db8:1::/48");
  EXPECT_EQ(top[3].prefix, "203.0.112.0/20");
}

}  // namespace
}  // namespace netagent::datapath
