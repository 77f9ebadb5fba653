#include "datapath/bpf_map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kernel/errors.h"

namespace netagent::datapath {

absl::StatusOr<MapHandle> MapHandle::Of(int fd, absl::string_view name) {
  if (fd < 0) return absl::NotFoundError(absl::StrCat("map ", name, ": not in this program"));
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return kernel::LastErrnoStatus(absl::StrCat("map ", name, ": info"));
  MapHandle m;
  m.fd_ = fd;
  m.name_ = std::string(name);
  m.key_size_ = info.key_size;
  m.value_size_ = info.value_size;
  switch (info.type) {
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      m.array_ = true;
      [[fallthrough]];
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
      m.per_cpu_ = true;
      break;
    case BPF_MAP_TYPE_ARRAY:
      m.array_ = true;
      break;
    default:
      break;
  }
  const int ncpu = libbpf_num_possible_cpus();
  m.value_bytes_ =
      m.per_cpu_ ? ((m.value_size_ + 7) / 8 * 8) * (ncpu > 0 ? ncpu : 1) : m.value_size_;
  return m;
}

std::optional<std::string> MapHandle::Get(const std::string& key) const {
  std::string v(value_bytes_, '\0');
  if (key.size() != key_size_ || bpf_map_lookup_elem(fd_, key.data(), v.data()) != 0)
    return std::nullopt;
  return v;
}

absl::Status MapHandle::Put(const std::string& key, const std::string& value) const {
  if (key.size() != key_size_ || value.size() != value_bytes_) {
    return absl::InternalError(absl::StrCat("map ", name_, ": key ", key.size(), "/", key_size_,
                                            " value ", value.size(), "/", value_bytes_, " bytes"));
  }
  if (bpf_map_update_elem(fd_, key.data(), value.data(), BPF_ANY) != 0) {
    return kernel::LastErrnoStatus(
        absl::StrCat("map ", name_, ": write key ", absl::BytesToHexString(key)));
  }
  return absl::OkStatus();
}

absl::Status MapHandle::Zero(const std::string& key) const {
  return Put(key, std::string(value_bytes_, '\0'));
}

absl::Status MapHandle::Delete(const std::string& key) const {
  if (array_) return Zero(key);
  if (key.size() != key_size_)
    return absl::InternalError(absl::StrCat("map ", name_, ": key size"));
  if (bpf_map_delete_elem(fd_, key.data()) != 0 && errno != ENOENT) {
    return kernel::LastErrnoStatus(
        absl::StrCat("map ", name_, ": delete key ", absl::BytesToHexString(key)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MapHandle::Keys() const {
  std::vector<std::string> out;
  std::string cur(key_size_, '\0'), next(key_size_, '\0');
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd_, prev, next.data()) == 0) {
    out.push_back(next);
    cur = next;
    prev = cur.data();
  }
  if (errno != ENOENT) return kernel::LastErrnoStatus(absl::StrCat("map ", name_, ": walk"));
  return out;
}

absl::Status ApplyWrites(const MapLookup& maps, const std::vector<MapWrite>& writes,
                         const std::function<void(size_t)>& after_each) {
  struct Undo {
    const MapHandle* map;
    std::string key;
    std::optional<std::string> old;
  };
  std::vector<Undo> undo;
  undo.reserve(writes.size());
  absl::Status failed;
  for (const MapWrite& w : writes) {
    const MapHandle* m = maps(w.map);
    if (m == nullptr) {
      failed = absl::FailedPreconditionError(absl::StrCat("the program has no map ", w.map));
      break;
    }
    undo.push_back({m, w.key, m->Get(w.key)});
    switch (w.op) {
      case MapWrite::kPut:
        failed = m->Put(w.key, w.value);
        break;
      case MapWrite::kDelete:
        failed = m->Delete(w.key);
        break;
      case MapWrite::kZero:
        failed = m->Zero(w.key);
        break;
    }
    if (!failed.ok()) break;
    if (after_each) after_each(undo.size());
  }
  if (failed.ok()) return failed;
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    // Best effort: the first failure is what the caller needs to see.
    if (it->old) {
      (void)it->map->Put(it->key, *it->old);
    } else {
      (void)it->map->Delete(it->key);
    }
  }
  return failed;
}

absl::StatusOr<size_t> SyncMap(const MapHandle& map,
                               const std::map<std::string, std::string>& want) {
  size_t changed = 0;
  if (map.array()) {
    // Every index exists; zero those with a value that should have none.
    const std::string zero(map.value_bytes(), '\0');
    NETAGENT_ASSIGN_OR_RETURN(std::vector<std::string> keys, map.Keys());
    for (const std::string& k : keys) {
      if (want.count(k)) continue;
      std::optional<std::string> v = map.Get(k);
      if (v && *v != zero) {
        NETAGENT_RETURN_IF_ERROR(map.Zero(k));
        ++changed;
      }
    }
  } else {
    NETAGENT_ASSIGN_OR_RETURN(std::vector<std::string> keys, map.Keys());
    for (const std::string& k : keys) {
      if (want.count(k)) continue;
      NETAGENT_RETURN_IF_ERROR(map.Delete(k));
      ++changed;
    }
  }
  for (const auto& [k, v] : want) {
    std::optional<std::string> have = map.Get(k);
    if (have && *have == v) continue;
    NETAGENT_RETURN_IF_ERROR(map.Put(k, v));
    ++changed;
  }
  return changed;
}

std::vector<std::vector<uint64_t>> SplitPerCpu(const std::string& value, size_t fields) {
  std::vector<std::vector<uint64_t>> out;
  const size_t stride = fields * 8;
  for (size_t off = 0; stride && off + stride <= value.size(); off += stride) {
    std::vector<uint64_t> cpu(fields);
    std::memcpy(cpu.data(), value.data() + off, stride);
    out.push_back(std::move(cpu));
  }
  return out;
}

std::vector<uint64_t> SumPerCpu(const std::string& value, size_t fields) {
  std::vector<uint64_t> sum(fields);
  for (const auto& cpu : SplitPerCpu(value, fields))
    for (size_t i = 0; i < fields; ++i) sum[i] += cpu[i];
  return sum;
}

}  // namespace netagent::datapath
