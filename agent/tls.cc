#include "agent/tls.h"

#include <fcntl.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/logging.h"
#include "kernel/errors.h"
#include "kernel/fd.h"
#include "kernel/files.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::unique_ptr<X509, X509Deleter> FirstCert(const std::string& pem) {
  auto bio = Bio(pem);
  return std::unique_ptr<X509, X509Deleter>(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

absl::Status ValidateTlsMaterial(const std::string& cert_pem, const std::string& key_pem,
                                 const std::string& ca_pem) {
  ERR_clear_error();
  auto cert = FirstCert(cert_pem);
  if (!cert) return absl::InvalidArgumentError("tls_cert: no PEM certificate found");
  auto kbio = Bio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("tls_key: no PEM private key found");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("tls_key: does not match the certificate in tls_cert");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    spdlog::warn("tls_cert has expired: clients will refuse it");
  }
  if (!ca_pem.empty() && !FirstCert(ca_pem)) {
    return absl::InvalidArgumentError("tls_client_ca: no PEM certificate found");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TlsStore>> TlsStore::Create(TlsPaths source, std::string dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("tls: mkdir ", dir, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  // Copies of an earlier run are not trusted: start over.
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::filesystem::remove_all(e.path(), ec);
  }
  std::unique_ptr<TlsStore> store(new TlsStore(std::move(source), std::move(dir)));
  NETAGENT_RETURN_IF_ERROR(store->Stage());
  return store;
}

absl::Status TlsStore::Stage() {
  NETAGENT_ASSIGN_OR_RETURN(std::string cert, kernel::ReadFile(source_.cert));
  NETAGENT_ASSIGN_OR_RETURN(std::string key, kernel::ReadFile(source_.key));
  std::string ca;
  if (!source_.client_ca.empty()) {
    NETAGENT_ASSIGN_OR_RETURN(ca, kernel::ReadFile(source_.client_ca));
  }
  NETAGENT_RETURN_IF_ERROR(ValidateTlsMaterial(cert, key, ca));

  absl::MutexLock lock(&mu_);
  const int next = generation_ + 1;
  const std::string gen = absl::StrCat(dir_, "/gen-", next);
  std::error_code ec;
  std::filesystem::remove_all(gen, ec);
  if (::mkdir(gen.c_str(), 0700) < 0) return kernel::LastErrnoStatus(absl::StrCat("mkdir ", gen));
  NETAGENT_RETURN_IF_ERROR(kernel::WriteFileSynced(gen + "/cert.pem", cert, 0600));
  NETAGENT_RETURN_IF_ERROR(kernel::WriteFileSynced(gen + "/key.pem", key, 0600));
  if (!ca.empty()) NETAGENT_RETURN_IF_ERROR(kernel::WriteFileSynced(gen + "/ca.pem", ca, 0600));
  (void)kernel::FsyncDir(gen);
  const std::string tmp = absl::StrCat(dir_, "/current.tmp");
  ::unlink(tmp.c_str());
  if (::symlink(absl::StrCat("gen-", next).c_str(), tmp.c_str()) < 0) {
    return kernel::LastErrnoStatus(absl::StrCat("symlink ", tmp));
  }
  const std::string current = absl::StrCat(dir_, "/current");
  // gRPC's watcher notices changes by modification time in whole seconds:
  // two swaps within one second could leave it holding a stale pair.
  if (absl::ToUnixSeconds(absl::Now()) == absl::ToUnixSeconds(last_swap_)) {
    absl::SleepFor(absl::FromUnixSeconds(absl::ToUnixSeconds(last_swap_) + 1) - absl::Now());
  }
  if (::rename(tmp.c_str(), current.c_str()) < 0) {
    return kernel::LastErrnoStatus(absl::StrCat("rename ", tmp));
  }
  (void)kernel::FsyncDir(dir_);
  // Keep the generation just replaced: the watcher may be reading it now.
  if (next > 2) std::filesystem::remove_all(absl::StrCat(dir_, "/gen-", next - 2), ec);
  generation_ = next;
  last_swap_ = absl::Now();
  return absl::OkStatus();
}

absl::Status TlsStore::Reload() { return Stage(); }

std::shared_ptr<grpc::ServerCredentials> TlsStore::Credentials() const {
  const std::string current = dir_ + "/current";
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      current + "/key.pem", current + "/cert.pem",
      source_.client_ca.empty() ? "" : current + "/ca.pem", kTlsRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!source_.client_ca.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace netagent::agent
