#include "agent/metrics_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstdarg>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {
namespace {

std::shared_ptr<const std::string> Text(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

const char* Header(MHD_Connection* c, const char* name) {
  const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  return v != nullptr ? v : "";
}

MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url, const char* method,
                  const char* /*version*/, const char* /*upload_data*/, size_t* upload_data_size,
                  void** /*con_cls*/) {
  auto* scraper = static_cast<MetricsScraper*>(cls);
  // A body is not wanted: it is read and dropped; the answer goes out once
  // it is all in (libmicrohttpd calls again with no data left).
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  MetricsResponse r = AnswerMetricsRequest({method, url, Header(connection, MHD_HTTP_HEADER_ACCEPT),
                                            Header(connection, MHD_HTTP_HEADER_ACCEPT_ENCODING)},
                                           *scraper);
  // The body is copied: the scrape it belongs to may be replaced before a
  // slow reader is done with it.
  MHD_Response* response = MHD_create_response_from_buffer(
      r.body->size(), const_cast<char*>(r.body->data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  if (!r.content_encoding.empty()) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_ENCODING, r.content_encoding.c_str());
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
  if (!r.allow.empty()) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, r.allow.c_str());
  const MHD_Result ok = MHD_queue_response(connection, r.status, response);
  MHD_destroy_response(response);
  return ok;
}

void Log(void* /*cls*/, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  spdlog::debug("metrics http: {}", std::string(absl::StripTrailingAsciiWhitespace(buf)));
}

}  // namespace

bool AcceptsGzip(absl::string_view accept_encoding) {
  for (absl::string_view item : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]), "gzip")) continue;
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&p, "q=") && !absl::SimpleAtod(p, &q)) q = 0;
    }
    return q > 0;
  }
  return false;
}

MetricsResponse AnswerMetricsRequest(const MetricsRequest& request, MetricsScraper& scraper) {
  MetricsResponse r;
  r.content_type = "text/plain; charset=utf-8";
  if (request.method != "GET" && request.method != "HEAD") {
    r.status = 405;
    r.allow = "GET, HEAD";
    r.body = Text("only GET and HEAD\n");
    return r;
  }
  const absl::string_view path =
      absl::string_view(request.path)
          .substr(0, std::min(request.path.find('?'), request.path.size()));
  if (path == "/") {
    r.body = Text("netagentd: Prometheus metrics at /metrics\n");
    return r;
  }
  if (path != "/metrics") {
    r.status = 404;
    r.body = Text("not found: metrics are at /metrics\n");
    return r;
  }
  const ExpositionFormat format = NegotiateExposition(request.accept);
  r.content_type = std::string(ExpositionContentType(format));
  auto scrape = scraper.Collect();
  const bool gzip = AcceptsGzip(request.accept_encoding);
  r.body = scrape->Body(format, gzip);
  if (gzip && r.body->empty()) {
    r.body = scrape->Body(format, false);  // compression failed: plain
  } else if (gzip) {
    r.content_encoding = "gzip";
  }
  return r;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const Options& o,
                                                                    MetricsScraper* scraper) {
  sockaddr_storage addr{};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  const std::string host = o.listen.host.empty()          ? "0.0.0.0"
                           : o.listen.host == "localhost" ? "127.0.0.1"
                                                          : o.listen.host;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(o.listen.port);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(o.listen.port);
    flags |= MHD_USE_IPv6;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: \"", host, "\" is not an IP address"));
  }
  auto s = std::unique_ptr<MetricsServer>(new MetricsServer());
  s->scraper_ = scraper;
  s->daemon_ = MHD_start_daemon(flags, o.listen.port, nullptr, nullptr, &Handle, scraper,
                                MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
                                MHD_OPTION_THREAD_POOL_SIZE, o.threads, MHD_OPTION_CONNECTION_LIMIT,
                                o.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                o.per_address, MHD_OPTION_CONNECTION_TIMEOUT,
                                static_cast<unsigned>(absl::ToInt64Seconds(o.connection_timeout)),
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, o.max_header_bytes,
                                MHD_OPTION_EXTERNAL_LOGGER, &Log, nullptr, MHD_OPTION_END);
  if (s->daemon_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("metrics_listen: cannot listen on ",
                                               o.listen.ToGrpc(),
                                               " (in use, or not an address of this host)"));
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(s->daemon_, MHD_DAEMON_INFO_BIND_PORT);
  s->port_ = info != nullptr ? info->port : o.listen.port;
  return s;
}

MetricsServer::~MetricsServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

}  // namespace netagent::agent
