#include "tuners/plan.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace netagent::tuners {
namespace {

std::string JoinSettings(const Settings& s) {
  return absl::StrJoin(s, " ", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, "=", kv.second);
  });
}

template <typename T>
std::string Opt(const char* name, const std::optional<T>& v) {
  return v ? absl::StrCat(" ", name, "=", *v) : "";
}

}  // namespace

std::string DescribeIntent(const Intent& intent) {
  std::string out = std::visit(
      [](const auto& in) -> std::string {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, BdpIntent>) {
          if (in.observed) return absl::StrCat("bdp observed ceiling=", in.ceiling_bytes);
          return absl::StrCat("bdp bandwidth=", in.bandwidth_bps,
                              "bit/s rtt=", absl::FormatDuration(in.rtt),
                              " ceiling=", in.ceiling_bytes);
        }
        if constexpr (std::is_same_v<T, CongestionIntent>) return "congestion " + in.algorithm;
        if constexpr (std::is_same_v<T, RpsIntent> || std::is_same_v<T, XpsIntent>) {
          const char* kind = std::is_same_v<T, RpsIntent> ? "rps " : "xps ";
          return absl::StrCat(kind, in.device, in.disable ? " off" : "",
                              in.cpus.empty() ? "" : " cpus=" + in.cpus);
        }
        if constexpr (std::is_same_v<T, IrqAffinityIntent>) {
          return absl::StrCat("irq ", in.device, in.cpus.empty() ? "" : " cpus=" + in.cpus);
        }
        if constexpr (std::is_same_v<T, RfsIntent>) {
          return absl::StrCat("rfs ", in.device,
                              in.disable ? " off" : absl::StrCat(" entries=", in.flow_entries));
        }
        if constexpr (std::is_same_v<T, ChannelsIntent>) {
          return absl::StrCat("channels ", in.device, Opt("combined", in.combined),
                              Opt("rx", in.rx), Opt("tx", in.tx), Opt("other", in.other));
        }
        if constexpr (std::is_same_v<T, RssIntent>) {
          return absl::StrCat(
              "rss ", in.device, " queues=", in.queues,
              in.weights.empty() ? "" : " weights=" + absl::StrJoin(in.weights, ","));
        }
        if constexpr (std::is_same_v<T, CoalesceIntent>) {
          return absl::StrCat("coalesce ", in.device,
                              in.profile.empty() ? "" : " profile=" + in.profile,
                              in.values.empty() ? "" : " ",
                              absl::StrJoin(in.values, " ", absl::PairFormatter("=")));
        }
        if constexpr (std::is_same_v<T, LimitsIntent>) return "limits " + JoinSettings(in.settings);
        if constexpr (std::is_same_v<T, SysctlIntent>) return "sysctl " + JoinSettings(in.settings);
        if constexpr (std::is_same_v<T, DatapathBlockIntent>) {
          return absl::StrCat("datapath-block ", in.device, in.remove ? " remove " : " ",
                              absl::StrJoin(in.prefixes, ","));
        }
      },
      intent.what);
  if (intent.clamp) out += " (clamp)";
  return out;
}

std::string IntentDevice(const Intent& intent) {
  return std::visit(
      [](const auto& in) -> std::string {
        if constexpr (requires { in.device; }) {
          return in.device;
        } else {
          return "";
        }
      },
      intent.what);
}

std::string Plan::Digest() const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&](absl::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  for (const auto& c : changes) {
    mix(c.knob);
    mix(c.old_value);
    mix(c.new_value);
  }
  return absl::StrFormat("%016x", h);
}

}  // namespace netagent::tuners
