#include "kernel/netlink.h"

#include <gtest/gtest.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "kernel/genl.h"

namespace netagent::kernel {
namespace {

// Builds datagrams of netlink messages the way the kernel lays them out.
class Datagram {
 public:
  nlmsghdr* Add(uint16_t type, uint16_t flags, uint32_t seq, uint32_t portid,
                const std::vector<char>& payload = {}) {
    size_t off = buf_.size();
    size_t len = NLMSG_HDRLEN + payload.size();
    buf_.resize(off + NLMSG_ALIGN(len));
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data() + off);
    h->nlmsg_len = static_cast<uint32_t>(len);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = seq;
    h->nlmsg_pid = portid;
    if (!payload.empty())
      std::memcpy(buf_.data() + off + NLMSG_HDRLEN, payload.data(), payload.size());
    return h;
  }
  const void* data() const { return buf_.data(); }
  size_t size() const { return buf_.size(); }
  std::vector<char>& bytes() { return buf_; }

 private:
  std::vector<char> buf_;
};

std::vector<char> Int(int v) {
  std::vector<char> p(sizeof(int));
  std::memcpy(p.data(), &v, sizeof(v));
  return p;
}

void AppendAttr(std::vector<char>& p, uint16_t type, const std::string& s) {
  nlattr a{static_cast<uint16_t>(NLA_HDRLEN + s.size() + 1), type};
  size_t off = p.size();
  p.resize(off + NLA_ALIGN(a.nla_len));
  std::memcpy(p.data() + off, &a, sizeof(a));
  std::memcpy(p.data() + off + NLA_HDRLEN, s.c_str(), s.size() + 1);
}

// NLMSG_ERROR payload: nlmsgerr (error + the request's header), then TLVs.
std::vector<char> ErrorPayload(int err, const std::string& extack) {
  std::vector<char> p(sizeof(nlmsgerr));
  nlmsgerr e{};
  e.error = err;
  e.msg.nlmsg_len = sizeof(nlmsghdr);
  std::memcpy(p.data(), &e, sizeof(e));
  if (!extack.empty()) AppendAttr(p, NLMSGERR_ATTR_MSG, extack);
  return p;
}

absl::Status Parse(const Datagram& d, ReplyProgress& progress,
                   std::vector<uint16_t>* seen = nullptr) {
  return ParseReply(
      d.data(), d.size(), 7, 42, "test request",
      [&](const nlmsghdr& m) {
        if (seen) seen->push_back(m.nlmsg_type);
        return absl::OkStatus();
      },
      progress);
}

TEST(ParseReply, DataThenAckEndsADoRequest) {
  Datagram d;
  d.Add(100, 0, 7, 42);
  d.Add(NLMSG_ERROR, NLM_F_CAPPED, 7, 42, ErrorPayload(0, ""));
  ReplyProgress p;
  std::vector<uint16_t> seen;
  ASSERT_TRUE(Parse(d, p, &seen).ok());
  EXPECT_TRUE(p.done);
  EXPECT_EQ(seen, std::vector<uint16_t>{100});
}

TEST(ParseReply, ErrorKeepsErrnoAndExtack) {
  Datagram d;
  d.Add(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, 42,
        ErrorPayload(-EPERM, "requires CAP_NET_ADMIN in this namespace"));
  ReplyProgress p;
  absl::Status st = Parse(d, p);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("test request"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("errno 1"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("requires CAP_NET_ADMIN in this namespace"), absl::string_view::npos)
      << st;
}

TEST(ParseReply, UncappedErrorSkipsTheEchoedRequestBeforeTheTlvs) {
  // Without NETLINK_CAP_ACK the kernel echoes the whole request (here a
  // 20-byte one) between nlmsgerr and the TLVs.
  std::vector<char> p(sizeof(nlmsgerr) + 4);
  nlmsgerr e{};
  e.error = -EINVAL;
  e.msg.nlmsg_len = sizeof(nlmsghdr) + 4;
  std::memcpy(p.data(), &e, sizeof(e));
  AppendAttr(p, NLMSGERR_ATTR_MSG, "bad attribute");
  Datagram d;
  d.Add(NLMSG_ERROR, NLM_F_ACK_TLVS, 7, 42, p);
  ReplyProgress prog;
  absl::Status st = Parse(d, prog);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("bad attribute"), absl::string_view::npos) << st;
}

TEST(ParseReply, DoneWithAnErrorFailsTheDump) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 7, 42);
  d.Add(NLMSG_DONE, NLM_F_MULTI, 7, 42, Int(-EOPNOTSUPP));
  ReplyProgress p;
  absl::Status st = Parse(d, p);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented) << st;
}

TEST(ParseReply, SkipsMessagesOfAnotherSequenceOrPort) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 6, 42);  // a leftover of request 6
  d.Add(101, NLM_F_MULTI, 7, 43);  // not our port
  d.Add(102, NLM_F_MULTI, 7, 42);
  d.Add(NLMSG_DONE, NLM_F_MULTI, 7, 42, Int(0));
  ReplyProgress p;
  std::vector<uint16_t> seen;
  ASSERT_TRUE(Parse(d, p, &seen).ok());
  EXPECT_EQ(seen, std::vector<uint16_t>{102});
  EXPECT_EQ(p.skipped, 2u);
  EXPECT_TRUE(p.done);
}

TEST(ParseReply, NotesAnInterruptedDump) {
  Datagram d;
  d.Add(100, NLM_F_MULTI | NLM_F_DUMP_INTR, 7, 42);
  d.Add(NLMSG_DONE, NLM_F_MULTI | NLM_F_DUMP_INTR, 7, 42, Int(0));
  ReplyProgress p;
  ASSERT_TRUE(Parse(d, p).ok());
  EXPECT_TRUE(p.interrupted);
}

TEST(ParseReply, HandlerErrorStopsTheWalk) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 7, 42);
  d.Add(101, NLM_F_MULTI, 7, 42);
  ReplyProgress p;
  int calls = 0;
  absl::Status st = ParseReply(
      d.data(), d.size(), 7, 42, "x",
      [&](const nlmsghdr&) {
        ++calls;
        return absl::CancelledError("caller went away");
      },
      p);
  EXPECT_TRUE(absl::IsCancelled(st));
  EXPECT_EQ(calls, 1);
}

TEST(ParseReply, TrailingBytesAreDataLoss) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 7, 42);
  d.bytes().resize(d.bytes().size() + 8, 0);  // not a whole header
  ReplyProgress p;
  EXPECT_EQ(Parse(d, p).code(), absl::StatusCode::kDataLoss);
}

TEST(ParseReply, TruncatedDatagramIsDataLoss) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 7, 42, std::vector<char>(16, 0));
  // Claim more bytes than the datagram has.
  reinterpret_cast<nlmsghdr*>(d.bytes().data())->nlmsg_len = 200;
  ReplyProgress p;
  EXPECT_EQ(Parse(d, p).code(), absl::StatusCode::kDataLoss);
}

// libmnl's mnl_nlmsg_ok compares nlmsg_len as an int: 2^31 and above is
// negative there and passed, so the handler got a message claiming 2 GiB.
TEST(ParseReply, LengthOfTwoGibibytesIsDataLossNotAMessage) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 7, 42, std::vector<char>(16, 0));
  reinterpret_cast<nlmsghdr*>(d.bytes().data())->nlmsg_len = 0x80000010u;
  ReplyProgress p;
  std::vector<uint16_t> seen;
  EXPECT_EQ(Parse(d, p, &seen).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(p.messages, 0u);
}

TEST(ParseReply, ErrorOfTwoGibibytesDoesNotReadItsTlvsPastTheDatagram) {
  Datagram d;
  d.Add(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, 42, ErrorPayload(-EPERM, "x"));
  reinterpret_cast<nlmsghdr*>(d.bytes().data())->nlmsg_len = 0xfffffff0u;
  ReplyProgress p;
  EXPECT_EQ(Parse(d, p).code(), absl::StatusCode::kDataLoss);
}

TEST(ParseReply, AnErrorOfIntMinIsAnErrorWithThatNumber) {
  // -INT_MIN overflowed an int (undefined; UBSan stops there).
  Datagram d;
  d.Add(NLMSG_ERROR, NLM_F_CAPPED, 7, 42, ErrorPayload(INT_MIN, ""));
  ReplyProgress p;
  absl::Status st = Parse(d, p);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("errno -2147483648"), absl::string_view::npos) << st;
}

TEST(ForEachNested, ANestShorterThanItsHeaderHoldsNothing) {
  // A 2-byte nest followed by what would be an attribute if its payload
  // length (2 - 4, as a u16) were believed.
  alignas(nlattr) char buf[16] = {};
  const nlattr nest{2, 1}, inner{8, 5};
  std::memcpy(buf, &nest, sizeof(nest));
  std::memcpy(buf + 4, &inner, sizeof(inner));
  const auto* a = reinterpret_cast<const nlattr*>(buf);
  int calls = 0;
  ForEachNested(a, [&](const nlattr&) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(AttrTable(a, 8).has(5));
}

TEST(ReplayRecording, InterruptedDumpIsReportedNotSilent) {
  Datagram d;
  d.Add(100, NLM_F_MULTI | NLM_F_DUMP_INTR, 1, 1);
  d.Add(NLMSG_DONE, NLM_F_MULTI, 1, 1, Int(0));
  std::string rec;
  uint32_t len = static_cast<uint32_t>(d.size());
  rec.append(reinterpret_cast<const char*>(&len), sizeof(len));
  rec.append(static_cast<const char*>(d.data()), d.size());
  absl::Status st = ReplayRecording(rec, "dump", [](const nlmsghdr&) { return absl::OkStatus(); });
  EXPECT_TRUE(IsDumpInterrupted(st)) << st;
}

TEST(ReplayRecording, AnEmptyDatagramHoldsNoMessage) {
  // Its copy was memcpy from a null pointer (undefined; UBSan stops there).
  Datagram d;
  d.Add(NLMSG_DONE, NLM_F_MULTI, 1, 1, Int(0));
  std::string rec(4, '\0');  // a zero-length datagram
  uint32_t len = static_cast<uint32_t>(d.size());
  rec.append(reinterpret_cast<const char*>(&len), sizeof(len));
  rec.append(static_cast<const char*>(d.data()), d.size());
  int messages = 0;
  EXPECT_TRUE(ReplayRecording(rec, "dump", [&](const nlmsghdr&) {
                ++messages;
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(messages, 0);
}

TEST(ReplayRecording, EndingMidReplyIsDataLoss) {
  Datagram d;
  d.Add(100, NLM_F_MULTI, 1, 1);
  std::string rec;
  uint32_t len = static_cast<uint32_t>(d.size());
  rec.append(reinterpret_cast<const char*>(&len), sizeof(len));
  rec.append(static_cast<const char*>(d.data()), d.size());
  EXPECT_EQ(ReplayRecording(rec, "dump", [](const nlmsghdr&) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kDataLoss);
}

TEST(NetlinkMessage, OverflowIsAnErrorNotACorruption) {
  NetlinkMessage m(GENL_ID_CTRL, 0, 64);
  m.PutString(CTRL_ATTR_FAMILY_NAME, std::string(200, 'x'));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LE(m.header()->nlmsg_len, 64u);
}

// Attributes laid out by hand in a nest: {nla_len, nla_type, payload bytes},
// each padded to 4 bytes as the kernel pads them, with `tail` raw bytes at
// the end (what a short or damaged message leaves).
std::vector<char> Nest(const std::vector<std::pair<nlattr, std::vector<char>>>& attrs,
                       const std::vector<char>& tail = {}) {
  std::vector<char> buf(NLA_HDRLEN);
  for (const auto& [h, payload] : attrs) {
    const size_t at = buf.size();
    buf.resize(at + NLA_ALIGN(NLA_HDRLEN + payload.size()));
    std::memcpy(buf.data() + at, &h, sizeof(h));
    if (!payload.empty()) std::memcpy(buf.data() + at + NLA_HDRLEN, payload.data(), payload.size());
  }
  buf.insert(buf.end(), tail.begin(), tail.end());
  const nlattr nest{static_cast<uint16_t>(buf.size()), NLA_F_NESTED | 1};
  std::memcpy(buf.data(), &nest, sizeof(nest));
  return buf;
}

TEST(AttrTable, AnAttributeShorterThanItsHeaderEndsTheWalk) {
  const auto buf = Nest({{{8, 1}, {1, 0, 0, 0}}, {{2, 2}, {}}, {{8, 3}, {3, 0, 0, 0}}});
  AttrTable t(reinterpret_cast<const nlattr*>(buf.data()), 8);
  EXPECT_EQ(t.u32(1), 1u);
  EXPECT_FALSE(t.has(2));
  EXPECT_FALSE(t.has(3));  // after the 2-byte one: not believed
}

TEST(AttrTable, AnAttributeLongerThanWhatIsLeftIsNotRead) {
  // The last attribute claims 12 bytes; 8 are there.
  const auto buf = Nest({{{8, 1}, {1, 0, 0, 0}}}, {12, 0, 2, 0, 7, 7, 7, 7});
  AttrTable t(reinterpret_cast<const nlattr*>(buf.data()), 8);
  EXPECT_EQ(t.u32(1), 1u);
  EXPECT_FALSE(t.has(2));
}

TEST(AttrTable, OddLengthsArePaddedFlagsMaskedAndTypesAboveMaxIgnored) {
  const auto buf = Nest({{{5, 1}, {9}},                                 // 1 byte, 3 of padding
                         {{8, NLA_F_NESTED | 2}, {2, 0, 0, 0}},         // a flag in the type
                         {{8, NLA_F_NET_BYTEORDER | 3}, {0, 0, 0, 3}},  // big-endian 3
                         {{8, 9}, {9, 9, 9, 9}}});                      // above max
  AttrTable t(reinterpret_cast<const nlattr*>(buf.data()), 8);
  EXPECT_EQ(t.u8(1), 9);
  EXPECT_EQ(t.u16(1), std::nullopt);  // 1 byte is not a u16
  EXPECT_EQ(t.bytes(1).size(), 1u);
  EXPECT_EQ(t.u32(2), 2u);
  EXPECT_EQ(t.be32(3), 3u);
  EXPECT_FALSE(t.has(9));
  EXPECT_FALSE(t.has(200));  // above the table itself
  std::vector<uint16_t> seen;
  ForEachNested(reinterpret_cast<const nlattr*>(buf.data()),
                [&](const nlattr& a) { seen.push_back(a.nla_type & NLA_TYPE_MASK); });
  EXPECT_EQ(seen, (std::vector<uint16_t>{1, 2, 3, 9}));
}

TEST(AttrTable, TypedGettersCheckLength) {
  NetlinkMessage m(GENL_ID_CTRL, 0);
  m.PutHeader<genlmsghdr>();
  m.PutU16(CTRL_ATTR_FAMILY_ID, 21);
  m.PutString(CTRL_ATTR_FAMILY_NAME, "ethtool");
  AttrTable t(*m.header(), GENL_HDRLEN, CTRL_ATTR_MAX);
  EXPECT_EQ(t.u16(CTRL_ATTR_FAMILY_ID), 21);
  EXPECT_EQ(t.u64(CTRL_ATTR_FAMILY_ID), std::nullopt);  // 2 bytes are not a u64
  EXPECT_EQ(t.str(CTRL_ATTR_FAMILY_NAME), "ethtool");
  EXPECT_FALSE(t.has(CTRL_ATTR_VERSION));
}

// Against the running kernel: the controller resolves itself, and an unknown
// family is NOT_FOUND with the kernel's errno in the message.
TEST(NetlinkSocket, ResolvesTheControllerFamily) {
  auto sock = NetlinkSocket::Open(NETLINK_GENERIC);
  ASSERT_TRUE(sock.ok()) << sock.status();
  auto fam = ResolveGenlFamily(*sock, "nlctrl");
  ASSERT_TRUE(fam.ok()) << fam.status();
  EXPECT_EQ(fam->id, GENL_ID_CTRL);
  EXPECT_TRUE(fam->HasOp(CTRL_CMD_GETFAMILY));
  auto missing = ResolveGenlFamily(*sock, "nosuchfam");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("errno"), absl::string_view::npos);
  // The socket stays usable after an error.
  EXPECT_TRUE(ResolveGenlFamily(*sock, "nlctrl").ok());
}

}  // namespace
}  // namespace netagent::kernel

namespace netagent::kernel {
namespace {

// A handler that stops mid-dump (a client that went away) leaves the socket
// usable: the next dump on it returns everything, with no leftovers of the
// first mixed in.
TEST(NetlinkSocket, AnAbortedDumpDoesNotBlockTheNextOne) {
  // A small buffer spreads the family dump over many datagrams, so the
  // kernel is mid-dump when the handler gives up.
  NetlinkSocket::Options small;
  small.recv_buffer = 4096;
  auto sock = NetlinkSocket::Open(NETLINK_GENERIC, small);
  ASSERT_TRUE(sock.ok());
  auto dump = [] {
    NetlinkMessage req(GENL_ID_CTRL, NLM_F_DUMP);
    auto* g = req.PutHeader<genlmsghdr>();
    g->cmd = CTRL_CMD_GETFAMILY;
    g->version = 1;
    return req;
  };
  NetlinkMessage first = dump();
  int seen = 0;
  absl::Status st = sock->Request(first, "families", [&](const nlmsghdr&) {
    return ++seen == 1 ? absl::CancelledError("enough") : absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsCancelled(st)) << st;
  NetlinkMessage second = dump();
  int families = 0;
  ASSERT_TRUE(sock->Request(second, "families",
                            [&](const nlmsghdr&) {
                              ++families;
                              return absl::OkStatus();
                            })
                  .ok());
  EXPECT_GE(families, 3);  // nlctrl, ethtool, netdev at least
  int again = 0;
  NetlinkMessage third = dump();
  ASSERT_TRUE(sock->Request(third, "families",
                            [&](const nlmsghdr&) {
                              ++again;
                              return absl::OkStatus();
                            })
                  .ok());
  EXPECT_EQ(again, families);
}

}  // namespace
}  // namespace netagent::kernel
