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
#include "kernel/libbpf_log.h"
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
constexpr const char* kOtherMaps[] = {
    "na_config",   "counters",  "rule_hits",      "events",         "samples",
    "tc_counters", "tc_events", kRuleMetaMaps[0], kRuleMetaMaps[1], kDpMetaMap};
// Maps of the TestPacket copy that are its own (the rest are the device's).
constexpr const char* kTesterPrivate[] = {"counters", "na_config", "rule_hits", "events",
                                          "samples"};
constexpr const char* kTcEvents[NA_TC_EV_MAX] = {"mss_clamped", "tcp_bad_options",
                                                 "mss_clamp_failed"};
constexpr const char* kTcProtos[] = {"other", "tcp", "udp", "icmp"};

// Marks a pick-up refused because the pins are another namespace's (a typed
// result: callers branch on the payload, never on the message).
constexpr char kForeignPins[] = "netagent.dev/datapath/foreign-pins";

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

absl::Status CreateRuleMetaMap(const std::string& dir, const char* name) {
  return PinNewMap(dir, name, BPF_MAP_TYPE_HASH, RuleMetaSize(), NA_MAX_RULES, BPF_F_NO_PREALLOC,
                   nullptr);
}

absl::Status CreateMetaMaps(const std::string& dir, const DpMeta& meta) {
  const std::string dp = EncodeDpMeta(meta);
  for (const char* name : kRuleMetaMaps) NETAGENT_RETURN_IF_ERROR(CreateRuleMetaMap(dir, name));
  return PinNewMap(dir, kDpMetaMap, BPF_MAP_TYPE_ARRAY, DpMetaSize(), 1, 0, &dp);
}

// The rules a rule_meta copy holds. Records that do not decode are deleted
// from it and counted in `unreadable`.
absl::StatusOr<RuleSet> ReadRuleMeta(const MapHandle& map, size_t* unreadable) {
  RuleSet out;
  NETAGENT_ASSIGN_OR_RETURN(std::vector<std::string> keys, map.Keys());
  for (const std::string& k : keys) {
    uint32_t id;
    std::memcpy(&id, k.data(), 4);
    std::optional<std::string> v = map.Get(k);
    auto rule = v ? DecodeRuleMeta(id, *v) : absl::DataLossError("vanished");
    if (!rule.ok()) {
      ++*unreadable;
      (void)map.Delete(k);
      continue;
    }
    out.rules[id] = *std::move(rule);
  }
  return out;
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

PollBackoff::Next PollBackoff::After(int rc, absl::Time now) {
  if (rc >= 0 || rc == -EINTR) {
    pause_ = absl::Milliseconds(10);
    failing_since_ = absl::InfiniteFuture();
    return {absl::ZeroDuration(), false};
  }
  if (failing_since_ == absl::InfiniteFuture()) failing_since_ = now;
  Next next{pause_, now - failing_since_ > absl::Minutes(1)};
  pause_ = std::min(pause_ * 2, absl::Seconds(1));
  return next;
}

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

// The TestPacket copy of a device's program: loaded once (at attach or
// pick-up) with the device's switches, sharing its rule tables; its counters,
// SYN buckets and config are its own. Runs are serialized and each leaves the
// private state as it found it.
class DatapathManager::Tester {
 public:
  static absl::StatusOr<std::unique_ptr<Tester>> Load(
      const Features& features, const std::function<const MapHandle*(const std::string&)>& live) {
    std::unique_ptr<Tester> t(new Tester());
    kernel::LibbpfLogCapture log;
    t->skel_ = netagent_xdp__open();
    if (t->skel_ == nullptr) return kernel::LastErrnoStatus("open the XDP program's test copy");
    const XdpSwitches sw = SwitchesFor(features);
    auto* r = t->skel_->rodata;
    r->en_allow_exact = sw.allow_exact;
    r->en_allow_cidr = sw.allow_cidr;
    r->en_block_exact = sw.block_exact;
    r->en_block_cidr = sw.block_cidr;
    r->en_ports = sw.ports;
    r->en_syn_guard = sw.syn_guard;
    r->en_global_guard = sw.global_guard;
    r->syn_ports_only = sw.syn_ports_only;
    r->en_rule_hits = 0;
    r->en_samples = 0;
    bpf_map* m;
    bpf_object__for_each_map(m, t->skel_->obj) {
      const std::string n = bpf_map__name(m);
      const bool own = std::find(std::begin(kTesterPrivate), std::end(kTesterPrivate), n) !=
                       std::end(kTesterPrivate);
      if (const MapHandle* h = own ? nullptr : live(n)) {
        if (bpf_map__reuse_fd(m, h->fd()) != 0)
          return kernel::LastErrnoStatus(absl::StrCat("share map ", n));
      } else if (n == "syn_src4" || n == "syn_src6" || n == "rule_hits") {
        bpf_map__set_max_entries(m, 16);  // private and small
      }
    }
    if (int err = netagent_xdp__load(t->skel_)) {
      return kernel::LoadError(err, "load the XDP program's test copy", log,
                               kernel::kNetProgramNeeds);
    }
    na_config cfg = ConfigFor(features);
    cfg.sample_every = 0;
    uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(t->skel_->maps.na_config), &zero, &cfg, BPF_ANY) != 0)
      return kernel::LastErrnoStatus("configure the test copy");
    for (const char* n : {"counters", "syn_src4", "syn_src6", "syn_global"}) {
      bpf_map* map = bpf_object__find_map_by_name(t->skel_->obj, n);
      if (map == nullptr) continue;
      NETAGENT_ASSIGN_OR_RETURN(MapHandle h, MapHandle::Of(bpf_map__fd(map), n));
      t->scratch_.emplace(n, h);
    }
    if (!t->scratch_.count("counters")) return absl::InternalError("test copy: no counters map");
    return t;
  }
  ~Tester() {
    if (skel_) netagent_xdp__destroy(skel_);
  }

  struct Outcome {
    bool dropped = false;
    uint32_t reason = 0;
  };
  absl::StatusOr<Outcome> Run(const std::string& frame) {
    std::lock_guard<std::mutex> l(mu_);
    std::string out(frame.size() + 256, '\0');
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 1);
    if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.netagent_xdp), &o) != 0)
      return kernel::LastErrnoStatus("BPF_PROG_TEST_RUN");
    Outcome r;
    r.dropped = o.retval == XDP_DROP;
    const MapHandle& counters = scratch_.at("counters");
    for (uint32_t idx = 0; idx < NA_CNT_MAX; ++idx) {
      std::optional<std::string> v = counters.Get(U32Key(idx));
      if (v && SumPerCpu(*v, 2)[0]) {
        r.reason = idx / 2;
        NETAGENT_RETURN_IF_ERROR(counters.Zero(U32Key(idx)));
      }
    }
    // The next run must again meet a source as new: no buckets left behind.
    for (const char* n : {"syn_src4", "syn_src6"}) {
      auto it = scratch_.find(n);
      if (it == scratch_.end()) continue;
      NETAGENT_RETURN_IF_ERROR(SyncMap(it->second, {}).status());
    }
    if (auto it = scratch_.find("syn_global"); it != scratch_.end())
      NETAGENT_RETURN_IF_ERROR(it->second.Zero(U32Key(0)));
    return r;
  }

 private:
  Tester() = default;
  netagent_xdp* skel_ = nullptr;
  std::map<std::string, MapHandle> scratch_;
  std::mutex mu_;
};

struct DatapathManager::Device {
  std::string name;
  std::unique_ptr<PinnedXdp> pinned;
  std::map<std::string, MapHandle> maps;
  std::string note;
  std::unique_ptr<Tester> tester;
  absl::Status tester_status;  // why there is no tester

  // Rule batches, one at a time. What the spare rule_meta copy holds; reread
  // from the map when a failed batch could not undo all of its writes.
  std::mutex write_mu;
  Cidr4Index cidr4;
  std::shared_ptr<const RuleSet> spare;
  bool spare_unsure = false;

  // What readers see: replaced whole by a batch.
  mutable std::mutex state_mu;
  std::shared_ptr<const RuleSet> rules;
  DpMeta meta;

  std::shared_ptr<const RuleSet> Rules() const {
    std::lock_guard<std::mutex> l(state_mu);
    return rules;
  }
  DpMeta Meta() const {
    std::lock_guard<std::mutex> l(state_mu);
    return meta;
  }

  // Drop samples: one reader of the ring buffer, fanned out to subscribers.
  size_t backlog_cap = 256;
  std::mutex smu;
  std::deque<DropSampleRecord> backlog;
  std::vector<std::shared_ptr<SampleQueue>> subs;
  std::string reader_error;  // smu; set when the reader gave up
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

  // Polls the ring buffer until stopped. A poll error is retried with a
  // growing pause (never a busy loop); one that persists for a minute ends
  // the reader, closes the subscribers' queues and is shown in the status.
  void ReadSamples(int fd) {
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
      GiveUpSamples(absl::StrCat("cannot read drop samples: ", std::strerror(errno)));
      return;
    }
    PollBackoff backoff;
    bool warned = false;
    while (!stop.load()) {
      const int n = ring_buffer__poll(rb, 200);
      const PollBackoff::Next next = backoff.After(n, absl::Now());
      if (next.pause == absl::ZeroDuration()) {
        warned = false;
        continue;
      }
      if (!warned) {
        spdlog::warn("datapath {}: reading drop samples: {}; retrying", name, std::strerror(-n));
        warned = true;
      }
      if (next.give_up) {
        GiveUpSamples(absl::StrCat("drop samples stopped: ", std::strerror(-n), " for a minute"));
        break;
      }
      absl::SleepFor(next.pause);
    }
    ring_buffer__free(rb);
  }

  void GiveUpSamples(const std::string& why) {
    spdlog::error("datapath {}: {}", name, why);
    std::lock_guard<std::mutex> l(smu);
    reader_error = why;
    for (auto& q : subs) q->Close();
    subs.clear();
  }

  void StartReader() {
    const MapHandle* rbm = map("samples");
    if (!rbm) return;
    const int fd = dup(rbm->fd());
    if (fd < 0) {
      GiveUpSamples(absl::StrCat("cannot read drop samples: ", std::strerror(errno)));
      return;
    }
    reader = std::thread([this, fd] {
      ReadSamples(fd);
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
  kernel::InstallLibbpfLog();
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
      const DpMeta meta = (*dev)->Meta();
      spdlog::info("datapath {}: picked up from {} (rules revision {}, {} rules){}", name,
                   (*dev)->pinned->info().pin_dir, meta.revision, (*dev)->Rules()->rules.size(),
                   (*dev)->note.empty() ? "" : absl::StrCat("; ", (*dev)->note));
      m->devices_[name] = std::move(*dev);
    } else if (dev.status().GetPayload(kForeignPins).has_value()) {
      // Another namespace's agent shares this pin root: its fast path is not
      // ours to manage or to remove.
      spdlog::error("datapath {}: {}; left alone", name, std::string(dev.status().message()));
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

absl::StatusOr<std::shared_ptr<DatapathManager::Device>> DatapathManager::Load(
    const std::string& name, const std::string& note) {
  NETAGENT_ASSIGN_OR_RETURN(std::unique_ptr<PinnedXdp> pinned,
                            OpenPinnedXdp(name, options_.pin_root));
  const std::string dir = pinned->info().pin_dir;
  std::vector<std::string> notes;
  if (!note.empty()) notes.push_back(note);
  bool reopen = false;
  if (pinned->map_fd(kDpMetaMap) < 0) {
    // An attach interrupted before its records were written.
    for (const char* n : kRuleMetaMaps) unlink(absl::StrCat(dir, "/", n).c_str());
    DpMeta meta;
    meta.attached_at_unix_ns = absl::ToUnixNanos(absl::Now());
    meta.netns_cookie = options_.netns_cookie;
    meta.note = "attach record lost; features shown are defaults";
    NETAGENT_RETURN_IF_ERROR(CreateMetaMaps(dir, meta));
    reopen = true;
  }
  for (const char* n : kRuleMetaMaps) {
    if (pinned->map_fd(n) < 0 && !reopen) {
      // Pinned by an agent that kept one copy.
      NETAGENT_RETURN_IF_ERROR(CreateRuleMetaMap(dir, n));
      reopen = true;
    }
  }
  if (reopen) {
    NETAGENT_ASSIGN_OR_RETURN(pinned, OpenPinnedXdp(name, options_.pin_root));
  }
  auto dev = std::make_shared<Device>();
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
  for (const char* n : {kDpMetaMap, kRuleMetaMaps[0], kRuleMetaMaps[1], "counters"}) {
    if (!dev->map(n)) return absl::DataLossError(absl::StrCat(dir, ": map ", n, " missing"));
  }
  std::optional<std::string> raw = dev->map(kDpMetaMap)->Get(U32Key(0));
  if (!raw) return absl::DataLossError(absl::StrCat(name, ": dp_meta unreadable"));
  NETAGENT_ASSIGN_OR_RETURN(DpMeta meta, DecodeDpMeta(*raw));
  if (meta.netns_cookie != 0 && options_.netns_cookie != 0 &&
      meta.netns_cookie != options_.netns_cookie) {
    absl::Status st = absl::FailedPreconditionError(
        absl::StrCat(dir, " was attached from network namespace cookie ", meta.netns_cookie,
                     ", this agent serves ", options_.netns_cookie,
                     ": two agents share a pin root (--bpf-pin-root)"));
    st.SetPayload(kForeignPins, absl::Cord(dir));
    return st;
  }
  if (!meta.note.empty()) notes.push_back(meta.note);

  size_t unreadable = 0, spare_unreadable = 0;
  NETAGENT_ASSIGN_OR_RETURN(RuleSet rules,
                            ReadRuleMeta(*dev->map(kRuleMetaMaps[meta.rules_slot]), &unreadable));
  NETAGENT_ASSIGN_OR_RETURN(
      RuleSet spare,
      ReadRuleMeta(*dev->map(kRuleMetaMaps[1 - meta.rules_slot]), &spare_unreadable));
  rules.revision = meta.revision;
  if (unreadable) notes.push_back(absl::StrCat(unreadable, " unreadable rule records dropped"));
  for (const auto& [id, r] : rules.rules) {
    if (r.prefix && r.prefix->family == 4 && !r.prefix->exact()) {
      uint32_t a;
      std::memcpy(&a, r.prefix->addr.data(), 4);
      dev->cidr4.Add(r.action == RuleAction::kAllow ? NA_LIST_ALLOW : NA_LIST_BLOCK, ntohl(a),
                     r.prefix->len, id);
    }
  }
  // The tables follow the rule records in force: an agent stopped in the
  // middle of a batch leaves them between the two revisions, and the batch
  // did not happen.
  size_t repaired = 0;
  const auto want = RenderTables(rules);
  for (const TableInfo& t : RuleTables()) {
    const MapHandle* h = dev->map(t.name);
    if (!h) continue;
    NETAGENT_ASSIGN_OR_RETURN(size_t n, SyncMap(*h, want.at(t.name)));
    repaired += n;
  }
  if (repaired) {
    notes.push_back(absl::StrCat("put back ", repaired,
                                 " table entries of an interrupted rule batch (revision ",
                                 meta.revision, " stands)"));
  }
  if (unreadable) {
    // Rules were lost: this is no revision any client was given.
    meta.revision++;
    rules.revision = meta.revision;
    NETAGENT_RETURN_IF_ERROR(dev->map(kDpMetaMap)->Put(U32Key(0), EncodeDpMeta(meta)));
  }
  for (const std::string& n : notes) absl::StrAppend(&dev->note, dev->note.empty() ? "" : "; ", n);
  auto tester = Tester::Load(meta.features, [&](const std::string& n) { return dev->map(n); });
  if (tester.ok()) {
    dev->tester = std::move(*tester);
  } else {
    dev->tester_status = tester.status();
    spdlog::warn("datapath {}: packet tests unavailable: {}", name,
                 std::string(tester.status().message()));
  }
  dev->rules = std::make_shared<const RuleSet>(std::move(rules));
  dev->spare = std::make_shared<const RuleSet>(std::move(spare));
  dev->meta = meta;
  dev->pinned = std::move(pinned);
  dev->StartReader();
  return dev;
}

absl::StatusOr<std::shared_ptr<DatapathManager::Device>> DatapathManager::Find(
    const std::string& device) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = devices_.find(device);
  if (it == devices_.end()) {
    return absl::NotFoundError(
        absl::StrCat("device ", device, ": the fast path is not attached (datapath attach)"));
  }
  return it->second;
}

DatapathManager::DeviceStatus DatapathManager::StatusOf(const Device& d) const {
  DeviceStatus s;
  s.info = d.pinned->info();
  s.meta = d.Meta();
  s.rules = d.Rules()->rules.size();
  s.note = d.note;
  std::lock_guard<std::mutex> l(const_cast<Device&>(d).smu);
  if (!d.reader_error.empty()) absl::StrAppend(&s.note, s.note.empty() ? "" : "; ", d.reader_error);
  return s;
}

absl::StatusOr<DatapathManager::DeviceStatus> DatapathManager::Attach(const AttachOptions& a) {
  NETAGENT_RETURN_IF_ERROR(ValidateFeatures(a.features, "features"));
  NETAGENT_RETURN_IF_ERROR(CheckBpffs(options_.pin_root));
  std::lock_guard<std::mutex> c(config_mu_);
  if (Find(a.device).ok()) {
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
  meta.netns_cookie = options_.netns_cookie;
  meta.note = pinned->info().note;
  const std::string dir = pinned->info().pin_dir;
  pinned.reset();
  absl::Status created = CreateMetaMaps(dir, meta);
  absl::StatusOr<std::shared_ptr<Device>> dev =
      created.ok() ? Load(a.device, "") : absl::StatusOr<std::shared_ptr<Device>>(created);
  if (!dev.ok()) {
    (void)DetachXdp(a.device, options_.pin_root);
    return dev.status();
  }
  DeviceStatus out = StatusOf(**dev);
  std::lock_guard<std::mutex> l(mu_);
  devices_[a.device] = std::move(*dev);
  return out;
}

absl::Status DatapathManager::Detach(const std::string& device) {
  std::lock_guard<std::mutex> c(config_mu_);
  NETAGENT_RETURN_IF_ERROR(Find(device).status());
  // Forgotten only once it is gone: a detach that fails leaves it managed.
  absl::Status st = DetachXdp(device, options_.pin_root);
  if (!st.ok() && !absl::IsNotFound(st)) return st;
  std::shared_ptr<Device> gone;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = devices_.find(device);
    gone = std::move(it->second);
    devices_.erase(it);
  }
  return absl::OkStatus();
}

std::vector<DatapathManager::DeviceStatus> DatapathManager::Status() {
  std::vector<std::shared_ptr<Device>> devices;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [name, d] : devices_) devices.push_back(d);
  }
  std::vector<DeviceStatus> out;
  for (const auto& d : devices) out.push_back(StatusOf(*d));
  return out;
}

absl::StatusOr<DatapathManager::UpdateResult> DatapathManager::UpdateRules(
    const std::string& device, uint64_t expected_revision, const std::vector<RuleEdit>& edits) {
  NETAGENT_ASSIGN_OR_RETURN(std::shared_ptr<Device> d, Find(device));
  std::lock_guard<std::mutex> w(d->write_mu);
  const std::shared_ptr<const RuleSet> current = d->Rules();
  NETAGENT_ASSIGN_OR_RETURN(RuleSet next,
                            ApplyEdits(*current, expected_revision, edits, options_.limits));
  if (d->spare_unsure) {
    size_t unreadable = 0;
    const DpMeta meta = d->Meta();
    NETAGENT_ASSIGN_OR_RETURN(
        RuleSet spare, ReadRuleMeta(*d->map(kRuleMetaMaps[1 - meta.rules_slot]), &unreadable));
    d->spare = std::make_shared<const RuleSet>(std::move(spare));
    d->spare_unsure = false;
  }
  Cidr4Index index = d->cidr4;
  DpMeta meta = d->Meta();
  const std::vector<MapWrite> writes = BatchWrites(*current, *d->spare, next, meta, index);
  if (absl::Status st = ApplyWrites([&d](const std::string& n) { return d->map(n); }, writes,
                                    options_.after_batch_write);
      !st.ok()) {
    // Undone as far as it could be; the spare copy is read again next time.
    d->spare_unsure = true;
    return st;
  }
  UpdateResult out;
  out.revision = next.revision;
  for (const auto& [id, r] : next.rules)
    if (!current->rules.count(id)) out.added.push_back(r);
  d->cidr4 = std::move(index);
  d->spare = current;
  meta.revision = next.revision;
  meta.rules_slot = 1 - meta.rules_slot;
  {
    std::lock_guard<std::mutex> l(d->state_mu);
    d->rules = std::make_shared<const RuleSet>(std::move(next));
    d->meta = meta;
  }
  return out;
}

absl::StatusOr<DatapathManager::RuleList> DatapathManager::ListRules(const std::string& device,
                                                                     uint32_t from_id,
                                                                     size_t limit) {
  NETAGENT_ASSIGN_OR_RETURN(std::shared_ptr<Device> d, Find(device));
  const std::shared_ptr<const RuleSet> rules = d->Rules();
  RuleList out;
  out.revision = rules->revision;
  const MapHandle* hits = d->map("rule_hits");
  for (auto it = rules->rules.lower_bound(from_id); it != rules->rules.end(); ++it) {
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

absl::StatusOr<std::shared_ptr<const RuleSet>> DatapathManager::Rules(const std::string& device) {
  NETAGENT_ASSIGN_OR_RETURN(std::shared_ptr<Device> d, Find(device));
  return d->Rules();
}

absl::StatusOr<DatapathManager::Stats> DatapathManager::GetStats(const std::string& device,
                                                                 bool per_cpu) {
  NETAGENT_ASSIGN_OR_RETURN(std::shared_ptr<Device> d, Find(device));
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
  NETAGENT_ASSIGN_OR_RETURN(std::shared_ptr<Device> d, Find(device));
  if (!d->tester) {
    return absl::Status(
        d->tester_status.code(),
        absl::StrCat(device, ": packet tests unavailable: ", d->tester_status.message()));
  }
  const std::shared_ptr<const RuleSet> rules = d->Rules();
  NETAGENT_ASSIGN_OR_RETURN(Tester::Outcome outcome, d->tester->Run(frame));
  TestResult r;
  r.dropped = outcome.dropped;
  r.reason = outcome.reason;
  const DecodedPacket pkt =
      DecodePacket(reinterpret_cast<const uint8_t*>(frame.data()), frame.size());
  r.summary = pkt.summary;
  if (r.reason == NA_R_ALLOW || r.reason == NA_R_BLOCK || r.reason == NA_R_BLOCK_PORT)
    r.rule = MatchedRule(*rules, r.reason, pkt);
  return r;
}

absl::StatusOr<std::shared_ptr<SampleQueue>> DatapathManager::SubscribeSamples(
    const std::string& device, bool live_only) {
  NETAGENT_ASSIGN_OR_RETURN(std::shared_ptr<Device> d, Find(device));
  auto q = std::make_shared<SampleQueue>(4096);
  std::lock_guard<std::mutex> sl(d->smu);
  if (!d->reader_error.empty()) {
    return absl::UnavailableError(absl::StrCat(device, ": ", d->reader_error));
  }
  if (!live_only)
    for (const auto& s : d->backlog) q->Push(s);
  d->subs.push_back(q);
  return q;
}

void DatapathManager::Unsubscribe(const std::string& device,
                                  const std::shared_ptr<SampleQueue>& q) {
  auto d = Find(device);
  if (!d.ok()) return;
  std::lock_guard<std::mutex> sl((*d)->smu);
  (*d)->subs.erase(std::remove((*d)->subs.begin(), (*d)->subs.end(), q), (*d)->subs.end());
}

}  // namespace netagent::datapath
