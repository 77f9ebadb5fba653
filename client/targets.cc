#include "client/targets.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace netagent::client {
namespace {

absl::Status Bad(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("target \"", text, "\": ", why));
}

bool ValidHost(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

bool IsIpv6(absl::string_view host) {
  in6_addr a;
  std::string h(host);
  if (size_t pct = h.find('%'); pct != std::string::npos) h.resize(pct);  // zone id
  return inet_pton(AF_INET6, h.c_str(), &a) == 1;
}

absl::StatusOr<uint16_t> ParsePort(absl::string_view text, absl::string_view port) {
  uint32_t p;
  if (!absl::SimpleAtoi(port, &p) || p == 0 || p > 65535) {
    return Bad(text, absl::StrCat("port \"", port, "\" is not in 1-65535"));
  }
  return static_cast<uint16_t>(p);
}

}  // namespace

absl::StatusOr<Target> ParseTarget(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return Bad(text, "empty");
  Target t;
  t.display = std::string(text);
  absl::string_view path = text;
  if (absl::ConsumePrefix(&path, "unix://") || absl::ConsumePrefix(&path, "unix:") ||
      absl::StartsWith(text, "/")) {
    if (path.empty() || path.front() != '/') return Bad(text, "unix socket path must be absolute");
    if (path.size() > 107) return Bad(text, "unix socket path longer than 107 characters");
    t.unix_socket = true;
    t.address = absl::StrCat("unix://", path);
    return t;
  }
  std::string host;
  uint16_t port = kDefaultPort;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return Bad(text, "missing ']'");
    host = std::string(text.substr(1, close - 1));
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!absl::ConsumePrefix(&rest, ":")) return Bad(text, "expected ':PORT' after ']'");
      auto p = ParsePort(text, rest);
      if (!p.ok()) return p.status();
      port = *p;
    }
    if (!IsIpv6(host)) return Bad(text, absl::StrCat("\"", host, "\" is not an IPv6 address"));
  } else if (std::count(text.begin(), text.end(), ':') > 1) {
    host = std::string(text);  // a bare IPv6 address
    if (!IsIpv6(host)) return Bad(text, "IPv6 addresses with a port need brackets: [addr]:port");
  } else if (size_t colon = text.find(':'); colon != absl::string_view::npos) {
    host = std::string(text.substr(0, colon));
    auto p = ParsePort(text, text.substr(colon + 1));
    if (!p.ok()) return p.status();
    port = *p;
    if (!ValidHost(host)) return Bad(text, absl::StrCat("invalid host \"", host, "\""));
  } else {
    host = std::string(text);
    if (!ValidHost(host)) return Bad(text, absl::StrCat("invalid host \"", host, "\""));
  }
  t.address = IsIpv6(host) ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
  return t;
}

absl::StatusOr<std::vector<Target>> ParseTargetsFile(absl::string_view text,
                                                     absl::string_view filename) {
  std::vector<Target> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (line.find_first_of(" \t") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(filename, " line ", line_no, ": one target per line"));
    }
    auto t = ParseTarget(line);
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(filename, " line ", line_no, ": ", t.status().message()));
    }
    out.push_back(std::move(*t));
  }
  return out;
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseDnsName(absl::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--dns \"", text, "\": expected NAME:PORT"));
  }
  std::string name(text.substr(0, colon));
  if (!ValidHost(name)) {
    return absl::InvalidArgumentError(absl::StrCat("--dns \"", text, "\": invalid name"));
  }
  uint32_t port;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--dns \"", text, "\": port is not in 1-65535"));
  }
  return std::make_pair(name, static_cast<uint16_t>(port));
}

std::vector<Target> ResolveDnsTargets(const std::string& name, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    Target t;
    t.display = absl::StrCat(name, ":", port);
    t.error = absl::StrCat("cannot resolve ", name, ": ", gai_strerror(rc));
    return {t};
  }
  std::vector<Target> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* addr =
        ai->ai_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr);
    if (inet_ntop(ai->ai_family, addr, buf, sizeof(buf)) == nullptr) continue;
    Target t;
    t.address = ai->ai_family == AF_INET6 ? absl::StrCat("[", buf, "]:", port)
                                          : absl::StrCat(buf, ":", port);
    t.display = absl::StrCat(name, "/", t.address);
    t.tls_name = name;
    if (std::none_of(out.begin(), out.end(),
                     [&](const Target& o) { return o.address == t.address; })) {
      out.push_back(std::move(t));
    }
  }
  freeaddrinfo(res);
  std::sort(out.begin(), out.end(),
            [](const Target& a, const Target& b) { return a.address < b.address; });
  return out;
}

}  // namespace netagent::client
