#include "kernel/netlink.h"

#include <endian.h>
#include <libmnl/libmnl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernel/errors.h"

namespace netagent::kernel {
namespace {

constexpr absl::string_view kInterrupted = "netlink dump interrupted";

}  // namespace

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags, size_t capacity)
    : buf_(MNL_ALIGN(capacity), 0) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
}

bool NetlinkMessage::Fits(size_t payload) {
  if (header()->nlmsg_len + MNL_ALIGN(MNL_ATTR_HDRLEN + payload) <= buf_.size()) return true;
  if (status_.ok()) {
    status_ = absl::InvalidArgumentError(
        absl::StrCat("netlink request larger than its ", buf_.size(), "-byte buffer"));
  }
  return false;
}

void* NetlinkMessage::PutExtraHeader(size_t size) {
  if (!Fits(size)) {
    static thread_local char scratch[256];
    return scratch;
  }
  return mnl_nlmsg_put_extra_header(header(), size);
}

void NetlinkMessage::PutU8(uint16_t type, uint8_t v) {
  if (Fits(sizeof(v))) mnl_attr_put_u8(header(), type, v);
}
void NetlinkMessage::PutU16(uint16_t type, uint16_t v) {
  if (Fits(sizeof(v))) mnl_attr_put_u16(header(), type, v);
}
void NetlinkMessage::PutU32(uint16_t type, uint32_t v) {
  if (Fits(sizeof(v))) mnl_attr_put_u32(header(), type, v);
}
void NetlinkMessage::PutU64(uint16_t type, uint64_t v) {
  if (Fits(sizeof(v))) mnl_attr_put_u64(header(), type, v);
}
void NetlinkMessage::PutString(uint16_t type, absl::string_view v) {
  if (!Fits(v.size() + 1)) return;
  std::string s(v);
  mnl_attr_put_strz(header(), type, s.c_str());
}
void NetlinkMessage::PutBytes(uint16_t type, const void* data, size_t len) {
  if (Fits(len)) mnl_attr_put(header(), type, len, data);
}
void* NetlinkMessage::BeginNest(uint16_t type) {
  if (!Fits(0)) return nullptr;
  return mnl_attr_nest_start(header(), type);
}
void NetlinkMessage::EndNest(void* nest) {
  if (nest != nullptr) mnl_attr_nest_end(header(), static_cast<nlattr*>(nest));
}

absl::Status StatusFromNetlinkError(const nlmsghdr& nlh, absl::string_view what) {
  if (nlh.nlmsg_len < NLMSG_HDRLEN + sizeof(int)) {
    return absl::DataLossError(absl::StrCat(what, ": truncated netlink error message"));
  }
  const auto* payload = static_cast<const char*>(mnl_nlmsg_get_payload(&nlh));
  int sent = 0;
  std::memcpy(&sent, payload, sizeof(sent));
  // -errno, negated as unsigned: -INT_MIN does not fit an int.
  const int err = static_cast<int>(0u - static_cast<unsigned>(sent));
  std::string extack;
  // NLMSG_ERROR: nlmsgerr, then the original request (only its header when
  // capped), then TLVs. NLMSG_DONE: the int, then TLVs.
  if (nlh.nlmsg_flags & NLM_F_ACK_TLVS) {
    size_t offset = sizeof(int);
    if (nlh.nlmsg_type == NLMSG_ERROR && nlh.nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr)) {
      const auto* e = reinterpret_cast<const nlmsgerr*>(payload);
      offset = sizeof(nlmsgerr);
      if (!(nlh.nlmsg_flags & NLM_F_CAPPED) && e->msg.nlmsg_len > sizeof(nlmsghdr)) {
        offset += e->msg.nlmsg_len - sizeof(nlmsghdr);
      }
    }
    size_t total = nlh.nlmsg_len - NLMSG_HDRLEN;
    offset = MNL_ALIGN(offset);
    while (offset + sizeof(nlattr) <= total) {
      const auto* a = reinterpret_cast<const nlattr*>(payload + offset);
      if (a->nla_len < sizeof(nlattr) || offset + a->nla_len > total) break;
      if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
        const char* s = reinterpret_cast<const char*>(a) + sizeof(nlattr);
        extack.assign(s, strnlen(s, a->nla_len - sizeof(nlattr)));
      }
      offset += MNL_ALIGN(a->nla_len);
    }
  }
  absl::Status st = ErrnoStatus(err, what);
  if (!extack.empty()) st = absl::Status(st.code(), absl::StrCat(st.message(), ": ", extack));
  return st;
}

absl::Status ParseReply(const void* data, size_t len, uint32_t seq, uint32_t portid,
                        absl::string_view what, MessageHandler handler, ReplyProgress& progress) {
  const char* next = static_cast<const char*>(data);
  size_t remaining = len;
  // Not mnl_nlmsg_ok: it compares nlmsg_len as an int, so a length of 2^31
  // or more passed and the walk (and the handler) read past the datagram.
  while (remaining >= sizeof(nlmsghdr)) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(next);
    if (nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > remaining) break;
    if ((seq != 0 && nlh->nlmsg_seq != seq) || (portid != 0 && nlh->nlmsg_pid != portid)) {
      ++progress.skipped;  // a leftover of an earlier request
    } else if (nlh->nlmsg_type == NLMSG_ERROR) {
      if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(int)) {
        return absl::DataLossError(absl::StrCat(what, ": truncated netlink error message"));
      }
      int err;
      std::memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
      if (err != 0) return StatusFromNetlinkError(*nlh, what);
      progress.done = true;  // the ACK
      return absl::OkStatus();
    } else if (nlh->nlmsg_type == NLMSG_DONE) {
      if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
        int err;
        std::memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
        if (err < 0) return StatusFromNetlinkError(*nlh, what);
      }
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) progress.interrupted = true;
      progress.done = true;
      return absl::OkStatus();
    } else if (nlh->nlmsg_type == NLMSG_OVERRUN) {
      return absl::DataLossError(absl::StrCat(what, ": netlink overrun"));
    } else if (nlh->nlmsg_type != NLMSG_NOOP) {
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) progress.interrupted = true;
      ++progress.messages;
      // A do-request's answer is followed by the ACK we asked for: keep
      // reading until it comes.
      if (absl::Status st = handler(*nlh); !st.ok()) return st;
    }
    const size_t step = NLMSG_ALIGN(nlh->nlmsg_len);
    if (step > remaining) {
      return absl::DataLossError(
          absl::StrCat(what, ": malformed netlink datagram (last message not padded)"));
    }
    next += step;
    remaining -= step;
  }
  if (remaining != 0) {
    return absl::DataLossError(
        absl::StrCat(what, ": malformed netlink datagram (", remaining, " trailing bytes)"));
  }
  return absl::OkStatus();
}

bool IsDumpInterrupted(const absl::Status& status) { return HasKind(status, kInterrupted); }

static absl::Status InterruptedStatus(absl::string_view what) {
  return WithKind(
      absl::AbortedError(absl::StrCat(what, ": ", kInterrupted,
                                      " (NLM_F_DUMP_INTR): the table changed during the dump")),
      kInterrupted);
}

NetlinkSocket::NetlinkSocket(int protocol, const Options& options)
    : protocol_(protocol), options_(options), buf_(options.recv_buffer) {}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : protocol_(other.protocol_),
      options_(other.options_),
      sock_(std::exchange(other.sock_, nullptr)),
      portid_(other.portid_),
      seq_(other.seq_),
      buf_(std::move(other.buf_)),
      recorder_(other.recorder_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    Close();
    protocol_ = other.protocol_;
    options_ = other.options_;
    sock_ = std::exchange(other.sock_, nullptr);
    portid_ = other.portid_;
    seq_ = other.seq_;
    buf_ = std::move(other.buf_);
    recorder_ = other.recorder_;
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() { Close(); }

void NetlinkSocket::Close() {
  if (sock_ != nullptr) mnl_socket_close(sock_);
  sock_ = nullptr;
}

absl::StatusOr<NetlinkSocket> NetlinkSocket::Open(int protocol) {
  return Open(protocol, Options{});
}

absl::StatusOr<NetlinkSocket> NetlinkSocket::Open(int protocol, const Options& options) {
  NetlinkSocket s(protocol, options);
  if (absl::Status st = s.Connect(); !st.ok()) return st;
  return s;
}

absl::Status NetlinkSocket::Connect() {
  sock_ = mnl_socket_open2(protocol_, SOCK_CLOEXEC);
  if (sock_ == nullptr)
    return LastErrnoStatus(absl::StrCat("netlink socket (protocol ", protocol_, ")"));
  int fd = mnl_socket_get_fd(sock_);
  int one = 1;
  // Errors of these options are not fatal: old kernels lack extack.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  if (options_.strict_check) setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options_.rcvbuf, sizeof(options_.rcvbuf));
  timeval tv{options_.recv_timeout_ms / 1000, (options_.recv_timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0) {
    absl::Status st = LastErrnoStatus("netlink bind");
    Close();
    return st;
  }
  portid_ = mnl_socket_get_portid(sock_);
  return absl::OkStatus();
}

absl::Status NetlinkSocket::Request(NetlinkMessage& request, absl::string_view what,
                                    MessageHandler handler) {
  if (absl::Status st = request.status(); !st.ok()) return st;
  if (sock_ == nullptr) {
    if (absl::Status st = Connect(); !st.ok()) return st;
  }
  nlmsghdr* nlh = request.header();
  const bool is_dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!is_dump) nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  nlh->nlmsg_pid = 0;
  if (mnl_socket_sendto(sock_, nlh, nlh->nlmsg_len) < 0) {
    return LastErrnoStatus(absl::StrCat(what, ": netlink send"));
  }
  ReplyProgress progress;
  const int fd = mnl_socket_get_fd(sock_);
  while (!progress.done) {
    iovec iov{buf_.data(), buf_.size()};
    sockaddr_nl addr{};
    msghdr msg{};
    msg.msg_name = &addr;
    msg.msg_namelen = sizeof(addr);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status st =
          (errno == EAGAIN || errno == EWOULDBLOCK)
              ? absl::DeadlineExceededError(absl::StrCat(what, ": no netlink reply within ",
                                                         options_.recv_timeout_ms, " ms"))
              : LastErrnoStatus(absl::StrCat(what, ": netlink receive"));
      Close();  // the rest of the reply must not leak into the next request
      return st;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      Close();
      return absl::DataLossError(absl::StrCat(what, ": netlink datagram larger than the ",
                                              buf_.size(), "-byte receive buffer"));
    }
    if (addr.nl_pid != 0) continue;  // not from the kernel
    if (recorder_ != nullptr) {
      uint32_t len = static_cast<uint32_t>(n);
      recorder_->append(reinterpret_cast<const char*>(&len), sizeof(len));
      recorder_->append(buf_.data(), static_cast<size_t>(n));
    }
    absl::Status st =
        ParseReply(buf_.data(), static_cast<size_t>(n), seq_, portid_, what, handler, progress);
    if (!st.ok()) {
      // An unfinished dump keeps the socket busy (EBUSY for the next one):
      // closing it ends the dump in the kernel.
      if (!progress.done) Close();
      return st;
    }
  }
  if (progress.interrupted) return InterruptedStatus(what);
  return absl::OkStatus();
}

absl::Status ReplayRecording(absl::string_view recording, absl::string_view what,
                             MessageHandler handler) {
  ReplyProgress progress;
  while (!recording.empty() && !progress.done) {
    uint32_t len;
    if (recording.size() < sizeof(len)) return absl::DataLossError("recording: truncated length");
    std::memcpy(&len, recording.data(), sizeof(len));
    recording.remove_prefix(sizeof(len));
    if (recording.size() < len) return absl::DataLossError("recording: truncated datagram");
    // Copy for alignment: netlink headers are read in place.
    std::vector<uint32_t> aligned((len + 3) / 4);
    if (len > 0) std::memcpy(aligned.data(), recording.data(), len);  // data() is null for 0
    recording.remove_prefix(len);
    NETAGENT_RETURN_IF_ERROR(ParseReply(aligned.data(), len, 0, 0, what, handler, progress));
  }
  if (!progress.done) return absl::DataLossError(absl::StrCat(what, ": recording ends mid-reply"));
  if (progress.interrupted) return InterruptedStatus(what);
  return absl::OkStatus();
}

std::optional<uint64_t> ScalarValue(const nlattr& a) {
  const char* p = reinterpret_cast<const char*>(&a) + NLA_HDRLEN;
  switch (a.nla_len - NLA_HDRLEN) {
    case 1:
      return static_cast<uint8_t>(*p);
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case 8: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
    default:
      return std::nullopt;
  }
}

namespace {

// libmnl's walk (mnl_attr_ok, mnl_attr_next) inlined: it runs per attribute
// of dumps with millions of them. An attribute shorter than its header or
// longer than what is left ends the walk.
template <typename Fn>
inline void Walk(const nlattr* a, int len, Fn&& fn) {
  while (len >= static_cast<int>(sizeof(nlattr)) && a->nla_len >= sizeof(nlattr) &&
         static_cast<int>(a->nla_len) <= len) {
    fn(*a);
    const int step = static_cast<int>(NLA_ALIGN(a->nla_len));
    len -= step;
    a = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(a) + step);
  }
}

template <typename Fn>
inline void WalkNested(const nlattr* nest, Fn&& fn) {
  // Below the header, the payload length would wrap.
  if (nest == nullptr || nest->nla_len < NLA_HDRLEN) return;
  Walk(reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(nest) + NLA_HDRLEN),
       static_cast<int>(nest->nla_len - NLA_HDRLEN), fn);
}

template <typename Fn>
inline void WalkMessage(const nlmsghdr& nlh, size_t header_len, Fn&& fn) {
  const size_t start = NLMSG_HDRLEN + NLMSG_ALIGN(header_len);
  if (nlh.nlmsg_len < start) return;
  Walk(reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(&nlh) + start),
       static_cast<int>(nlh.nlmsg_len - start), fn);
}

}  // namespace

void ForEachNested(const nlattr* nest, absl::FunctionRef<void(const nlattr&)> fn) {
  WalkNested(nest, fn);
}

void ForEachAttr(const nlmsghdr& nlh, size_t header_len,
                 absl::FunctionRef<void(const nlattr&)> fn) {
  WalkMessage(nlh, header_len, fn);
}

AttrTable::AttrTable(const nlmsghdr& nlh, size_t header_len, uint16_t max)
    : max_(std::min(max, kMaxType)) {
  std::fill_n(table_.begin(), max_ + 1, nullptr);
  WalkMessage(nlh, header_len, [this](const nlattr& a) { Add(&a); });
}

AttrTable::AttrTable(const nlattr* nest, uint16_t max) : max_(std::min(max, kMaxType)) {
  std::fill_n(table_.begin(), max_ + 1, nullptr);
  WalkNested(nest, [this](const nlattr& a) { Add(&a); });
}

std::optional<std::string> AttrTable::str(uint16_t type) const {
  const nlattr* a = get(type);
  if (a == nullptr) return std::nullopt;
  const char* p = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
  return std::string(p, strnlen(p, a->nla_len - NLA_HDRLEN));
}

}  // namespace netagent::kernel
