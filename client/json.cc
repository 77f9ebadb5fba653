#include "client/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace netagent::client {
namespace {

namespace pb = ::google::protobuf;
using FD = pb::FieldDescriptor;

// What the writer needs of one field, computed once per message type (and
// thread): the quoted key with its colon, and how the value is written.
struct Field {
  const FD* fd;
  std::string key;  // "jsonName":
  bool presence;    // printed only when set (messages, oneof members, proto3 optional)
};

enum class Special { kNone, kTimestamp, kDuration, kOther };

struct Type {
  std::vector<Field> fields;
  Special special = Special::kNone;
};

const Type& TypeOf(const pb::Descriptor* d) {
  thread_local std::unordered_map<const pb::Descriptor*, Type> cache;
  auto [it, inserted] = cache.try_emplace(d);
  if (!inserted) return it->second;
  Type& t = it->second;
  if (absl::StartsWith(d->file()->name(), "google/protobuf/")) {
    t.special = d->full_name() == "google.protobuf.Timestamp"  ? Special::kTimestamp
                : d->full_name() == "google.protobuf.Duration" ? Special::kDuration
                                                               : Special::kOther;
  }
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* fd = d->field(i);
    Field f{fd, "", fd->has_presence()};
    AppendJsonString(fd->json_name(), &f.key);
    f.key += ':';
    t.fields.push_back(std::move(f));
  }
  return t;
}

void AppendDouble(double v, std::string* out) {
  if (std::isnan(v)) {
    *out += "\"NaN\"";
  } else if (std::isinf(v)) {
    *out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, r.ptr);
  }
}

void AppendFloat(float v, std::string* out) {
  if (std::isnan(v) || std::isinf(v)) return AppendDouble(v, out);
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendEnum(const pb::EnumDescriptor* e, int number, std::string* out) {
  const pb::EnumValueDescriptor* v = e->FindValueByNumber(number);
  if (v == nullptr) {
    absl::StrAppend(out, number);
  } else {
    AppendJsonString(v->name(), out);
  }
}

void AppendMessage(const pb::Message& m, std::string* out);

// One value of a field: `index` < 0 for a singular field.
void AppendValue(const pb::Message& m, const pb::Reflection* r, const FD* fd, int index,
                 std::string* out) {
  const bool rep = index >= 0;
  switch (fd->cpp_type()) {
    case FD::CPPTYPE_INT32:
      absl::StrAppend(out, rep ? r->GetRepeatedInt32(m, fd, index) : r->GetInt32(m, fd));
      break;
    case FD::CPPTYPE_UINT32:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt32(m, fd, index) : r->GetUInt32(m, fd));
      break;
    case FD::CPPTYPE_INT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedInt64(m, fd, index) : r->GetInt64(m, fd),
                      "\"");
      break;
    case FD::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedUInt64(m, fd, index) : r->GetUInt64(m, fd),
                      "\"");
      break;
    case FD::CPPTYPE_DOUBLE:
      AppendDouble(rep ? r->GetRepeatedDouble(m, fd, index) : r->GetDouble(m, fd), out);
      break;
    case FD::CPPTYPE_FLOAT:
      AppendFloat(rep ? r->GetRepeatedFloat(m, fd, index) : r->GetFloat(m, fd), out);
      break;
    case FD::CPPTYPE_BOOL:
      *out += (rep ? r->GetRepeatedBool(m, fd, index) : r->GetBool(m, fd)) ? "true" : "false";
      break;
    case FD::CPPTYPE_ENUM:
      AppendEnum(fd->enum_type(),
                 rep ? r->GetRepeatedEnumValue(m, fd, index) : r->GetEnumValue(m, fd), out);
      break;
    case FD::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, fd, index, &scratch)
                                 : r->GetStringReference(m, fd, &scratch);
      if (fd->type() == FD::TYPE_BYTES) {
        absl::StrAppend(out, "\"", absl::Base64Escape(s), "\"");
      } else {
        AppendJsonString(s, out);
      }
      break;
    }
    case FD::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, fd, index) : r->GetMessage(m, fd), out);
      break;
  }
}

// A map key: always a JSON string.
void AppendKey(const pb::Message& entry, const pb::Reflection* r, const FD* fd, std::string* out) {
  if (fd->cpp_type() == FD::CPPTYPE_STRING) {
    AppendValue(entry, r, fd, -1, out);
  } else if (fd->cpp_type() == FD::CPPTYPE_INT64 || fd->cpp_type() == FD::CPPTYPE_UINT64) {
    AppendValue(entry, r, fd, -1, out);  // already quoted
  } else {
    *out += '"';
    AppendValue(entry, r, fd, -1, out);
    *out += '"';
  }
  *out += ':';
}

void AppendMessage(const pb::Message& m, std::string* out) {
  const Type& type = TypeOf(m.GetDescriptor());
  // A value outside the types' ranges (protobuf's printer refuses the whole
  // message) is null here.
  if (type.special == Special::kTimestamp) {
    const auto& t = static_cast<const pb::Timestamp&>(m);
    if (t.seconds() < pb::util::TimeUtil::kTimestampMinSeconds ||
        t.seconds() > pb::util::TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
        t.nanos() > 999999999) {
      *out += "null";
    } else {
      AppendJsonString(pb::util::TimeUtil::ToString(t), out);
    }
    return;
  }
  if (type.special == Special::kDuration) {
    const auto& d = static_cast<const pb::Duration&>(m);
    if (d.seconds() < pb::util::TimeUtil::kDurationMinSeconds ||
        d.seconds() > pb::util::TimeUtil::kDurationMaxSeconds || d.nanos() < -999999999 ||
        d.nanos() > 999999999 || (d.seconds() > 0 && d.nanos() < 0) ||
        (d.seconds() < 0 && d.nanos() > 0)) {
      *out += "null";
    } else {
      AppendJsonString(pb::util::TimeUtil::ToString(d), out);
    }
    return;
  }
  if (type.special == Special::kOther) {
    // Struct, Value, wrappers, Any: rare here, and protobuf knows their forms.
    pb::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    std::string json;
    if (pb::util::MessageToJsonString(m, &json, options).ok()) {
      *out += json;
    } else {
      *out += "null";
    }
    return;
  }
  const pb::Reflection* r = m.GetReflection();
  *out += '{';
  bool first = true;
  for (const Field& f : type.fields) {
    const FD* fd = f.fd;
    if (fd->is_repeated()) {
      const int n = r->FieldSize(m, fd);
      if (!first) *out += ',';
      first = false;
      *out += f.key;
      if (fd->is_map()) {
        // Entries in the order of their keys: protobuf's map order changes
        // from run to run, and output that does not is easier to compare.
        *out += '{';
        const FD* key = fd->message_type()->map_key();
        const FD* value = fd->message_type()->map_value();
        std::vector<std::pair<std::string, std::string>> entries(n);
        for (int i = 0; i < n; ++i) {
          const pb::Message& entry = r->GetRepeatedMessage(m, fd, i);
          const pb::Reflection* er = entry.GetReflection();
          AppendKey(entry, er, key, &entries[i].first);
          AppendValue(entry, er, value, -1, &entries[i].second);
        }
        std::sort(entries.begin(), entries.end());
        for (int i = 0; i < n; ++i) {
          if (i) *out += ',';
          *out += entries[i].first;
          *out += entries[i].second;
        }
        *out += '}';
      } else {
        *out += '[';
        for (int i = 0; i < n; ++i) {
          if (i) *out += ',';
          AppendValue(m, r, fd, i, out);
        }
        *out += ']';
      }
      continue;
    }
    if (f.presence && !r->HasField(m, fd)) continue;
    if (!first) *out += ',';
    first = false;
    *out += f.key;
    AppendValue(m, r, fd, -1, out);
  }
  *out += '}';
}

}  // namespace

Utf8 DecodeUtf8(absl::string_view s, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
  const uint8_t c = b(0);
  if (c < 0x80) return {c, 1};
  size_t len;
  uint32_t cp, min;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (s.size() - pos < len) return {};
  for (size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xc0) != 0x80) return {};
    cp = (cp << 6) | (b(i) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {};
  return {cp, len};
}

void AppendJsonString(absl::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t plain = 0;  // start of the run of bytes copied as they are
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    size_t len = 1;
    if (c >= 0x80) {
      len = DecodeUtf8(text, i).len;
      if (len > 0) {
        i += len;
        continue;
      }
      len = 1;
    }
    out->append(text.data() + plain, i - plain);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c >= 0x80) {
          *out += "\\ufffd";  // not UTF-8
        } else {
          *out += "\\u00";
          *out += kHex[c >> 4];
          *out += kHex[c & 0xf];
        }
    }
    i += len;
    plain = i;
  }
  out->append(text.data() + plain, n - plain);
  *out += '"';
}

void AppendJson(const google::protobuf::Message& message, std::string* out) {
  AppendMessage(message, out);
}

}  // namespace netagent::client
