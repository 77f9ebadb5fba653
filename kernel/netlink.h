// The one netlink request/dump loop of the agent (libmnl underneath).
//
// Every reply goes through ParseReply, a pure function that checks the
// sequence number and port id, stops at NLMSG_DONE or at the ACK, turns
// NLMSG_ERROR (also an error carried by NLMSG_DONE) into a status that keeps
// errno and the kernel's extended-ack text, and notes NLM_F_DUMP_INTR. The live
// socket and the replay of a recorded dump (tests/fixtures) share it, so the
// fixtures exercise exactly the code that runs against the kernel.
#pragma once

#include <endian.h>
#include <linux/netlink.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mnl_socket;

namespace netagent::kernel {

// Called for each data message of a reply; a non-OK status stops the request
// and is returned from it.
using MessageHandler = absl::FunctionRef<absl::Status(const nlmsghdr&)>;

// A request being built: header, optional family header, attributes.
class NetlinkMessage {
 public:
  explicit NetlinkMessage(uint16_t type, uint16_t flags, size_t capacity = 4096);

  // Appends a zeroed family header (struct genlmsghdr, inet_diag_req_v2 ...).
  template <typename T>
  T* PutHeader() {
    return static_cast<T*>(PutExtraHeader(sizeof(T)));
  }
  void PutU8(uint16_t type, uint8_t v);
  void PutU16(uint16_t type, uint16_t v);
  void PutU32(uint16_t type, uint32_t v);
  void PutU64(uint16_t type, uint64_t v);
  void PutString(uint16_t type, absl::string_view v);
  void PutBytes(uint16_t type, const void* data, size_t len);
  // Nested attributes: BeginNest returns a token for EndNest.
  void* BeginNest(uint16_t type);
  void EndNest(void* nest);

  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  // INVALID_ARGUMENT if an attribute did not fit the capacity.
  absl::Status status() const { return status_; }

 private:
  void* PutExtraHeader(size_t size);
  bool Fits(size_t payload);

  std::vector<char> buf_;
  absl::Status status_;
};

struct ReplyProgress {
  bool done = false;         // NLMSG_DONE or the final ACK was seen
  bool interrupted = false;  // some message carried NLM_F_DUMP_INTR
  uint64_t messages = 0;     // data messages handed to the handler
  uint64_t skipped = 0;      // messages of another sequence or port
};

// Walks one datagram of a reply to request `seq` from port `portid` (0: any).
// NLMSG_DONE ends a dump and the ACK a do-request (both are asked to ack).
// Returns the error of NLMSG_ERROR / NLMSG_DONE, the handler's status, or
// DATA_LOSS for a malformed datagram.
absl::Status ParseReply(const void* data, size_t len, uint32_t seq, uint32_t portid,
                        absl::string_view what, MessageHandler handler, ReplyProgress& progress);

// The text and errno of an NLMSG_ERROR payload, for messages: "<what>:
// <strerror> (errno N): <extack>".
absl::Status StatusFromNetlinkError(const nlmsghdr& nlh, absl::string_view what);

class NetlinkSocket {
 public:
  struct Options {
    // User buffer for one datagram. The kernel fills dump datagrams up to
    // 32 KiB once it has seen a buffer that large.
    size_t recv_buffer = 64 * 1024;
    // Socket receive queue (SO_RCVBUF).
    int rcvbuf = 1 << 20;
    // rtnetlink: ask the kernel to honour filter attributes of dumps strictly.
    bool strict_check = false;
    // Per recv() wait; a kernel that never answers becomes DEADLINE_EXCEEDED.
    int recv_timeout_ms = 5000;
  };

  static absl::StatusOr<NetlinkSocket> Open(int protocol);
  static absl::StatusOr<NetlinkSocket> Open(int protocol, const Options& options);
  NetlinkSocket(NetlinkSocket&& other) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  // Sends `request` (sequence and flags are filled in: NLM_F_ACK is added to
  // non-dump requests) and feeds every data message of the reply to `handler`.
  // A dump marked NLM_F_DUMP_INTR is read to its end and reported as ABORTED
  // ("interrupted"), never as success. `what` names the request in errors.
  absl::Status Request(NetlinkMessage& request, absl::string_view what, MessageHandler handler);

  // Every datagram received is appended here as [u32 length][bytes] when set:
  // how tests/fixtures are recorded.
  void set_recorder(std::string* recorder) { recorder_ = recorder; }

  int protocol() const { return protocol_; }

 private:
  NetlinkSocket(int protocol, const Options& options);
  absl::Status Connect();
  void Close();

  int protocol_ = 0;
  Options options_;
  mnl_socket* sock_ = nullptr;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
  std::vector<char> buf_;
  std::string* recorder_ = nullptr;
};

// Replays a recording made with NetlinkSocket::set_recorder as the reply to
// request `seq` (the portid check is skipped: recordings come from many runs).
absl::Status ReplayRecording(absl::string_view recording, absl::string_view what,
                             MessageHandler handler);

// True for the ABORTED status a dump with NLM_F_DUMP_INTR produces.
bool IsDumpInterrupted(const absl::Status& status);

// Attribute access for C++ (libmnl's iteration macros are C-only). Attributes
// are indexed by type; a type above `max` is ignored, a repeated one keeps the
// last, and typed getters return nullopt when the payload is too short. No
// allocation: it is used per message of large dumps. be16/be32/be64 read
// network-order attributes (ctnetlink's).
class AttrTable {
 public:
  static constexpr uint16_t kMaxType = 127;

  AttrTable(const nlmsghdr& nlh, size_t header_len, uint16_t max);
  AttrTable(const nlattr* nest, uint16_t max);

  const nlattr* get(uint16_t type) const { return type <= max_ ? table_[type] : nullptr; }
  bool has(uint16_t type) const { return get(type) != nullptr; }
  std::optional<uint8_t> u8(uint16_t type) const { return Fixed<uint8_t>(type); }
  std::optional<uint16_t> u16(uint16_t type) const { return Fixed<uint16_t>(type); }
  std::optional<uint32_t> u32(uint16_t type) const { return Fixed<uint32_t>(type); }
  std::optional<uint64_t> u64(uint16_t type) const { return Fixed<uint64_t>(type); }
  std::optional<uint16_t> be16(uint16_t type) const {
    auto v = u16(type);
    return v ? std::optional<uint16_t>(be16toh(*v)) : std::nullopt;
  }
  std::optional<uint32_t> be32(uint16_t type) const {
    auto v = u32(type);
    return v ? std::optional<uint32_t>(be32toh(*v)) : std::nullopt;
  }
  std::optional<uint64_t> be64(uint16_t type) const {
    auto v = u64(type);
    return v ? std::optional<uint64_t>(be64toh(*v)) : std::nullopt;
  }
  std::optional<std::string> str(uint16_t type) const;
  // Payload bytes of an attribute (empty when absent).
  absl::string_view bytes(uint16_t type) const {
    const nlattr* a = get(type);
    if (a == nullptr) return {};
    return absl::string_view(reinterpret_cast<const char*>(a) + NLA_HDRLEN,
                             a->nla_len - NLA_HDRLEN);
  }

 private:
  // Inline, as the walk: parsers call these per attribute of large dumps.
  template <typename T>
  std::optional<T> Fixed(uint16_t type) const {
    const nlattr* a = get(type);
    if (a == nullptr || static_cast<size_t>(a->nla_len) < NLA_HDRLEN + sizeof(T))
      return std::nullopt;
    T v;
    std::memcpy(&v, reinterpret_cast<const char*>(a) + NLA_HDRLEN, sizeof(T));
    return v;
  }
  void Add(const nlattr* a) {
    const uint16_t type = a->nla_type & NLA_TYPE_MASK;
    if (type <= max_) table_[type] = a;
  }
  uint16_t max_ = 0;
  // Only [0, max_] is initialized and used: tables are built per message.
  std::array<const nlattr*, kMaxType + 1> table_;
};

// The value of an unsigned attribute of 1, 2, 4 or 8 bytes (host order), or
// nullopt for any other payload size (nested, strings, binary).
std::optional<uint64_t> ScalarValue(const nlattr& a);

// Calls fn(const nlattr&) for each attribute nested in `nest`, or of a message
// after `header_len` bytes of family header. The nest's nla_len bytes (the
// message's nlmsg_len bytes) must be readable, as for every attribute these
// walkers hand out and every message ParseReply delivers; inside them any
// bytes are safe: an attribute shorter than its header or longer than what
// is left ends the walk.
void ForEachNested(const nlattr* nest, absl::FunctionRef<void(const nlattr&)> fn);
void ForEachAttr(const nlmsghdr& nlh, size_t header_len, absl::FunctionRef<void(const nlattr&)> fn);

}  // namespace netagent::kernel
