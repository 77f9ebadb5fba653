// Turning kernel errors into absl::Status: errno maps onto the canonical code a
// gRPC caller understands, and the message keeps the errno name and number.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace netagent::kernel {

absl::StatusCode CodeForErrno(int err);

// "<context>: <strerror> (errno N)" with the mapped code.
absl::Status ErrnoStatus(int err, absl::string_view context);

// ErrnoStatus(errno, context) for the last failed libc call.
absl::Status LastErrnoStatus(absl::string_view context);

// A machine-readable kind carried by a status (an absl payload), for the
// outcomes callers branch on: they test the kind, never the message text.
absl::Status WithKind(absl::Status status, absl::string_view kind);
bool HasKind(const absl::Status& status, absl::string_view kind);

}  // namespace netagent::kernel

// Evaluates expr (an absl::Status or StatusOr) and returns its status from the
// enclosing function when it is not OK.
#define NETAGENT_RETURN_IF_ERROR(expr)            \
  do {                                            \
    if (auto _st = (expr); !_st.ok()) return _st; \
  } while (0)

#define NETAGENT_CONCAT_INNER(a, b) a##b
#define NETAGENT_CONCAT(a, b) NETAGENT_CONCAT_INNER(a, b)
#define NETAGENT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(*tmp)
// lhs = value of a StatusOr expression, or return its error.
#define NETAGENT_ASSIGN_OR_RETURN(lhs, expr) \
  NETAGENT_ASSIGN_OR_RETURN_IMPL(NETAGENT_CONCAT(_statusor_, __LINE__), lhs, expr)
