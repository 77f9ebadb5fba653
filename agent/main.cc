// netagentd: the per-host network agent.
#include <fcntl.h>
#include <fmt/ranges.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/capabilities.h"
#include "agent/config.h"
#include "agent/context.h"
#include "agent/logging.h"
#include "agent/server.h"
#include "diagnosis/rules.h"
#include "kernel/files.h"
#include "kernel/netns.h"
#include "kernel/sysctl.h"
#include "playbook/playbook.h"
#include "spdlog/spdlog.h"

#ifndef NETAGENT_VERSION
#define NETAGENT_VERSION "dev"
#endif

namespace {

using netagent::agent::AgentConfig;

int Fail(const absl::Status& st) {
  std::fprintf(stderr, "netagentd: %s\n", std::string(st.message()).c_str());
  return 2;
}

absl::StatusOr<std::optional<gid_t>> ResolveGroup(const std::string& name,
                                                  absl::string_view field) {
  if (name.empty()) return std::nullopt;
  gid_t gid;
  if (absl::SimpleAtoi(name, &gid)) return gid;
  group grp{};
  group* result = nullptr;
  std::vector<char> buf(16384);
  if (getgrnam_r(name.c_str(), &grp, buf.data(), buf.size(), &result) != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": no group named \"", name, "\""));
  }
  return result->gr_gid;
}

// One agent per state directory: it holds the TLS copies (and later the
// change journal), which two agents would overwrite for each other. The lock
// is held until exit; the file names the holder.
absl::StatusOr<int> LockStateDir(const std::string& dir) {
  const std::string path = dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("state_dir: open ", path, ": ", strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    (void)::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir ", dir, " is in use by another agent (pid ",
                     absl::StripAsciiWhitespace(buf), "): give each agent its own --state-dir"));
  }
  std::string pid = absl::StrCat(getpid(), "\n");
  (void)::ftruncate(fd, 0);
  (void)::pwrite(fd, pid.data(), pid.size(), 0);
  return fd;
}

// The soft open-files limit raised to the hard one (LimitNOFILE in the unit
// sets both); returns the limit in force.
rlim_t RaiseOpenFilesLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur < 4096) {
    spdlog::warn(
        "open files limit is {}: connections are capped low (LimitNOFILE=65536 in the "
        "unit raises it)",
        rl.rlim_cur);
  }
  return rl.rlim_cur;
}

// A playbook the agent may run by itself: `mode: auto`, a finding the
// continuous diagnosis tracks (warning and above).
absl::StatusOr<netagent::playbook::Playbook> LoadAutoPlaybook(const std::string& file) {
  auto text = netagent::kernel::ReadFile(file);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--playbook: ", text.status().message()));
  }
  auto p = netagent::playbook::ParsePlaybook(*text, file);
  if (!p.ok())
    return absl::InvalidArgumentError(absl::StrCat("--playbook: ", p.status().message()));
  if (!p->auto_mode) {
    return absl::InvalidArgumentError(
        absl::StrCat("--playbook: ", file,
                     ": not mode: auto (manual playbooks are run by netctl playbook run)"));
  }
  if (!netagent::diagnosis::FindRule(p->finding)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--playbook: ", file, ": match.finding: no rule ", p->finding));
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"netagentd: per-host Linux network diagnostics and tuning agent"};
  app.set_version_flag("--version", NETAGENT_VERSION);
  std::string config_path;
  app.add_option("--config", config_path, "YAML file with settings (flags win over it)");
  // Every setting is both a flag and a YAML key; only flags given explicitly
  // override the file.
  struct Flag {
    std::string key;
    std::vector<std::string> values;
  };
  std::vector<Flag> flags = {{"socket", {}},
                             {"socket_group", {}},
                             {"socket_mode", {}},
                             {"listen", {}},
                             {"tls_cert", {}},
                             {"tls_key", {}},
                             {"tls_client_ca", {}},
                             {"operator_group", {}},
                             {"operator_identities", {}},
                             {"netns", {}},
                             {"state_dir", {}},
                             {"bpf_pin_root", {}},
                             {"proc_root", {}},
                             {"sys_root", {}},
                             {"log_format", {}},
                             {"log_level", {}},
                             {"pid_file", {}},
                             {"shutdown_grace", {}},
                             {"fault_inject_writes", {}},
                             {"diagnosis_thresholds", {}},
                             {"diagnosis_interval", {}},
                             {"drop_reasons", {}},
                             {"drop_samples", {}},
                             {"socket_walk", {}},
                             {"playbooks", {}},
                             {"metrics_listen", {}},
                             {"health_listen", {}},
                             {"metrics_counters", {}},
                             {"metrics_devices", {}},
                             {"metrics_devices_exclude", {}},
                             {"metrics_ethtool_devices", {}},
                             {"metrics_compat", {}}};
  const std::map<std::string, std::string> help = {
      {"socket", "unix socket path (default /run/netagent/netagent.sock)"},
      {"socket_group", "group owning the socket; its members may connect as viewers"},
      {"socket_mode", "socket file mode, octal (default 0660)"},
      {"listen", "also listen on TCP HOST:PORT (default port 9470); plaintext is read-only"},
      {"tls_cert", "server certificate (PEM) for the TCP listener"},
      {"tls_key", "server private key (PEM)"},
      {"tls_client_ca", "CA bundle for client certificates: turns on mTLS"},
      {"operator_group", "group whose members are operators on the unix socket"},
      {"operator_identities", "client-certificate identity (CN or SAN) that is an operator"},
      {"netns", "serve this network namespace (name under /run/netns, or a path)"},
      {"state_dir", "state directory (default /var/lib/netagent)"},
      {"bpf_pin_root",
       "where the fast path is pinned (default /sys/fs/bpf/netagent; another namespace: "
       "/sys/fs/bpf/netagent-netns/<namespace cookie>)"},
      {"proc_root",
       "where the host's /proc/sys/net and /proc/irq are mounted writable, as DIR/sys/net and "
       "DIR/irq (a container's own /proc/sys is read-only); the tuners write there"},
      {"sys_root",
       "where the host's /sys is mounted writable (a container's own is read-only); the tuners "
       "write the devices' queue files (RPS, XPS) there. Not with --netns"},
      {"log_format", "text or json"},
      {"log_level", "trace, debug, info, warn or error"},
      {"pid_file", "write the agent's pid here once it serves"},
      {"shutdown_grace", "time in-flight calls get on SIGTERM (default 10s)"},
      {"fault_inject_writes", "tests only: writes of this tuning knob fail (repeatable)"},
      {"diagnosis_thresholds",
       "a diagnosis rule's levels, RULE.METRIC=WARNING,CRITICAL (repeatable; netctl doctor "
       "--explain RULE lists the metrics)"},
      {"diagnosis_interval",
       "how often the agent runs its diagnosis by itself for watchers (default 10s; 0: never)"},
      {"drop_reasons",
       "kernel drop reasons collector: on-demand (attached by the first call, the default), "
       "start or off"},
      {"drop_samples", "its flow samples per second per CPU (default 100, 0: none)"},
      {"socket_walk",
       "how socket summaries and diagnoses walk the sockets: auto (a BPF iterator where it "
       "loads, the default) or sock_diag"},
      {"playbooks",
       "a `mode: auto` playbook the agent runs by itself when its finding opens (repeatable; "
       "off unless given; docs/playbooks.md)"},
      {"metrics_listen",
       "serve Prometheus metrics over HTTP on [HOST:]PORT (off unless given; a bare port binds "
       "127.0.0.1; default port 9471)"},
      {"health_listen",
       "serve plaintext gRPC health checks (grpc.health.v1 only, for Kubernetes gRPC probes) on "
       "[HOST:]PORT (off unless given; a bare port binds 127.0.0.1; default port 9472)"},
      {"metrics_counters",
       "RE2 over nstat names: the SNMP/netstat counters exported (default all)"},
      {"metrics_devices", "RE2 over device names: the devices exported (default all)"},
      {"metrics_devices_exclude", "RE2 over device names: devices left out"},
      {"metrics_ethtool_devices",
       "RE2 over device names: whose ethtool statistics (driver, standard groups, per queue) are "
       "exported (off unless given, as node_exporter's ethtool collector: `eth.*|ens.*`)"},
      {"metrics_compat",
       "node_exporter: also export node_exporter's names (node_network_*, node_netstat_*, "
       "node_softnet_*, node_sockstat_*, node_nf_conntrack_*, node_tcp_connection_states, "
       "node_ethtool_*) for the same data; none (the default)"}};
  std::map<std::string, CLI::Option*> opts;
  for (Flag& f : flags) {
    std::string name = "--" + f.key;
    std::replace(name.begin(), name.end(), '_', '-');
    if (f.key == "operator_identities") name = "--operator-identity";
    if (f.key == "fault_inject_writes") name = "--fault-inject-write";
    if (f.key == "diagnosis_thresholds") name = "--diagnosis-threshold";
    if (f.key == "playbooks") name = "--playbook";
    opts[f.key] = app.add_option(name, f.values, help.at(f.key));
  }
  CLI11_PARSE(app, argc, argv);

  AgentConfig cfg;
  if (!config_path.empty()) {
    auto text = netagent::kernel::ReadFile(config_path);
    if (!text.ok())
      return Fail(absl::InvalidArgumentError(absl::StrCat("config: ", text.status().message())));
    auto settings = netagent::agent::ParseYamlSettings(*text);
    if (!settings.ok()) return Fail(settings.status());
    if (auto st = netagent::agent::ApplySettings(*settings, cfg); !st.ok()) return Fail(st);
  }
  netagent::agent::Settings from_flags;
  for (const Flag& f : flags) {
    if (opts[f.key]->count() > 0) from_flags[f.key] = f.values;
  }
  if (auto st = netagent::agent::ApplySettings(from_flags, cfg); !st.ok()) return Fail(st);
  if (auto st = netagent::agent::ValidateConfig(cfg); !st.ok()) return Fail(st);

  // Before any thread exists: setns() and the signal mask apply per thread,
  // and every thread created later inherits them.
  if (!cfg.netns.empty()) {
    auto entered = netagent::kernel::EnterNetns(cfg.netns);
    if (!entered.ok()) return Fail(entered.status());
  }
  if (auto st = netagent::kernel::SetProcRoot(cfg.proc_root); !st.ok()) return Fail(st);
  if (!cfg.sys_root.empty()) {
    if (auto st = netagent::kernel::UseSysfsAt(cfg.sys_root); !st.ok()) return Fail(st);
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  netagent::agent::SetupLogging(cfg.log_format, cfg.log_level);
  // Dozens of server threads would each get a glibc arena that keeps what
  // a table walk once used; a few shared arenas hold far less.
  mallopt(M_ARENA_MAX, 2);

  auto socket_gid = ResolveGroup(cfg.socket_group, "socket_group");
  if (!socket_gid.ok()) return Fail(socket_gid.status());
  auto operator_gid = ResolveGroup(cfg.operator_group, "operator_group");
  if (!operator_gid.ok()) return Fail(operator_gid.status());
  std::error_code ec;
  std::filesystem::create_directories(cfg.state_dir, ec);
  if (ec)
    return Fail(absl::InternalError(absl::StrCat("state_dir ", cfg.state_dir, ": ", ec.message())));
  ::chmod(cfg.state_dir.c_str(), 0700);
  auto state_lock = LockStateDir(cfg.state_dir);
  if (!state_lock.ok()) {
    spdlog::error("{}", state_lock.status().message());
    return 1;
  }

  netagent::agent::AgentContext ctx;
  ctx.auth = std::make_shared<netagent::agent::AuthState>(
      netagent::agent::AuthPolicy{*operator_gid, cfg.operator_identities});
  ctx.started_at = absl::Now();
  ctx.version = NETAGENT_VERSION;
  auto netns = netagent::kernel::CurrentNetns();
  if (!netns.ok()) return Fail(netns.status());
  ctx.netns = *netns;
  // Another namespace's pins are keyed by its cookie: inode numbers are
  // reused once a namespace is gone, cookies never.
  std::string pin_root = cfg.bpf_pin_root;
  if (pin_root.empty()) {
    const std::string child =
        ctx.netns.cookie != 0 ? absl::StrCat("/sys/fs/bpf/netagent-netns/", ctx.netns.cookie)
                              : absl::StrCat("/sys/fs/bpf/netagent-netns/inode-", ctx.netns.inode);
    pin_root = ctx.netns.initial ? std::string("/sys/fs/bpf/netagent") : child;
    // An agent that could not read /proc/1/ns/net took the host's namespace
    // for a child one before it knew the fixed inode, and pinned its fast
    // path under the child root: keep finding those pins (until a reboot
    // empties bpffs), or they would stay attached out of its reach.
    std::error_code ec;
    if (ctx.netns.initial && std::filesystem::is_directory(child, ec)) {
      spdlog::info("bpf pins: {} holds this namespace's pins from an earlier start; using it",
                   child);
      pin_root = child;
    }
  }
  netagent::kernel::Capability bpffs = netagent::agent::PrepareBpffs(pin_root);
  if (!bpffs.note.empty()) {
    spdlog::warn("bpffs: {}", bpffs.note);
    ctx.conditions.Set({"bpffs-mounted-by-agent", netagent::agent::ConditionSeverity::kInfo,
                        absl::StrCat("bpffs ", bpffs.note), "", absl::Now()});
  } else if (!bpffs.available) {
    spdlog::error("bpffs: {}; the fast path is off", bpffs.reason);
  }
  ctx.capabilities = netagent::agent::ProbeCapabilities(std::move(bpffs));
  std::vector<std::string> read_only;
  for (const auto& t : ctx.capabilities.writable_trees) {
    if (t.read_only_mount) read_only.push_back(absl::StrCat(t.name, " (", t.path, ")"));
  }
  if (!read_only.empty()) {
    const std::string summary = absl::StrCat(
        "the tuners cannot write ", absl::StrJoin(read_only, ", "),
        ": read-only mounts, as a container runtime mounts /proc/sys, /proc/irq and /sys");
    spdlog::warn("{}", summary);
    ctx.conditions.Set({"read-only-mounts", netagent::agent::ConditionSeverity::kWarning, summary,
                        "mount the host's /proc/sys/net and /proc/irq writable (as DIR/sys/net, "
                        "DIR/irq) and start the agent with --proc-root=DIR; for RPS and XPS also "
                        "the host's /sys, with --sys-root",
                        absl::Now()});
  } else if (!cfg.proc_root.empty() || !cfg.sys_root.empty()) {
    spdlog::info("tuners write sysctls under {}, IRQ affinity under {}, queue files under {}",
                 netagent::kernel::ProcTree("sys/net"), netagent::kernel::ProcTree("irq"),
                 netagent::kernel::NetSysfsRoot());
  }

  netagent::agent::AgentServer::Options options;
  options.socket = cfg.socket;
  options.socket_mode = cfg.socket_mode;
  options.socket_group = *socket_gid;
  options.listen = cfg.listen;
  if (cfg.tls())
    options.tls = netagent::agent::TlsPaths{cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca};
  options.state_dir = cfg.state_dir;
  options.bpf_pin_root = pin_root;
  options.fault_inject_writes = {cfg.fault_inject_writes.begin(), cfg.fault_inject_writes.end()};
  if (!options.fault_inject_writes.empty()) {
    spdlog::warn("fault injection on: writes of {} will fail",
                 fmt::join(cfg.fault_inject_writes, ", "));
  }
  options.shutdown_grace = cfg.shutdown_grace;
  options.diagnosis_thresholds = cfg.diagnosis_thresholds;
  options.diagnosis_interval = cfg.diagnosis_interval;
  options.drop_reasons = cfg.drop_reasons;
  options.drop_samples = cfg.drop_samples;
  options.socket_iter = cfg.socket_iter;
  if (cfg.metrics_listen) {
    netagent::agent::MetricsSelection selection;
    selection.counters = cfg.metrics_counters;
    selection.devices = cfg.metrics_devices;
    selection.devices_exclude = cfg.metrics_devices_exclude;
    selection.ethtool_devices = cfg.metrics_ethtool_devices;
    selection.node_exporter_names = cfg.metrics_node_exporter_names;
    options.metrics =
        netagent::agent::AgentServer::Options::Metrics{*cfg.metrics_listen, std::move(selection)};
  }
  options.health_listen = cfg.health_listen;
  for (const auto& file : cfg.playbooks) {
    auto p = LoadAutoPlaybook(file);
    if (!p.ok()) return Fail(p.status());
    options.auto_playbooks.push_back(std::move(*p));
  }
  // Connections must never take the descriptors the agent needs for itself
  // (netlink, bpf, files) nor all of them from the other listener.
  const rlim_t files = RaiseOpenFilesLimit();
  const size_t per_listener = static_cast<size_t>(files > 640 ? (files - 128) / 3 : 170);
  options.tcp_limits.total = std::min(options.tcp_limits.total, per_listener);
  options.unix_limits.total = std::min(options.unix_limits.total, per_listener);
  auto server = netagent::agent::AgentServer::Start(options, ctx);
  if (!server.ok()) {
    spdlog::error("{}", server.status().message());
    return 1;
  }
  spdlog::info("netagentd {} serving netns {}{} on {}{}", ctx.version, ctx.netns.inode,
               ctx.netns.name.empty() ? "" : absl::StrCat(" (", ctx.netns.name, ")"), cfg.socket,
               cfg.listen ? absl::StrCat(" and ", cfg.listen->ToGrpc(),
                                         cfg.mtls()  ? " (mTLS)"
                                         : cfg.tls() ? " (TLS)"
                                                     : " (plaintext)")
                          : "");
  if (!cfg.pid_file.empty()) {
    std::ofstream(cfg.pid_file) << getpid() << "\n";
  }

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      absl::Status st = (*server)->ReloadTls();
      if (st.ok()) {
        spdlog::info("SIGHUP: TLS certificates reloaded (in effect within {}s)",
                     netagent::agent::kTlsRefreshSeconds);
      } else {
        spdlog::warn("SIGHUP: keeping the current TLS certificates: {}", st.message());
      }
      continue;
    }
    spdlog::info("{}: draining (grace {})", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 absl::FormatDuration(cfg.shutdown_grace));
    break;
  }
  (*server)->Shutdown();
  if (!cfg.pid_file.empty()) ::unlink(cfg.pid_file.c_str());
  spdlog::info("stopped");
  return 0;
}
