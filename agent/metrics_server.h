// The Prometheus endpoint: GET /metrics over HTTP/1.1 (libmicrohttpd), in
// the text format or OpenMetrics as the Accept header asks, gzip when
// accepted. Viewer data only, on its own port, never the gRPC listeners'.
//
// What a hostile or broken scraper can take is bounded: connections in all
// and per address, a request's header size (431 past it), and the time a
// connection may sit idle or read slowly. The collection itself runs on the
// scraper's threads (MetricsScraper), never on gRPC's.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/metrics.h"

struct MHD_Daemon;

namespace netagent::agent {

// One HTTP request as the endpoint sees it, and its answer: the decision is
// pure (tests call it without a socket).
struct MetricsRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;
  std::string accept;           // the Accept header
  std::string accept_encoding;  // the Accept-Encoding header
};
struct MetricsResponse {
  unsigned status = 200;
  std::string content_type;
  std::string content_encoding;  // "gzip" or empty
  std::string allow;             // for 405
  std::shared_ptr<const std::string> body;
};
// True when `accept_encoding` takes gzip (a quality above zero).
bool AcceptsGzip(absl::string_view accept_encoding);
MetricsResponse AnswerMetricsRequest(const MetricsRequest& request, MetricsScraper& scraper);

class MetricsServer {
 public:
  struct Options {
    ListenAddress listen{"127.0.0.1", kDefaultMetricsPort};
    unsigned max_connections = 64;
    unsigned per_address = 16;
    absl::Duration connection_timeout = absl::Seconds(10);
    size_t max_header_bytes = 16 * 1024;
    unsigned threads = 2;
  };
  // `scraper` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const Options& options,
                                                              MetricsScraper* scraper);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  MetricsServer() = default;
  MHD_Daemon* daemon_ = nullptr;
  MetricsScraper* scraper_ = nullptr;
  uint16_t port_ = 0;
};

}  // namespace netagent::agent
