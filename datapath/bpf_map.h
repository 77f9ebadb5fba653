// Byte-level access to a BPF map by fd (sizes and type from the kernel), and
// the two ways the agent changes the fast path's tables: a batch of writes
// that is undone in reverse when one fails, and a sync that makes a map hold
// exactly a desired content.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "datapath/render.h"

namespace netagent::datapath {

class MapHandle {
 public:
  // Borrows `fd`.
  static absl::StatusOr<MapHandle> Of(int fd, absl::string_view name);

  // Values of per-CPU maps are every possible CPU's value, each padded to 8.
  int fd() const { return fd_; }
  size_t value_bytes() const { return value_bytes_; }
  size_t key_size() const { return key_size_; }
  bool per_cpu() const { return per_cpu_; }
  bool array() const { return array_; }

  std::optional<std::string> Get(const std::string& key) const;
  absl::Status Put(const std::string& key, const std::string& value) const;
  // ARRAY maps: writes zeros. Deleting an absent key is not an error.
  absl::Status Delete(const std::string& key) const;
  absl::Status Zero(const std::string& key) const;
  absl::StatusOr<std::vector<std::string>> Keys() const;

 private:
  int fd_ = -1;
  std::string name_;
  size_t key_size_ = 0, value_size_ = 0, value_bytes_ = 0;
  bool per_cpu_ = false, array_ = false;
};

// Finds a map by name; nullptr when the program has none.
using MapLookup = std::function<const MapHandle*(const std::string& name)>;

// Applies `writes` in order; when one fails, restores what the earlier ones
// overwrote, in reverse, and returns the failure (with the map and key).
// `after_each` (tests: a crash at every point of a batch) is called with the
// number of writes done so far.
absl::Status ApplyWrites(const MapLookup& maps, const std::vector<MapWrite>& writes,
                         const std::function<void(size_t)>& after_each = nullptr);

// Makes `map` hold exactly `want` (ARRAY maps: entries not in `want` zeroed).
// Returns how many entries it changed.
absl::StatusOr<size_t> SyncMap(const MapHandle& map,
                               const std::map<std::string, std::string>& want);

// Per-CPU values summed as u64 fields: `fields` u64s per CPU.
std::vector<uint64_t> SumPerCpu(const std::string& value, size_t fields);
std::vector<std::vector<uint64_t>> SplitPerCpu(const std::string& value, size_t fields);

}  // namespace netagent::datapath
