// What integration tests need: child processes with a deadline, network
// namespaces that are removed afterwards, and a netagentd started inside one.
// Everything is bounded in time and cleaned up by destructors; processes are
// ended only by the pids this harness started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace netagent::testing {

struct RunResult {
  int exit_code = -1;  // -1 when killed at the deadline or by a signal
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs argv[0] (PATH lookup) and collects its output; kills it at the deadline.
RunResult RunCommand(const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A child running in the background with its output sent to a file.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& output_file);
  Process(Process&&) = delete;
  ~Process();  // SIGKILL if still running

  pid_t pid() const { return pid_; }
  void Signal(int sig) const;
  // Exit code, or nullopt if it did not exit in time (it is then still running).
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A fresh network namespace with loopback up; removed in the destructor.
class Netns {
 public:
  Netns();
  ~Netns();
  const std::string& name() const { return name_; }
  // argv run inside the namespace via `ip netns exec`.
  std::vector<std::string> Exec(std::vector<std::string> argv) const;

 private:
  std::string name_;
};

// The accept-queue incident: a server on 127.0.0.1:8080 that listens with
// `backlog` and never accepts, and a client opening ~100 connections a second
// to it for `seconds` (closing the oldest as a client that gave up would).
std::unique_ptr<Process> SlowListener(const Netns& ns, const TempDir& dir, int backlog);
std::unique_ptr<Process> Connector(const Netns& ns, const TempDir& dir, int seconds);

// Connects to `host`:`port` from the namespace, closing each connection at
// once, for `seconds` or until `most` succeeded (pausing 10 ms after a
// failure): {succeeded, failed}. The port-exhaustion incident's client.
std::pair<int, int> ConnectLoop(const Netns& ns, const std::string& host, int port, int seconds,
                                int most = 1000000);

// /proc/net/snmp of the namespace as name -> value ("UdpNoPorts" -> 12).
std::map<std::string, int64_t> ProcSnmp(const Netns& ns);
// `sysctl -n NAME` in the namespace (tabs in vector values as spaces).
std::string Sysctl(const Netns& ns, const std::string& name);
// Until something listens on TCP `port` in the namespace (ss), 10 s at most.
bool Listening(const Netns& ns, int port);

// Two namespaces joined by a veth: `a` 10.66.0.1/24 on v0, `b` 10.66.0.2/24
// on v1, each routing everything else to the other (replies to spoofed
// sources go back over the link).
struct Link {
  Link();
  Netns a, b;
};

// A pin root of the test's own on the host's bpffs, removed with
// everything under it when this goes (unlinking pins detaches what only
// they held).
class PinRoot {
 public:
  explicit PinRoot(const std::string& tag);
  ~PinRoot();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A SYN flood over a Link: a listener on 10.66.0.1:8080 in `a` (listen(512),
// never accepts, for `seconds`) and hping3 in `b` sending 2,000 SYNs a
// second from each of `sources` (spoofed; nobody answers the SYN-ACKs) for
// as long. Ready once every source is seen half-open. Ended by pid.
class SynFlood {
 public:
  SynFlood(const Link& link, const std::string& dir, const std::vector<std::string>& sources,
           int seconds);
  // Empty when ready; else what went wrong.
  const std::string& error() const { return error_; }
  bool flooding() const;

 private:
  std::unique_ptr<Process> listener_;
  std::vector<std::unique_ptr<Process>> floods_;
  std::string error_;
};

std::string NetagentdPath();
std::string NetctlPath();
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);
bool IsRoot();

// netagentd serving `netns` on a socket in its own temp dir, started with
// `extra` flags. Waits until its health check says SERVING.
class Agent {
 public:
  // `state_dir` empty: a fresh one in the agent's temp dir (a restart test
  // passes the previous agent's, see state_dir()). `prefix` runs the agent
  // (setpriv ... --); with `inside`, the prefix has already put it in the
  // namespace (netns.Exec(...)), which it then serves as its own, as a
  // hostNetwork pod does: no --netns.
  Agent(const Netns& netns, std::vector<std::string> extra = {}, std::string state_dir = "",
        std::vector<std::string> prefix = {}, bool inside = false);
  ~Agent();

  const std::string& socket() const { return socket_; }
  std::string target() const { return "unix://" + socket_; }
  std::string log() const;
  const TempDir& dir() const { return dir_; }
  const std::string& state_dir() const { return state_dir_; }
  Process& process() { return *process_; }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

  // netctl against this agent, run from the host namespace.
  RunResult Netctl(std::vector<std::string> args) const;

 private:
  TempDir dir_;
  std::string socket_;
  std::string state_dir_;
  std::unique_ptr<Process> process_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace netagent::testing
