#include "tuners/applier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

namespace netagent::tuners {
namespace {

using ::testing::HasSubstr;

// An in-memory knob store: the applier's transaction logic is pure over
// KnobIo; the real kernel paths are covered by tests/integration/tuning_test.
class MemoryKnobs : public KnobIo {
 public:
  std::map<std::string, std::string> values;
  std::set<std::string> fail_write;
  std::map<std::string, std::string> kernel_keeps;  // the next write lands as this value instead
  std::vector<std::string> writes;

  absl::StatusOr<std::string> Read(const std::string& key) override {
    auto it = values.find(key);
    if (it == values.end()) return absl::NotFoundError(key);
    return it->second;
  }
  absl::Status Write(const std::string& key, const std::string& value) override {
    writes.push_back(key + "=" + value);
    if (fail_write.count(key)) return absl::InvalidArgumentError(key + ": Invalid argument");
    auto keep = kernel_keeps.find(key);
    values[key] = keep == kernel_keeps.end() ? value : keep->second;
    if (keep != kernel_keeps.end()) kernel_keeps.erase(keep);
    return absl::OkStatus();
  }
};

std::vector<Step> ThreeSteps() {
  return {{"net.core.somaxconn", "4096", "8192"},
          {"net.ipv4.tcp_fin_timeout", "60", "30"},
          {"net.ipv4.tcp_synack_retries", "5", "3"}};
}

MemoryKnobs Host() {
  MemoryKnobs m;
  m.values = {{"net.core.somaxconn", "4096"},
              {"net.ipv4.tcp_fin_timeout", "60"},
              {"net.ipv4.tcp_synack_retries", "5"}};
  return m;
}

TEST(Applier, WritesAllAndVerifies) {
  MemoryKnobs m = Host();
  ApplyReport r;
  ASSERT_TRUE(ApplySteps(m, ThreeSteps(), &r).ok());
  EXPECT_EQ(r.written, 3u);
  EXPECT_EQ(m.values["net.core.somaxconn"], "8192");
  EXPECT_EQ(m.values["net.ipv4.tcp_synack_retries"], "3");
}

TEST(Applier, AFailureHalfWayRestoresWhatWasWritten) {
  MemoryKnobs m = Host();
  const auto before = m.values;
  m.fail_write.insert("net.ipv4.tcp_synack_retries");
  ApplyReport r;
  absl::Status st = ApplySteps(m, ThreeSteps(), &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("nothing changed (2 knobs written before it restored)"));
  EXPECT_EQ(r.written, 2u);
  EXPECT_EQ(r.restored, 2u);
  EXPECT_EQ(m.values, before);
  // Restored in reverse order.
  EXPECT_EQ(m.writes.back(), "net.core.somaxconn=4096");
}

TEST(Applier, AStalePlanWritesNothing) {
  MemoryKnobs m = Host();
  m.values["net.ipv4.tcp_fin_timeout"] = "45";  // changed since the plan
  const auto before = m.values;
  absl::Status st = ApplySteps(m, ThreeSteps(), nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(st.message(), HasSubstr("someone changed it"));
  EXPECT_EQ(m.values, before);
}

TEST(Applier, AValueTheKernelDidNotKeepIsAFailureAndIsRestored) {
  MemoryKnobs m = Host();
  const auto before = m.values;
  m.kernel_keeps["net.ipv4.tcp_fin_timeout"] = "31";
  absl::Status st = ApplySteps(m, ThreeSteps(), nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(st.message(), HasSubstr("the kernel holds \"31\""));
  EXPECT_EQ(m.values, before);
}

TEST(Applier, AFailedRestoreIsReportedAsMixed) {
  MemoryKnobs m = Host();
  m.fail_write.insert("net.ipv4.tcp_synack_retries");
  ApplyReport r;
  // somaxconn can be written once, then refuses its restore.
  class OneShot : public MemoryKnobs {
   public:
    int somaxconn_writes = 0;
    absl::Status Write(const std::string& key, const std::string& value) override {
      if (key == "net.core.somaxconn" && ++somaxconn_writes > 1)
        return absl::PermissionDeniedError("EPERM");
      return MemoryKnobs::Write(key, value);
    }
  } o;
  o.values = m.values;
  o.fail_write = m.fail_write;
  absl::Status st = ApplySteps(o, ThreeSteps(), &r);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("RESTORE FAILED"));
  EXPECT_EQ(r.restore_errors.size(), 1u);
}

}  // namespace
}  // namespace netagent::tuners
