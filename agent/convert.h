// The service layer's conversions: domain types <-> netagent.v1 messages, and
// request validation that names the offending field.
#pragma once

#include <google/protobuf/duration.pb.h>
#include <grpcpp/support/status.h>

#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/auth.h"
#include "collectors/counters.h"
#include "collectors/ethtool.h"
#include "collectors/softnet.h"
#include "datapath/drop_collector.h"
#include "datapath/kernel_drops.h"
#include "netagent/v1/common.pb.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/telemetry.pb.h"

namespace netagent::agent {

inline constexpr absl::Duration kMaxWindow = absl::Minutes(10);
inline constexpr absl::Duration kMinWatchInterval = absl::Milliseconds(100);
inline constexpr absl::Duration kMaxWatchInterval = absl::Hours(1);
inline constexpr int kMaxDropFilters = 64;
inline constexpr uint32_t kDefaultDropSamples = 20;
inline constexpr uint32_t kMaxDropSamples = 256;

grpc::Status ToGrpc(const absl::Status& status);

// A google.protobuf.Duration from a request: INVALID_ARGUMENT naming `field`
// when it is negative, malformed (seconds and nanos of different signs, nanos
// out of range) or above `max`. Unset or zero gives nullopt.
absl::StatusOr<std::optional<absl::Duration>> DurationFromRequest(
    bool has, const google::protobuf::Duration& d, absl::string_view field, absl::Duration max);

// Watch interval: default 1s, within [kMinWatchInterval, kMaxWatchInterval].
absl::StatusOr<absl::Duration> WatchInterval(const netagent::v1::WatchRequest& req);

// GetDropReasons: what can be checked before the collector is there (filter
// counts, device names, max_samples), naming the field.
absl::Status CheckDropReasonsRequest(const netagent::v1::GetDropReasonsRequest& req);
// The query, reasons resolved by this kernel's names (INVALID_ARGUMENT
// naming the field for one it does not have).
absl::StatusOr<datapath::KernelDropQuery> DropQueryFromRequest(
    const netagent::v1::GetDropReasonsRequest& req, const datapath::DropReasonNames& names);

void ToProto(absl::Time t, google::protobuf::Timestamp* out);
void ToProto(absl::Duration d, google::protobuf::Duration* out);
void ToProto(const collectors::SoftnetReport& report, netagent::v1::GetSoftnetResponse* out);
void ToProto(const collectors::CounterReport& report, netagent::v1::GetCountersResponse* out);
void ToProto(const datapath::KernelDropReport& report, const datapath::DropCollectorStatus& status,
             netagent::v1::GetDropReasonsResponse* out);
void ToProto(const Caller& caller, const RoleDecision& decision, netagent::v1::Caller* out);
void ToProto(const collectors::NamedValues& values,
             google::protobuf::RepeatedPtrField<netagent::v1::NamedValue>* out);

}  // namespace netagent::agent
