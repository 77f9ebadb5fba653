#include "agent/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/auth.h"
#include "collectors/counters.h"
#include "datapath/drop_collector.h"
#include "kernel/errors.h"
#include "kernel/text.h"

namespace netagent::agent {
namespace {

absl::Status Bad(absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", why));
}

const std::string& Single(const Settings::value_type& kv) { return kv.second.back(); }

}  // namespace

std::string ListenAddress::ToGrpc() const {
  const std::string h = host.empty() ? "0.0.0.0" : host;
  return h.find(':') != std::string::npos ? absl::StrCat("[", h, "]:", port)
                                          : absl::StrCat(h, ":", port);
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text, absl::string_view field) {
  ListenAddress a;
  absl::string_view host = text, port;
  if (text.empty()) return Bad(field, "empty address");
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return Bad(field, "missing ']' in IPv6 address");
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Bad(field, "expected ':' after ']'");
      port = rest.substr(1);
      if (port.empty()) return Bad(field, "empty port");
    }
  } else if (size_t colon = text.rfind(':'); colon != absl::string_view::npos) {
    if (text.find(':') != colon) {
      return Bad(field, "IPv6 addresses need brackets: [addr]:port");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty()) return Bad(field, "empty port");
  }
  if (!port.empty()) {
    uint32_t p;
    if (!absl::SimpleAtoi(port, &p) || p == 0 || p > 65535) {
      return Bad(field, absl::StrCat("port \"", port, "\" is not in 1-65535"));
    }
    a.port = static_cast<uint16_t>(p);
  }
  for (char c : host) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '%' ||
          c == '_')) {
      return Bad(field, absl::StrCat("invalid character in host \"", host, "\""));
    }
  }
  a.host = std::string(host);
  return a;
}

absl::Status ParseDiagnosisThreshold(absl::string_view text, absl::string_view field,
                                     diagnosis::LevelOverrides& into) {
  const size_t dot = text.find('.');
  const size_t eq = text.find('=');
  const size_t comma = text.find(',', eq == absl::string_view::npos ? 0 : eq);
  double warning = 0, critical = 0;
  if (dot == absl::string_view::npos || eq == absl::string_view::npos || eq < dot ||
      comma == absl::string_view::npos ||
      !absl::SimpleAtod(text.substr(eq + 1, comma - eq - 1), &warning) ||
      !absl::SimpleAtod(text.substr(comma + 1), &critical)) {
    return Bad(field, absl::StrCat(kernel::Quote(text),
                                   " is not RULE.METRIC=WARNING,CRITICAL (like "
                                   "listen-overflow.overflows_per_second=0.5,2)"));
  }
  diagnosis::LevelOverrides one;
  const std::string rule(text.substr(0, dot)), metric(text.substr(dot + 1, eq - dot - 1));
  one[rule][metric] = {metric, warning, critical, "", ""};
  diagnosis::DiagnoseOptions check;
  check.overrides = one;
  if (absl::Status s = diagnosis::ValidateOptions(check, field); !s.ok()) return s;
  into[rule][metric] = one[rule][metric];
  return absl::OkStatus();
}

absl::StatusOr<ListenAddress> ParseSideListen(absl::string_view text, absl::string_view field,
                                              uint16_t default_port) {
  uint32_t port;
  if (!text.empty() && absl::SimpleAtoi(text, &port)) {
    if (port == 0 || port > 65535) {
      return Bad(field, absl::StrCat("port \"", text, "\" is not in 1-65535"));
    }
    return ListenAddress{"127.0.0.1", static_cast<uint16_t>(port)};
  }
  NETAGENT_ASSIGN_OR_RETURN(ListenAddress a, ParseListenAddress(text, field));
  if (text.find(':') == absl::string_view::npos || (text.front() == '[' && text.back() == ']')) {
    a.port = default_port;  // no port given
  }
  return a;
}

const std::vector<std::string>& ConfigKeys() {
  static const std::vector<std::string> keys = {"socket",
                                                "socket_group",
                                                "socket_mode",
                                                "listen",
                                                "tls_cert",
                                                "tls_key",
                                                "tls_client_ca",
                                                "operator_group",
                                                "operator_identities",
                                                "netns",
                                                "state_dir",
                                                "bpf_pin_root",
                                                "proc_root",
                                                "sys_root",
                                                "log_format",
                                                "log_level",
                                                "pid_file",
                                                "shutdown_grace",
                                                "fault_inject_writes",
                                                "diagnosis_thresholds",
                                                "diagnosis_interval",
                                                "drop_reasons",
                                                "drop_samples",
                                                "socket_walk",
                                                "playbooks",
                                                "metrics_listen",
                                                "health_listen",
                                                "metrics_counters",
                                                "metrics_devices",
                                                "metrics_devices_exclude",
                                                "metrics_ethtool_devices",
                                                "metrics_compat"};
  return keys;
}

absl::StatusOr<Settings> ParseYamlSettings(const std::string& yaml_text) {
  Settings out;
  // Conversions throw as well as parsing (a key that is a list or a
  // mapping): the whole walk is inside the try, so a bad file is an error
  // rather than std::terminate.
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    if (root.IsNull()) return out;
    if (!root.IsMap()) return absl::InvalidArgumentError("config: expected a mapping of settings");
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) return absl::InvalidArgumentError("config: a key is not a name");
      const std::string key = kv.first.as<std::string>();
      if (std::find(ConfigKeys().begin(), ConfigKeys().end(), key) == ConfigKeys().end()) {
        return Bad(absl::StrCat("config key ", key),
                   absl::StrCat("unknown; known keys: ", absl::StrJoin(ConfigKeys(), ", ")));
      }
      const YAML::Node& v = kv.second;
      std::vector<std::string> values;
      if (v.IsScalar()) {
        values.push_back(v.as<std::string>());
      } else if (v.IsSequence() && (key == "operator_identities" || key == "diagnosis_thresholds" ||
                                    key == "playbooks")) {
        for (const auto& item : v) {
          if (!item.IsScalar()) return Bad(key, "list items must be strings");
          values.push_back(item.as<std::string>());
        }
      } else if (v.IsNull()) {
        continue;
      } else {
        return Bad(key, "expected a single value");
      }
      out[key] = std::move(values);
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  return out;
}

absl::Status ApplySettings(const Settings& settings, AgentConfig& cfg) {
  for (const auto& kv : settings) {
    const std::string& key = kv.first;
    if (kv.second.empty()) continue;
    const std::string& v = Single(kv);
    if (key == "socket") {
      if (v.empty() || v.front() != '/') return Bad(key, "must be an absolute path");
      if (v.size() >= 108) return Bad(key, "longer than a unix socket path may be (107)");
      cfg.socket = v;
    } else if (key == "socket_group") {
      cfg.socket_group = v;
    } else if (key == "socket_mode") {
      uint32_t mode;
      if (!absl::numbers_internal::safe_strtou32_base(v, &mode, 8) || mode > 0777) {
        return Bad(key, absl::StrCat("\"", v, "\" is not an octal mode like 0660"));
      }
      if (mode & 0007) return Bad(key, "must not grant access to others (last digit 0)");
      cfg.socket_mode = mode;
    } else if (key == "listen") {
      if (v.empty()) {
        cfg.listen.reset();
      } else {
        NETAGENT_ASSIGN_OR_RETURN(cfg.listen, ParseListenAddress(v, key));
      }
    } else if (key == "tls_cert") {
      cfg.tls_cert = v;
    } else if (key == "tls_key") {
      cfg.tls_key = v;
    } else if (key == "tls_client_ca") {
      cfg.tls_client_ca = v;
    } else if (key == "operator_group") {
      cfg.operator_group = v;
    } else if (key == "operator_identities") {
      cfg.operator_identities = kv.second;
      for (const auto& id : cfg.operator_identities) {
        NETAGENT_RETURN_IF_ERROR(ValidateIdentity(id, key));
      }
    } else if (key == "netns") {
      cfg.netns = v;
    } else if (key == "fault_inject_writes") {
      cfg.fault_inject_writes = kv.second;
    } else if (key == "playbooks") {
      cfg.playbooks = kv.second;
    } else if (key == "diagnosis_thresholds") {
      cfg.diagnosis_thresholds.clear();
      for (const auto& t : kv.second) {
        NETAGENT_RETURN_IF_ERROR(ParseDiagnosisThreshold(t, key, cfg.diagnosis_thresholds));
      }
    } else if (key == "state_dir") {
      if (v.empty() || v.front() != '/') return Bad(key, "must be an absolute path");
      cfg.state_dir = v;
    } else if (key == "bpf_pin_root") {
      if (v.empty() || v.front() != '/' || v.find("..") != std::string::npos)
        return Bad(key, "must be an absolute path");
      cfg.bpf_pin_root = v;
    } else if (key == "proc_root" || key == "sys_root") {
      if (!v.empty() && (v.front() != '/' || v.find("/..") != std::string::npos))
        return Bad(key, "must be an absolute path");
      (key == "proc_root" ? cfg.proc_root : cfg.sys_root) = v;
    } else if (key == "log_format") {
      if (v != "text" && v != "json") return Bad(key, "must be text or json");
      cfg.log_format = v;
    } else if (key == "log_level") {
      static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error"};
      if (std::find(levels.begin(), levels.end(), v) == levels.end()) {
        return Bad(key, "must be one of trace, debug, info, warn, error");
      }
      cfg.log_level = v;
    } else if (key == "pid_file") {
      if (!v.empty() && v.front() != '/') return Bad(key, "must be an absolute path");
      cfg.pid_file = v;
    } else if (key == "shutdown_grace") {
      absl::Duration d;
      if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration() || d > absl::Minutes(10)) {
        return Bad(key, absl::StrCat("\"", v, "\" is not a duration between 0s and 10m"));
      }
      cfg.shutdown_grace = d;
    } else if (key == "diagnosis_interval") {
      absl::Duration d;
      if (!absl::ParseDuration(v, &d) ||
          (d != absl::ZeroDuration() && (d < absl::Seconds(1) || d > absl::Hours(1)))) {
        return Bad(
            key, absl::StrCat(kernel::Quote(v), " is not 0 (off) or a duration between 1s and 1h"));
      }
      cfg.diagnosis_interval = d;
    } else if (key == "drop_reasons") {
      if (v == "on-demand") {
        cfg.drop_reasons = DropReasonsMode::kOnDemand;
      } else if (v == "start") {
        cfg.drop_reasons = DropReasonsMode::kStart;
      } else if (v == "off") {
        cfg.drop_reasons = DropReasonsMode::kOff;
      } else {
        return Bad(key, "must be on-demand, start or off");
      }
    } else if (key == "socket_walk") {
      if (v == "auto") {
        cfg.socket_iter = true;
      } else if (v == "sock_diag") {
        cfg.socket_iter = false;
      } else {
        return Bad(key, "must be auto or sock_diag");
      }
    } else if (key == "drop_samples") {
      uint32_t n;
      if (!absl::SimpleAtoi(v, &n) || n > datapath::kMaxDropSamplesPerSecond) {
        return Bad(key, absl::StrCat("\"", v, "\" is not a number from 0 to ",
                                     datapath::kMaxDropSamplesPerSecond));
      }
      cfg.drop_samples = n;
    } else if (key == "metrics_listen" || key == "health_listen") {
      const bool metrics = key == "metrics_listen";
      std::optional<ListenAddress>& listen = metrics ? cfg.metrics_listen : cfg.health_listen;
      if (v.empty()) {
        listen.reset();
      } else {
        NETAGENT_ASSIGN_OR_RETURN(
            listen, ParseSideListen(v, key, metrics ? kDefaultMetricsPort : kDefaultHealthPort));
      }
    } else if (key == "metrics_counters" || key == "metrics_devices" ||
               key == "metrics_devices_exclude" || key == "metrics_ethtool_devices") {
      if (!v.empty()) NETAGENT_RETURN_IF_ERROR(collectors::CompileNameFilter(v, key).status());
      (key == "metrics_counters"          ? cfg.metrics_counters
       : key == "metrics_devices"         ? cfg.metrics_devices
       : key == "metrics_devices_exclude" ? cfg.metrics_devices_exclude
                                          : cfg.metrics_ethtool_devices) = v;
    } else if (key == "metrics_compat") {
      if (v != "node_exporter" && v != "none" && !v.empty()) {
        return Bad(key, absl::StrCat("\"", v, "\" is not node_exporter or none"));
      }
      cfg.metrics_node_exporter_names = v == "node_exporter";
    } else {
      return Bad(key, "unknown setting");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConfig(const AgentConfig& cfg) {
  if (cfg.tls_cert.empty() != cfg.tls_key.empty()) {
    return Bad("tls_cert", "tls_cert and tls_key go together");
  }
  if (cfg.tls() && !cfg.listen) return Bad("tls_cert", "TLS applies to a TCP listener: set listen");
  if (!cfg.sys_root.empty() && !cfg.netns.empty()) {
    return Bad("sys_root",
               "serving another namespace (netns), the agent mounts that namespace's sysfs itself");
  }
  if (cfg.mtls() && !cfg.tls()) {
    return Bad("tls_client_ca", "mTLS needs the server's own tls_cert and tls_key");
  }
  if (!cfg.operator_identities.empty() && !cfg.mtls()) {
    return Bad("operator_identities",
               "certificate identities are only known over mTLS: set tls_client_ca");
  }
  return absl::OkStatus();
}

}  // namespace netagent::agent
