#include "tests/integration/harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/common/test_support.h"

namespace netagent::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

std::atomic<int> g_counter{0};

}  // namespace

RunResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult r;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out[1], 1);
    dup2(err[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    auto args = Argv(argv);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      r.timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!r.timed_out && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

Process::Process(const std::vector<std::string>& argv, const std::string& output_file) {
  pid_ = fork();
  if (pid_ == 0) {
    // A test killed at its timeout must not leave agents behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    auto args = Argv(argv);
    execvp(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() {
  if (running()) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(5));
  }
}

void Process::Signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

bool Process::running() {
  if (status_ || pid_ <= 0) return false;
  int st;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return false;
  }
  return true;
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "netagent-it-XXXXXX").string();
  path_ = mkdtemp(tmpl.data());
  // Readable by the unprivileged users some tests run as.
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// Namespaces left by a test process that crashed (its pid is gone).
void RemoveStaleNamespaces() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    const std::string name = e.path().filename().string();
    int pid = 0;
    if (sscanf(name.c_str(), "na-it-%d-", &pid) == 1 && pid != getpid() && kill(pid, 0) != 0 &&
        errno == ESRCH) {
      RunCommand({"ip", "netns", "del", name});
    }
  }
}

Netns::Netns() {
  static const bool cleaned = (RemoveStaleNamespaces(), true);
  (void)cleaned;
  name_ = "na-it-" + std::to_string(getpid()) + "-" + std::to_string(g_counter++);
  RunResult add = RunCommand({"ip", "netns", "add", name_});
  RunResult up = RunCommand({"ip", "-n", name_, "link", "set", "lo", "up"});
  if (add.exit_code != 0 || up.exit_code != 0) {
    ADD_FAILURE() << "cannot create network namespace " << name_ << ": " << add.err << up.err;
  }
}

Netns::~Netns() { RunCommand({"ip", "netns", "del", name_}); }

std::vector<std::string> Netns::Exec(std::vector<std::string> argv) const {
  argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
  return argv;
}

std::string NetagentdPath() { return NETAGENTD_PATH; }
std::string NetctlPath() { return NETCTL_PATH; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

bool IsRoot() { return geteuid() == 0; }

Agent::Agent(const Netns& netns, std::vector<std::string> extra, std::string state_dir,
             std::vector<std::string> prefix, bool inside) {
  socket_ = dir_ / "agent.sock";
  state_dir_ = state_dir.empty() ? dir_ / "state" : state_dir;
  std::vector<std::string> argv = {
      NetagentdPath(), "--netns",      netns.name(), "--socket",         socket_, "--state-dir",
      state_dir_,      "--log-format", "json",       "--shutdown-grace", "3s"};
  if (inside) argv.erase(argv.begin() + 1, argv.begin() + 3);  // --netns NAME
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.begin(), prefix.begin(), prefix.end());
  process_ = std::make_unique<Process>(argv, dir_ / "agent.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->running()) {
      error_ = "netagentd exited: " + log();
      return;
    }
    RunResult r = RunCommand({NetctlPath(), "-t", target(), "--timeout", "1s", "health"},
                             std::chrono::seconds(5));
    if (r.exit_code == 0) {
      ok_ = true;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  error_ = "netagentd did not become healthy: " + log();
}

Agent::~Agent() {
  if (process_ && process_->running()) {
    process_->Signal(SIGTERM);
    process_->Wait(std::chrono::seconds(10));
  }
}

std::string Agent::log() const { return ReadFile(dir_ / "agent.log"); }

RunResult Agent::Netctl(std::vector<std::string> args) const {
  args.insert(args.begin(), {NetctlPath(), "-t", target()});
  return RunCommand(args);
}

// A server that listens with `backlog` and never accepts.
std::unique_ptr<Process> SlowListener(const Netns& ns, const TempDir& dir, int backlog) {
  return std::make_unique<Process>(
      ns.Exec({"python3", "-c",
               absl::StrCat("import socket,time\n"
                            "s=socket.socket()\n"
                            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                            "s.bind(('127.0.0.1',8080))\n"
                            "s.listen(",
                            backlog,
                            ")\n"
                            "time.sleep(120)\n")}),
      dir / "listener.log");
}

// Opens ~100 connections a second to it for `seconds`, never closing fewer
// than it keeps (a client that gave up waiting).
std::unique_ptr<Process> Connector(const Netns& ns, const TempDir& dir, int seconds) {
  return std::make_unique<Process>(
      ns.Exec({"python3", "-c",
               absl::StrCat("import socket,time\n"
                            "socks=[]\n"
                            "end=time.time()+",
                            seconds,
                            "\n"
                            "while time.time()<end:\n"
                            "  for i in range(10):\n"
                            "    c=socket.socket(); c.setblocking(False)\n"
                            "    try: c.connect(('127.0.0.1',8080))\n"
                            "    except BlockingIOError: pass\n"
                            "    socks.append(c)\n"
                            "  time.sleep(0.1)\n"
                            "  if len(socks)>300:\n"
                            "    for c in socks[:100]: c.close()\n"
                            "    socks=socks[100:]\n")}),
      dir / "connector.log");
}

std::pair<int, int> ConnectLoop(const Netns& ns, const std::string& host, int port, int seconds,
                                int most) {
  RunResult r =
      RunCommand(ns.Exec({"python3", "-c",
                          absl::StrCat("import socket,time\n"
                                       "ok=fail=0; end=time.time()+",
                                       seconds, "\n", "while time.time()<end and ok<", most, ":\n",
                                       "  c=socket.socket()\n"
                                       "  try: c.connect(('",
                                       host, "',", port, ")); ok+=1\n",
                                       "  except OSError: fail+=1; time.sleep(0.01)\n"
                                       "  c.close()\n"
                                       "print(ok,fail)\n")}),
                 std::chrono::seconds(seconds + 20));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::pair<int, int> out{0, 0};
  EXPECT_EQ(sscanf(r.out.c_str(), "%d %d", &out.first, &out.second), 2) << r.out;
  return out;
}

std::map<std::string, int64_t> ProcSnmp(const Netns& ns) {
  RunResult r = RunCommand(ns.Exec({"cat", "/proc/net/snmp"}));
  std::map<std::string, int64_t> out;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  for (size_t i = 0; i + 1 < lines.size(); i += 2) {
    std::vector<std::string> names = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    std::vector<std::string> values = absl::StrSplit(lines[i + 1], ' ', absl::SkipEmpty());
    std::string group = names[0].substr(0, names[0].size() - 1);
    for (size_t k = 1; k < names.size() && k < values.size(); ++k) {
      int64_t v = 0;
      EXPECT_TRUE(absl::SimpleAtoi(values[k], &v));
      out[group + names[k]] = v;
    }
  }
  return out;
}

std::string Sysctl(const Netns& ns, const std::string& name) {
  RunResult r = RunCommand(ns.Exec({"sysctl", "-n", name}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string v(absl::StripAsciiWhitespace(r.out));
  for (char& c : v) c = c == '\t' ? ' ' : c;
  return v;
}

bool Listening(const Netns& ns, int port) {
  return Eventually([&] {
    return !RunCommand(ns.Exec({"ss", "-Hltn", absl::StrCat("sport = :", port)})).out.empty();
  });
}

Link::Link() {
  auto sh = [](const Netns& ns, const std::string& script) {
    return RunCommand(ns.Exec({"sh", "-c", script}), std::chrono::seconds(30)).exit_code == 0;
  };
  bool ok = sh(a, "ip link add v0 type veth peer name v1 netns " + b.name());
  ok = ok && sh(a,
                "ip addr add 10.66.0.1/24 dev v0 && ip link set v0 up && "
                "ip route add default via 10.66.0.2");
  ok = ok && sh(b,
                "ip addr add 10.66.0.2/24 dev v1 && ip link set v1 up && "
                "ip route add default via 10.66.0.1");
  if (!ok) ADD_FAILURE() << "cannot join " << a.name() << " and " << b.name();
}

PinRoot::PinRoot(const std::string& tag)
    : path_(absl::StrCat("/sys/fs/bpf/netagent-it-", getpid(), "-", tag)) {}

PinRoot::~PinRoot() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);  // bpffs: unlink pins, rmdir dirs
}

SynFlood::SynFlood(const Link& link, const std::string& dir,
                   const std::vector<std::string>& sources, int seconds) {
  listener_ = std::make_unique<Process>(
      link.a.Exec({"/usr/bin/python3", "-c",
                   absl::StrCat("import socket,time\n"
                                "s=socket.socket(); s.bind(('10.66.0.1',8080)); s.listen(512)\n"
                                "time.sleep(",
                                seconds, ")\n")}),
      dir + "/listener.log");
  if (!Listening(link.a, 8080)) {
    error_ = "the listener did not come up: " + ReadFile(dir + "/listener.log");
    return;
  }
  for (const auto& src : sources) {
    floods_.push_back(std::make_unique<Process>(
        link.b.Exec({"hping3", "-q", "-S", "-p", "8080", "-i", "u500", "-c",
                     absl::StrCat(2000 * seconds), "-a", src, "10.66.0.1"}),
        dir + "/hping3-" + src + ".log"));
  }
  const bool seen = Eventually(
      [&] {
        const std::string half_open =
            RunCommand(link.a.Exec({"ss", "-Htn", "state", "syn-recv"})).out;
        for (const auto& src : sources)
          if (half_open.find(src + ":") == std::string::npos) return false;
        return true;
      },
      std::chrono::seconds(15));
  if (!seen)
    error_ = "not every source got into the SYN queue: " +
             ReadFile(dir + "/hping3-" + sources[0] + ".log");
}

bool SynFlood::flooding() const {
  for (const auto& p : floods_)
    if (!p->running()) return false;
  return !floods_.empty();
}

}  // namespace netagent::testing
