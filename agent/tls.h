// TLS material for the TCP listener, reloaded on SIGHUP.
//
// gRPC's file-watching certificate provider re-reads files on its own timer,
// which would pick up a half-written or mismatched pair. So the agent stages a
// validated copy of the operator's files under <state-dir>/tls/gen-N, points
// the symlink "current" at it, and lets the provider watch current/*. Reload()
// validates the operator's files again (key matches certificate, CA parses)
// and swaps the symlink atomically; on any error the running certificates stay.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace netagent::agent {

struct TlsPaths {
  std::string cert;
  std::string key;
  std::string client_ca;  // empty: server TLS only, no client certificates
};

// Checks PEM text: the key matches the first certificate, the CA bundle has at
// least one certificate. INVALID_ARGUMENT names tls_cert / tls_key / tls_client_ca.
absl::Status ValidateTlsMaterial(const std::string& cert_pem, const std::string& key_pem,
                                 const std::string& ca_pem);

class TlsStore {
 public:
  static absl::StatusOr<std::unique_ptr<TlsStore>> Create(TlsPaths source, std::string dir);

  std::shared_ptr<grpc::ServerCredentials> Credentials() const;

  absl::Status Reload();

 private:
  TlsStore(TlsPaths source, std::string dir) : source_(std::move(source)), dir_(std::move(dir)) {}
  absl::Status Stage();

  const TlsPaths source_;
  const std::string dir_;
  absl::Mutex mu_;
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_swap_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// How often the staged files are re-read; a reload takes effect within this.
inline constexpr int kTlsRefreshSeconds = 1;

}  // namespace netagent::agent
