#include "kernel/cpus.h"

#include <dirent.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kernel/errors.h"
#include "kernel/files.h"
#include "kernel/text.h"

namespace netagent::kernel {
namespace {

absl::StatusOr<uint32_t> ParseCpu(absl::string_view s, absl::string_view whole) {
  uint32_t v = 0;
  if (s.empty() || !absl::SimpleAtoi(s, &v) || s.front() == '+' || s.front() == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu list ", Quote(whole), ": ", Quote(s), " is not a CPU number"));
  }
  if (v >= kMaxCpu) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu list ", Quote(whole), ": CPU ", v, " is above the limit of ", kMaxCpu));
  }
  return v;
}

}  // namespace

absl::StatusOr<std::vector<uint32_t>> ParseCpuList(absl::string_view text) {
  std::vector<uint32_t> out;
  absl::string_view whole = absl::StripAsciiWhitespace(text);
  if (whole.empty()) return out;
  // A set, not a list of every element's CPUs: "0-8191" repeated would
  // otherwise make 8192 entries per 7 bytes of input (a caller's request
  // value of a few MB asks for gigabytes). At most one element per CPU.
  std::vector<bool> in(kMaxCpu, false);
  size_t elements = 0;
  for (absl::string_view part : absl::StrSplit(whole, ',')) {
    if (++elements > kMaxCpu) {
      return absl::InvalidArgumentError(absl::StrCat("cpu list: more than ", kMaxCpu, " elements"));
    }
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("cpu list ", Quote(whole), ": empty element"));
    }
    // a, a-b, or a-b:used/group
    absl::string_view range = part, stride;
    if (size_t colon = part.find(':'); colon != absl::string_view::npos) {
      range = part.substr(0, colon);
      stride = part.substr(colon + 1);
    }
    uint32_t lo, hi;
    if (size_t dash = range.find('-'); dash != absl::string_view::npos) {
      NETAGENT_ASSIGN_OR_RETURN(lo, ParseCpu(range.substr(0, dash), whole));
      NETAGENT_ASSIGN_OR_RETURN(hi, ParseCpu(range.substr(dash + 1), whole));
    } else {
      NETAGENT_ASSIGN_OR_RETURN(lo, ParseCpu(range, whole));
      hi = lo;
    }
    if (hi < lo) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu list ", Quote(whole), ": range ", Quote(range), " runs backwards"));
    }
    uint32_t used = 1, group = 1;
    if (!stride.empty()) {
      std::vector<absl::string_view> ug = absl::StrSplit(stride, '/');
      if (ug.size() != 2 || !absl::SimpleAtoi(ug[0], &used) || !absl::SimpleAtoi(ug[1], &group) ||
          used == 0 || group == 0 || used > group) {
        return absl::InvalidArgumentError(
            absl::StrCat("cpu list ", Quote(whole), ": bad stride ", Quote(stride)));
      }
    }
    for (uint32_t c = lo; c <= hi; ++c) {
      if ((c - lo) % group < used) in[c] = true;
    }
  }
  for (uint32_t c = 0; c < kMaxCpu; ++c) {
    if (in[c]) out.push_back(c);
  }
  return out;
}

std::string FormatCpuList(const std::vector<uint32_t>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    absl::StrAppend(&out, cpus[i]);
    if (j > i) absl::StrAppend(&out, "-", cpus[j]);
    i = j + 1;
  }
  return out;
}

absl::StatusOr<std::vector<uint32_t>> ParseCpuMask(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  std::vector<absl::string_view> groups = absl::StrSplit(text, ',');
  if (text.empty() || groups.size() * 32 > kMaxCpu) {
    return absl::InvalidArgumentError(absl::StrCat("cpu mask ", Quote(text), ": bad length"));
  }
  std::vector<uint32_t> out;
  for (size_t g = 0; g < groups.size(); ++g) {
    absl::string_view word = groups[groups.size() - 1 - g];
    uint32_t bits = 0;
    if (word.empty() || word.size() > 8 || !absl::SimpleHexAtoi(word, &bits) ||
        word.find_first_not_of("0123456789abcdefABCDEF") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu mask ", Quote(text), ": bad group ", Quote(word)));
    }
    for (uint32_t b = 0; b < 32; ++b) {
      if (bits & (1u << b)) out.push_back(static_cast<uint32_t>(g * 32 + b));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string FormatCpuMask(const std::vector<uint32_t>& cpus) {
  uint32_t top = 0;
  for (uint32_t c : cpus) top = std::max(top, c);
  std::vector<uint32_t> words(cpus.empty() ? 1 : top / 32 + 1, 0);
  for (uint32_t c : cpus) words[c / 32] |= 1u << (c % 32);
  std::string out = absl::StrFormat("%x", words.back());
  for (size_t i = words.size() - 1; i-- > 0;) absl::StrAppendFormat(&out, ",%08x", words[i]);
  return out;
}

std::vector<uint32_t> ReadIsolatedCpus(const std::string& sysfs_root) {
  auto text = ReadLine(sysfs_root + "/devices/system/cpu/isolated");
  if (!text.ok()) return {};
  auto cpus = ParseCpuList(*text);
  return cpus.ok() ? *cpus : std::vector<uint32_t>{};
}

absl::StatusOr<std::vector<uint32_t>> ReadOnlineCpus(const std::string& sysfs_root) {
  NETAGENT_ASSIGN_OR_RETURN(std::string online,
                            ReadLine(sysfs_root + "/devices/system/cpu/online"));
  return ParseCpuList(online);
}

absl::StatusOr<CpuTopology> ReadCpuTopology(const std::string& sysfs_root) {
  CpuTopology topo;
  NETAGENT_ASSIGN_OR_RETURN(topo.online_list, ReadLine(sysfs_root + "/devices/system/cpu/online"));
  NETAGENT_ASSIGN_OR_RETURN(topo.possible_list,
                            ReadLine(sysfs_root + "/devices/system/cpu/possible"));
  NETAGENT_ASSIGN_OR_RETURN(std::vector<uint32_t> online, ParseCpuList(topo.online_list));

  std::map<uint32_t, int32_t> node_of;
  const std::string node_dir = sysfs_root + "/devices/system/node";
  if (DIR* d = ::opendir(node_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      absl::string_view name = e->d_name;
      uint32_t node;
      if (!absl::ConsumePrefix(&name, "node") || !absl::SimpleAtoi(name, &node)) continue;
      ++topo.numa_nodes;
      auto list = ReadLine(absl::StrCat(node_dir, "/", e->d_name, "/cpulist"));
      if (!list.ok()) continue;
      auto cpus = ParseCpuList(*list);
      if (!cpus.ok()) continue;
      for (uint32_t c : *cpus) node_of[c] = static_cast<int32_t>(node);
    }
    ::closedir(d);
  }
  for (uint32_t c : online) {
    auto it = node_of.find(c);
    topo.online.push_back({c, it == node_of.end() ? -1 : it->second});
  }
  return topo;
}

}  // namespace netagent::kernel
