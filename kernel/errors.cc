#include "kernel/errors.h"

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace netagent::kernel {

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case 0:
      return absl::StatusCode::kOk;
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case ENOENT:
    case ENODEV:
    case ENXIO:
    case ESRCH:
      return absl::StatusCode::kNotFound;
    case EEXIST:
    case EBUSY:
      return absl::StatusCode::kFailedPrecondition;
    case EINVAL:
    case ERANGE:
    case E2BIG:
      return absl::StatusCode::kInvalidArgument;
    case EOPNOTSUPP:
    case ENOSYS:
    case EPROTONOSUPPORT:
    case EAFNOSUPPORT:
      return absl::StatusCode::kUnimplemented;
    case ENOMEM:
    case ENOBUFS:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EAGAIN:
    case EINTR:
    case ECONNREFUSED:
      return absl::StatusCode::kUnavailable;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status ErrnoStatus(int err, absl::string_view context) {
  return absl::Status(CodeForErrno(err),
                      absl::StrCat(context, ": ", strerror(err), " (errno ", err, ")"));
}

absl::Status LastErrnoStatus(absl::string_view context) { return ErrnoStatus(errno, context); }

namespace {
constexpr char kKindUrl[] = "netagent.dev/status-kind";
}  // namespace

absl::Status WithKind(absl::Status status, absl::string_view kind) {
  status.SetPayload(kKindUrl, absl::Cord(kind));
  return status;
}

bool HasKind(const absl::Status& status, absl::string_view kind) {
  auto k = status.GetPayload(kKindUrl);
  return k.has_value() && *k == kind;
}

}  // namespace netagent::kernel
