#include "datapath/manager.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "datapath/decode.h"
#include "kernel/errors.h"
#include "netagent_xdp.skel.h"
#include "spdlog/spdlog.h"

namespace netagent::datapath {
namespace {

constexpr const char* kReasons[NA_R_MAX] = {"pass",           "non_ip",
                                            "allow",          "block",
                                            "block_port",     "syn_ok",
                                            "syn_rate",       "syn_global",
                                            "fragment",       "malformed_eth",
                                            "malformed_vlan", "malformed_ipv4",
                                            "malformed_ipv6", "malformed_ipv6_ext",
                                            "malformed_l4"};
constexpr const char* kEvents[NA_EV_MAX] = {"sampled", "sample_capped", "sample_lost",
                                            "syn_new_source"};
// Maps the manager reads or writes besides the rule tables.
constexpr const char* kOtherMaps[] = {"na_config", "counters",   "rule_hits",
                                      "events",    "samples",    "tc_counters",
                                      "tc_events", kRuleMetaMap, kDpMetaMap};
constexpr const char* kTcEvents[NA_TC_EV_MAX] = {"mss_clamped", "tcp_bad_options",
                                                 "mss_clamp_failed"};
constexpr const char* kTcProtos[] = {"other", "tcp", "udp", "icmp"};

absl::Time KtimeToTime(uint64_t ktime_ns) {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  const int64_t mono_ns = mono.tv_sec * 1000000000ll + mono.tv_nsec;
  const int64_t real_ns = real.tv_sec * 1000000000ll + real.tv_nsec;
  return absl::FromUnixNanos(real_ns - mono_ns + static_cast<int64_t>(ktime_ns));
}

// The bpffs the pins live on: a clear error when it is not mounted.
absl::Status CheckBpffs(const std::string& root) {
  std::string path = root;
  struct statfs fs {};
  while (!path.empty() && statfs(path.c_str(), &fs) != 0) path = path.substr(0, path.rfind('/'));
  if (path.empty() || fs.f_type != BPF_FS_MAGIC) {
    return absl::FailedPreconditionError(
        absl::StrCat("no bpf filesystem at ", root,
                     " (mount -t bpf bpf /sys/fs/bpf): the fast path could not outlive the agent"));
  }
  return absl::OkStatus();
}

absl::Status PinNewMap(const std::string& dir, const char* name, bpf_map_type type,
                       uint32_t value_size, uint32_t entries, uint32_t flags,
                       const std::string* first_value) {
  LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);
  const int fd = bpf_map_create(type, name, 4, value_size, entries, &o);
  if (fd < 0) return kernel::LastErrnoStatus(absl::StrCat("create map ", name));
  absl::Status st;
  uint32_t zero = 0;
  if (first_value && bpf_map_update_elem(fd, &zero, first_value->data(), BPF_ANY) != 0) {
    st = kernel::LastErrnoStatus(absl::StrCat("write map ", name));
  } else if (bpf_obj_pin(fd, absl::StrCat(dir, "/", name).c_str()) != 0) {
    st = kernel::LastErrnoStatus(absl::StrCat("pin map ", name));
  }
  close(fd);
  return st;
}

absl::Status CreateMetaMaps(const std::string& dir, const DpMeta& meta) {
  const std::string dp = EncodeDpMeta(meta);
  NETAGENT_RETURN_IF_ERROR(PinNewMap(dir, kRuleMetaMap, BPF_MAP_TYPE_HASH, RuleMetaSize(),
                                     NA_MAX_RULES, BPF_F_NO_PREALLOC, nullptr));
  return PinNewMap(dir, kDpMetaMap, BPF_MAP_TYPE_ARRAY, DpMetaSize(), 1, 0, &dp);
}

bool Covers(const IpPrefix& net, const IpPrefix& addr) {
  if (net.family != addr.family) return false;
  for (uint32_t bit = 0; bit < net.len; bit += 8) {
    const uint32_t n = net.len - bit;
    const uint8_t mask = n >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - n));
    if ((net.addr[bit / 8] ^ addr.addr[bit / 8]) & mask) return false;
  }
  return true;
}

// The rule the program matched, found the way it looks: longest prefix of
// the list (an exact entry is the longest), or the destination port's rule.
std::optional<Rule> MatchedRule(const RuleSet& rules, uint32_t reason, const DecodedPacket& pkt) {
  const Rule* best = nullptr;
  for (const auto& [id, r] : rules.rules) {
    if (reason == NA_R_BLOCK_PORT) {
      if (r.port && r.port->port == pkt.dport) return r;
      continue;
    }
    const RuleAction want = reason == NA_R_ALLOW ? RuleAction::kAllow : RuleAction::kBlock;
    if (!r.prefix || r.action != want || !pkt.src || !Covers(*r.prefix, *pkt.src)) continue;
    if (!best || r.prefix->len > best->prefix->len) best = &r;
  }
  if (best) return *best;
  return std::nullopt;
}

}  // namespace

absl::string_view ReasonName(uint32_t reason) { return reason < NA_R_MAX ? kReasons[reason] : ""; }
absl::string_view EventName(uint32_t event) { return event < NA_EV_MAX ? kEvents[event] : ""; }
absl::string_view TcProtoName(uint32_t proto) { return proto < 4 ? kTcProtos[proto] : ""; }

void SampleQueue::Push(const DropSampleRecord& s) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return;
    if (q_.size() >= cap_) {
      q_.pop_front();
      ++overflowed_;
    }
    q_.push_back(s);
  }
  cv_.notify_all();
}

void SampleQueue::Close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

std::vector<DropSampleRecord> SampleQueue::Wait(absl::Duration timeout, size_t max) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, absl::ToChronoMilliseconds(timeout), [&] { return closed_ || !q_.empty(); });
  std::vector<DropSampleRecord> out;
  while (!q_.empty() && out.size() < max) {
    out.push_back(std::move(q_.front()));
    q_.pop_front();
  }
  return out;
}

bool SampleQueue::closed() const {
  std::lock_guard<std::mutex> l(mu_);
  return closed_;
}

uint64_t SampleQueue::overflowed() const {
  std::lock_guard<std::mutex> l(mu_);
  return overflowed_;
}

struct DatapathManager::Device {
  std::string name;
  std::unique_ptr<PinnedXdp> pinned;
  std::map<std::string, MapHandle> maps;
  DpMeta meta;
  RuleSet rules;
  Cidr4Index cidr4;
  std::string note;

  // Drop samples: one reader of the ring buffer, fanned out to subscribers.
  size_t backlog_cap = 256;
  std::mutex smu;
  std::deque<DropSampleRecord> backlog;
  std::vector<std::shared_ptr<SampleQueue>> subs;
  std::atomic<bool> stop{false};
  std::thread reader;

  const MapHandle* map(const std::string& n) const {
    auto it = maps.find(n);
    return it == maps.end() ? nullptr : &it->second;
  }

  void OnSample(const na_sample& s) {
    DropSampleRecord r;
    r.at = KtimeToTime(s.ts_ns);
    r.reason = std::string(ReasonName(s.reason));
    r.rule_id = s.rule_id;
    r.packet_length = s.pkt_len;
    r.rx_queue = s.rx_queue;
    const size_t cap = std::min<size_t>(s.cap_len, NA_SAMPLE_SNAP);
    r.data.assign(reinterpret_cast<const char*>(s.data), cap);
    r.summary = DecodePacket(s.data, cap).summary;
    std::lock_guard<std::mutex> l(smu);
    if (backlog.size() >= backlog_cap) backlog.pop_front();
    backlog.push_back(r);
    for (auto& q : subs) q->Push(r);
  }

  void StartReader() {
    const MapHandle* rbm = map("samples");
    if (!rbm) return;
    const int fd = dup(rbm->fd());
    reader = std::thread([this, fd] {
      ring_buffer* rb = ring_buffer__new(
          fd,
          [](void* ctx, void* data, size_t size) {
            if (size >= sizeof(na_sample)) {
              na_sample s;
              std::memcpy(&s, data, sizeof(s));
              static_cast<Device*>(ctx)->OnSample(s);
            }
            return 0;
          },
          this, nullptr);
      if (!rb) {
        spdlog::warn("datapath {}: cannot read drop samples: {}", name, std::strerror(errno));
      } else {
        while (!stop.load()) ring_buffer__poll(rb, 200);
        ring_buffer__free(rb);
      }
      close(fd);
    });
  }

  ~Device() {
    stop = true;
    if (reader.joinable()) reader.join();
    std::lock_guard<std::mutex> l(smu);
    for (auto& q : subs) q->Close();
  }
};

absl::StatusOr<std::unique_ptr<DatapathManager>> DatapathManager::Start(Options options) {
  std::unique_ptr<DatapathManager> m(new DatapathManager(std::move(options)));
  const std::string& root = m->options_.pin_root;
  DIR* d = opendir(root.c_str());
  if (d == nullptr) return m;  // nothing pinned yet
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  for (const std::string& name : names) {
    auto dev = m->Load(name, "");
    if (dev.ok()) {
      spdlog::info("datapath {}: picked up from {} (rules revision {}, {} rules){}", name,
                   (*dev)->pinned->info().pin_dir, (*dev)->meta.revision,
                   (*dev)->rules.rules.size(),
                   (*dev)->note.empty() ? "" : absl::StrCat("; ", (*dev)->note));
      m->devices_[name] = std::move(*dev);
    } else if (absl::IsNotFound(dev.status()) || absl::IsFailedPrecondition(dev.status())) {
      // The interface went away (or came back as another): its fast path is gone.
      spdlog::warn("datapath {}: {}; removing its pins", name, std::string(dev.status().message()));
      if (auto st = DetachXdp(name, root); !st.ok())
        spdlog::warn("datapath {}: {}", name, std::string(st.message()));
    } else {
      return absl::Status(dev.status().code(),
                          absl::StrCat("datapath ", name, ": ", dev.status().message()));
    }
  }
  return m;
}

DatapathManager::DatapathManager(Options o) : options_(std::move(o)) {}
DatapathManager::~DatapathManager() = default;

absl::StatusOr<std::unique_ptr<DatapathManager::Device>> DatapathManager::Load(
    const std::string& name, const std::string& note) {
  NETAGENT_ASSIGN_OR_RETURN(std::unique_ptr<PinnedXdp> pinned,
                            OpenPinnedXdp(name, options_.pin_root));
  std::vector<std::string> notes;
  if (!note.empty()) notes.push_back(note);
  if (pinned->map_fd(kDpMetaMap) < 0) {
    // An attach interrupted before its records were written.
    unlink(absl::StrCat(pinned->info().pin_dir, "/", kRuleMetaMap).c_str());
    DpMeta meta;
    meta.attached_at_unix_ns = absl::ToUnixNanos(absl::Now());
    meta.note = "attach record lost; features shown are defaults";
    NETAGENT_RETURN_IF_ERROR(CreateMetaMaps(pinned->info().pin_dir, meta));
    NETAGENT_ASSIGN_OR_RETURN(pinned, OpenPinnedXdp(name, options_.pin_root));
  }
  auto dev = std::make_unique<Device>();
  dev->name = name;
  dev->backlog_cap = options_.sample_backlog;
  for (const TableInfo& t : RuleTables()) {
    auto h = MapHandle::Of(pinned->map_fd(t.name), t.name);
    if (h.ok()) dev->maps.emplace(t.name, *h);
  }
  for (const char* n : kOtherMaps) {
    auto h = MapHandle::Of(pinned->map_fd(n), n);
    if (h.ok()) dev->maps.emplace(n, *h);
  }
  for (const char* n : {kDpMetaMap, kRuleMetaMap, "counters"}) {
    if (!dev->map(n)) {
      return absl::DataLossError(absl::StrCat(pinned->info().pin_dir, ": map ", n, " missing"));
    }
  }
  std::optional<std::string> raw = dev->map(kDpMetaMap)->Get(U32Key(0));
  if (!raw) return absl::DataLossError(absl::StrCat(name, ": dp_meta unreadable"));
  NETAGENT_ASSIGN_OR_RETURN(dev->meta, DecodeDpMeta(*raw));
  if (!dev->meta.note.empty()) notes.push_back(dev->meta.note);

  dev->rules.revision = dev->meta.revision;
  const MapHandle& rm = *dev->map(kRuleMetaMap);
  NETAGENT_ASSIGN_OR_RETURN(std::vector<std::string> ids, rm.Keys());
  size_t unreadable = 0;
  for (const std::string& k : ids) {
    uint32_t id;
    std::memcpy(&id, k.data(), 4);
    std::optional<std::string> v = rm.Get(k);
    auto rule = v ? DecodeRuleMeta(id, *v) : absl::DataLossError("vanished");
    if (!rule.ok()) {
      ++unreadable;
      (void)rm.Delete(k);
      continue;
    }
    dev->rules.rules[id] = *rule;
  }
  if (unreadable) notes.push_back(absl::StrCat(unreadable, " unreadable rule records dropped"));
  for (const auto& [id, r] : dev->rules.rules) {
    if (r.prefix && r.prefix->family == 4 && !r.prefix->exact()) {
      uint32_t a;
      std::memcpy(&a, r.prefix->addr.data(), 4);
      dev->cidr4.Add(r.action == RuleAction::kAllow ? NA_LIST_ALLOW : NA_LIST_BLOCK, ntohl(a),
                     r.prefix->len, id);
    }
  }
  // The tables follow rule_meta: an agent stopped in the middle of a batch
  // leaves them between two revisions.
  size_t repaired = 0;
  const auto want = RenderTables(dev->rules);
  for (const TableInfo& t : RuleTables()) {
    const MapHandle* h = dev->map(t.name);
    if (!h) continue;
    NETAGENT_ASSIGN_OR_RETURN(size_t n, SyncMap(*h, want.at(t.name)));
    repaired += n;
  }
  if (repaired || unreadable) {
    dev->meta.revision++;
    dev->rules.revision = dev->meta.revision;
    NETAGENT_RETURN_IF_ERROR(dev->map(kDpMetaMap)->Put(U32Key(0), EncodeDpMeta(dev->meta)));
    notes.push_back(absl::StrCat("repaired ", repaired, " table entries from the rule records"));
  }
  for (const std::string& n : notes) absl::StrAppend(&dev->note, dev->note.empty() ? "" : "; ", n);
  dev->pinned = std::move(pinned);
  dev->StartReader();
  return dev;
}

absl::StatusOr<DatapathManager::Device*> DatapathManager::Find(const std::string& device) {
  auto it = devices_.find(device);
  if (it == devices_.end()) {
    return absl::NotFoundError(
        absl::StrCat("device ", device, ": the fast path is not attached (datapath attach)"));
  }
  return it->second.get();
}

DatapathManager::DeviceStatus DatapathManager::StatusOf(const Device& d) const {
  DeviceStatus s;
  s.info = d.pinned->info();
  s.meta = d.meta;
  s.rules = d.rules.rules.size();
  s.note = d.note;
  return s;
}

absl::StatusOr<DatapathManager::DeviceStatus> DatapathManager::Attach(const AttachOptions& a) {
  NETAGENT_RETURN_IF_ERROR(ValidateFeatures(a.features, "features"));
  NETAGENT_RETURN_IF_ERROR(CheckBpffs(options_.pin_root));
  std::lock_guard<std::mutex> l(mu_);
  if (devices_.count(a.device)) {
    return absl::FailedPreconditionError(
        absl::StrCat(a.device, ": the fast path is already attached; detach it first"));
  }
  AttachSpec spec;
  spec.device = a.device;
  spec.mode = a.mode;
  spec.switches = SwitchesFor(a.features);
  spec.config = ConfigFor(a.features);
  spec.force = a.force;
  spec.tc.accounting = a.features.class_accounting;
  if (a.features.clamp_mss) {
    // One MTU, two families: IPv6's header is 20 bytes longer.
    spec.tc.clamp_mss4 = static_cast<uint16_t>(a.features.clamp_mss);
    spec.tc.clamp_mss6 = static_cast<uint16_t>(a.features.clamp_mss - 20);
  }
  NETAGENT_ASSIGN_OR_RETURN(std::unique_ptr<PinnedXdp> pinned, AttachXdp(spec, options_.pin_root));
  DpMeta meta;
  meta.attached_at_unix_ns = absl::ToUnixNanos(absl::Now());
  meta.requested_mode = a.mode;
  meta.features = a.features;
  meta.note = pinned->info().note;
  const std::string dir = pinned->info().pin_dir;
  pinned.reset();
  absl::Status created = CreateMetaMaps(dir, meta);
  absl::StatusOr<std::unique_ptr<Device>> dev =
      created.ok() ? Load(a.device, "") : absl::StatusOr<std::unique_ptr<Device>>(created);
  if (!dev.ok()) {
    (void)DetachXdp(a.device, options_.pin_root);
    return dev.status();
  }
  Device* d = dev->get();
  devices_[a.device] = std::move(*dev);
  return StatusOf(*d);
}

absl::Status DatapathManager::Detach(const std::string& device) {
  std::unique_ptr<Device> gone;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = devices_.find(device);
    if (it == devices_.end()) {
      return absl::NotFoundError(
          absl::StrCat("device ", device, ": the fast path is not attached"));
    }
    gone = std::move(it->second);
    devices_.erase(it);
    gone->pinned.reset();
    absl::Status st = DetachXdp(device, options_.pin_root);
    if (!st.ok() && !absl::IsNotFound(st)) return st;
  }
  return absl::OkStatus();
}

std::vector<DatapathManager::DeviceStatus> DatapathManager::Status() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<DeviceStatus> out;
  for (const auto& [name, d] : devices_) out.push_back(StatusOf(*d));
  return out;
}

absl::StatusOr<DatapathManager::UpdateResult> DatapathManager::UpdateRules(
    const std::string& device, uint64_t expected_revision, const std::vector<RuleEdit>& edits) {
  std::lock_guard<std::mutex> l(mu_);
  NETAGENT_ASSIGN_OR_RETURN(Device * d, Find(device));
  NETAGENT_ASSIGN_OR_RETURN(RuleSet next,
                            ApplyEdits(d->rules, expected_revision, edits, options_.limits));
  Cidr4Index index = d->cidr4;
  std::vector<MapWrite> writes = RuleChanges(d->rules, next, index);
  DpMeta meta = d->meta;
  meta.revision = next.revision;
  writes.push_back({MapWrite::kPut, kDpMetaMap, U32Key(0), EncodeDpMeta(meta)});
  NETAGENT_RETURN_IF_ERROR(ApplyWrites([d](const std::string& n) { return d->map(n); }, writes));
  UpdateResult out;
  out.revision = next.revision;
  for (const auto& [id, r] : next.rules)
    if (!d->rules.rules.count(id)) out.added.push_back(r);
  d->rules = std::move(next);
  d->cidr4 = std::move(index);
  d->meta = meta;
  return out;
}

absl::StatusOr<DatapathManager::RuleList> DatapathManager::ListRules(const std::string& device,
                                                                     uint32_t from_id,
                                                                     size_t limit) {
  std::lock_guard<std::mutex> l(mu_);
  NETAGENT_ASSIGN_OR_RETURN(Device * d, Find(device));
  RuleList out;
  out.revision = d->rules.revision;
  const MapHandle* hits = d->map("rule_hits");
  for (auto it = d->rules.rules.lower_bound(from_id); it != d->rules.rules.end(); ++it) {
    if (out.rules.size() >= limit) {
      out.next_id = it->first;
      break;
    }
    RuleHits h{it->second};
    if (hits) {
      if (std::optional<std::string> v = hits->Get(U32Key(it->first))) {
        std::vector<uint64_t> sum = SumPerCpu(*v, 2);
        h.packets = sum[0];
        h.bytes = sum[1];
      }
    }
    out.rules.push_back(std::move(h));
  }
  return out;
}

absl::StatusOr<DatapathManager::Stats> DatapathManager::GetStats(const std::string& device,
                                                                 bool per_cpu) {
  std::lock_guard<std::mutex> l(mu_);
  NETAGENT_ASSIGN_OR_RETURN(Device * d, Find(device));
  Stats out;
  const MapHandle& counters = *d->map("counters");
  for (uint32_t idx = 0; idx < NA_CNT_MAX; ++idx) {
    std::optional<std::string> v = counters.Get(U32Key(idx));
    if (!v) return absl::InternalError(absl::StrCat(device, ": counters unreadable"));
    const auto cpus = SplitPerCpu(*v, 2);
    VerdictCount total{idx / 2, (idx & 1) != 0, 0, 0};
    for (size_t c = 0; c < cpus.size(); ++c) {
      total.packets += cpus[c][0];
      total.bytes += cpus[c][1];
      if (per_cpu) {
        if (out.per_cpu.size() < cpus.size()) out.per_cpu.resize(cpus.size());
        if (cpus[c][0]) out.per_cpu[c].push_back({idx / 2, (idx & 1) != 0, cpus[c][0], cpus[c][1]});
      }
    }
    if (total.packets) out.total.push_back(total);
  }
  if (const MapHandle* ev = d->map("events")) {
    for (uint32_t e = 0; e < NA_EV_MAX; ++e) {
      std::optional<std::string> v = ev->Get(U32Key(e));
      out.events.emplace_back(std::string(EventName(e)), v ? SumPerCpu(*v, 1)[0] : 0);
    }
  }
  if (const MapHandle* ev = d->map("tc_events")) {
    for (uint32_t e = 0; e < NA_TC_EV_MAX; ++e) {
      std::optional<std::string> v = ev->Get(U32Key(e));
      out.events.emplace_back(kTcEvents[e], v ? SumPerCpu(*v, 1)[0] : 0);
    }
  }
  if (const MapHandle* tc = d->map("tc_counters")) {
    for (uint32_t dir = 0; dir < 2; ++dir) {
      for (uint32_t proto = 0; proto < 4; ++proto) {
        for (uint32_t cls = 0; cls < NA_TC_MAX_CLASS; ++cls) {
          std::optional<std::string> v = tc->Get(U32Key(NA_TC_CNT_IDX(dir, proto, cls)));
          if (!v) continue;
          const std::vector<uint64_t> sum = SumPerCpu(*v, 2);
          if (sum[0]) out.classes.push_back({dir == NA_TC_EGRESS, proto, cls, sum[0], sum[1]});
        }
      }
    }
  }
  return out;
}

absl::StatusOr<DatapathManager::TestResult> DatapathManager::TestPacket(const std::string& device,
                                                                        const std::string& frame) {
  if (frame.size() < 14 || frame.size() > 3000) {
    return absl::InvalidArgumentError(
        absl::StrCat("packet: ", frame.size(),
                     " bytes; a frame of 14..3000 bytes from the Ethernet "
                     "header on"));
  }
  std::lock_guard<std::mutex> l(mu_);
  NETAGENT_ASSIGN_OR_RETURN(Device * d, Find(device));
  libbpf_set_print(nullptr);
  netagent_xdp* skel = netagent_xdp__open();
  if (skel == nullptr) return kernel::LastErrnoStatus("open the XDP program");
  struct Closer {
    netagent_xdp* s;
    ~Closer() { netagent_xdp__destroy(s); }
  } closer{skel};
  const XdpSwitches sw = SwitchesFor(d->meta.features);
  skel->rodata->en_allow_exact = sw.allow_exact;
  skel->rodata->en_allow_cidr = sw.allow_cidr;
  skel->rodata->en_block_exact = sw.block_exact;
  skel->rodata->en_block_cidr = sw.block_cidr;
  skel->rodata->en_ports = sw.ports;
  skel->rodata->en_syn_guard = sw.syn_guard;
  skel->rodata->en_global_guard = sw.global_guard;
  skel->rodata->syn_ports_only = sw.syn_ports_only;
  skel->rodata->en_rule_hits = 0;
  skel->rodata->en_samples = 0;
  bpf_map* m;
  bpf_object__for_each_map(m, skel->obj) {
    const std::string n = bpf_map__name(m);
    if (const MapHandle* live = d->map(n); live && n != "counters" && n != "na_config" &&
                                           n != "rule_hits" && n != "events" && n != "samples") {
      if (bpf_map__reuse_fd(m, live->fd()) != 0)
        return kernel::LastErrnoStatus(absl::StrCat("share map ", n));
    } else if (n == "syn_src4" || n == "syn_src6" || n == "rule_hits") {
      bpf_map__set_max_entries(m, 16);  // private and small
    }
  }
  if (int err = netagent_xdp__load(skel)) {
    errno = -err;
    return kernel::LastErrnoStatus("load the test copy of the XDP program");
  }
  na_config cfg = ConfigFor(d->meta.features);
  cfg.sample_every = 0;
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.na_config), &zero, &cfg, BPF_ANY) != 0)
    return kernel::LastErrnoStatus("configure the test copy");
  std::string out(frame.size() + 256, '\0');
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.netagent_xdp), &o) != 0)
    return kernel::LastErrnoStatus("BPF_PROG_TEST_RUN");
  TestResult r;
  r.dropped = o.retval == XDP_DROP;
  auto counters = MapHandle::Of(bpf_map__fd(skel->maps.counters), "counters");
  if (!counters.ok()) return counters.status();
  for (uint32_t idx = 0; idx < NA_CNT_MAX; ++idx) {
    std::optional<std::string> v = counters->Get(U32Key(idx));
    if (v && SumPerCpu(*v, 2)[0]) r.reason = idx / 2;
  }
  const DecodedPacket pkt =
      DecodePacket(reinterpret_cast<const uint8_t*>(frame.data()), frame.size());
  r.summary = pkt.summary;
  if (r.reason == NA_R_ALLOW || r.reason == NA_R_BLOCK || r.reason == NA_R_BLOCK_PORT)
    r.rule = MatchedRule(d->rules, r.reason, pkt);
  return r;
}

absl::StatusOr<std::shared_ptr<SampleQueue>> DatapathManager::SubscribeSamples(
    const std::string& device, bool live_only) {
  std::lock_guard<std::mutex> l(mu_);
  NETAGENT_ASSIGN_OR_RETURN(Device * d, Find(device));
  auto q = std::make_shared<SampleQueue>(4096);
  std::lock_guard<std::mutex> sl(d->smu);
  if (!live_only)
    for (const auto& s : d->backlog) q->Push(s);
  d->subs.push_back(q);
  return q;
}

void DatapathManager::Unsubscribe(const std::string& device,
                                  const std::shared_ptr<SampleQueue>& q) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = devices_.find(device);
  if (it == devices_.end()) return;
  Device& d = *it->second;
  std::lock_guard<std::mutex> sl(d.smu);
  d.subs.erase(std::remove(d.subs.begin(), d.subs.end(), q), d.subs.end());
}

}  // namespace netagent::datapath
