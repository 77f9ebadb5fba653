#include "kernel/libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "kernel/errors.h"
#include "spdlog/spdlog.h"

namespace netagent::kernel {
namespace {

thread_local LibbpfLogCapture* g_capture = nullptr;

// A verifier log can run to megabytes; what explains a refusal is its end.
constexpr size_t kCaptureLimit = 64 * 1024;

int Print(enum libbpf_print_level level, const char* format, va_list args) {
  char buf[1024];
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(buf, sizeof(buf), format, copy);
  va_end(copy);
  if (n < 0) return 0;
  if (g_capture != nullptr) {
    if (static_cast<size_t>(n) < sizeof(buf)) {
      g_capture->Append(buf);
    } else {
      std::string big(static_cast<size_t>(n) + 1, '\0');
      std::vsnprintf(big.data(), big.size(), format, args);
      g_capture->Append(big.c_str());
    }
    return 0;
  }
  const absl::string_view line = absl::StripTrailingAsciiWhitespace(buf);
  if (level == LIBBPF_WARN) {
    spdlog::warn("{}", std::string(line));
  } else {
    spdlog::debug("{}", std::string(line));
  }
  return 0;
}

}  // namespace

void InstallLibbpfLog() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(Print); });
}

LibbpfLogCapture::LibbpfLogCapture() : outer_(g_capture) {
  InstallLibbpfLog();
  g_capture = this;
}

LibbpfLogCapture::~LibbpfLogCapture() { g_capture = outer_; }

void LibbpfLogCapture::Append(const char* text) {
  text_ += text;
  if (text_.size() > 2 * kCaptureLimit) text_.erase(0, text_.size() - kCaptureLimit);
}

std::string LibbpfLogCapture::Tail(size_t max) const {
  std::string out = std::string(absl::StripTrailingAsciiWhitespace(
      text_.size() <= max ? text_ : text_.substr(text_.size() - max)));
  if (text_.size() > max) {
    const size_t nl = out.find('\n');
    if (nl != std::string::npos) out.erase(0, nl + 1);
    out = "..." + out;
  }
  return out;
}

absl::Status LoadError(int err, absl::string_view what, const LibbpfLogCapture& log,
                       const CapabilityNeeds& needs) {
  absl::Status st =
      kernel::WithCapabilityHint(kernel::ErrnoStatus(err < 0 ? -err : err, what), needs);
  const std::string tail = log.Tail();
  if (tail.empty()) return st;
  return absl::Status(st.code(), absl::StrCat(st.message(), "; libbpf: ", tail));
}

}  // namespace netagent::kernel
