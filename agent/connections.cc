#include "agent/connections.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace netagent::agent {

absl::Status ConnectionTable::Admit(int fd, uint64_t inode, const std::string& peer, bool exempt) {
  if (auto it = by_fd_.find(fd); it != by_fd_.end()) Forget(it);
  if (!exempt) {
    if (by_fd_.size() >= limits_.total) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the listener holds its limit of ", limits_.total, " connections"));
    }
    if (of(peer) >= limits_.per_peer) {
      return absl::ResourceExhaustedError(
          absl::StrCat(peer, " holds its limit of ", limits_.per_peer, " connections"));
    }
  }
  by_fd_[fd] = Entry{inode, peer};
  ++by_peer_[peer];
  return absl::OkStatus();
}

size_t ConnectionTable::Sweep(const std::function<uint64_t(int)>& inode_of) {
  size_t gone = 0;
  for (auto it = by_fd_.begin(); it != by_fd_.end();) {
    auto next = std::next(it);
    if (inode_of(it->first) != it->second.inode) {
      Forget(it);
      ++gone;
    }
    it = next;
  }
  return gone;
}

size_t ConnectionTable::of(const std::string& peer) const {
  auto it = by_peer_.find(peer);
  return it == by_peer_.end() ? 0 : it->second;
}

void ConnectionTable::Forget(std::map<int, Entry>::iterator it) {
  auto p = by_peer_.find(it->second.peer);
  if (p != by_peer_.end() && --p->second == 0) by_peer_.erase(p);
  by_fd_.erase(it);
}

uint64_t SocketInode(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  return st.st_ino;
}

void RunAcceptLoop(int listen_fd, int wake_fd, const std::function<void(int)>& on_connection,
                   const std::function<void()>& on_tick, int tick_ms) {
  int reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
  for (;;) {
    const int n = ::poll(fds, 2, tick_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("listener poll: {}", strerror(errno));
      break;
    }
    if (on_tick) on_tick();
    if (n <= 0) continue;
    if (fds[1].revents) break;
    if (!(fds[0].revents & POLLIN)) continue;
    const int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn >= 0) {
      on_connection(conn);
      continue;
    }
    if ((errno == EMFILE || errno == ENFILE) && reserve >= 0) {
      ::close(reserve);
      const int refused = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (refused >= 0) ::close(refused);
      reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      spdlog::warn("listener: out of descriptors; a connection was refused");
    } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      spdlog::warn("listener accept: {}", strerror(errno));
      ::usleep(100 * 1000);  // a persistent error must not spin
    }
  }
  if (reserve >= 0) ::close(reserve);
}

}  // namespace netagent::agent
