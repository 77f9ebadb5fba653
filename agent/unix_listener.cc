#include "agent/unix_listener.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "agent/logging.h"
#include "kernel/errors.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {
namespace {

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// True if some process accepts connections on `path`.
bool SomeoneListens(const std::string& path) {
  kernel::UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return false;
  sockaddr_un addr = Address(path);
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::vector<gid_t> PeerGroups(int fd) {
  std::vector<gid_t> groups(64);
  socklen_t len = groups.size() * sizeof(gid_t);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) < 0) {
    if (errno != ERANGE) return {};
    groups.resize(len / sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) < 0) return {};
  }
  groups.resize(len / sizeof(gid_t));
  return groups;
}

}  // namespace

UnixListener::UnixListener(std::string path, kernel::UniqueFd fd, ino_t inode,
                           ConnectionLimits limits)
    : path_(std::move(path)), fd_(std::move(fd)), inode_(inode), table_(limits) {}

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Bind(const std::string& path,
                                                                 uint32_t mode,
                                                                 std::optional<gid_t> group,
                                                                 ConnectionLimits limits) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket: path longer than ", sizeof(sockaddr_un::sun_path) - 1));
  }
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!std::filesystem::exists(dir, ec)) {  // an error: create_directories reports it
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("socket: mkdir ", dir.string(), ": ", ec.message()));
    ::chmod(dir.c_str(), 0755);
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("socket: ", path, " exists and is not a socket"));
    }
    if (SomeoneListens(path)) {
      return absl::FailedPreconditionError(
          absl::StrCat("socket: another agent already serves ", path));
    }
    ::unlink(path.c_str());  // stale socket of an agent that died
  }
  kernel::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return kernel::LastErrnoStatus("socket: socket()");
  sockaddr_un addr = Address(path);
  // Create the file with the final mode: no moment where it is wider.
  mode_t old = ::umask(0777 & ~mode);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc < 0) return kernel::LastErrnoStatus(absl::StrCat("socket: bind ", path));
  if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) < 0) {
    absl::Status s = kernel::LastErrnoStatus(absl::StrCat("socket: chown ", path));
    ::unlink(path.c_str());
    return s;
  }
  if (::chmod(path.c_str(), mode) < 0 || ::listen(fd.get(), 128) < 0 ||
      ::stat(path.c_str(), &st) < 0) {
    absl::Status s = kernel::LastErrnoStatus(absl::StrCat("socket: listen ", path));
    ::unlink(path.c_str());
    return s;
  }
  return std::unique_ptr<UnixListener>(new UnixListener(path, std::move(fd), st.st_ino, limits));
}

UnixListener::~UnixListener() { Stop(); }

void UnixListener::Start(grpc::Server* server, std::shared_ptr<AuthState> state) {
  server_ = server;
  state_ = std::move(state);
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  thread_ = std::thread([this] {
    RunAcceptLoop(
        fd_.get(), wake_.get(), [this](int fd) { OnConnection(fd); },
        [this] { table_.Sweep(SocketInode); });
  });
}

void UnixListener::OnConnection(int conn) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    spdlog::warn("unix socket SO_PEERCRED: {}; closing connection", strerror(errno));
    ::close(conn);
    return;
  }
  UnixPeer peer{cred.uid, cred.gid, cred.pid, PeerGroups(conn)};
  Caller caller;
  caller.transport = Transport::kUnix;
  caller.uid = peer.uid;
  caller.gid = peer.gid;
  caller.groups = peer.groups;
  const bool operator_peer = DecideRole(caller, state_->policy()).role == Role::kOperator;
  const std::string key = absl::StrCat("uid ", cred.uid);
  if (table_.size() >= table_.limits().total || table_.of(key) >= table_.limits().per_peer)
    table_.Sweep(SocketInode);
  if (absl::Status st = table_.Admit(conn, SocketInode(conn), key, operator_peer); !st.ok()) {
    ::close(conn);
    const auto now = std::chrono::steady_clock::now();
    ++refused_;
    if (now - last_refusal_log_ > std::chrono::seconds(10)) {
      spdlog::warn("unix socket connections refused: {} since the last report; latest: {}",
                   refused_, std::string(st.message()));
      refused_ = 0;
      last_refusal_log_ = now;
    }
    return;
  }
  // Recorded before gRPC sees the fd: a reused fd number is overwritten
  // before any call on the new connection can be identified.
  state_->PutUnixPeer(conn, std::move(peer));
  grpc::AddInsecureChannelFromFd(server_, conn);
}

void UnixListener::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)::write(wake_.get(), &one, sizeof(one));
    thread_.join();
  }
  if (fd_.valid()) {
    struct stat st;
    if (::stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) ::unlink(path_.c_str());
    fd_.reset();
  }
}

}  // namespace netagent::agent
