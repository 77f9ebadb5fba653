#include "datapath/drop_collector.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/utsname.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "datapath/bpf_map.h"
#include "kernel/errors.h"
#include "kernel/libbpf_log.h"
#include "netagent_drops.skel.h"
#include "spdlog/spdlog.h"

namespace netagent::datapath {
namespace {

constexpr char kReasonEnum[] = "skb_drop_reason";
constexpr char kSubsysEnum[] = "skb_drop_reason_subsys";
constexpr char kTracepointProto[] = "btf_trace_kfree_skb";
// A load that failed for a reason other than the kernel's features is tried
// again after this long, whoever asks in between.
constexpr absl::Duration kRetryPause = absl::Seconds(30);

std::string KernelRelease() {
  utsname u{};
  return ::uname(&u) == 0 ? std::string(u.release) : std::string("(unknown release)");
}

// The enumerators of an ENUM or ENUM64 type, unsigned where BTF says so.
std::vector<EnumValue> Enumerators(const btf* b, const btf_type* t) {
  std::vector<EnumValue> out;
  const uint16_t n = btf_vlen(t);
  if (btf_is_enum(t)) {
    const struct btf_enum* e = btf_enum(t);
    for (uint16_t i = 0; i < n; ++i) {
      const int64_t v = btf_kflag(t) ? static_cast<int64_t>(static_cast<uint32_t>(e[i].val))
                                     : static_cast<int64_t>(e[i].val);
      out.push_back({btf__name_by_offset(b, e[i].name_off), v});
    }
  } else if (btf_is_enum64(t)) {
    const struct btf_enum64* e = btf_enum64(t);
    for (uint16_t i = 0; i < n; ++i) {
      out.push_back(
          {btf__name_by_offset(b, e[i].name_off), static_cast<int64_t>(btf_enum64_value(e + i))});
    }
  }
  return out;
}

const btf_type* FindEnum(const btf* b, const char* name) {
  int id = btf__find_by_name_kind(b, name, BTF_KIND_ENUM);
  if (id < 0) id = btf__find_by_name_kind(b, name, BTF_KIND_ENUM64);
  return id < 0 ? nullptr : btf__type_by_id(b, id);
}

// Whether the tracepoint's prototype (void *ctx, skb, location, reason, ...)
// has the reason as its fourth parameter; otherwise what it has instead.
absl::Status CheckTracepoint(const btf* b, absl::string_view kernel) {
  const int id = btf__find_by_name_kind(b, kTracepointProto, BTF_KIND_TYPEDEF);
  if (id < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("kernel ", kernel, ": no skb:kfree_skb tracepoint in its BTF (",
                     kTracepointProto, "): drop reasons need BTF-typed tracepoints"));
  }
  const btf_type* t = btf__type_by_id(b, btf__type_by_id(b, id)->type);
  if (t != nullptr && btf_is_ptr(t)) t = btf__type_by_id(b, t->type);
  if (t == nullptr || !btf_is_func_proto(t)) {
    return absl::FailedPreconditionError(absl::StrCat("kernel ", kernel, ": ", kTracepointProto,
                                                      " in its BTF is not a function prototype"));
  }
  const uint16_t n = btf_vlen(t);
  if (n < 4) {
    return absl::FailedPreconditionError(
        absl::StrCat("kernel ", kernel, ": skb:kfree_skb has ", n - 1,
                     " arguments and no drop reason (the reason argument came in 5.17)"));
  }
  const int rid = btf__resolve_type(b, btf_params(t)[3].type);
  const btf_type* r = rid < 0 ? nullptr : btf__type_by_id(b, rid);
  if (r == nullptr || !(btf_is_enum(r) || btf_is_enum64(r)) ||
      std::strcmp(btf__name_by_offset(b, r->name_off), kReasonEnum) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kernel ", kernel, ": the third argument of skb:kfree_skb is not an enum ", kReasonEnum));
  }
  return absl::OkStatus();
}

int64_t MonoToRealNs() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return (real.tv_sec - mono.tv_sec) * 1000000000ll + (real.tv_nsec - mono.tv_nsec);
}

}  // namespace

absl::StatusOr<DropReasonNames> DropReasonNamesFromBtf(const btf* b, absl::string_view kernel) {
  const btf_type* reasons = FindEnum(b, kReasonEnum);
  if (reasons == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("kernel ", kernel, " has no enum ",
                                                      kReasonEnum,
                                                      " in its BTF: drop reasons came with 5.17"));
  }
  NETAGENT_RETURN_IF_ERROR(CheckTracepoint(b, kernel));
  const btf_type* subsys = FindEnum(b, kSubsysEnum);
  return DropReasonNames::FromEnums(Enumerators(b, reasons),
                                    subsys ? Enumerators(b, subsys) : std::vector<EnumValue>{});
}

namespace {

struct KernelSupport {
  DropReasonNames names;
  // bpf_rdonly_cast (6.2+): the program reads the IP protocol with a load.
  bool rdonly_cast = false;
};

absl::StatusOr<KernelSupport> LoadKernelSupport() {
  kernel::InstallLibbpfLog();
  const std::string kernel = KernelRelease();
  btf* b;
  {
    kernel::LibbpfLogCapture quiet;  // the reason is in the status
    b = btf__load_vmlinux_btf();
  }
  if (b == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kernel ", kernel, ": no kernel BTF (/sys/kernel/btf/vmlinux: ", std::strerror(errno),
        "): drop reasons are named from it (CONFIG_DEBUG_INFO_BTF)"));
  }
  KernelSupport k;
  auto names = DropReasonNamesFromBtf(b, kernel);
  k.rdonly_cast = btf__find_by_name_kind(b, "bpf_rdonly_cast", BTF_KIND_FUNC) > 0;
  btf__free(b);
  if (!names.ok()) return names.status();
  k.names = std::move(*names);
  return k;
}

// Opens, configures, loads and attaches one of the two programs (the other
// is not loaded). On failure the skeleton is destroyed.
absl::StatusOr<netagent_drops*> LoadProgram(const DropCollectorOptions& options,
                                            const DropReasonNames& names, bool cast) {
  kernel::LibbpfLogCapture log;
  netagent_drops* skel = netagent_drops__open();
  if (skel == nullptr)
    return kernel::LoadError(errno, "open the kernel-drop collector", log,
                             kernel::kTracingProgramNeeds);
  std::unique_ptr<netagent_drops, void (*)(netagent_drops*)> guard(skel, netagent_drops__destroy);
  auto* ro = skel->rodata;
  ro->not_drop_a = names.not_dropped_yet().value_or(~0u);
  ro->not_drop_b = names.consumed().value_or(~0u);
  ro->netns_ino = options.netns_inode;
  ro->sample_rate = options.samples_per_second;
  ro->slot_probes = options.table_probes;
  bpf_program__set_autoload(cast ? skel->progs.nd_kfree_skb_compat : skel->progs.nd_kfree_skb,
                            false);
  if (int err = bpf_map__set_max_entries(skel->maps.drop_counts, options.max_keys)) {
    return kernel::LoadError(err, "size drop_counts", log, kernel::kTracingProgramNeeds);
  }
  if (int err = netagent_drops__load(skel)) {
    return kernel::LoadError(err, "load the kernel-drop collector", log,
                             kernel::kTracingProgramNeeds);
  }
  if (int err = netagent_drops__attach(skel)) {
    return kernel::LoadError(err, "attach to skb:kfree_skb", log, kernel::kTracingProgramNeeds);
  }
  return guard.release();
}

}  // namespace

absl::StatusOr<DropReasonNames> LoadDropReasonNames() {
  NETAGENT_ASSIGN_OR_RETURN(KernelSupport k, LoadKernelSupport());
  return std::move(k.names);
}

kernel::Capability ProbeDropReasons() {
  auto names = LoadDropReasonNames();
  if (!names.ok()) return {false, std::string(names.status().message()), ""};
  return {true, "", ""};
}

absl::StatusOr<std::unique_ptr<DropCollector>> DropCollector::Start(
    const DropCollectorOptions& options) {
  if (options.samples_per_second > kMaxDropSamplesPerSecond) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples_per_second: at most ", kMaxDropSamplesPerSecond));
  }
  if (options.max_keys < 16 || options.max_keys > (1u << 20)) {
    return absl::InvalidArgumentError("max_keys: between 16 and 1048576");
  }
  if (options.table_probes > ND_PROBES) {
    return absl::InvalidArgumentError(absl::StrCat("table_probes: at most ", ND_PROBES));
  }
  NETAGENT_ASSIGN_OR_RETURN(KernelSupport support, LoadKernelSupport());
  std::unique_ptr<DropCollector> c(new DropCollector());
  c->options_ = options;
  c->names_ = std::move(support.names);
  c->cast_ = support.rdonly_cast && !options.compat;
  auto skel = LoadProgram(options, c->names_, c->cast_);
  if (!skel.ok() && c->cast_) {
    // Should the kernel refuse the cast, the helper still works.
    spdlog::warn("kernel-drop collector: {}; loading the program that reads with a helper",
                 std::string(skel.status().message()));
    c->cast_ = false;
    skel = LoadProgram(options, c->names_, false);
  }
  if (!skel.ok()) return skel.status();
  c->skel_ = *skel;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  const bpf_program* prog =
      c->cast_ ? c->skel_->progs.nd_kfree_skb : c->skel_->progs.nd_kfree_skb_compat;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0) c->prog_id_ = info.id;
  c->slots_fd_ = bpf_map__fd(c->skel_->maps.drop_slots);
  c->counts_fd_ = bpf_map__fd(c->skel_->maps.drop_counts);
  c->events_fd_ = bpf_map__fd(c->skel_->maps.nd_events);
  c->rb_ = ring_buffer__new(
      bpf_map__fd(c->skel_->maps.nd_samples),
      [](void* ctx, void* data, size_t size) {
        if (size >= sizeof(nd_sample)) {
          nd_sample s;
          std::memcpy(&s, data, sizeof(s));
          static_cast<DropCollector*>(ctx)->OnSample(s);
        }
        return 0;
      },
      c.get(), nullptr);
  if (c->rb_ == nullptr) return kernel::LastErrnoStatus("read the drop samples ring buffer");
  c->attached_at_ = absl::Now();
  c->drainer_ = std::thread([p = c.get()] { p->DrainLoop(); });
  spdlog::info(
      "kernel-drop collector attached to skb:kfree_skb (prog {}{}, {} reasons, netns {}, "
      "{} samples/s per CPU)",
      c->prog_id_, c->cast_ ? "" : ", compat", c->names_.reasons().size(),
      options.netns_inode ? absl::StrCat(options.netns_inode) : std::string("all"),
      options.samples_per_second);
  return c;
}

DropCollector::~DropCollector() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (drainer_.joinable()) drainer_.join();
  if (rb_ != nullptr) ring_buffer__free(rb_);
  if (skel_ != nullptr) netagent_drops__destroy(skel_);
}

void DropCollector::DrainLoop() {
  std::unique_lock<std::mutex> l(stop_mu_);
  while (!stop_cv_.wait_for(l, absl::ToChronoMilliseconds(options_.drain_every),
                            [this] { return stop_; })) {
    l.unlock();
    Drain();
    l.lock();
  }
}

void DropCollector::Drain() {
  std::lock_guard<std::mutex> l(drain_mu_);
  mono_to_real_ns_ = MonoToRealNs();
  const int n = ring_buffer__consume(rb_);
  if (n < 0) spdlog::debug("kernel-drop samples: {}", std::strerror(-n));
}

void DropCollector::OnSample(const nd_sample& s) {
  // Called from Drain, under drain_mu_.
  KernelDropSample k =
      SampleFromRecord(s, absl::FromUnixNanos(static_cast<int64_t>(s.ts_ns) + mono_to_real_ns_));
  std::lock_guard<std::mutex> l(samples_mu_);
  if (samples_.size() >= options_.kept_samples && !samples_.empty()) samples_.pop_front();
  if (options_.kept_samples > 0) samples_.push_back(std::move(k));
}

absl::StatusOr<KernelDropSnapshot> DropCollector::Snapshot() {
  Drain();
  KernelDropSnapshot s;
  NETAGENT_ASSIGN_OR_RETURN(MapHandle events, MapHandle::Of(events_fd_, "nd_events"));
  std::vector<uint64_t> per_event(ND_EV_MAX);
  for (uint32_t i = 0; i < ND_EV_MAX; ++i) {
    const std::string key(reinterpret_cast<const char*>(&i), sizeof(i));
    if (std::optional<std::string> v = events.Get(key)) per_event[i] = SumPerCpu(*v, 1)[0];
  }
  NETAGENT_ASSIGN_OR_RETURN(MapHandle slots, MapHandle::Of(slots_fd_, "drop_slots"));
  const uint32_t zero = 0;
  std::optional<std::string> tables =
      slots.Get(std::string(reinterpret_cast<const char*>(&zero), 4));
  if (!tables) return kernel::LastErrnoStatus("drop_slots: read");
  if (!AddSlotTables(*tables, s.counts)) {
    return absl::InternalError("drop_slots: a value of an unexpected size");
  }
  NETAGENT_ASSIGN_OR_RETURN(MapHandle counts, MapHandle::Of(counts_fd_, "drop_counts"));
  NETAGENT_ASSIGN_OR_RETURN(std::vector<std::string> keys, counts.Keys());
  s.overflow_keys = keys.size();
  for (const std::string& k : keys) {
    // A key is never deleted while the program runs; a failed read is a
    // kernel error, not a race.
    std::optional<std::string> v = counts.Get(k);
    if (!v) return kernel::LastErrnoStatus("drop_counts: read an entry");
    if (!AddCountRecord(k, *v, s.counts)) {
      return absl::InternalError("drop_counts: an entry of an unexpected size");
    }
  }
  s.taken = absl::Now();
  uint64_t counted = 0;
  for (const auto& [key, count] : s.counts) counted += count;
  s.events = EventsFromCounts(per_event, counted, options_.samples_per_second > 0);
  for (const auto& [key, count] : s.counts) {
    if (key.ifindex == 0 || s.devices.count(key.ifindex)) continue;
    char name[IF_NAMESIZE] = {};
    if (if_indextoname(key.ifindex, name) != nullptr) s.devices[key.ifindex] = name;
  }
  return s;
}

DropCollectorStatus DropCollector::Status(bool attached_now) const {
  DropCollectorStatus s;
  s.attached_at = attached_at_;
  s.attached_now = attached_now;
  s.samples_per_second = options_.samples_per_second;
  s.prog_id = prog_id_;
  s.compat = !cast_;
  s.reasons_known = names_.reasons().size();
  return s;
}

std::vector<KernelDropSample> DropCollector::Samples() const {
  std::lock_guard<std::mutex> l(samples_mu_);
  return {samples_.begin(), samples_.end()};
}

DropCollectorOnDemand::DropCollectorOnDemand(DropCollectorOptions options,
                                             kernel::Capability probed)
    : options_(options), probed_(std::move(probed)) {}

absl::StatusOr<std::shared_ptr<DropCollector>> DropCollectorOnDemand::Get(bool* started_now) {
  if (started_now) *started_now = false;
  std::lock_guard<std::mutex> l(mu_);
  if (collector_) return collector_;
  if (!probed_.available) return absl::FailedPreconditionError(probed_.reason);
  const absl::Time now = absl::Now();
  if (!last_error_.ok() && now - last_try_ < kRetryPause) return last_error_;
  last_try_ = now;
  auto c = DropCollector::Start(options_);
  if (!c.ok()) {
    last_error_ =
        absl::Status(c.status().code(),
                     absl::StrCat(c.status().message(), " (tried at ",
                                  absl::FormatTime("%H:%M:%S", now, absl::UTCTimeZone()),
                                  " UTC; next try after ", absl::FormatDuration(kRetryPause), ")"));
    spdlog::error("kernel-drop collector: {}", std::string(c.status().message()));
    return last_error_;
  }
  collector_ = std::move(*c);
  if (started_now) *started_now = true;
  return collector_;
}

std::shared_ptr<DropCollector> DropCollectorOnDemand::Running() {
  std::lock_guard<std::mutex> l(mu_);
  return collector_;
}

}  // namespace netagent::datapath
