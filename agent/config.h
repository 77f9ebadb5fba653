// netagentd's configuration: defaults, an optional YAML file, then flags (a
// flag given on the command line wins over the file). Validation is pure and
// names the offending key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "diagnosis/rules.h"

namespace netagent::agent {

inline constexpr uint16_t kDefaultTcpPort = 9470;
inline constexpr const char* kDefaultSocket = "/run/netagent/netagent.sock";

struct ListenAddress {
  std::string host;  // without brackets; empty means all addresses
  uint16_t port = kDefaultTcpPort;
  // host:port for gRPC ("[::1]:9470", "0.0.0.0:9470").
  std::string ToGrpc() const;
};

// "HOST:PORT", "[V6]:PORT", "HOST" (default port), ":PORT" (all addresses).
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text, absl::string_view field);

inline constexpr uint16_t kDefaultMetricsPort = 9471;
inline constexpr uint16_t kDefaultHealthPort = 9472;
// A side listener (the metrics endpoint, the health-only port): "PORT" alone
// is 127.0.0.1:PORT (nothing leaves the host unless an address is given),
// otherwise as ParseListenAddress with `default_port`.
absl::StatusOr<ListenAddress> ParseSideListen(absl::string_view text, absl::string_view field,
                                              uint16_t default_port);

// When the kernel-drop collector (TelemetryService.GetDropReasons) attaches.
enum class DropReasonsMode { kOff, kOnDemand, kStart };

struct AgentConfig {
  std::string socket = kDefaultSocket;
  std::string socket_group;  // group owning the socket: its members may connect (viewers)
  uint32_t socket_mode = 0660;
  std::optional<ListenAddress> listen;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string operator_group;
  std::vector<std::string> operator_identities;
  std::string netns;
  std::string state_dir = "/var/lib/netagent";
  // Where the fast path is pinned (bpffs); empty: /sys/fs/bpf/netagent, or
  // /sys/fs/bpf/netagent-netns/<cookie> when serving another namespace.
  std::string bpf_pin_root;
  // Where the host's /proc/sys/net and /proc/irq are mounted writable (a
  // container's own are read-only): <proc_root>/sys/net, <proc_root>/irq.
  // Empty: /proc.
  std::string proc_root;
  // Where the host's /sys is mounted writable (a container's own is
  // read-only): the devices' queue files (RPS, XPS) are written there. Not
  // with netns. Empty: /sys.
  std::string sys_root;
  std::string log_format = "text";
  std::string log_level = "info";
  std::string pid_file;
  absl::Duration shutdown_grace = absl::Seconds(10);
  // "on-demand" (the first GetDropReasons attaches it), "start" or "off".
  DropReasonsMode drop_reasons = DropReasonsMode::kOnDemand;
  // Its flow samples per second per CPU (0: none).
  uint32_t drop_samples = 100;
  // socket_walk: "auto" walks socket summaries with the BPF iterator where it
  // loads, "sock_diag" never loads it.
  bool socket_iter = true;
  // Test hook: writes of these tuning knobs fail, to exercise the restore
  // of a change set that fails half-way. Never set in production.
  std::vector<std::string> fault_inject_writes;
  // Diagnosis thresholds over the catalog's defaults: rule -> metric -> level
  // ("listen-overflow.overflows_per_second=0.5,2").
  diagnosis::LevelOverrides diagnosis_thresholds;
  // How often the agent evaluates the catalog by itself (WatchFindings);
  // zero: never.
  absl::Duration diagnosis_interval = absl::Seconds(10);
  // `mode: auto` playbook files the agent runs by itself; empty: none.
  std::vector<std::string> playbooks;
  // The Prometheus endpoint (off when unset). A bare port binds 127.0.0.1.
  std::optional<ListenAddress> metrics_listen;
  // Plaintext gRPC serving only grpc.health.v1 (Kubernetes' gRPC probes).
  std::optional<ListenAddress> health_listen;
  // RE2 over nstat names: the SNMP/netstat counters exported (empty: all).
  std::string metrics_counters;
  // RE2 over device names (whole name): the devices exported (empty: all),
  // and those left out.
  std::string metrics_devices;
  std::string metrics_devices_exclude;
  // RE2 over device names (whole name): whose ethtool statistics are
  // exported; empty: none.
  std::string metrics_ethtool_devices;
  // Also export node_exporter's names for the same data.
  bool metrics_node_exporter_names = false;

  bool tls() const { return !tls_cert.empty(); }
  bool mtls() const { return !tls_client_ca.empty(); }
};

// Raw key/value settings as they come from flags or YAML scalars (lists are
// joined as repeated values).
using Settings = std::map<std::string, std::vector<std::string>>;

// Parses a YAML document into Settings; INVALID_ARGUMENT naming a key that is
// unknown or has the wrong shape.
absl::StatusOr<Settings> ParseYamlSettings(const std::string& yaml_text);

// Applies settings onto cfg (later calls win) and validates each value.
absl::Status ApplySettings(const Settings& settings, AgentConfig& cfg);

// "RULE.METRIC=WARNING,CRITICAL" into `into`; INVALID_ARGUMENT naming `field`
// and the rule or metric that does not exist.
absl::Status ParseDiagnosisThreshold(absl::string_view text, absl::string_view field,
                                     diagnosis::LevelOverrides& into);

// Cross-field checks (TLS needs both files, mTLS needs TLS, ...).
absl::Status ValidateConfig(const AgentConfig& cfg);

// The keys ApplySettings understands (YAML spelling, flags use dashes).
const std::vector<std::string>& ConfigKeys();

}  // namespace netagent::agent
