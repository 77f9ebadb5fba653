#include "collectors/softnet.h"

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernel/cpus.h"
#include "kernel/errors.h"
#include "kernel/files.h"

namespace netagent::collectors {
namespace {

enum Column {
  kProcessed = 0,
  kDropped = 1,
  kTimeSqueeze = 2,
  kCpuCollision = 8,
  kReceivedRps = 9,
  kFlowLimit = 10,
  kBacklogLen = 11,
  kCpuId = 12,
  kInputQueueLen = 13,
  kProcessQueueLen = 14,
};
constexpr int kMinColumns = 9;

void AddOptional(std::optional<uint64_t>& into, const std::optional<uint64_t>& v) {
  if (v) into = into.value_or(0) + *v;
}

}  // namespace

SoftnetCounters& SoftnetCounters::operator+=(const SoftnetCounters& o) {
  processed += o.processed;
  dropped += o.dropped;
  time_squeeze += o.time_squeeze;
  cpu_collision += o.cpu_collision;
  AddOptional(received_rps, o.received_rps);
  AddOptional(flow_limit_count, o.flow_limit_count);
  return *this;
}

absl::StatusOr<SoftnetSample> ParseSoftnet(absl::string_view text,
                                           const std::vector<uint32_t>& online_cpus) {
  SoftnetSample sample;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line_no;
    std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    const int n = static_cast<int>(cols.size());
    if (n < kMinColumns) {
      return absl::DataLossError(absl::StrCat("softnet_stat line ", line_no, ": ", n,
                                              " columns, at least ", kMinColumns, " expected"));
    }
    if (sample.columns == 0) {
      sample.columns = n;
    } else if (n != sample.columns) {
      return absl::DataLossError(absl::StrCat("softnet_stat line ", line_no, ": ", n,
                                              " columns where line 1 has ", sample.columns));
    }
    std::vector<uint32_t> v(n);
    for (int i = 0; i < n; ++i) {
      if (cols[i].size() > 8 || !absl::SimpleHexAtoi(cols[i], &v[i])) {
        return absl::DataLossError(absl::StrCat("softnet_stat line ", line_no, " column ", i + 1,
                                                ": \"", cols[i], "\" is not a 32-bit hex value"));
      }
    }
    SoftnetRow row;
    row.counters.processed = v[kProcessed];
    row.counters.dropped = v[kDropped];
    row.counters.time_squeeze = v[kTimeSqueeze];
    row.counters.cpu_collision = v[kCpuCollision];
    if (n > kReceivedRps) row.counters.received_rps = v[kReceivedRps];
    if (n > kFlowLimit) row.counters.flow_limit_count = v[kFlowLimit];
    if (n > kCpuId) {
      row.backlog_len = v[kBacklogLen];
      row.cpu = v[kCpuId];
    }
    if (n > kProcessQueueLen) {
      row.input_queue_len = v[kInputQueueLen];
      row.process_queue_len = v[kProcessQueueLen];
    }
    sample.rows.push_back(row);
  }
  if (sample.columns > kCpuId) {
    sample.cpu_id_source = CpuIdSource::kColumn;
  } else if (online_cpus.size() == sample.rows.size()) {
    sample.cpu_id_source = CpuIdSource::kOnlineOrder;
    for (size_t i = 0; i < sample.rows.size(); ++i) sample.rows[i].cpu = online_cpus[i];
  } else {
    sample.cpu_id_source = CpuIdSource::kLineIndex;
    for (size_t i = 0; i < sample.rows.size(); ++i) sample.rows[i].cpu = static_cast<uint32_t>(i);
  }
  return sample;
}

absl::StatusOr<SoftnetSample> ReadSoftnet(const std::string& proc_net, const std::string& sysfs) {
  // The online list first: a CPU going offline between the reads makes the
  // counts differ, which ParseSoftnet reports as kLineIndex, never as a wrong id.
  std::vector<uint32_t> online;
  if (auto cpus = kernel::ReadOnlineCpus(sysfs); cpus.ok()) online = std::move(*cpus);
  absl::Time taken = absl::Now();
  NETAGENT_ASSIGN_OR_RETURN(std::string text, kernel::ReadFile(proc_net + "/softnet_stat"));
  NETAGENT_ASSIGN_OR_RETURN(SoftnetSample sample, ParseSoftnet(text, online));
  sample.taken = taken;
  return sample;
}

SoftnetCounters DiffSoftnetCounters(const SoftnetCounters& b, const SoftnetCounters& a) {
  SoftnetCounters d;
  d.processed = Delta32(b.processed, a.processed);
  d.dropped = Delta32(b.dropped, a.dropped);
  d.time_squeeze = Delta32(b.time_squeeze, a.time_squeeze);
  d.cpu_collision = Delta32(b.cpu_collision, a.cpu_collision);
  if (b.received_rps && a.received_rps) d.received_rps = Delta32(*b.received_rps, *a.received_rps);
  if (b.flow_limit_count && a.flow_limit_count) {
    d.flow_limit_count = Delta32(*b.flow_limit_count, *a.flow_limit_count);
  }
  return d;
}

double PerSecond(double delta, absl::Duration elapsed) {
  double s = absl::ToDoubleSeconds(elapsed);
  return s > 0 ? delta / s : 0.0;
}

SoftnetRates SoftnetRate(const SoftnetCounters& d, absl::Duration elapsed) {
  SoftnetRates r;
  r.processed = PerSecond(static_cast<double>(d.processed), elapsed);
  r.dropped = PerSecond(static_cast<double>(d.dropped), elapsed);
  r.time_squeeze = PerSecond(static_cast<double>(d.time_squeeze), elapsed);
  r.cpu_collision = PerSecond(static_cast<double>(d.cpu_collision), elapsed);
  if (d.received_rps) r.received_rps = PerSecond(static_cast<double>(*d.received_rps), elapsed);
  if (d.flow_limit_count) {
    r.flow_limit_count = PerSecond(static_cast<double>(*d.flow_limit_count), elapsed);
  }
  return r;
}

SoftnetReport BuildSoftnetReport(const SoftnetSample* before, const SoftnetSample& after) {
  SoftnetReport report;
  report.columns = after.columns;
  report.cpu_id_source = after.cpu_id_source;
  report.taken = after.taken;
  std::map<uint32_t, const SoftnetRow*> prev;
  if (before != nullptr) {
    report.window = after.taken - before->taken;
    for (const SoftnetRow& r : before->rows) prev[r.cpu] = &r;
  }
  report.total.row.counters = SoftnetCounters{};
  if (after.columns > 9) report.total.row.counters.received_rps = 0;
  if (after.columns > 10) report.total.row.counters.flow_limit_count = 0;
  if (before != nullptr) report.total.delta = report.total.row.counters;
  for (const SoftnetRow& r : after.rows) {
    SoftnetReading reading{r, std::nullopt};
    if (auto it = prev.find(r.cpu); it != prev.end()) {
      reading.delta = DiffSoftnetCounters(it->second->counters, r.counters);
      *report.total.delta += *reading.delta;
    }
    report.total.row.counters += r.counters;
    auto add_gauge = [](std::optional<uint32_t>& into, const std::optional<uint32_t>& v) {
      if (v) into = into.value_or(0) + *v;
    };
    add_gauge(report.total.row.backlog_len, r.backlog_len);
    add_gauge(report.total.row.input_queue_len, r.input_queue_len);
    add_gauge(report.total.row.process_queue_len, r.process_queue_len);
    report.cpus.push_back(std::move(reading));
  }
  return report;
}

}  // namespace netagent::collectors
